// io_mmsg.cpp — recvmmsg/sendmmsg backend. Level-triggered epoll: a socket that still holds
// packets after its share (32) is reported again by the next epoll_wait, so one busy port
// cannot starve the others. One epoll_wait's ready list is consumed one socket per
// recv_batch, so each socket's packets are forwarded as soon as they are read.
#include "io_mmsg.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace relais::media {

namespace {
constexpr uint64_t kWakeToken = 1ull << 32;  // outside the port range
constexpr size_t kPerSocketShare = 32;       // packets read from one socket per batch
}  // namespace

MmsgIo::MmsgIo(int wake_fd, size_t batch)
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      batch_(batch),
      ring_(new Buffer[batch]),
      rx_(batch),
      rx_iov_(batch),
      rx_addr_(batch),
      tx_(batch),
      tx_iov_(batch),
      events_(64),
      sockets_(65536) {
  if (!epoll_) throw std::runtime_error(std::string("epoll_create1: ") + strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeToken;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_fd, &ev) != 0)
    throw std::runtime_error(std::string("epoll_ctl(wake): ") + strerror(errno));
  // Receive headers are fixed per slot (ring buffer, address slot); recvmmsg only rewrites
  // msg_namelen, msg_flags and msg_len, so a receive resets msg_namelen alone.
  for (size_t i = 0; i < batch; ++i) {
    rx_iov_[i] = {ring_[i].data(), kPacketBufSize};
    msghdr& h = rx_[i].msg_hdr;
    h = msghdr{};
    h.msg_name = &rx_addr_[i];
    h.msg_namelen = sizeof(sockaddr_in);
    h.msg_iov = &rx_iov_[i];
    h.msg_iovlen = 1;
  }
}

bool MmsgIo::attach(uint16_t local_port, Fd socket) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = local_port;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, socket.get(), &ev) != 0) return false;
  sockets_[local_port] = std::move(socket);
  return true;
}

void MmsgIo::detach(uint16_t local_port) {
  // A ready event still pending for this port finds no socket (or a later socket on the same
  // port, read with MSG_DONTWAIT): harmless either way.
  Fd& fd = sockets_[local_port];
  if (!fd) return;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd.get(), nullptr);
  fd.reset();
}

RecvResult MmsgIo::recv_batch(std::span<Packet> out, int timeout_ms) {
  RecvResult result;
  size_t cap = std::min({out.size(), batch_, kPerSocketShare});
  if (ev_next_ >= ev_count_) {
    int n = ::epoll_wait(epoll_.get(), events_.data(), static_cast<int>(events_.size()), timeout_ms);
    ev_next_ = 0;
    ev_count_ = n > 0 ? static_cast<size_t>(n) : 0;
  }
  // Level-triggered: a socket left with packets after its share is reported again by the next
  // epoll_wait, which comes only after every socket of this ready list had its turn.
  while (ev_next_ < ev_count_) {
    uint64_t token = events_[ev_next_++].data.u64;
    if (token == kWakeToken) {
      result.woken = true;
      continue;
    }
    uint16_t port = static_cast<uint16_t>(token);
    const Fd& fd = sockets_[port];
    if (!fd) continue;
    for (size_t i = 0; i < cap; ++i) rx_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    int got = ::recvmmsg(fd.get(), rx_.data(), static_cast<unsigned>(cap), MSG_DONTWAIT, nullptr);
    if (got <= 0) continue;
    for (int i = 0; i < got; ++i) {
      const mmsghdr& m = rx_[static_cast<size_t>(i)];
      if ((m.msg_hdr.msg_flags & MSG_TRUNC) || m.msg_hdr.msg_namelen != sizeof(sockaddr_in)) continue;
      Packet& p = out[result.count++];
      p.data = ring_[static_cast<size_t>(i)].data();
      p.len = m.msg_len;
      p.local_port = port;
      p.remote = rx_addr_[static_cast<size_t>(i)];
    }
    if (result.count > 0) break;  // hand this socket's packets over now
  }
  return result;
}

size_t MmsgIo::send_batch(std::span<const Packet> batch) {
  size_t sent = 0;
  size_t i = 0;
  while (i < batch.size()) {
    // One sendmmsg per run of packets leaving the same port.
    size_t j = i;
    uint16_t port = batch[i].local_port;
    while (j < batch.size() && j - i < tx_.size() && batch[j].local_port == port) {
      size_t k = j - i;
      tx_iov_[k] = {batch[j].data, batch[j].len};
      msghdr& h = tx_[k].msg_hdr;
      h = msghdr{};
      h.msg_name = const_cast<sockaddr_in*>(&batch[j].remote);
      h.msg_namelen = sizeof(sockaddr_in);
      h.msg_iov = &tx_iov_[k];
      h.msg_iovlen = 1;
      ++j;
    }
    const Fd& fd = sockets_[port];
    size_t done = 0, run = j - i;
    while (fd && done < run) {
      int r = ::sendmmsg(fd.get(), &tx_[done], static_cast<unsigned>(run - done), MSG_DONTWAIT);
      if (r > 0) {
        done += static_cast<size_t>(r);
        sent += static_cast<size_t>(r);
        continue;
      }
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // full: drop the rest
      ++done;  // this datagram failed (e.g. EPERM, unreachable): skip it, keep the others
    }
    i = j;
  }
  return sent;
}

}  // namespace relais::media
