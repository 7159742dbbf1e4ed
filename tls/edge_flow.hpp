// edge_flow.hpp — one flow of the stream edge: a phone's TCP or TLS connection paired with its
// own TCP connection into Sofia's internal listener. Messages are framed in both directions
// and their headers rewritten on the way (sip_rewrite.hpp); the pair lives and dies together,
// so Sofia sees a phone's connection close as its own.
#pragma once

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>

#include <cstdint>
#include <memory>
#include <string>

#include "sip_rewrite.hpp"
#include "tls_context.hpp"

namespace relais {

class StreamEdge;

struct BuffereventDeleter {
  void operator()(bufferevent* bev) const { bufferevent_free(bev); }
};
using BuffereventPtr = std::unique_ptr<bufferevent, BuffereventDeleter>;

struct EventDeleter {
  void operator()(event* ev) const { event_free(ev); }
};
using EventPtr = std::unique_ptr<event, EventDeleter>;

class EdgeFlow {
 public:
  EdgeFlow(StreamEdge& edge, uint64_t id, FlowAddressing addressing);
  ~EdgeFlow();
  EdgeFlow(const EdgeFlow&) = delete;
  EdgeFlow& operator=(const EdgeFlow&) = delete;

  // Takes `fd` over (and `ssl` for TLS: the handshake starts now). On false everything given
  // has been released and the reason is in `error`.
  bool start(evutil_socket_t fd, SslPtr ssl, std::string& error);

  // Outbound (a trunk, tls/trunk_links.hpp): connects to host:port — resolved through `dns`,
  // or the system resolver when null — then runs the TLS handshake as a client when `ssl` is
  // given. The flow is ready() once the peer is connected (and verified) and Sofia has seen
  // the internal connection; the edge is told (StreamEdge::outbound_ready). On false
  // everything given has been released and the reason is in `error`.
  bool start_outbound(const std::string& host, int port, SslPtr ssl, evdns_base* dns, std::string& error);
  bool ready() const { return usable() && handshaken_ && core_ready_; }
  bool outbound() const { return outbound_; }
  // RFC 5626 §4.4.1: a CRLFCRLF ping keeps an outbound connection (and NATs on its path) alive.
  void send_ping();

  // Closes both connections at once; idempotent. The edge frees the object later, so this is
  // safe from inside the flow's own callbacks.
  void close(const char* reason);
  bool closed() const { return closed_; }
  // Still able to carry a new request from the core to the phone (not closing down).
  bool usable() const { return !closed_ && !draining_ && core_; }

  uint64_t id() const { return id_; }
  const FlowAddressing& addressing() const { return addr_; }
  // Where Sofia reaches this flow: its internal connection's address (Sofia reuses the
  // connection the edge opened to it when a request's next hop is that address).
  const std::string& route() const { return route_; }

 private:
  static void on_phone_read(bufferevent*, void* arg);
  static void on_phone_write(bufferevent*, void* arg);
  static void on_phone_event(bufferevent*, short what, void* arg);
  static void on_core_read(bufferevent*, void* arg);
  static void on_core_event(bufferevent*, short what, void* arg);
  static void on_timer(evutil_socket_t, short, void* arg);

  bool connect_core(std::string& error);
  void outbound_connected();
  void outbound_addressing();
  void maybe_ready();
  void from_phone();
  void from_core();
  void refuse(const char* head, size_t len, int status, const char* reason);
  void drain_then_close(const char* reason);  // close once the phone has what is queued for it
  bool send(bufferevent* to, const std::string& data, const char* peer);
  bool flush(bufferevent* to, std::string& batch, const char* peer);
  void update_timer();
  std::string phone_error(short what) const;

  StreamEdge& edge_;
  uint64_t id_;
  FlowAddressing addr_;
  std::string route_;
  bool tls_ = false;
  bool handshaken_ = false;
  bool closed_ = false;
  bool draining_ = false;  // an error answer is on its way out; close when it is written
  bool outbound_ = false;  // we connected to the peer (a trunk), not the other way round
  bool core_ready_ = true;  // outbound: Sofia has answered our ping on the internal connection
  bool announced_ = false;  // outbound: the edge has been told the flow is ready
  SslPtr pending_ssl_;     // outbound TLS: the handshake starts once TCP is connected
  const char* draining_reason_ = "";
  int64_t opened_ms_ = 0;
  uint64_t messages_in_ = 0, messages_out_ = 0;
  BuffereventPtr phone_;
  BuffereventPtr core_;
  EventPtr timer_;
  std::string scratch_;  // rewritten message, reused
  std::string to_core_, to_phone_;  // what one read produced for each side, sent in one write
};

}  // namespace relais
