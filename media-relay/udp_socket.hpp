// udp_socket.hpp — an owned file descriptor (closed exactly once) and the UDP socket helpers the
// relay needs: bind an IPv4 port non-blocking, send/receive datagrams.
#pragma once

#include <netinet/in.h>

#include <string>
#include <utility>

namespace relais::media {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset();

 private:
  int fd_ = -1;
};

// A non-blocking UDP socket bound to ip:port (port 0 = any). Empty Fd + error on failure.
Fd bind_udp(const std::string& ip, uint16_t port, std::string& error);
// "1.2.3.4:5" → sockaddr_in; false on anything else.
bool parse_ipv4_port(const std::string& text, sockaddr_in& out);
std::string format_addr(const sockaddr_in& addr);
int64_t monotonic_ns();

// eventfd that wakes a thread blocked in poll/epoll; signal() is safe from any thread.
class WakeFd {
 public:
  WakeFd();
  int fd() const { return fd_.get(); }
  void signal();
  void drain();

 private:
  Fd fd_;
};

}  // namespace relais::media
