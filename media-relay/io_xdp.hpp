// io_xdp.hpp — the AF_XDP PacketIo backend (relais-media --io xdp --xdp-interface IF).
//
// The XDP program (xdp_program.hpp) hands this worker's relay-port datagrams to its AF_XDP
// socket before the kernel builds a socket buffer for them: no IP/UDP receive path, no socket
// lookup, no copy into a socket queue. They land in frames of a memory area (UMEM) shared with
// the kernel; the worker forwards them *in the same frame* — it rewrites the Ethernet, IPv4 and
// UDP headers in front of the payload and puts the frame on the transmit ring — so a relayed
// packet is never copied by relais-media and never passes the kernel's UDP send path either.
//
// Everything else still works through the kernel sockets, read by an io_uring backend this one
// wraps (UringIo, which also waits for the AF_XDP socket): datagrams the program passes (before
// a port is claimed, IP options, fragments, another queue's packets) and sends whose next-hop
// Ethernet address is not known yet. Next hops are learnt from received frames (source IPv4 →
// source MAC: the peer itself or the router in front of it), so once a peer has sent, its
// packets leave by AF_XDP; a destination never heard on this interface (e.g. routed out of
// another one) keeps the socket path.
//
// One AF_XDP socket per worker, bound to receive queue = worker index; workers beyond the
// interface's queue count use io_uring alone (loopback has one queue: --workers 1 for XDP).
#pragma once

#include <xdp/xsk.h>

#include <memory>
#include <string>
#include <vector>

#include "io_uring.hpp"
#include "packet_io.hpp"
#include "xdp_program.hpp"

namespace relais::media {

class XdpIo final : public PacketIo {
 public:
  // On the worker's thread (sockets is created there too). Null + error when the AF_XDP
  // socket cannot be created or bound.
  static std::unique_ptr<XdpIo> create(XdpProgram& program, unsigned queue, std::unique_ptr<UringIo> sockets,
                                       size_t batch, std::string& error);
  ~XdpIo() override;
  XdpIo(const XdpIo&) = delete;
  XdpIo& operator=(const XdpIo&) = delete;

  bool attach(uint16_t local_port, Fd socket) override;
  void detach(uint16_t local_port) override;
  RecvResult recv_batch(std::span<Packet> out, int timeout_ms) override;
  size_t send_batch(std::span<const Packet> batch) override;
  void report(int worker) const override;
  bool zero_copy() const { return zero_copy_; }

 private:
  static constexpr uint32_t kFrameSize = 4096;  // a page: payload + headroom + SRTP growth fit
  static constexpr uint32_t kFrames = 8192;     // 32 MiB of UMEM per worker
  static constexpr uint32_t kRingSize = 4096;   // fill, completion, rx and tx rings: ~10 ms at 400 kpps
  static constexpr uint32_t kTxHeadroom = 256;  // where copied packets start in a frame (as rx)
  static constexpr uint32_t kHeaderBytes = 14 + 20 + 8;
  static constexpr unsigned kHopBits = 10;             // 1,024 learnt next hops
  static constexpr int64_t kSocketPollNs = 1'000'000;  // read the kernel sockets at least this often

  enum class Frame : uint8_t { spare, kernel, held, sending };
  struct NextHop {
    in_addr_t ip = 0;  // 0 = empty slot
    uint8_t mac[6]{};
  };

  XdpIo(XdpProgram& program, unsigned queue, std::unique_ptr<UringIo> sockets, size_t batch);
  bool init(std::string& error);
  uint8_t* frame_at(uint64_t addr) const { return umem_area_ + addr; }
  uint32_t frame_of(const uint8_t* p) const { return static_cast<uint32_t>((p - umem_area_) / kFrameSize); }
  bool in_umem(const uint8_t* p) const { return p >= umem_area_ && p < umem_area_ + size_t(kFrames) * kFrameSize; }
  void release_frame(uint32_t frame);  // back to the fill ring, or spare when it is full
  void refill();
  void reap_completions();
  void kick_tx();
  uint32_t tx_pending() const;  // descriptors on the transmit ring the kernel has not taken
  size_t take_rx(std::span<Packet> out);
  // Fibonacci hashing of the address onto the direct-mapped table.
  static size_t hop_slot(in_addr_t ip) { return (ip * 2654435761u) >> (32 - kHopBits); }
  const NextHop* next_hop(in_addr_t ip) const;
  void learn(in_addr_t ip, const uint8_t* mac);
  void write_headers(uint8_t* frame, const NextHop& hop, in_addr_t source, const Packet& p);

  XdpProgram& program_;
  unsigned queue_;
  std::unique_ptr<UringIo> sockets_;
  size_t batch_;
  uint8_t* umem_area_ = nullptr;
  xsk_umem* umem_ = nullptr;
  xsk_socket* xsk_ = nullptr;
  xsk_ring_prod fill_{}, tx_{};
  xsk_ring_cons comp_{}, rx_{};
  bool zero_copy_ = false;
  std::vector<Frame> frames_;
  std::vector<uint32_t> spare_;      // frames for copies (generated packets, socket-path ones)
  std::vector<uint32_t> to_fill_;    // released frames waiting for room in the fill ring
  std::vector<uint32_t> held_;       // frames of the last batch handed to the caller
  uint32_t in_kernel_ = 0;           // frames in the fill ring or being received into
  std::vector<in_addr_t> port_ip_;   // source address of each attached port (network order)
  std::vector<NextHop> hops_;        // direct-mapped cache of learnt next hops
  std::vector<Packet> by_socket_;    // this batch's sends that take the socket path
  uint32_t tx_queued_ = 0;           // descriptors submitted and not yet taken by the kernel
  uint16_t ip_id_ = 0;
  int64_t last_socket_poll_ = 0;
  bool socket_sends_pending_ = false;
  // Counters for report().
  uint64_t rx_xdp_ = 0, rx_socket_ = 0, rx_bad_ = 0, tx_xdp_ = 0, tx_socket_ = 0, tx_copied_ = 0;
};

}  // namespace relais::media
