// nat_keepalive.hpp — keeps NAT mappings of UDP phones open. A home router forgets a UDP
// mapping after 30–180 s without traffic, and then an INVITE to the phone's public address
// lands nowhere. relais sends an OPTIONS to every NATed UDP registration (registrar.cpp marks
// them with a "udp~IP~PORT" flow) every `interval` seconds, from its own SIP socket, so the
// router sees traffic on the mapping. Phones behind TCP/TLS keep their connection (CRLF
// keepalives, RFC 5626) instead.
#pragma once

#include <sofia-sip/nta.h>

#include <cstdint>
#include <map>
#include <string>

struct event;

namespace relais {

class EventLoop;
class SipStack;

struct NatKeepaliveCounters {
  uint64_t sent = 0;
  uint64_t tracked = 0;
};

class NatKeepalive {
 public:
  static constexpr size_t kMaxTracked = 200000;

  NatKeepalive(EventLoop& loop, SipStack& stack, const std::string& domain, int interval_seconds);
  ~NatKeepalive();
  NatKeepalive(const NatKeepalive&) = delete;
  NatKeepalive& operator=(const NatKeepalive&) = delete;

  // A registration of `aor` through NAT flow `token` ("udp~IP~PORT"), valid until expires_at
  // (unix seconds; 0 = unregistered: stop pinging).
  void seen(const std::string& aor, const std::string& token, int64_t expires_at);
  void set_interval(int seconds);
  NatKeepaliveCounters counters() const { return {sent_, tracked_.size()}; }

 private:
  static void on_timer(int, short, void* arg);
  void tick();
  void arm();

  EventLoop& loop_;
  SipStack& stack_;
  std::string domain_;
  int interval_;
  ::event* timer_ = nullptr;
  nta_leg_t* leg_ = nullptr;
  struct Entry {
    std::string aor;
    int64_t expires_at = 0;
  };
  std::map<std::string, Entry> tracked_;  // by flow token: one ping per mapping
  uint64_t sent_ = 0;
};

}  // namespace relais
