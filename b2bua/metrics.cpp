// metrics.cpp — counters as Prometheus text format 0.0.4.
#include "metrics.hpp"

#include <malloc.h>

// jemalloc's control interface when relais is linked with it; null with glibc's malloc.
extern "C" int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen) __attribute__((weak));

namespace relais {

namespace {
size_t jemalloc_stat(const char* name) {
  size_t value = 0, len = sizeof value;
  return mallctl(name, &value, &len, nullptr, 0) == 0 ? value : 0;
}
}  // namespace

size_t heap_in_use_bytes() {
  if (mallctl) {
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len);  // refresh jemalloc's cached statistics
    return jemalloc_stat("stats.allocated");
  }
  return mallinfo2().uordblks;
}

size_t heap_resident_bytes() {
  if (mallctl) return jemalloc_stat("stats.resident");  // after heap_in_use_bytes' epoch
  return mallinfo2().arena + mallinfo2().hblkhd;
}

namespace {

void counter(std::string& out, const char* name, const char* help, const char* labels, uint64_t value, bool header = true) {
  if (header) {
    out += std::string("# HELP ") + name + " " + help + "\n";
    out += std::string("# TYPE ") + name + " counter\n";
  }
  out += name;
  if (labels && *labels) out += std::string("{") + labels + "}";
  out += " " + std::to_string(value) + "\n";
}

}  // namespace

