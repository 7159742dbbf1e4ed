// io_xdp.cpp — AF_XDP rings, frame ownership, in-place header rewriting.
//
// Every UMEM frame is in exactly one place (Frame): spare (ours, for copies), kernel (fill ring
// or being received into), held (received, handed to the caller for this batch) or sending (on
// the transmit ring until its completion). A held frame the caller forwards is transmitted as
// is; one it drops goes back to the fill ring at the next recv_batch.
#include "io_xdp.hpp"

#include <arpa/inet.h>
#include <linux/if_xdp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "media_log.hpp"

namespace relais::media {

namespace {

uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
void store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// RFC 1071 one's-complement sum, in memory byte order (the sum is byte-order independent, so
// the folded complement is stored back as loaded).
uint64_t sum_words(const uint8_t* p, size_t n, uint64_t acc) {
  for (; n >= 4; p += 4, n -= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    acc += w;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    acc += w;
    p += 2;
    n -= 2;
  }
  if (n) {
    uint8_t last[2] = {*p, 0};
    uint16_t w;
    std::memcpy(&w, last, 2);
    acc += w;
  }
  return acc;
}

uint16_t fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(~acc);
}

// The UDP checksum of a received datagram (ip: its IPv4 header, without options). We write a
// new checksum when forwarding, so a corrupt datagram must be dropped here, as the kernel's UDP
// receive would. Accepted: a valid checksum; none (0, allowed over IPv4); or the pseudo-header
// sum alone, which is what a datagram sent on this host and not yet checksummed carries
// (CHECKSUM_PARTIAL: loopback, veth, any virtual interface in generic mode) — a corrupt
// datagram matches that by chance as rarely as it matches a valid checksum.
bool checksum_ok(const uint8_t* ip, uint16_t udp_len) {
  const uint8_t* udp = ip + 20;
  uint16_t field;
  std::memcpy(&field, udp + 6, 2);
  if (field == 0) return true;
  uint64_t pseudo = sum_words(ip + 12, 8, 0) + htons(IPPROTO_UDP) + htons(udp_len);
  if (field == static_cast<uint16_t>(~fold(pseudo))) return true;  // partial: no pass over the payload
  return fold(sum_words(udp, udp_len, pseudo)) == 0;
}

}  // namespace

XdpIo::XdpIo(XdpProgram& program, unsigned queue, std::unique_ptr<UringIo> sockets, size_t batch)
    : program_(program), queue_(queue), sockets_(std::move(sockets)), batch_(batch) {}

std::unique_ptr<XdpIo> XdpIo::create(XdpProgram& program, unsigned queue, std::unique_ptr<UringIo> sockets,
                                     size_t batch, std::string& error) {
  std::unique_ptr<XdpIo> io(new XdpIo(program, queue, std::move(sockets), batch));
  if (!io->init(error)) return nullptr;
  return io;
}

