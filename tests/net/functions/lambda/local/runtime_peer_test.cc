// The Runtime API's peer check (functions/lambda/runtime_peer.h) on real loopback sockets of
// this test process: both ways of finding the peer's socket agree with fstat, and the
// verdicts for the right uid and group, another uid, another group, and no peer.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "functions/lambda/local/runtime_peer.h"

namespace portcullis::functions::lambda {
namespace {

// A listener on 127.0.0.1:0, a client connected to it, and the accepted end.
struct Loopback {
  Loopback() {
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listener, 4), 0);
    EXPECT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    local = addr;
    client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    len = sizeof(peer);
    accepted = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    EXPECT_GE(accepted, 0);
  }
  ~Loopback() {
    ::close(accepted);
    ::close(client);
    ::close(listener);
  }
  std::uint16_t localPort() const { return ntohs(local.sin_port); }
  std::uint16_t peerPort() const { return ntohs(peer.sin_port); }
  ino_t clientInode() const {
    struct stat st {};
    ::fstat(client, &st);
    return st.st_ino;
  }

  int listener = -1;
  int client = -1;
  int accepted = -1;
  sockaddr_in local{};
  sockaddr_in peer{};
};

TEST(RuntimePeer, BothLookupsFindThePeersSocket) {
  Loopback lo;
  const auto diag = findPeerSocketByDiag(lo.local.sin_addr.s_addr, lo.localPort(),
                                         lo.peer.sin_addr.s_addr, lo.peerPort());
  ASSERT_TRUE(diag.has_value()) << "NETLINK_SOCK_DIAG lookup";
  EXPECT_EQ(diag->uid, ::geteuid());
  EXPECT_EQ(diag->inode, lo.clientInode());
  const auto procnet = findPeerSocketInProcNet(lo.local.sin_addr.s_addr, lo.localPort(),
                                               lo.peer.sin_addr.s_addr, lo.peerPort());
  ASSERT_TRUE(procnet.has_value()) << "/proc/net/tcp lookup";
  EXPECT_EQ(procnet->uid, ::geteuid());
  EXPECT_EQ(procnet->inode, lo.clientInode());
  // Not the accepted end (whose own address is the listener's): the peer's.
  EXPECT_FALSE(findPeerSocket(lo.local.sin_addr.s_addr, lo.localPort(), lo.peer.sin_addr.s_addr,
                              static_cast<std::uint16_t>(lo.peerPort() + 1))
                   .has_value());
}

TEST(RuntimePeer, Verdicts) {
  Loopback lo;
  const auto check = [&](uid_t uid, pid_t pgid, std::uint16_t peer_port) {
    return checkRuntimePeer(lo.local.sin_addr.s_addr, lo.localPort(), lo.peer.sin_addr.s_addr,
                            peer_port, uid, pgid);
  };
  const auto ok = check(::geteuid(), ::getpgrp(), lo.peerPort());
  EXPECT_EQ(ok.verdict, PeerVerdict::kAccepted);
  EXPECT_EQ(ok.pid, ::getpid());
  EXPECT_EQ(ok.uid, ::geteuid());

  const auto other_user = check(::geteuid() + 4242, ::getpgrp(), lo.peerPort());
  EXPECT_EQ(other_user.verdict, PeerVerdict::kOtherUser);
  EXPECT_EQ(other_user.uid, ::geteuid());
  EXPECT_EQ(peerVerdictName(other_user.verdict), "other_user");

  // Group 1 (init's): no process of it holds this test's socket.
  const auto other_process = check(::geteuid(), 1, lo.peerPort());
  EXPECT_EQ(other_process.verdict, PeerVerdict::kOtherProcess);
  EXPECT_EQ(peerVerdictName(other_process.verdict), "other_process");

  const auto unknown =
      check(::geteuid(), ::getpgrp(), static_cast<std::uint16_t>(lo.peerPort() + 1));
  EXPECT_EQ(unknown.verdict, PeerVerdict::kUnknownPeer);
  EXPECT_EQ(peerVerdictName(unknown.verdict), "unknown_peer");
}

TEST(RuntimePeer, ProcessGroupOf) {
  EXPECT_EQ(processGroupOf(::getpid()), ::getpgrp());
  EXPECT_EQ(processGroupOf(-5), -1);
}

}  // namespace
}  // namespace portcullis::functions::lambda
