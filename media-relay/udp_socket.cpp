// udp_socket.cpp — fd ownership and IPv4 UDP helpers.
#include "udp_socket.hpp"

#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace relais::media {

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Fd bind_udp(const std::string& ip, uint16_t port, std::string& error) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) {
    error = "bad IPv4 address '" + ip + "'";
    return Fd();
  }
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    error = std::string("socket: ") + strerror(errno);
    return Fd();
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error = "bind " + ip + ":" + std::to_string(port) + ": " + strerror(errno);
    return Fd();
  }
  return fd;
}

bool parse_ipv4_port(const std::string& text, sockaddr_in& out) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size() || text.size() - colon > 6) return false;
  unsigned long port = 0;
  for (size_t i = colon + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    port = port * 10 + static_cast<unsigned long>(text[i] - '0');
  }
  if (port == 0 || port > 65535) return false;
  out = sockaddr_in{};
  out.sin_family = AF_INET;
  out.sin_port = htons(static_cast<uint16_t>(port));
  return inet_pton(AF_INET, text.substr(0, colon).c_str(), &out.sin_addr) == 1;
}

std::string format_addr(const sockaddr_in& addr) {
  char ip[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(addr.sin_port));
}

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

WakeFd::WakeFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  // Without a wake-up fd a worker could never see new streams: refuse to start.
  if (!fd_) throw std::runtime_error(std::string("eventfd: ") + strerror(errno));
}

void WakeFd::signal() {
  uint64_t one = 1;
  ssize_t r = ::write(fd_.get(), &one, sizeof one);
  (void)r;  // EAGAIN = counter saturated = already signalled
}

void WakeFd::drain() {
  uint64_t value;
  ssize_t r = ::read(fd_.get(), &value, sizeof value);
  (void)r;
}

}  // namespace relais::media
