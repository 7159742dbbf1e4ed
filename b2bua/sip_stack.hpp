// sip_stack.hpp — the Sofia nta agent: transports from config, and the entry point of every
// out-of-dialog request: REGISTER/OPTIONS (and refusals) are answered statelessly, INVITE and
// other methods get a server transaction; either way a SipRequest goes to the method's handler.
#pragma once

#include <sofia-sip/nta.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config.hpp"
#include "sip_request.hpp"

struct event;

namespace relais {

class EventLoop;
class SourceGuard;

struct SipCounters {
  size_t requests = 0;      // requests received
  size_t bad_messages = 0;  // unparsable or insane messages nta answered 400/413 or dropped
  size_t server_transactions = 0;
};

// We build on nta, not nua: a registrar answers each REGISTER from a store lookup and needs no
// dialog or media state, and the measured per-call memory (SOFIA-NOTES.md: nua 9.6 KiB vs nta
// 3.45 KiB) points the call engine at nta too. See docs/decisions.md.
class SipStack {
 public:
  using Handler = std::function<void(const SipRequestPtr&)>;

  explicit SipStack(EventLoop& loop) : loop_(loop) {}
  ~SipStack();
  SipStack(const SipStack&) = delete;
  SipStack& operator=(const SipStack&) = delete;

  bool start(const Config& cfg, std::string& error);

  // Sofia's one TCP listener, on 127.0.0.1 only: the stream edge (tls/) hands it every TCP and
  // TLS message. 0 when no stream transport is configured.
  int internal_tcp_port() const { return internal_tcp_port_; }

  // Flows: a contact registered over a TCP/TLS connection carries the edge's flow token in a
  // URI parameter (kFlowParam). The lookup says whether the token names a live connection of
  // this process (`route` = the next hop that reaches it), one that has closed, or none of
  // ours (another node sharing the store, or before a restart).
  static constexpr const char* kFlowParam = "rls-flow";
  enum class FlowTarget { none, routed, gone };
  using FlowLookup = std::function<FlowTarget(const std::string& token, std::string& route)>;
  void set_flow_lookup(FlowLookup lookup) { flow_lookup_ = std::move(lookup); }
  // Strips the flow parameter from `uri`; `route` becomes the flow's route when it is alive.
  // `none` also when the URI names no flow: then the contact itself is the target.
  FlowTarget route_to_flow(std::string& uri, std::string& route) const;

  // A trunk reached over TLS goes through relais's own connection to it (tls/trunk_links.hpp):
  // routed with `route` (Sofia's next hop) and `local` (our end, "ip:port"), gone while that
  // connection is down, none for a trunk Sofia reaches itself.
  using TrunkLinkLookup = std::function<FlowTarget(const std::string& trunk, std::string& route, std::string& local)>;
  void set_trunk_link_lookup(TrunkLinkLookup lookup) { trunk_link_lookup_ = std::move(lookup); }
  FlowTarget route_to_trunk(const std::string& trunk, std::string& route, std::string& local) const {
    return trunk_link_lookup_ ? trunk_link_lookup_(trunk, route, local) : FlowTarget::none;
  }
  // The next hop of a "udp~IP~PORT" token (a NATed UDP registration); false for other tokens.
  static bool udp_flow_route(const std::string& token, std::string& route);

  // The SBC's per-source admission (source_guard.hpp), asked before any other work on every
  // out-of-dialog request; expiry runs on a one-second timer. Null = no checks.
  void set_source_guard(SourceGuard* guard);

  void on_method(const std::string& method, Handler handler) { handlers_[method] = std::move(handler); }

  // Addresses we listen on, for recognising requests addressed to "us".
  const std::vector<ListenAddress>& listening() const { return listening_; }
  bool is_local_host(const char* host) const;

  nta_agent_t* agent() const { return agent_; }
  SipCounters counters() const;
  std::string allow_header() const;

 private:
  static int on_message(nta_agent_magic_t* magic, nta_agent_t* agent, msg_t* msg, sip_t* sip);
  void dispatch(msg_t* msg, sip_t* sip);
  static void on_stats_timer(int, short, void* arg);
  bool admit(msg_t* msg, sip_t* sip);
  bool add_internal_tcp(std::string& error);

  EventLoop& loop_;
  nta_agent_t* agent_ = nullptr;
  std::vector<ListenAddress> listening_;
  int internal_tcp_port_ = 0;
  FlowLookup flow_lookup_;
  TrunkLinkLookup trunk_link_lookup_;
  std::map<std::string, Handler> handlers_;
  ::event* stats_timer_ = nullptr;
  SourceGuard* guard_ = nullptr;
  ::event* guard_timer_ = nullptr;
  size_t bad_messages_logged_ = 0;
  LogRateLimit bad_log_{20};
};

}  // namespace relais
