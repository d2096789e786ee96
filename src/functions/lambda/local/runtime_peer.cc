#include "functions/lambda/local/runtime_peer.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace portcullis::functions::lambda {

namespace {

// Processes of a function's tree looked at before the walk of all of /proc.
constexpr std::size_t kMaxTree = 256;

// A file descriptor closed on scope exit.
class Fd final {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

class Dir final {
 public:
  explicit Dir(DIR* dir) : dir_(dir) {}
  ~Dir() {
    if (dir_ != nullptr) ::closedir(dir_);
  }
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
  DIR* get() const { return dir_; }

 private:
  DIR* dir_;
};

std::optional<pid_t> parsePid(const char* name) {
  if (name[0] < '1' || name[0] > '9') return std::nullopt;
  char* end = nullptr;
  const long v = std::strtol(name, &end, 10);
  if (*end != '\0' || v <= 0) return std::nullopt;
  return static_cast<pid_t>(v);
}

// True when /proc/PID/fd holds `link` ("socket:[INODE]").
bool holdsSocket(pid_t pid, const std::string& link) {
  const std::string dir_path = "/proc/" + std::to_string(pid) + "/fd";
  Dir dir(::opendir(dir_path.c_str()));
  if (dir.get() == nullptr) return false;  // gone, or not ours to read
  std::array<char, 64> target;
  while (const dirent* e = ::readdir(dir.get())) {
    if (e->d_name[0] == '.') continue;
    const ssize_t n = ::readlinkat(::dirfd(dir.get()), e->d_name, target.data(), target.size());
    if (n > 0 && static_cast<std::size_t>(n) == link.size() &&
        std::memcmp(target.data(), link.data(), link.size()) == 0) {
      return true;
    }
  }
  return false;
}

// Appends the children of every thread of `pid` (/proc/PID/task/TID/children, present
// when the kernel has CONFIG_PROC_CHILDREN, as Debian's does; without it the caller's walk
// of /proc finds them).
void appendChildren(pid_t pid, std::vector<pid_t>& out) {
  const std::string tasks_path = "/proc/" + std::to_string(pid) + "/task";
  Dir tasks(::opendir(tasks_path.c_str()));
  if (tasks.get() == nullptr) return;
  std::array<char, 4096> buf;
  while (const dirent* e = ::readdir(tasks.get())) {
    if (!parsePid(e->d_name)) continue;
    const std::string path = tasks_path + "/" + e->d_name + "/children";
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) continue;
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size() - 1);
    if (n <= 0) continue;
    buf[static_cast<std::size_t>(n)] = '\0';
    char* cursor = buf.data();
    for (;;) {
      char* end = nullptr;
      const long child = std::strtol(cursor, &end, 10);
      if (end == cursor) break;
      if (child > 0) out.push_back(static_cast<pid_t>(child));
      cursor = end;
    }
  }
}

}  // namespace

std::optional<PeerSocket> findPeerSocketByDiag(std::uint32_t local_addr, std::uint16_t local_port,
                                               std::uint32_t peer_addr, std::uint16_t peer_port) {
  Fd fd(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (fd.get() < 0) return std::nullopt;

  struct {
    nlmsghdr header;
    inet_diag_req_v2 body;
  } request{};
  request.header.nlmsg_len = sizeof(request);
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags = NLM_F_REQUEST;  // an exact lookup, not a dump
  request.body.sdiag_family = AF_INET;
  request.body.sdiag_protocol = IPPROTO_TCP;
  request.body.idiag_states = ~0U;
  // The peer's socket: its own end (src) is the peer's address, its remote end (dst) ours.
  request.body.id.idiag_sport = htons(peer_port);
  request.body.id.idiag_dport = htons(local_port);
  request.body.id.idiag_src[0] = peer_addr;
  request.body.id.idiag_dst[0] = local_addr;
  request.body.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.body.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd.get(), &request, sizeof(request), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) != static_cast<ssize_t>(sizeof(request))) {
    return std::nullopt;
  }
  alignas(nlmsghdr) std::array<char, 8192> buffer;
  ssize_t n = 0;
  do {
    n = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return std::nullopt;
  auto len = static_cast<std::uint32_t>(n);
  for (auto* h = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(h, len);
       h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_DONE) return std::nullopt;
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
        h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) {
      continue;
    }
    const auto* msg = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
    if (msg->id.idiag_sport != htons(peer_port) || msg->id.idiag_dport != htons(local_port)) {
      continue;
    }
    return PeerSocket{static_cast<uid_t>(msg->idiag_uid), static_cast<ino_t>(msg->idiag_inode)};
  }
  return std::nullopt;
}

