// io_mmsg.cpp — recvmmsg/sendmmsg backend. Level-triggered epoll: a socket that still holds
// packets after its share of a batch is reported again by the next epoll_wait, so one busy
// port cannot starve the others beyond one batch.
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
  Fd& fd = sockets_[local_port];
  if (!fd) return;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd.get(), nullptr);
  fd.reset();
}

RecvResult MmsgIo::recv_batch(std::span<Packet> out, int timeout_ms) {
  RecvResult result;
  size_t cap = std::min(out.size(), batch_);
  int n = ::epoll_wait(epoll_.get(), events_.data(), static_cast<int>(events_.size()), timeout_ms);
  size_t slot = 0;  // next ring buffer; >= result.count (truncated datagrams are skipped)
  for (int e = 0; e < n && slot < cap; ++e) {
    uint64_t token = events_[e].data.u64;
    if (token == kWakeToken) {
      result.woken = true;
      continue;
    }
    uint16_t port = static_cast<uint16_t>(token);
    const Fd& fd = sockets_[port];
    if (!fd) continue;
    size_t want = std::min(kPerSocketShare, cap - slot);
    for (size_t i = 0; i < want; ++i) {
      rx_iov_[slot + i] = {ring_[slot + i].data(), kPacketBufSize};
      msghdr& h = rx_[slot + i].msg_hdr;
      h = msghdr{};
      h.msg_name = &rx_addr_[slot + i];
      h.msg_namelen = sizeof(sockaddr_in);
      h.msg_iov = &rx_iov_[slot + i];
      h.msg_iovlen = 1;
    }
    int got = ::recvmmsg(fd.get(), &rx_[slot], static_cast<unsigned>(want), MSG_DONTWAIT, nullptr);
    if (got <= 0) continue;
    for (int i = 0; i < got; ++i, ++slot) {
      const mmsghdr& m = rx_[slot];
      if ((m.msg_hdr.msg_flags & MSG_TRUNC) || m.msg_hdr.msg_namelen != sizeof(sockaddr_in)) continue;
      Packet& p = out[result.count++];
      p.data = ring_[slot].data();
      p.len = m.msg_len;
      p.local_port = port;
      p.remote = rx_addr_[slot];
    }
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