std::string render_metrics(const MetricsSnapshot& m) {
  std::string out;
  out.reserve(2048);
  const char* reg = "relais_register_total";
  const char* reg_help = "REGISTER requests by outcome";
  counter(out, reg, reg_help, "result=\"ok\"", m.registrar.ok);
  counter(out, reg, reg_help, "result=\"challenged\"", m.registrar.challenged, false);
  counter(out, reg, reg_help, "result=\"auth_failed\"", m.registrar.auth_failed, false);
  counter(out, reg, reg_help, "result=\"rejected\"", m.registrar.rejected, false);
  counter(out, reg, reg_help, "result=\"error\"", m.registrar.errors, false);
  counter(out, "relais_calls_total", "Calls started", "", m.calls.started);
  counter(out, "relais_calls_challenged_total", "INVITEs answered 407 Proxy Authentication Required", "", m.calls.challenged);
  counter(out, "relais_calls_answered_total", "Calls answered", "", m.calls.answered);
  counter(out, "relais_script_errors_total", "Lua errors in call scripts", "", m.calls.script_errors);
  out += "# HELP relais_calls_active Calls in progress\n# TYPE relais_calls_active gauge\n";
  out += "relais_calls_active " + std::to_string(m.calls.active) + "\n";
  counter(out, "relais_sip_requests_total", "SIP requests received", "", m.sip.requests);
  counter(out, "relais_sip_bad_messages_total", "Malformed SIP messages refused or dropped by the parser", "", m.sip.bad_messages);
  out += "# HELP relais_sip_server_transactions Server transactions alive (including lingering)\n";
  out += "# TYPE relais_sip_server_transactions gauge\n";
  out += "relais_sip_server_transactions " + std::to_string(m.sip.server_transactions) + "\n";
  const char* conn = "relais_edge_connections_total";
  const char* conn_help = "TCP/TLS connections accepted by the edge, by transport";
  counter(out, conn, conn_help, "transport=\"tcp\"", m.edge.accepted_tcp);
  counter(out, conn, conn_help, "transport=\"tls\"", m.edge.accepted_tls, false);
  counter(out, "relais_edge_connections_refused_total", "Connections refused at accept (max_connections)", "", m.edge.refused);
  counter(out, "relais_edge_handshakes_failed_total", "TLS handshakes that failed or timed out", "", m.edge.handshakes_failed);
  counter(out, "relais_edge_framing_errors_total", "Connections closed for unframeable or oversized input", "", m.edge.framing_errors);
  const char* relayed = "relais_edge_messages_total";
  const char* relayed_help = "SIP messages relayed by the edge, by direction";
  counter(out, relayed, relayed_help, "direction=\"in\"", m.edge.messages_in);
  counter(out, relayed, relayed_help, "direction=\"out\"", m.edge.messages_out, false);
  counter(out, "relais_edge_keepalives_total", "RFC 5626 CRLF keepalive pings answered", "", m.edge.keepalives);
  out += "# HELP relais_edge_connections_open TCP/TLS connections open now\n# TYPE relais_edge_connections_open gauge\n";
  out += "relais_edge_connections_open " + std::to_string(m.edge.open) + "\n";
  const char* drops = "relais_sbc_dropped_total";
  const char* drops_help = "Requests dropped unanswered by the SBC, by reason";
  counter(out, drops, drops_help, "reason=\"denied\"", m.sbc.denied);
  counter(out, drops, drops_help, "reason=\"banned\"", m.sbc.banned_drops, false);
  counter(out, drops, drops_help, "reason=\"scanner\"", m.sbc.scanners, false);
  counter(out, "relais_sbc_rate_limited_total", "Requests over their source's rate (dropped or 503)", "", m.sbc.rate_limited);
  counter(out, "relais_sbc_auth_failures_total", "Failed authentications counted toward bans", "", m.sbc.auth_failures);
  counter(out, "relais_sbc_bans_total", "Sources banned (failed authentications, scanners, scripts)", "", m.sbc.bans);
  counter(out, "relais_sbc_unbans_total", "Bans lifted (expiry or script)", "", m.sbc.unbans);
  counter(out, "relais_sbc_sources_evicted_total", "Tracked sources evicted by sbc.max_sources", "", m.sbc.sources_evicted);
  counter(out, "relais_sbc_bans_evicted_total", "Bans evicted by sbc.max_bans", "", m.sbc.bans_evicted);
  const char* limited = "relais_sbc_calls_limited_total";
  const char* limited_help = "Calls refused by a concurrent-call limit, by scope";
  counter(out, limited, limited_help, "scope=\"user\"", m.call_limits.user_refused);
  counter(out, limited, limited_help, "scope=\"trunk\"", m.call_limits.trunk_refused, false);
  out += "# HELP relais_sbc_sources Source addresses tracked for rate limits and failures\n# TYPE relais_sbc_sources gauge\n";
  out += "relais_sbc_sources " + std::to_string(m.sbc.sources) + "\n";
  out += "# HELP relais_sbc_bans Sources banned now\n# TYPE relais_sbc_bans gauge\n";
  out += "relais_sbc_bans " + std::to_string(m.sbc.active_bans) + "\n";
  counter(out, "relais_calls_answered_locally_total", "Calls answered by relais itself (menus, voicemail)", "",
          m.calls.answered_locally);
  counter(out, "relais_dtmf_digits_total", "DTMF digits received from callers (RFC 4733 and SIP INFO)", "", m.calls.digits);
  out += "# HELP relais_mwi_subscriptions Message-summary subscriptions now\n# TYPE relais_mwi_subscriptions gauge\n";
  out += "relais_mwi_subscriptions " + std::to_string(m.mwi.active) + "\n";
  const char* notifies = "relais_mwi_notifies_total";
  const char* notifies_help = "MWI NOTIFYs sent, by kind";
  counter(out, notifies, notifies_help, "kind=\"subscription\"", m.mwi.notifies_sent);
  counter(out, notifies, notifies_help, "kind=\"unsolicited\"", m.mwi.unsolicited_sent, false);
  counter(out, "relais_mwi_notifies_failed_total", "MWI NOTIFYs refused or unanswered", "", m.mwi.notifies_failed);
  const char* mails = "relais_mail_total";
  const char* mails_help = "Voicemail e-mails, by outcome";
  counter(out, mails, mails_help, "result=\"sent\"", m.mail.sent);
  counter(out, mails, mails_help, "result=\"failed\"", m.mail.failed, false);
  counter(out, mails, mails_help, "result=\"rejected\"", m.mail.rejected, false);
  counter(out, "relais_nat_keepalives_total", "OPTIONS pings sent to NATed UDP phones", "", m.keepalive.sent);
  out += "# HELP relais_heap_bytes Heap memory in use (allocated, not counting allocator caches)\n";
  out += "# TYPE relais_heap_bytes gauge\nrelais_heap_bytes " + std::to_string(heap_in_use_bytes()) + "\n";
  out += "# HELP relais_heap_resident_bytes Memory the allocator holds in RAM (heap + its caches and fragmentation)\n";
  out += "# TYPE relais_heap_resident_bytes gauge\nrelais_heap_resident_bytes " + std::to_string(heap_resident_bytes()) + "\n";
  out += "# HELP relais_uptime_seconds Seconds since start\n# TYPE relais_uptime_seconds gauge\n";
  out += "relais_uptime_seconds " + std::to_string(m.uptime_seconds) + "\n";
  out += "# HELP relais_info Build and node information\n# TYPE relais_info gauge\n";
  out += "relais_info{version=\"" RELAIS_VERSION "\",node=\"" + m.node_id + "\",store=\"" + m.store_backend + "\"} 1\n";
  return out;
}

}  // namespace relais
