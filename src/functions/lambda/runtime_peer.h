#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

// Who is at the other end of a connection to a `lambda-local` Runtime API listener.
//
// Loopback is not private (docs/security.md): any local user can connect to 127.0.0.1. The
// Runtime API hands out events (Authorization headers, cookies) and takes decisions, so a
// listener accepts only the function's own processes: the peer's socket must belong to the
// uid the function runs as, and be held by a process of the function's process group.
//
// Both ends are on this host, so the kernel knows the peer's socket: NETLINK_SOCK_DIAG
// (inet_diag, the interface `ss` uses) looks it up by its address and port and returns its
// owner (the uid that created it) and inode, in one exact lookup instead of a walk of
// /proc/net/tcp (the fallback where netlink is not allowed). The inode is then looked for among the
// descriptors of the group's processes in /proc/PID/fd. No call here throws; they block briefly (a
// netlink round trip, a walk of /proc) and are meant for the pool's own thread, once per accepted
// connection.
namespace portcullis::functions::lambda {

// The peer's socket as the kernel sees it.
struct PeerSocket {
  uid_t uid = 0;    // its owner: the file-system uid of the process that created it
  ino_t inode = 0;  // 0 when no process holds it any more
};

// Looks up the TCP socket connected from `peer_addr:peer_port` to `local_addr:local_port`
// (IPv4, addresses in network byte order, ports in host order): through sock_diag, else
// (no netlink, e.g. a seccomp filter, or not found there) in /proc/net/tcp. Empty when
// there is none: the peer has gone.
std::optional<PeerSocket> findPeerSocket(std::uint32_t local_addr, std::uint16_t local_port,
                                         std::uint32_t peer_addr, std::uint16_t peer_port);
// The two ways, apart (tests).
std::optional<PeerSocket> findPeerSocketByDiag(std::uint32_t local_addr, std::uint16_t local_port,
                                               std::uint32_t peer_addr, std::uint16_t peer_port);
std::optional<PeerSocket> findPeerSocketInProcNet(std::uint32_t local_addr,
                                                  std::uint16_t local_port, std::uint32_t peer_addr,
                                                  std::uint16_t peer_port);

// A process of process group `pgid` whose descriptor table holds socket `inode`, or -1.
// The group's leader and its descendants are looked at first (most runtimes hold their own
// connections; a shell runtime's curl is its grandchild), then every process in /proc. Needs to
// read the processes' /proc/PID/fd: root can; an unprivileged portcullis can for processes of its
// own uid (not for non-dumpable ones).
pid_t findSocketHolder(ino_t inode, pid_t pgid);

// The process group of `pid` (from /proc/PID/stat), or -1.
pid_t processGroupOf(pid_t pid);

enum class PeerVerdict : std::uint8_t {
  kAccepted,
  kOtherUser,     // the socket belongs to another uid
  kOtherProcess,  // the right uid, but no process of the function's group holds it
  kUnknownPeer,   // the socket could not be found (gone, or sock_diag unavailable)
};

// The metric label and log word for a refusal: "other_user", "other_process", "unknown_peer".
std::string_view peerVerdictName(PeerVerdict verdict);

struct PeerCheck {
  PeerVerdict verdict = PeerVerdict::kUnknownPeer;
  uid_t uid = static_cast<uid_t>(-1);  // the peer socket's owner, when found
  pid_t pid = -1;                      // the process holding it, when found in the group
};

// The whole check for one accepted connection: `expected_uid` is the uid the function runs
// as, `pgid` its process group (the spawned process' pid).
PeerCheck checkRuntimePeer(std::uint32_t local_addr, std::uint16_t local_port,
                           std::uint32_t peer_addr, std::uint16_t peer_port, uid_t expected_uid,
                           pid_t pgid);

}  // namespace portcullis::functions::lambda