bool XdpIo::init(std::string& error) {
  size_t bytes = size_t(kFrames) * kFrameSize;
  void* area = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (area == MAP_FAILED) return error = std::string("mmap UMEM: ") + strerror(errno), false;
  umem_area_ = static_cast<uint8_t*>(area);

  xsk_umem_config ucfg{};
  ucfg.fill_size = kRingSize;
  ucfg.comp_size = kRingSize;
  ucfg.frame_size = kFrameSize;
  ucfg.frame_headroom = 0;
  if (int r = xsk_umem__create(&umem_, umem_area_, bytes, &fill_, &comp_, &ucfg); r < 0) {
    umem_ = nullptr;
    return error = std::string("AF_XDP UMEM: ") + strerror(-r), false;
  }
  xsk_socket_config scfg{};
  scfg.rx_size = kRingSize;
  scfg.tx_size = kRingSize;
  scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // ours is attached (XdpProgram)
  // Native mode lets the kernel pick zero-copy where the driver has it; generic mode copies.
  scfg.bind_flags = program_.native() ? 0 : XDP_COPY;
  // A previous relais-media that just exited may still hold the queue: the kernel releases an
  // AF_XDP socket's binding asynchronously after its last reference goes. Wait up to 2 s.
  int r = 0;
  for (int attempt = 0; attempt < 200; ++attempt) {
    r = xsk_socket__create(&xsk_, program_.interface().c_str(), queue_, umem_, &rx_, &tx_, &scfg);
    if (r != -EBUSY) break;
    usleep(10'000);
  }
  if (r < 0) {
    xsk_ = nullptr;
    return error = "AF_XDP socket on " + program_.interface() + " queue " + std::to_string(queue_) + ": " +
                   strerror(-r), false;
  }
  int fd = xsk_socket__fd(xsk_);
  xdp_options opts{};
  socklen_t len = sizeof opts;
  if (getsockopt(fd, SOL_XDP, XDP_OPTIONS, &opts, &len) == 0) zero_copy_ = opts.flags & XDP_OPTIONS_ZEROCOPY;
  if (!program_.add_socket(queue_, fd)) return error = std::string("XSKMAP update: ") + strerror(errno), false;
  sockets_->watch(fd);

  frames_.assign(kFrames, Frame::spare);
  spare_.reserve(kFrames);
  for (uint32_t i = kFrames; i-- > 0;) spare_.push_back(i);
  to_fill_.reserve(kFrames);
  for (uint32_t i = 0; i < kRingSize; ++i) {
    uint32_t f = spare_.back();
    spare_.pop_back();
    release_frame(f);
  }
  refill();
  held_.reserve(kRingSize);
  port_ip_.assign(65536, 0);
  hops_.assign(size_t(1) << kHopBits, NextHop{});
  by_socket_.reserve(kRingSize);
  return true;
}

XdpIo::~XdpIo() {
  sockets_.reset();  // its ring polls the AF_XDP socket: that reference goes first
  if (xsk_) {
    program_.remove_socket(queue_);
    xsk_socket__delete(xsk_);
  }
  if (umem_) xsk_umem__delete(umem_);
  if (umem_area_) munmap(umem_area_, size_t(kFrames) * kFrameSize);
}

void XdpIo::release_frame(uint32_t frame) {
  if (in_kernel_ + to_fill_.size() < kRingSize) {
    frames_[frame] = Frame::kernel;
    to_fill_.push_back(frame);
  } else {
    frames_[frame] = Frame::spare;
    spare_.push_back(frame);
  }
}

void XdpIo::refill() {
  if (to_fill_.empty()) return;
  uint32_t idx = 0;
  uint32_t n = xsk_ring_prod__reserve(&fill_, static_cast<uint32_t>(to_fill_.size()), &idx);
  for (uint32_t i = 0; i < n; ++i) {
    *xsk_ring_prod__fill_addr(&fill_, idx + i) = uint64_t(to_fill_.back()) * kFrameSize;
    to_fill_.pop_back();
  }
  xsk_ring_prod__submit(&fill_, n);
  in_kernel_ += n;
}

void XdpIo::reap_completions() {
  uint32_t idx = 0;
  uint32_t n = xsk_ring_cons__peek(&comp_, kRingSize, &idx);
  for (uint32_t i = 0; i < n; ++i) release_frame(static_cast<uint32_t>(*xsk_ring_cons__comp_addr(&comp_, idx + i) / kFrameSize));
  xsk_ring_cons__release(&comp_, n);
}

// Generic (copy) mode transmits in the sendto() itself, a bounded number of frames per call;
// native drivers are woken by it. Stops when the kernel takes nothing more (socket buffer full):
// the rest goes at the next turn.
uint32_t XdpIo::tx_pending() const { return tx_.cached_prod - __atomic_load_n(tx_.consumer, __ATOMIC_ACQUIRE); }

void XdpIo::kick_tx() {
  int fd = xsk_socket__fd(xsk_);
  for (int i = 0; i < 256; ++i) {
    uint32_t before = tx_pending();
    if (before == 0) return;
    if (::sendto(fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0) < 0 && errno != EAGAIN && errno != EBUSY &&
        errno != ENOBUFS)
      return;
    if (tx_pending() >= before) return;
  }
}

const XdpIo::NextHop* XdpIo::next_hop(in_addr_t ip) const {
  const NextHop& h = hops_[hop_slot(ip)];
  return h.ip == ip && ip != 0 ? &h : nullptr;
}

void XdpIo::learn(in_addr_t ip, const uint8_t* mac) {
  NextHop& h = hops_[hop_slot(ip)];
  if (h.ip == ip && std::memcmp(h.mac, mac, 6) == 0) return;
  h.ip = ip;
  std::memcpy(h.mac, mac, 6);
}

bool XdpIo::attach(uint16_t local_port, Fd socket) {
  sockaddr_in local{};
  socklen_t len = sizeof local;
  in_addr_t ip = 0;
  if (::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&local), &len) == 0) ip = local.sin_addr.s_addr;
  port_ip_[local_port] = ip != 0 ? ip : program_.interface_ip();
  if (!sockets_->attach(local_port, std::move(socket))) return false;
  if (!program_.claim_port(local_port, queue_))
    Log(LogLevel::warn, "worker.xdp_claim_failed").kv("port", local_port).kv("reason", strerror(errno));
  return true;
}

