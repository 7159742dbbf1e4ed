// packet_io.hpp — the packet I/O boundary of a relay worker: receive a batch of UDP datagrams
// into a ring of reusable buffers, send a batch back out. Backends: io_uring.cpp (multishot
// receives, one system call per loop turn; the default where the kernel has it) and io_mmsg.cpp
// (recvmmsg/sendmmsg on one socket per port); an AF_XDP or DPDK backend implements the same
// class (see README.md). A backend instance belongs to one worker thread; only its constructor
// and attach() arguments come from elsewhere.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <span>

#include "udp_socket.hpp"

namespace relais::media {

constexpr size_t kPacketBufSize = 2048;  // > Ethernet MTU; larger datagrams are dropped

struct Packet {
  uint8_t* data = nullptr;  // points into the backend's ring; valid until the next recv_batch
  uint32_t len = 0;
  uint16_t local_port = 0;  // receive: the relay port it arrived on; send: the port to leave from
  sockaddr_in remote{};     // receive: the source; send: the destination
};

struct RecvResult {
  size_t count = 0;
  bool woken = false;       // the wake-up fd fired (new work in the worker's queue)
  bool watched = false;     // a descriptor given to UringIo::watch() became readable
};

// Which backend a worker uses: io_uring when the kernel supports what io_uring.cpp needs
// (automatic), or one of them by name (relais-media --io).
enum class IoBackend { automatic, uring, mmsg, xdp };

class XdpProgram;

// How each worker thread runs (relais-media --io, --realtime).
struct WorkerSettings {
  IoBackend io = IoBackend::automatic;
  int realtime_priority = 0;  // 1..99: SCHED_FIFO for the packet threads; 0: the default policy
  XdpProgram* xdp = nullptr;  // io == xdp: the attached program (owned by main), see io_xdp.hpp
};

class PacketIo {
 public:
  virtual ~PacketIo() = default;
  // Takes over a socket bound to local_port by the control thread. The kernel socket reserves
  // the port (an XDP backend keeps it only for that) and buffers packets that arrive before the
  // worker attaches it.
  virtual bool attach(uint16_t local_port, Fd socket) = 0;
  virtual void detach(uint16_t local_port) = 0;
  // Blocks up to timeout_ms for packets or the wake fd; fills at most out.size() packets.
  // It may return fewer than are ready (io_mmsg: one socket's at a time, without blocking
  // while more are ready): the caller forwards and sends them before calling again, so a
  // packet's latency does not include reading the other ready sockets.
  virtual RecvResult recv_batch(std::span<Packet> out, int timeout_ms) = 0;
  // Sends every packet (best effort: a full socket buffer drops, as the network would);
  // returns how many the kernel took (io_uring: how many were queued for it).
  virtual size_t send_batch(std::span<const Packet> batch) = 0;
  // One log line with the backend's own counters, when the worker stops (optional).
  virtual void report(int /*worker*/) const {}
};

}  // namespace relais::media
