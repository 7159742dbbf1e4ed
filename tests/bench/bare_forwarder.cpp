// bare_forwarder.cpp — the reference for tests/bench/relay_pps.py: the least a UDP relay can
// do per packet on Linux. One thread, level-triggered epoll over all sockets, recvmmsg from
// the ready socket, sendmmsg of the same buffers out of its partner socket to a fixed
// destination. No latching, no parsing, no counters.
//
// Pairs come from a file, one per line: "PORT_A PORT_B DEST_A DEST_B": packets arriving on
// PORT_A leave from PORT_B towards DEST_B (side B's endpoint), packets arriving on PORT_B
// leave from PORT_A towards DEST_A — the layout of a relay's stream pair (side A sends to
// PORT_A, side B to PORT_B). All on --address.
//
// Prints "event=ready" on stderr once every socket is bound; SIGTERM/SIGINT end it with 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

constexpr unsigned kBatch = 32;  // packets read from one socket per turn
volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

struct Port {
  int fd;
  int partner;       // index of the socket the packets leave from
  sockaddr_in dest;  // where they go
};

}  // namespace

int main(int argc, char** argv) {
  std::string pairs_path, address = "127.0.0.1";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--pairs") pairs_path = argv[i + 1];
    else if (a == "--address") address = argv[i + 1];
    else {
      fprintf(stderr, "bare_forwarder: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (pairs_path.empty()) {
    fprintf(stderr, "usage: bare_forwarder --pairs FILE [--address IP]\n");
    return 2;
  }
  rlimit rl{65536, 65536};
  setrlimit(RLIMIT_NOFILE, &rl);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  in_addr ip{};
  if (inet_pton(AF_INET, address.c_str(), &ip) != 1) {
    fprintf(stderr, "bare_forwarder: bad address %s\n", address.c_str());
    return 2;
  }
  auto addr = [&](int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr = ip;
    a.sin_port = htons(uint16_t(port));
    return a;
  };
  int ep = epoll_create1(0);
  if (ep < 0) {
    perror("epoll_create1");
    return 2;
  }
  std::vector<Port> ports;
  auto open_port = [&](int port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in a = addr(port);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      fprintf(stderr, "bare_forwarder: bind %s:%d: %s\n", address.c_str(), port, strerror(errno));
      exit(2);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = uint32_t(ports.size());
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      perror("epoll_ctl");
      exit(2);
    }
    ports.push_back(Port{fd, -1, {}});
    return int(ports.size() - 1);
  };
  {
    std::ifstream in(pairs_path);
    int pa, pb, da, db;
    while (in >> pa >> pb >> da >> db) {
      int a = open_port(pa), b = open_port(pb);
      ports[a].partner = b;
      ports[a].dest = addr(db);
      ports[b].partner = a;
      ports[b].dest = addr(da);
    }
  }
  if (ports.empty()) {
    fprintf(stderr, "bare_forwarder: no pairs in %s\n", pairs_path.c_str());
    return 2;
  }
  fprintf(stderr, "event=ready pairs=%zu\n", ports.size() / 2);

  static char buf[kBatch][2048];
  iovec iov[kBatch];
  mmsghdr msg[kBatch];
  std::vector<epoll_event> events(64);
  while (!g_stop) {
    int n = epoll_wait(ep, events.data(), int(events.size()), 1000);
    for (int e = 0; e < n; ++e) {
      Port& in = ports[events[e].data.u32];
      for (unsigned i = 0; i < kBatch; ++i) {
        iov[i] = {buf[i], sizeof buf[i]};
        msg[i].msg_hdr = msghdr{};
        msg[i].msg_hdr.msg_iov = &iov[i];
        msg[i].msg_hdr.msg_iovlen = 1;
      }
      int got = recvmmsg(in.fd, msg, kBatch, MSG_DONTWAIT, nullptr);
      if (got <= 0) continue;
      for (int i = 0; i < got; ++i) {
        iov[i].iov_len = msg[i].msg_len;
        msg[i].msg_hdr.msg_name = &in.dest;
        msg[i].msg_hdr.msg_namelen = sizeof in.dest;
      }
      int done = 0;
      while (done < got) {
        int r = sendmmsg(ports[in.partner].fd, msg + done, unsigned(got - done), MSG_DONTWAIT);
        if (r > 0) done += r;
        else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        else ++done;  // skip a datagram that failed
      }
    }
  }
  return 0;
}
