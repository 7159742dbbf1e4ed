// xdp_program.hpp — the XDP side of relais-media's AF_XDP backend (io_xdp.*), one per process:
// a small XDP program attached to one interface that hands relay-port UDP datagrams to the
// AF_XDP socket of the worker owning the port and lets everything else (SIP, ng, other
// processes' traffic, IP options, fragments) continue into the kernel stack (XDP_PASS).
//
// Maps: `ports` (array, 65536 × u32): the queue+1 of the worker owning a relay port, 0 = not
// ours; `xsks` (XSKMAP, one slot per receive queue): the AF_XDP socket of each queue. A datagram
// is redirected only when it arrived on the owning worker's queue; otherwise (the NIC's RSS put
// it elsewhere) it is passed, and the owning worker reads it from its kernel socket.
//
// The program is attached with a BPF link: closing the link (this object, or the process dying)
// detaches it, so a crashed relay never leaves a program on the interface. Needs CAP_NET_ADMIN
// and CAP_BPF (root).
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "udp_socket.hpp"

namespace relais::media {

enum class XdpMode { automatic, native, skb };

// The interface holding IPv4 address (dotted); "" when none does (or for 0.0.0.0).
std::string interface_of(const std::string& address);

class XdpProgram {
 public:
  // interface: where the relay address lives; address: the relay's bound IPv4 (0.0.0.0: any
  // address of the interface). Null + error when the program cannot be loaded or attached.
  static std::unique_ptr<XdpProgram> create(const std::string& interface, const std::string& address,
                                            XdpMode mode, std::string& error);
  ~XdpProgram();
  XdpProgram(const XdpProgram&) = delete;
  XdpProgram& operator=(const XdpProgram&) = delete;

  const std::string& interface() const { return interface_; }
  unsigned queues() const { return queues_; }          // receive queues = AF_XDP sockets at most
  const char* mode_name() const { return native_ ? "native" : "skb"; }
  bool native() const { return native_; }
  const std::array<uint8_t, 6>& mac() const { return mac_; }
  in_addr_t interface_ip() const { return interface_ip_; }  // network order; 0 if it has none

  // Thread-safe (each is one bpf() system call on the map).
  bool add_socket(unsigned queue, int xsk_fd);
  void remove_socket(unsigned queue);
  bool claim_port(uint16_t port, unsigned queue);  // datagrams to port on queue go to its socket
  void release_port(uint16_t port);

 private:
  XdpProgram() = default;
  bool load(in_addr_t match_address, std::string& error);

  std::string interface_;
  unsigned ifindex_ = 0;
  unsigned queues_ = 1;
  bool native_ = false;
  std::array<uint8_t, 6> mac_{};
  in_addr_t interface_ip_ = 0;
  Fd ports_map_, xsks_map_, prog_, link_;
};

}  // namespace relais::media
