// io_uring.hpp — the io_uring PacketIo backend: every relay socket has a multishot recvmsg
// armed on one ring, filling buffers the kernel picks from a provided-buffer ring; sends are
// queued as SQEs. One io_uring_enter per loop turn then submits the turn's sends and waits for
// the next packets of every socket together: one system call per wake-up instead of
// epoll_wait + recvmmsg per ready socket + sendmmsg per egress port (io_mmsg.cpp), which is
// what a low packet rate per socket (RTP: 50 packets/s per stream) pays for most.
//
// Needs Linux 6.0 (multishot recvmsg, buffer rings). create() proves the kernel can do it with
// a datagram to itself, and returns null otherwise; the worker then uses MmsgIo.
#pragma once

#include <liburing.h>

#include <memory>
#include <string>
#include <vector>

#include "packet_io.hpp"

namespace relais::media {

class UringIo final : public PacketIo {
 public:
  // wake_fd: watched with the sockets, reported as RecvResult::woken, never read here. Must be
  // called on the thread that will use it (the ring accepts submissions from that thread only).
  static std::unique_ptr<UringIo> create(int wake_fd, size_t batch, std::string& error);
  ~UringIo() override;
  UringIo(const UringIo&) = delete;
  UringIo& operator=(const UringIo&) = delete;

  bool attach(uint16_t local_port, Fd socket) override;
  void detach(uint16_t local_port) override;
  RecvResult recv_batch(std::span<Packet> out, int timeout_ms) override;
  size_t send_batch(std::span<const Packet> batch) override;
  // Also waits for fd to become readable (a multishot poll), reported as RecvResult::watched.
  void watch(int fd);
  // Queues an empty sendmsg on fd (an AF_XDP socket's transmit kick), submitted by the next
  // recv_batch's enter together with the wait: one system call for both.
  void queue_kick(int fd);

 private:
  static constexpr unsigned kRxBuffers = 1024;                // provided receive buffers (power of 2)
  static constexpr size_t kRxBufSize = kPacketBufSize + 64;  // recvmsg header + address + payload
  static constexpr unsigned kTxSlots = 1024;                  // sends in flight at once

  struct PortState {
    Fd fd;
    uint32_t generation = 0;  // tells a dead socket's late completions from the current one's
    bool armed = false;       // its multishot recvmsg is active
  };
  // A send owns a copy of its packet until its completion: the caller's buffers (receive ring,
  // generated frames) are reused at once.
  struct TxSlot {
    msghdr hdr{};
    iovec iov{};
    sockaddr_in addr{};
    uint8_t data[kPacketBufSize];
  };

  UringIo(size_t batch);
  bool init(int wake_fd, std::string& error);
  bool self_test(std::string& error);
  io_uring_sqe* sqe();
  void arm(uint16_t port);
  void recycle_buffers();
  void arm_wake();
  uint8_t* rx_buffer(unsigned bid) const { return rx_mem_.get() + size_t(bid) * kRxBufSize; }

  io_uring ring_{};
  bool ring_ready_ = false;
  size_t batch_;
  io_uring_buf_ring* buf_ring_ = nullptr;  // mmap'd, registered as buffer group 0
  size_t buf_ring_bytes_ = 0;
  std::unique_ptr<uint8_t[]> rx_mem_;
  std::vector<uint16_t> handed_out_;  // buffers of the last batch, given back at the next one
  msghdr recv_template_{};            // what each multishot recvmsg asks for: an IPv4 name
  msghdr kick_msg_{};                 // queue_kick's empty message
  std::unique_ptr<TxSlot[]> tx_;
  std::vector<uint32_t> tx_free_;
  std::vector<PortState> ports_;
  std::vector<uint16_t> rearm_;
  uint32_t next_generation_ = 1;
  int wake_fd_ = -1;
  int watch_fd_ = -1;
};

}  // namespace relais::media