std::optional<PeerSocket> findPeerSocketInProcNet(std::uint32_t local_addr,
                                                  std::uint16_t local_port, std::uint32_t peer_addr,
                                                  std::uint16_t peer_port) {
  // "sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …", each
  // address as the kernel prints it: the raw (network order) word in hex, then the port.
  std::FILE* file = std::fopen("/proc/net/tcp", "re");
  if (file == nullptr) return std::nullopt;
  std::array<char, 32> want_local;
  std::array<char, 32> want_remote;
  std::snprintf(want_local.data(), want_local.size(), "%08X:%04X", peer_addr, peer_port);
  std::snprintf(want_remote.data(), want_remote.size(), "%08X:%04X", local_addr, local_port);
  std::optional<PeerSocket> found;
  std::array<char, 512> line;
  while (!found && std::fgets(line.data(), static_cast<int>(line.size()), file) != nullptr) {
    std::array<char, 64> local{};
    std::array<char, 64> remote{};
    unsigned uid = 0;
    unsigned long inode = 0;
    if (std::sscanf(line.data(), " %*u: %63s %63s %*s %*s %*s %*s %u %*u %lu", local.data(),
                    remote.data(), &uid, &inode) == 4 &&
        std::strcmp(local.data(), want_local.data()) == 0 &&
        std::strcmp(remote.data(), want_remote.data()) == 0) {
      found = PeerSocket{static_cast<uid_t>(uid), static_cast<ino_t>(inode)};
    }
  }
  std::fclose(file);
  return found;
}

std::optional<PeerSocket> findPeerSocket(std::uint32_t local_addr, std::uint16_t local_port,
                                         std::uint32_t peer_addr, std::uint16_t peer_port) {
  if (auto found = findPeerSocketByDiag(local_addr, local_port, peer_addr, peer_port)) {
    return found;
  }
  return findPeerSocketInProcNet(local_addr, local_port, peer_addr, peer_port);
}

pid_t processGroupOf(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return -1;
  std::array<char, 512> buf;
  const ssize_t n = ::read(fd.get(), buf.data(), buf.size() - 1);
  if (n <= 0) return -1;
  buf[static_cast<std::size_t>(n)] = '\0';
  // "PID (COMM) STATE PPID PGRP …": COMM may hold anything, so parse after its last ')'.
  const char* close = std::strrchr(buf.data(), ')');
  if (close == nullptr) return -1;
  char state = 0;
  int ppid = 0;
  int pgrp = 0;
  if (std::sscanf(close + 1, " %c %d %d", &state, &ppid, &pgrp) != 3) return -1;
  return static_cast<pid_t>(pgrp);
}

pid_t findSocketHolder(ino_t inode, pid_t pgid) {
  if (inode == 0 || pgid <= 0) return -1;
  const std::string link = "socket:[" + std::to_string(inode) + "]";
  // The leader's descendants first, breadth-first: a handful of processes (a shell
  // runtime's subshell and curl), where a walk of all of /proc costs tens of milliseconds
  // on a busy machine.
  std::vector<pid_t> tree{pgid};
  for (std::size_t i = 0; i < tree.size() && i < kMaxTree; ++i) {
    if (processGroupOf(tree[i]) == pgid && holdsSocket(tree[i], link)) return tree[i];
    appendChildren(tree[i], tree);
  }
  // Then every process: a member of the group whose parent has exited is not in the tree.
  Dir proc(::opendir("/proc"));
  if (proc.get() == nullptr) return -1;
  while (const dirent* e = ::readdir(proc.get())) {
    const auto pid = parsePid(e->d_name);
    if (!pid || std::find(tree.begin(), tree.end(), *pid) != tree.end()) continue;
    if (processGroupOf(*pid) == pgid && holdsSocket(*pid, link)) return *pid;
  }
  return -1;
}

std::string_view peerVerdictName(PeerVerdict verdict) {
  switch (verdict) {
    case PeerVerdict::kAccepted:
      return "accepted";
    case PeerVerdict::kOtherUser:
      return "other_user";
    case PeerVerdict::kOtherProcess:
      return "other_process";
    case PeerVerdict::kUnknownPeer:
      return "unknown_peer";
  }
  return "unknown_peer";
}

PeerCheck checkRuntimePeer(std::uint32_t local_addr, std::uint16_t local_port,
                           std::uint32_t peer_addr, std::uint16_t peer_port, uid_t expected_uid,
                           pid_t pgid) {
  PeerCheck check;
  const auto socket = findPeerSocket(local_addr, local_port, peer_addr, peer_port);
  if (!socket) return check;  // kUnknownPeer
  check.uid = socket->uid;
  if (socket->uid != expected_uid) {
    check.verdict = PeerVerdict::kOtherUser;
    return check;
  }
  check.pid = findSocketHolder(socket->inode, pgid);
  check.verdict = check.pid > 0 ? PeerVerdict::kAccepted : PeerVerdict::kOtherProcess;
  return check;
}

}  // namespace portcullis::functions::lambda
