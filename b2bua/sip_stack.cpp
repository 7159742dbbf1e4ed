// sip_stack.cpp — creating the nta agent and routing requests to handlers.
#include "sip_stack.hpp"

#include <algorithm>

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/nta_tag.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_string.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <climits>
#include <optional>
#include <string_view>

#include <event2/event.h>

#include "call_memory.hpp"
#include "event_loop.hpp"
#include "log.hpp"
#include "request_limits.hpp"
#include "server_header.hpp"
#include "source_guard.hpp"

namespace relais {

namespace {
// nta answers malformed requests itself (400 "Bad X Header", 413) without calling us; we log
// one summary line per interval instead of one per packet, so a flood cannot flood the log.
constexpr timeval kStatsInterval{10, 0};
}  // namespace

SipStack::~SipStack() {
  if (stats_timer_) event_free(stats_timer_);
  if (guard_timer_) event_free(guard_timer_);
  if (agent_) nta_agent_destroy(agent_);
}

bool SipStack::start(const Config& cfg, std::string& error) {
  // NONE: no default "sip:*:*" transports; we add exactly the configured ones below.
  // Stateless agent: requests outside any dialog or transaction come to on_message. A REGISTER
  // answered through a server transaction would linger ~32 s (Timer J) after its answer:
  // measured 3.3 GB at 5,000 REGISTER/s (docs/decisions.md). INVITEs still get transactions.
  agent_ = nta_agent_create(loop_.root(), reinterpret_cast<url_string_t*>(-1), on_message,
                            reinterpret_cast<nta_agent_magic_t*>(this), NTATAG_STATELESS(1),
                            NTATAG_MAXSIZE(cfg.max_message_size),
                            // A B2BUA is a user agent on both sides: nta retransmits our 2xx
                            // until the ACK and hands that ACK to the INVITE transaction.
                            NTATAG_UA(1),
                            // RFC 3581: always answer to the source port, NATed phones need it.
                            NTATAG_SERVER_RPORT(2),
                            TAG_END());
  if (!agent_) {
    error = "cannot create SIP agent";
    return false;
  }
  // TLS trunks too: the edge's connection to the operator reaches Sofia like a phone's.
  bool streams = !cfg.tls.listen.empty() ||
                 std::any_of(cfg.trunks.begin(), cfg.trunks.end(), [](const auto& t) { return t.second.tls; });
  for (const ListenAddress& address : cfg.listen) {
    listening_.push_back(address);
    // TCP is the edge's (tls/): Sofia looks connections up under its first TCP listener only,
    // so a second, public one would answer 503 (SOFIA-NOTES.md, "An edge in front of Sofia").
    if (address.proto != "udp") {
      streams = true;
      continue;
    }
    std::string url = address.sip_url();
    if (nta_agent_add_tport(agent_, URL_STRING_MAKE(url.c_str()),
                            // Bursts of REGISTER refreshes overflow the kernel default (208 KB).
                            TPTAG_UDP_RMEM(4 << 20), TPTAG_UDP_WMEM(4 << 20),
                            TAG_END()) < 0) {
      error = "cannot listen on " + address.to_string() + " (address in use or not local?)";
      return false;
    }
  }
  for (const ListenAddress& address : cfg.tls.listen) listening_.push_back(address);
  if (streams && !add_internal_tcp(error)) return false;
  stats_timer_ = event_new(loop_.base(), -1, EV_PERSIST, on_stats_timer, this);
  event_add(stats_timer_, &kStatsInterval);
  return true;
}

bool SipStack::add_internal_tcp(std::string& error) {
  // Port 0: the kernel picks one; nobody outside this process needs to know it.
  if (nta_agent_add_tport(agent_, URL_STRING_MAKE("sip:127.0.0.1:0;transport=tcp"),
                          // Sofia closes idle TCP connections after 30 min by default; a
                          // registered phone may legitimately stay quiet longer.
                          TPTAG_IDLE(UINT_MAX),
                          // Answer RFC 5626 CRLF keepalives (the edge answers the phone's own).
                          TPTAG_PONG2PING(1), TAG_END()) < 0) {
    error = "cannot open the internal TCP listener on 127.0.0.1";
    return false;
  }
  for (tport_t* tp = tport_primaries(nta_agent_tports(agent_)); tp; tp = tport_next(tp)) {
    const tp_name_t* name = tport_name(tp);
    if (name && name->tpn_proto && strcasecmp(name->tpn_proto, "tcp") == 0 && name->tpn_port)
      internal_tcp_port_ = atoi(name->tpn_port);
  }
  if (internal_tcp_port_ <= 0) {
    error = "cannot find the port of the internal TCP listener";
    return false;
  }
  return true;
}

// A UDP phone behind NAT registered from "udp~IP~PORT" (registrar.cpp): requests to it go to
// that public address — the NAT's mapping — not to the private address in its Contact.
bool SipStack::udp_flow_route(const std::string& token, std::string& route) {
  if (token.rfind("udp~", 0) != 0) return false;
  size_t sep = token.rfind('~');
  if (sep <= 4) return false;
  std::string ip = token.substr(4, sep - 4), port = token.substr(sep + 1);
  if (ip.empty() || port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5) return false;
  if (ip.find_first_not_of("0123456789abcdefABCDEF.:") != std::string::npos) return false;
  route = "sip:" + (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + port + ";transport=udp";
  return true;
}

SipStack::FlowTarget SipStack::route_to_flow(std::string& uri, std::string& route) const {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  url_t* url = url_make(home, uri.c_str());
  char token[128] = "";
  FlowTarget result = FlowTarget::none;
  if (url && url->url_params && url_param(url->url_params, kFlowParam, token, sizeof token) > 0) {
    url_strip_param_string(const_cast<char*>(url->url_params), kFlowParam);
    if (url->url_params && !*url->url_params) url->url_params = nullptr;
    char* text = url_as_string(home, url);
    if (text) uri = text;
    result = udp_flow_route(token, route) ? FlowTarget::routed
             : flow_lookup_                 ? flow_lookup_(token, route)
                                            : FlowTarget::none;
  }
  su_home_deinit(home);
  return result;
}

SipCounters SipStack::counters() const {
  SipCounters c;
  usize_t requests = 0, bad = 0, server_tr = 0;
  nta_agent_get_stats(agent_, NTATAG_S_RECV_REQUEST_REF(requests), NTATAG_S_BAD_MESSAGE_REF(bad),
                      NTATAG_S_SERVER_TR_REF(server_tr), TAG_END());
  c.requests = requests;
  c.bad_messages = bad;
  c.server_transactions = server_tr;
  return c;
}

void SipStack::on_stats_timer(int, short, void* arg) {
  auto* self = static_cast<SipStack*>(arg);
  SipCounters c = self->counters();
  if (c.bad_messages > self->bad_messages_logged_) {
    log_warn("sip.bad_messages").kv("new", c.bad_messages - self->bad_messages_logged_).kv("total", c.bad_messages);
    self->bad_messages_logged_ = c.bad_messages;
  }
}

bool SipStack::is_local_host(const char* host) const {
  if (!host) return false;
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  unsigned char buf[sizeof(in6_addr)];
  bool ip_literal = inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
  for (const ListenAddress& a : listening_) {
    if (strcasecmp(a.host.c_str(), h.c_str()) == 0) return true;
    // A wildcard listener answers on every local address; any IP literal may be ours.
    if (ip_literal && (a.host == "0.0.0.0" || a.host == "::")) return true;
  }
  return false;
}

std::string SipStack::allow_header() const {
  std::string allow = "OPTIONS";
  for (const auto& [method, handler] : handlers_)
    if (method != "OPTIONS") allow += ", " + method;
  return allow;
}

void SipStack::set_source_guard(SourceGuard* guard) {
  guard_ = guard;
  if (guard_timer_) event_free(guard_timer_);
  guard_timer_ = nullptr;
  if (!guard_) return;
  static constexpr timeval kSecond{1, 0};
  guard_timer_ = event_new(loop_.base(), -1, EV_PERSIST, [](int, short, void* arg) {
    auto* self = static_cast<SipStack*>(arg);
    if (self->guard_) self->guard_->expire(monotonic_seconds());
  }, this);
  event_add(guard_timer_, &kSecond);
}

namespace {

// The address the request came from: the socket peer, or for TCP/TLS (which reaches Sofia
// only through the stream edge on 127.0.0.1) the peer the edge wrote into the top Via's
// rls-src parameter ("tls:203.0.113.5:5061", "tcp:[2001:db8::1]:5060"), as
// SipRequest::read_edge_source reads it.
std::optional<SourceIp> source_ip_of(msg_t* msg, const sip_t* sip) {
  su_addrinfo_t* ai = msg_addrinfo(msg);
  if (!ai) return std::nullopt;
  if (ai->ai_protocol == IPPROTO_TCP && sip->sip_via) {
    if (const char* src = msg_params_find(sip->sip_via->v_params, "rls-src")) {
      std::string_view text(src);
      if (text.size() >= 2 && text.front() == '"' && text.back() == '"') text = text.substr(1, text.size() - 2);
      size_t colon = text.find(':'), last = text.rfind(':');
      if (colon != std::string_view::npos && last > colon) return SourceIp::parse(text.substr(colon + 1, last - colon - 1));
    }
  }
  return SourceIp::from_sockaddr(ai->ai_addr);
}

}  // namespace

// Before any transaction, handler or store work: a denied, banned or flooding source, or a
// scanner, costs one table lookup. Drops get no answer at all, so a scanner learns nothing
// (not even that a SIP server is here). Consumes `msg` when it refuses.
bool SipStack::admit(msg_t* msg, sip_t* sip) {
  std::optional<SourceIp> ip = source_ip_of(msg, sip);
  if (!ip) return true;
  const char* agent = sip->sip_user_agent && sip->sip_user_agent->g_string ? sip->sip_user_agent->g_string : "";
  switch (guard_->admit(*ip, agent, monotonic_seconds())) {
    case SourceGuard::Admission::pass:
    case SourceGuard::Admission::trusted:
      return true;
    case SourceGuard::Admission::rate_limited:
      if (guard_->rate_action() == "503") {
        // Stateless: a flood must not create transactions. Retry-After spaces the retries.
        nta_msg_treply(agent_, msg, 503, "Too Many Requests", SIPTAG_RETRY_AFTER_STR("5"),
                       SIPTAG_SERVER(server_header()), TAG_END());
        return false;
      }
      break;
    case SourceGuard::Admission::denied:
    case SourceGuard::Admission::banned:
    case SourceGuard::Admission::scanner:
      break;
  }
  msg_destroy(msg);
  return false;
}

int SipStack::on_message(nta_agent_magic_t* magic, nta_agent_t*, msg_t* msg, sip_t* sip) {
  reinterpret_cast<SipStack*>(magic)->dispatch(msg, sip);
  return 0;
}

void SipStack::dispatch(msg_t* msg, sip_t* sip) {
  if (!sip || !sip->sip_request || sip->sip_request->rq_method == sip_method_ack) {
    // Responses nobody waits for, and ACKs of nothing (ACKs of our answers are absorbed by
    // their transaction or dialog before they get here).
    msg_destroy(msg);
    return;
  }
  if (guard_ && !admit(msg, sip)) return;
  const char* method = sip->sip_request->rq_method_name;
  auto handler = handlers_.find(method ? method : "");
  sip_method_t m = sip->sip_request->rq_method;
  bool stateless = m == sip_method_register || m == sip_method_options || handler == handlers_.end();
  SipRequestPtr request;
  if (stateless) {
    request = std::make_shared<SipRequest>(agent_, msg, sip);
  } else {
    nta_incoming_t* irq = nta_incoming_create(agent_, nullptr, msg, sip, TAG_END());
    if (!irq) return;  // nta freed msg
    {
      std::optional<CallMemory> memory;  // an INVITE's request object lives as long as its call
      if (m == sip_method_invite) memory.emplace();
      request = std::make_shared<SipRequest>(irq, sip);
    }
    request->leave_callback();  // not inside a leg callback: we destroy the transaction
    // `msg` now belongs to the transaction (nta_incoming_create took it over).
  }
  std::string problem = request_limit_problem(request->msg(), sip, request->source().transport == "udp");
  if (!problem.empty()) {
    if (bad_log_.allow())
      log_info("sip.bad_request").kv("method", method).kv("reason", problem).kv("src", request->source().to_string());
    request->respond(400, problem.c_str());
  } else if (handler != handlers_.end()) {
    handler->second(request);
  } else if (m == sip_method_options) {
    // Keepalive pings and monitoring: 200 with our capabilities, no Contact (nta would
    // otherwise invent one that leaks an internal address).
    std::string allow = allow_header();
    request->respond(SIP_200_OK, SIPTAG_ALLOW_STR(allow.c_str()), SIPTAG_ACCEPT_STR("application/sdp"), TAG_END());
  } else {
    std::string allow = allow_header();
    log_info("sip.method_not_allowed").kv("method", method).kv("call_id", request->call_id()).kv("src", request->source().to_string());
    request->respond(SIP_405_METHOD_NOT_ALLOWED, SIPTAG_ALLOW_STR(allow.c_str()), TAG_END());
  }
  if (request.use_count() == 1 && !request->answered()) request->respond(500, "Request Not Handled");
}

}  // namespace relais