void XdpIo::detach(uint16_t local_port) {
  program_.release_port(local_port);
  port_ip_[local_port] = 0;
  sockets_->detach(local_port);
}

size_t XdpIo::take_rx(std::span<Packet> out) {
  uint32_t idx = 0;
  uint32_t n = xsk_ring_cons__peek(&rx_, static_cast<uint32_t>(out.size()), &idx);
  size_t got = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const xdp_desc* d = xsk_ring_cons__rx_desc(&rx_, idx + i);
    uint32_t frame = static_cast<uint32_t>(d->addr / kFrameSize);
    frames_[frame] = Frame::held;
    held_.push_back(frame);
    --in_kernel_;
    // The program checked all this; a frame is still only trusted as far as it goes.
    const uint8_t* f = frame_at(d->addr);
    uint32_t len = d->len;
    if (len < kHeaderBytes || f[12] != 0x08 || f[13] != 0x00 || f[14] != 0x45 || f[23] != IPPROTO_UDP) {
      ++rx_bad_;
      continue;
    }
    const uint8_t* udp = f + 34;
    uint16_t udp_len = load16(udp + 4);
    if (udp_len < 8 || 34u + udp_len > len || !checksum_ok(f + 14, udp_len)) {
      ++rx_bad_;
      continue;
    }
    in_addr_t source;
    std::memcpy(&source, f + 26, 4);
    learn(source, f + 6);
    Packet& p = out[got++];
    p.data = const_cast<uint8_t*>(udp + 8);
    p.len = udp_len - 8u;
    p.local_port = load16(udp + 2);
    p.remote = sockaddr_in{};
    p.remote.sin_family = AF_INET;
    p.remote.sin_addr.s_addr = source;
    std::memcpy(&p.remote.sin_port, udp, 2);
  }
  xsk_ring_cons__release(&rx_, n);
  rx_xdp_ += got;
  return got;
}

RecvResult XdpIo::recv_batch(std::span<Packet> out, int timeout_ms) {
  // The caller is done with the last batch: the frames it did not send go back to the kernel.
  for (uint32_t f : held_)
    if (frames_[f] == Frame::held) release_frame(f);
  held_.clear();
  reap_completions();
  refill();

  RecvResult result;
  size_t cap = std::min(out.size(), batch_);
  int64_t now = monotonic_ns();
  bool xdp_ready = xsk_cons_nb_avail(&rx_, 1) > 0;
  // The kernel sockets (and the wait) cost a system call: skipped while the AF_XDP ring keeps
  // us busy, but never for longer than kSocketPollNs, and not when socket sends are queued.
  bool poll_sockets = !xdp_ready || socket_sends_pending_ || now - last_socket_poll_ >= kSocketPollNs;
  // Transmit what the last batch queued. When we are about to wait anyway and it fits one kick
  // (generic mode sends up to 32 frames per call), the kick rides on the wait's enter.
  uint32_t pending = tx_pending();
  if (pending && poll_sockets && !xdp_ready && pending <= 32) sockets_->queue_kick(xsk_socket__fd(xsk_));
  else if (pending) kick_tx();
  if (poll_sockets) {
    RecvResult s = sockets_->recv_batch(out.first(cap), xdp_ready ? 0 : timeout_ms);
    result.woken = s.woken;
    result.count = s.count;
    rx_socket_ += s.count;
    socket_sends_pending_ = false;
    last_socket_poll_ = now;
  }
  result.count += take_rx(out.subspan(result.count, cap - result.count));
  return result;
}

void XdpIo::write_headers(uint8_t* start, const NextHop& hop, in_addr_t source, const Packet& p) {
  std::memcpy(start, hop.mac, 6);
  std::memcpy(start + 6, program_.mac().data(), 6);
  start[12] = 0x08;
  start[13] = 0x00;
  uint8_t* ip = start + 14;
  uint16_t udp_len = static_cast<uint16_t>(8 + p.len);
  ip[0] = 0x45;
  ip[1] = 0;
  store16(ip + 2, static_cast<uint16_t>(20 + udp_len));
  store16(ip + 4, ip_id_++);
  store16(ip + 6, 0x4000);  // don't fragment: RTP fits
  ip[8] = 64;
  ip[9] = IPPROTO_UDP;
  store16(ip + 10, 0);
  std::memcpy(ip + 12, &source, 4);
  std::memcpy(ip + 16, &p.remote.sin_addr.s_addr, 4);
  uint16_t ip_sum = fold(sum_words(ip, 20, 0));
  std::memcpy(ip + 10, &ip_sum, 2);
  uint8_t* udp = ip + 20;
  store16(udp, p.local_port);
  std::memcpy(udp + 2, &p.remote.sin_port, 2);
  store16(udp + 4, udp_len);
  store16(udp + 6, 0);
  // Pseudo-header: addresses, protocol and length, as they sit in memory.
  uint64_t acc = sum_words(ip + 12, 8, 0) + htons(IPPROTO_UDP) + htons(udp_len);
  uint16_t udp_sum = fold(sum_words(udp, udp_len, acc));
  if (udp_sum == 0) udp_sum = 0xffff;  // 0 would mean "no checksum"
  std::memcpy(udp + 6, &udp_sum, 2);
}

