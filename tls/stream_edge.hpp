// stream_edge.hpp — relais's SIP-aware edge for stream transports: listens on the TCP
// (sip.listen "tcp:") and TLS (tls.listen) addresses, terminates TLS with OpenSSL on relais's
// libevent loop, and hands every framed message to Sofia's one internal TCP listener through a
// flow per connection (edge_flow.hpp). Why not Sofia's own tport: Debian's Sofia cannot reload
// certificates, set a minimum version or a cipher list (docs/decisions.md).
#pragma once

#include <event2/dns.h>
#include <event2/listener.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.hpp"
#include "edge_counters.hpp"
#include "edge_flow.hpp"
#include "log.hpp"
#include "tls_context.hpp"

namespace relais {

// "203.0.113.5:5061", "[2001:db8::1]:5061".
std::string socket_address_text(const sockaddr* sa);

struct DnsBaseDeleter {
  void operator()(evdns_base* dns) const { evdns_base_free(dns, 1); }
};
using DnsBasePtr = std::unique_ptr<evdns_base, DnsBaseDeleter>;

struct ListenerDeleter {
  void operator()(evconnlistener* l) const { evconnlistener_free(l); }
};
using ListenerPtr = std::unique_ptr<evconnlistener, ListenerDeleter>;

class StreamEdge {
 public:
  // `core_port`: Sofia's internal TCP listener on 127.0.0.1.
  StreamEdge(event_base* base, const Config& cfg, int core_port);
  ~StreamEdge();
  StreamEdge(const StreamEdge&) = delete;
  StreamEdge& operator=(const StreamEdge&) = delete;

  // Loads the TLS context (when tls.listen is set) and binds every listener.
  bool start(std::string& error);

  // New certificate/key/CA/policy for new handshakes; on error the current context stays.
  // Listen addresses and limits are read at start only.
  bool reload(const TlsSettings& settings, std::string& error);

  // What a flow token stored with a binding names: a connection of ours that is still up
  // (`route` = the next hop that reaches it, see SipStack::route_to_flow), one that has closed,
  // or a token of another process (another node sharing the store, or from before a restart).
  enum class FlowState { alive, closed, foreign };
  FlowState find_flow(const std::string& token, std::string& route) const;

  EdgeCounters counters() const;

  // Outbound flows (trunks, tls/trunk_links.hpp). connect_out opens one to host:port, over TLS
  // when `ssl` is given (a client SSL with its peer checks set), and returns its id, or 0 with
  // `error`. The observer hears when a flow it opened is ready to carry requests and when it
  // closes (possibly before connect_out returns: check flow(id)).
  using OutboundObserver = std::function<void(uint64_t id, bool ready, const std::string& reason)>;
  void set_outbound_observer(OutboundObserver observer) { outbound_observer_ = std::move(observer); }
  uint64_t connect_out(const std::string& host, int port, SslPtr ssl, std::string& error);
  EdgeFlow* flow(uint64_t id) const;  // a flow that has not closed, or null
  const TlsSettings& tls_settings() const { return tls_settings_; }

  // --- for EdgeFlow
  event_base* base() const { return base_; }
  size_t max_message_size() const { return max_message_size_; }
  timeval handshake_timeout() const { return {handshake_timeout_, 0}; }
  int core_port() const { return core_port_; }
  EdgeCounters& stats() { return stats_; }
  LogRateLimit& log_limit() { return log_limit_; }
  void flow_closed(uint64_t id, const char* reason);
  void outbound_ready(uint64_t id);

 private:
  struct Listener {
    StreamEdge* edge;
    ListenAddress address;
    ListenerPtr listener;
  };
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* peer, int len, void* arg);
  static void on_accept_error(evconnlistener*, void* arg);
  static void on_resume(evutil_socket_t, short, void* arg);
  static void on_reap(evutil_socket_t, short, void* arg);
  bool listen(const ListenAddress& address, std::string& error);
  void accept(Listener& listener, evutil_socket_t fd, const sockaddr* peer);
  std::string token_of(uint64_t id) const;

  event_base* base_;
  int core_port_;
  std::vector<ListenAddress> tcp_, tls_listen_;
  size_t max_message_size_;
  long handshake_timeout_;
  size_t max_connections_;
  TlsSettings tls_settings_;
  TlsContext tls_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_map<uint64_t, std::unique_ptr<EdgeFlow>> flows_;
  std::vector<std::unique_ptr<EdgeFlow>> closed_;  // freed by the reaper, outside their callbacks
  EventPtr reaper_;
  EventPtr resume_;  // re-enables the listeners after an accept error (EMFILE)
  uint64_t next_id_ = 1;
  uint32_t generation_ = 0;  // random per process: a token stored before a restart never matches
  EdgeCounters stats_;
  LogRateLimit log_limit_{50};
  OutboundObserver outbound_observer_;
  DnsBasePtr dns_;  // created with the first outbound flow; freed after every flow
};

}  // namespace relais
