// media_packet_io_test.cpp — both packet backends on real loopback sockets: receive from several
// ports with the sender's address, send from a chosen port, re-attach a port, wake-up fd; and the
// options that choose the backend.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io_mmsg.hpp"
#include "xdp_program.hpp"
#include "io_uring.hpp"
#include "options.hpp"
#include "udp_socket.hpp"

using namespace relais::media;

namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// A bound socket on a kernel-chosen port, and that port.
Fd bound(uint16_t& port) {
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
  port = ntohs(a.sin_port);
  return fd;
}

void send_to(int from, uint16_t port, const std::string& text) {
  sockaddr_in to = loopback(port);
  REQUIRE(::sendto(from, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) ==
          static_cast<ssize_t>(text.size()));
}

// Everything that arrives within ~1 s, as "port:payload".
std::multiset<std::string> receive(PacketIo& io, size_t want, bool* woken = nullptr) {
  std::multiset<std::string> got;
  std::vector<Packet> batch(64);
  for (int i = 0; i < 20 && got.size() < want; ++i) {
    RecvResult r = io.recv_batch(batch, 50);
    if (woken && r.woken) *woken = true;
    for (size_t k = 0; k < r.count; ++k)
      got.insert(std::to_string(batch[k].local_port) + ":" + std::string(reinterpret_cast<char*>(batch[k].data), batch[k].len));
  }
  return got;
}

void exercise(PacketIo& io, int wake_fd) {
  uint16_t p1 = 0, p2 = 0, peer_port = 0;
  Fd s1 = bound(p1), s2 = bound(p2), peer = bound(peer_port);
  REQUIRE(io.attach(p1, std::move(s1)));
  REQUIRE(io.attach(p2, std::move(s2)));

  send_to(peer.get(), p1, "one");
  send_to(peer.get(), p2, "two");
  send_to(peer.get(), p1, "three");
  std::multiset<std::string> want{std::to_string(p1) + ":one", std::to_string(p2) + ":two", std::to_string(p1) + ":three"};
  CHECK(receive(io, 3) == want);

  // A send leaves from the port we name, to the address we give.
  Packet out;
  std::string text = "back";
  out.data = reinterpret_cast<uint8_t*>(text.data());
  out.len = static_cast<uint32_t>(text.size());
  out.local_port = p2;
  out.remote = loopback(peer_port);
  CHECK(io.send_batch(std::span<const Packet>(&out, 1)) == 1);
  std::vector<Packet> scratch(8);
  io.recv_batch(scratch, 20);  // io_uring submits queued sends on its next turn
  char buf[64];
  sockaddr_in from{};
  socklen_t len = sizeof from;
  ssize_t n = -1;
  for (int i = 0; i < 50 && n < 0; ++i) {
    n = ::recvfrom(peer.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) usleep(10000);
  }
  REQUIRE(n == 4);
  CHECK(std::string(buf, 4) == "back");
  CHECK(ntohs(from.sin_port) == p2);

  // A port detached and attached again (a new call on the same port) receives on the new socket.
  io.detach(p1);
  uint16_t p3 = 0;
  Fd s3 = bound(p3);
  REQUIRE(io.attach(p3, std::move(s3)));
  send_to(peer.get(), p3, "four");
  CHECK(receive(io, 1) == std::multiset<std::string>{std::to_string(p3) + ":four"});

  // Many packets at once (fewer than a default socket buffer holds): none lost or duplicated,
  // more than one batch's worth.
  for (int i = 0; i < 200; ++i) send_to(peer.get(), p2, "m" + std::to_string(i));
  std::multiset<std::string> many = receive(io, 200);
  CHECK(many.size() == 200);
  CHECK(many.count(std::to_string(p2) + ":m199") == 1);

  // The wake fd is reported.
  uint64_t one = 1;
  REQUIRE(::write(wake_fd, &one, sizeof one) == sizeof one);
  bool woken = false;
  receive(io, 1, &woken);
  CHECK(woken);
}

}  // namespace

TEST_CASE("recvmmsg backend: receive, send from a port, re-attach, wake-up") {
  Fd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  MmsgIo io(wake.get(), 64);
  exercise(io, wake.get());
}

TEST_CASE("io_uring backend: receive, send from a port, re-attach, wake-up") {
  Fd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  std::string error;
  std::unique_ptr<UringIo> io = UringIo::create(wake.get(), 64, error);
  // This machine's kernel (6.x) has multishot receives; an older one makes create() say why.
  REQUIRE_MESSAGE(io, error);
  exercise(*io, wake.get());
}

TEST_CASE("relais-media's --io, --xdp-* and --realtime options") {
  Options o;
  std::string error;
  CHECK(parse_options({"--io", "mmsg", "--realtime", "20"}, o, error));
  CHECK(o.worker.io == IoBackend::mmsg);
  CHECK(o.worker.realtime_priority == 20);
  Options d;
  CHECK(parse_options({}, d, error));
  CHECK(d.worker.io == IoBackend::automatic);
  CHECK(d.worker.realtime_priority == 0);
  CHECK_FALSE(parse_options({"--io", "dpdk"}, o, error));
  CHECK(error.find("--io") != std::string::npos);
  Options x;
  CHECK(parse_options({"--io", "xdp", "--xdp-interface", "eth1", "--xdp-mode", "skb"}, x, error));
  CHECK(x.worker.io == IoBackend::xdp);
  CHECK(x.xdp_interface == "eth1");
  CHECK(x.xdp_mode == XdpMode::skb);
  CHECK(d.xdp_mode == XdpMode::automatic);
  CHECK(d.xdp_interface.empty());
  CHECK_FALSE(parse_options({"--xdp-mode", "fast"}, o, error));
  Options y;
  CHECK_FALSE(parse_options({"--xdp-mode", "skb"}, y, error));  // without --io xdp: a mistake
  CHECK(error.find("need --io xdp") != std::string::npos);
  CHECK_FALSE(parse_options({"--xdp-interface", "an-interface-name-too-long"}, o, error));
  CHECK_FALSE(parse_options({"--realtime", "0"}, o, error));
  CHECK_FALSE(parse_options({"--realtime", "100"}, o, error));
}

TEST_CASE("--io xdp finds its interface from the address and says why it cannot attach") {
  CHECK(interface_of("127.0.0.1") == "lo");
  CHECK(interface_of("0.0.0.0").empty());    // any address: --xdp-interface is needed
  CHECK(interface_of("192.0.2.77").empty());  // TEST-NET-1: on no interface here
  std::string error;
  CHECK_FALSE(XdpProgram::create("nosuchif0", "127.0.0.1", XdpMode::automatic, error));
  CHECK(error == "no interface nosuchif0");
}
