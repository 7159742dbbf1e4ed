// io_uring.cpp — multishot recvmsg into provided buffers, sendmsg SQEs, one enter per turn.
#include "io_uring.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace relais::media {

namespace {

// user_data: the kind in the top bits; a receive also carries its socket's port and generation.
constexpr uint64_t kKindShift = 60;
constexpr uint64_t kRecv = 1, kSend = 2, kWake = 3, kIgnore = 4, kWatch = 5;
constexpr uint64_t kPayloadMask = (1ull << kKindShift) - 1;
constexpr unsigned kBufferGroup = 0;

uint64_t tag(uint64_t kind, uint64_t payload) { return (kind << kKindShift) | (payload & kPayloadMask); }
uint64_t recv_tag(uint16_t port, uint32_t generation) { return tag(kRecv, (uint64_t(generation) << 16) | port); }

}  // namespace

UringIo::UringIo(size_t batch) : batch_(batch), ports_(65536) {}

std::unique_ptr<UringIo> UringIo::create(int wake_fd, size_t batch, std::string& error) {
  std::unique_ptr<UringIo> io(new UringIo(batch));
  if (!io->init(wake_fd, error) || !io->self_test(error)) return nullptr;
  return io;
}

bool UringIo::init(int wake_fd, std::string& error) {
  io_uring_params params{};
  // Task work (our receive completions) runs only when this thread asks for completions:
  // no interrupting the forwarding loop, and completions arrive in batches.
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  params.cq_entries = 8192;
  int r = io_uring_queue_init_params(1024, &ring_, &params);
  if (r < 0) {
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = 8192;
    r = io_uring_queue_init_params(1024, &ring_, &params);
  }
  if (r < 0) {
    error = std::string("io_uring_queue_init: ") + strerror(-r);
    return false;
  }
  ring_ready_ = true;

  buf_ring_bytes_ = kRxBuffers * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, buf_ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    error = std::string("mmap: ") + strerror(errno);
    return false;
  }
  buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(buf_ring_);
  reg.ring_entries = kRxBuffers;
  reg.bgid = kBufferGroup;
  r = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (r < 0) {
    error = std::string("io_uring_register_buf_ring: ") + strerror(-r);
    return false;
  }
  rx_mem_.reset(new uint8_t[size_t(kRxBuffers) * kRxBufSize]);
  io_uring_buf_ring_init(buf_ring_);
  for (unsigned i = 0; i < kRxBuffers; ++i)
    io_uring_buf_ring_add(buf_ring_, rx_buffer(i), kRxBufSize, static_cast<unsigned short>(i),
                          io_uring_buf_ring_mask(kRxBuffers), static_cast<int>(i));
  io_uring_buf_ring_advance(buf_ring_, kRxBuffers);
  handed_out_.reserve(kRxBuffers);

  recv_template_.msg_namelen = sizeof(sockaddr_in);
  tx_.reset(new TxSlot[kTxSlots]);
  tx_free_.reserve(kTxSlots);
  for (uint32_t i = kTxSlots; i-- > 0;) tx_free_.push_back(i);

  wake_fd_ = wake_fd;
  arm_wake();
  io_uring_submit(&ring_);
  return true;
}

void UringIo::arm_wake() {
  if (io_uring_sqe* s = sqe()) {
    io_uring_prep_poll_multishot(s, wake_fd_, POLLIN);
    io_uring_sqe_set_data64(s, tag(kWake, 0));
  }
}

void UringIo::watch(int fd) {
  watch_fd_ = fd;
  if (io_uring_sqe* s = sqe()) {
    io_uring_prep_poll_multishot(s, fd, POLLIN);
    io_uring_sqe_set_data64(s, tag(kWatch, 0));
  }
}

void UringIo::queue_kick(int fd) {
  if (io_uring_sqe* s = sqe()) {
    io_uring_prep_sendmsg(s, fd, &kick_msg_, MSG_DONTWAIT);
    io_uring_sqe_set_data64(s, tag(kIgnore, 0));
  }
}

