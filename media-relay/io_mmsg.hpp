// io_mmsg.hpp — the default PacketIo backend: one non-blocking UDP socket per relay port, an
// epoll set per worker, recvmmsg/sendmmsg for batches. recv_batch returns one socket's packets
// at a time (the rest of the ready list waits for the next call, without another epoll_wait),
// so the worker forwards them before it reads the next socket: a packet never waits for the
// reads of up to 64 other sockets.
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>

#include <array>
#include <memory>
#include <vector>

#include "packet_io.hpp"

namespace relais::media {

class MmsgIo final : public PacketIo {
 public:
  // wake_fd: polled with the sockets; reported as RecvResult::woken, never read here.
  MmsgIo(int wake_fd, size_t batch);
  bool attach(uint16_t local_port, Fd socket) override;
  void detach(uint16_t local_port) override;
  RecvResult recv_batch(std::span<Packet> out, int timeout_ms) override;
  size_t send_batch(std::span<const Packet> batch) override;

 private:
  using Buffer = std::array<uint8_t, kPacketBufSize>;
  Fd epoll_;
  size_t batch_;
  std::unique_ptr<Buffer[]> ring_;  // the reusable buffers; packet i of a batch uses ring_[i]
  std::vector<mmsghdr> rx_;
  std::vector<iovec> rx_iov_;
  std::vector<sockaddr_in> rx_addr_;
  std::vector<mmsghdr> tx_;
  std::vector<iovec> tx_iov_;
  std::vector<epoll_event> events_;
  size_t ev_next_ = 0, ev_count_ = 0;  // events_[ev_next_, ev_count_): ready, not read yet
  std::vector<Fd> sockets_;         // by local port: sends need the fd of the egress port
};

}  // namespace relais::media