size_t XdpIo::send_batch(std::span<const Packet> batch) {
  by_socket_.clear();
  uint32_t queued = 0;
  for (const Packet& p : batch) {
    in_addr_t source = port_ip_[p.local_port];
    const NextHop* hop = next_hop(p.remote.sin_addr.s_addr);
    // Unknown next hop, no source address, or too big for one Ethernet frame: the kernel routes,
    // resolves and fragments.
    if (!source || !hop || p.len > 1500 - 28) {
      by_socket_.push_back(p);
      continue;
    }
    uint8_t* start = nullptr;
    uint32_t frame = 0;
    bool copied = false;
    if (in_umem(p.data) && frames_[frame = frame_of(p.data)] == Frame::held &&
        p.data - kHeaderBytes >= umem_area_ + size_t(frame) * kFrameSize) {
      start = p.data - kHeaderBytes;  // forwarded in its own frame
    } else {
      if (spare_.empty()) reap_completions();
      if (spare_.empty()) {
        by_socket_.push_back(p);
        continue;
      }
      frame = spare_.back();
      spare_.pop_back();
      start = umem_area_ + size_t(frame) * kFrameSize + kTxHeadroom;
      std::memcpy(start + kHeaderBytes, p.data, p.len);
      copied = true;
    }
    uint32_t idx = 0;
    if (xsk_ring_prod__reserve(&tx_, 1, &idx) != 1) {  // transmit ring full
      if (copied) {
        frames_[frame] = Frame::spare;
        spare_.push_back(frame);
      }
      by_socket_.push_back(p);
      continue;
    }
    tx_copied_ += copied;
    frames_[frame] = Frame::sending;
    write_headers(start, *hop, source, p);
    xdp_desc* d = xsk_ring_prod__tx_desc(&tx_, idx);
    d->addr = static_cast<uint64_t>(start - umem_area_);
    d->len = kHeaderBytes + p.len;
    d->options = 0;
    ++queued;
  }
  if (queued) {
    xsk_ring_prod__submit(&tx_, queued);  // kicked by the next recv_batch (the worker's next call)
    tx_xdp_ += queued;
  }
  size_t sent = queued;
  if (!by_socket_.empty()) {
    sent += sockets_->send_batch(by_socket_);
    tx_socket_ += by_socket_.size();
    socket_sends_pending_ = true;  // queued on the ring: submitted by the next sockets_ call
  }
  return sent;
}

void XdpIo::report(int worker) const {
  // The kernel's own counts: datagrams the program redirected that found no room (ring full,
  // no free frame) never reached us.
  xdp_statistics st{};
  socklen_t len = sizeof st;
  if (getsockopt(xsk_socket__fd(xsk_), SOL_XDP, XDP_STATISTICS, &st, &len) != 0) st = xdp_statistics{};
  Log(LogLevel::info, "worker.xdp")
      .kv("worker", worker)
      .kv("interface", program_.interface())
      .kv("queue", queue_)
      .kv("mode", program_.mode_name())
      .kv("zero_copy", zero_copy_ ? "yes" : "no")
      .kv("rx_xdp", static_cast<unsigned long>(rx_xdp_))
      .kv("rx_socket", static_cast<unsigned long>(rx_socket_))
      .kv("rx_bad", static_cast<unsigned long>(rx_bad_))
      .kv("tx_xdp", static_cast<unsigned long>(tx_xdp_))
      .kv("tx_copied", static_cast<unsigned long>(tx_copied_))
      .kv("tx_socket", static_cast<unsigned long>(tx_socket_))
      .kv("kernel_rx_dropped", static_cast<unsigned long>(st.rx_dropped))
      .kv("kernel_rx_ring_full", static_cast<unsigned long>(st.rx_ring_full))
      .kv("kernel_fill_empty", static_cast<unsigned long>(st.rx_fill_ring_empty_descs));
}

}  // namespace relais::media