// Multishot recvmsg and buffer rings exist since Linux 6.0; an older kernel (or a seccomp
// policy) may accept the ring and still fail the request. Prove it with one datagram.
bool UringIo::self_test(std::string& error) {
  Fd a(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (!a || ::bind(a.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(a.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    error = std::string("self-test socket: ") + strerror(errno);
    return false;
  }
  attach(0, std::move(a));
  const char probe[12] = {char(0x80)};
  ::sendto(ports_[0].fd.get(), probe, sizeof probe, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  Packet got[4];
  RecvResult r;
  for (int i = 0; i < 3 && r.count == 0; ++i) r = recv_batch(got, 200);
  detach(0);
  if (r.count != 1 || got[0].len != sizeof probe || got[0].remote.sin_port != addr.sin_port) {
    error = "multishot recvmsg with provided buffers did not deliver a datagram (Linux >= 6.0 needed)";
    return false;
  }
  return true;
}

UringIo::~UringIo() {
  if (ring_ready_) io_uring_queue_exit(&ring_);  // cancels what is armed, then frees the ring
  if (buf_ring_) munmap(buf_ring_, buf_ring_bytes_);
}

io_uring_sqe* UringIo::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (!s) {
    io_uring_submit(&ring_);  // the submission queue is full: flush it, then there is room
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

void UringIo::arm(uint16_t port) {
  PortState& ps = ports_[port];
  if (!ps.fd || ps.armed) return;
  io_uring_sqe* s = sqe();
  if (!s) return;  // retried at the next turn (rearm_)
  io_uring_prep_recvmsg_multishot(s, ps.fd.get(), &recv_template_, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(s, recv_tag(port, ps.generation));
  ps.armed = true;
}

bool UringIo::attach(uint16_t local_port, Fd socket) {
  PortState& ps = ports_[local_port];
  if (ps.fd) detach(local_port);
  ps.fd = std::move(socket);
  ps.generation = next_generation_++ & 0xffffff;
  ps.armed = false;
  arm(local_port);
  return true;
}

void UringIo::detach(uint16_t local_port) {
  PortState& ps = ports_[local_port];
  if (!ps.fd) return;
  if (ps.armed) {
    if (io_uring_sqe* s = sqe()) {
      io_uring_prep_cancel64(s, recv_tag(local_port, ps.generation), 0);
      io_uring_sqe_set_data64(s, tag(kIgnore, 0));
    }
  }
  // Queued sends name the descriptor by number: they must reach the kernel before the number
  // can be reused by another socket. A submitted request holds its own file reference.
  io_uring_submit(&ring_);
  ps.fd.reset();
  ps.armed = false;
}

void UringIo::recycle_buffers() {
  if (handed_out_.empty()) return;
  int mask = io_uring_buf_ring_mask(kRxBuffers);
  for (size_t i = 0; i < handed_out_.size(); ++i)
    io_uring_buf_ring_add(buf_ring_, rx_buffer(handed_out_[i]), kRxBufSize, handed_out_[i], mask, static_cast<int>(i));
  io_uring_buf_ring_advance(buf_ring_, static_cast<int>(handed_out_.size()));
  handed_out_.clear();
}

RecvResult UringIo::recv_batch(std::span<Packet> out, int timeout_ms) {
  RecvResult result;
  recycle_buffers();  // the caller is done with the previous batch
  for (uint16_t port : rearm_) arm(port);
  rearm_.clear();
  // One enter: this turn's sends go out and we wait for the next completions, unless some are
  // already waiting and there is nothing to submit.
  if (io_uring_cq_ready(&ring_) == 0 || io_uring_sq_ready(&ring_) > 0) {
    __kernel_timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000LL};
    io_uring_cqe* first = nullptr;
    io_uring_submit_and_wait_timeout(&ring_, &first, io_uring_cq_ready(&ring_) ? 0 : 1, &ts, nullptr);
  }
  size_t cap = std::min(out.size(), batch_);
  unsigned seen = 0, head = 0;
  io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    uint64_t data = io_uring_cqe_get_data64(cqe);
    uint64_t kind = data >> kKindShift;
    if (kind == kRecv && result.count == cap) break;  // the rest waits for the next call
    ++seen;
    if (kind == kSend) {
      tx_free_.push_back(static_cast<uint32_t>(data & kPayloadMask));
      continue;
    }
    if (kind == kWake) {
      result.woken = true;
      if (!(cqe->flags & IORING_CQE_F_MORE)) arm_wake();  // the kernel ended the multishot poll
      continue;
    }
    if (kind == kWatch) {
      result.watched = true;
      if (!(cqe->flags & IORING_CQE_F_MORE)) watch(watch_fd_);
      continue;
    }
    if (kind != kRecv) continue;
    uint16_t port = static_cast<uint16_t>(data & 0xffff);
    uint32_t generation = static_cast<uint32_t>((data & kPayloadMask) >> 16);
    PortState& ps = ports_[port];
    bool current = ps.fd && ps.generation == generation;
    if (cqe->flags & IORING_CQE_F_BUFFER) handed_out_.push_back(static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    if (current && !(cqe->flags & IORING_CQE_F_MORE)) {
      // Ended: out of buffers (-ENOBUFS) or an error. Re-armed next turn, after the buffers of
      // this batch are back; packets wait in the socket meanwhile.
      ps.armed = false;
      rearm_.push_back(port);
    }
    if (!current || cqe->res < 0 || !(cqe->flags & IORING_CQE_F_BUFFER)) continue;
    uint8_t* buf = rx_buffer(static_cast<unsigned>(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    io_uring_recvmsg_out* msg = io_uring_recvmsg_validate(buf, cqe->res, &recv_template_);
    if (!msg || msg->namelen != sizeof(sockaddr_in) || (msg->flags & MSG_TRUNC)) continue;
    Packet& p = out[result.count++];
    p.data = static_cast<uint8_t*>(io_uring_recvmsg_payload(msg, &recv_template_));
    p.len = io_uring_recvmsg_payload_length(msg, cqe->res, &recv_template_);
    p.local_port = port;
    std::memcpy(&p.remote, io_uring_recvmsg_name(msg), sizeof(sockaddr_in));
  }
  io_uring_cq_advance(&ring_, seen);
  return result;
}

size_t UringIo::send_batch(std::span<const Packet> batch) {
  size_t queued = 0;
  for (const Packet& p : batch) {
    const Fd& fd = ports_[p.local_port].fd;
    if (!fd || p.len > kPacketBufSize || tx_free_.empty()) continue;  // all slots in flight: drop, as a full socket would
    io_uring_sqe* s = sqe();
    if (!s) continue;
    uint32_t slot = tx_free_.back();
    tx_free_.pop_back();
    TxSlot& t = tx_[slot];
    std::memcpy(t.data, p.data, p.len);
    t.addr = p.remote;
    t.iov = {t.data, p.len};
    t.hdr = msghdr{};
    t.hdr.msg_name = &t.addr;
    t.hdr.msg_namelen = sizeof t.addr;
    t.hdr.msg_iov = &t.iov;
    t.hdr.msg_iovlen = 1;
    io_uring_prep_sendmsg(s, fd.get(), &t.hdr, MSG_DONTWAIT);
    io_uring_sqe_set_data64(s, tag(kSend, slot));
    ++queued;
  }
  // Submitted by the next recv_batch's enter, together with the wait for the next packets.
  return queued;
}

}  // namespace relais::media
