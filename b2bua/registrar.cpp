// registrar.cpp — the REGISTER pipeline: parse → authenticate → script → store → answer.
#include "registrar.hpp"

#include "nat_keepalive.hpp"

#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/su_time.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "log.hpp"
#include "sip_stack.hpp"

namespace relais {

namespace {

// A private or shared address (RFC 1918, RFC 6598, link-local, RFC 4193) cannot be reached
// from here directly when the phone's packets came from somewhere else.
bool private_address(const std::string& host) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (sscanf(host.c_str(), "%u.%u.%u.%u", &a, &b, &c, &d) == 4)
    return a == 10 || (a == 172 && b >= 16 && b <= 31) || (a == 192 && b == 168) || (a == 100 && b >= 64 && b <= 127) ||
           (a == 169 && b == 254);
  std::string h = host;
  for (char& ch : h) ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
  return h.rfind("fc", 0) == 0 || h.rfind("fd", 0) == 0 || h.rfind("fe80:", 0) == 0;
}

// NAT detection: a Contact with a private address the REGISTER did not come from. Requests to
// such a phone go to the source address, where the NAT keeps the phone's mapping open. (A
// contact on the source's own host but another port is a third-party registration, not NAT.)
bool behind_nat(const sip_t* sip, const SourceAddress& source) {
  for (const sip_contact_t* m = sip->sip_contact; m; m = m->m_next) {
    const url_t* u = m->m_url;
    if (!u || u->url_type == url_any || !u->url_host) continue;
    std::string host = u->url_host;
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    if (host != source.ip && private_address(host)) return true;
  }
  return false;
}


int64_t unix_now() { return static_cast<int64_t>(time(nullptr)); }

// Parses a delta-seconds value (RFC 3261 §25.1); huge values saturate rather than wrap.
bool parse_delta(const char* text, uint32_t& out) {
  if (!text || !*text) return false;
  uint64_t value = 0;
  for (const char* p = text; *p; ++p) {
    if (*p < '0' || *p > '9') return false;
    value = value * 10 + static_cast<uint64_t>(*p - '0');
    if (value > UINT32_MAX) value = UINT32_MAX;
  }
  out = static_cast<uint32_t>(value);
  return true;
}

bool parse_q(const char* text, int& out) {
  if (!text) return true;
  char* end = nullptr;
  double q = strtod(text, &end);
  if (end == text || *end || q < 0 || q > 1) return false;
  out = static_cast<int>(q * 1000 + 0.5);
  return true;
}

std::string url_string(const url_t* url) {
  char buf[512];
  isize_t n = url_e(buf, sizeof buf, url);
  if (n >= 0 && static_cast<size_t>(n) < sizeof buf) return std::string(buf, static_cast<size_t>(n));
  su_home_t home[1] = {SU_HOME_INIT(home)};  // longer than the buffer: Sofia sizes it
  char* text = url_as_string(home, url);
  std::string out = text ? text : "";
  su_home_deinit(home);
  return out;
}

std::string contact_param(const sip_contact_t* m, const char* name) {
  const char* v = msg_params_find(m->m_params, name);
  if (!v) return {};
  std::string value = v;
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
  return value;
}

// Text that can go between <> in a header line as it is.
bool safe_in_header(const std::string& s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '>') return false;
  return !s.empty();
}

void append_decimal(std::string& out, int64_t v) {
  char buf[24];
  char* end = buf + sizeof buf;
  char* p = end;
  uint64_t u = v < 0 ? 0 : static_cast<uint64_t>(v);
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u);
  out.append(p, static_cast<size_t>(end - p));
}

// "Date: Sun, 23 Nov 2026 19:53:03 GMT\r\n" (RFC 3261 §20.17), formatted once per second.
const std::string& date_line(int64_t now) {
  static int64_t formatted = -1;
  static std::string line;
  if (now != formatted) {
    static const char* const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = static_cast<time_t>(now);
    tm parts{};
    gmtime_r(&t, &parts);
    char buf[64];
    snprintf(buf, sizeof buf, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n", days[parts.tm_wday % 7], parts.tm_mday,
             months[parts.tm_mon % 12], parts.tm_year + 1900, parts.tm_hour, parts.tm_min, parts.tm_sec);
    line = buf;
    formatted = now;
  }
  return line;
}

}  // namespace

std::string canonical_contact_key(const url_t* url) {
  auto append_lower = [](std::string& out, const char* text) {
    for (const char* p = text; *p; ++p) out += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
  };
  std::string key;
  key.reserve(64);
  append_lower(key, url->url_scheme ? url->url_scheme : "sip");
  key += ':';
  if (url->url_user) key.append(url->url_user).append("@");
  append_lower(key, url->url_host ? url->url_host : "");
  if (url->url_port) key.append(":").append(url->url_port);
  if (url->url_params) {
    for (const char* name : {"transport", "maddr"}) {
      char buf[256];
      isize_t n = url_param(url->url_params, name, buf, sizeof buf);
      if (n > 0) {
        key.append(";").append(name).append("=");
        append_lower(key, buf);
      }
    }
  }
  return key;
}

Registrar::Registrar(const Config& cfg, SipStack& stack, LocationStore& store, Authenticator& auth, ScriptEngine& script)
    : cfg_(cfg), stack_(stack), store_(store), auth_(auth), script_(script) {}

void Registrar::set_config(const Config& cfg) { cfg_ = cfg; }

std::string Registrar::aor_for(const sip_t* sip, std::string& why) const {
  const url_t* to = sip->sip_to ? sip->sip_to->a_url : nullptr;
  if (!to || !to->url_host) {
    why = "Missing To URI";
    return {};
  }
  if (to->url_type != url_sip && to->url_type != url_sips) {
    why = "Unsupported URI Scheme In To";
    return {};
  }
  if (!to->url_user || !*to->url_user) {
    why = "Missing User In To";
    return {};
  }
  bool ours = strcasecmp(to->url_host, cfg_.domain.c_str()) == 0 || stack_.is_local_host(to->url_host);
  for (const std::string& alias : cfg_.aliases) ours = ours || strcasecmp(to->url_host, alias.c_str()) == 0;
  if (!ours) {
    why = "Domain Not Served Here";
    return {};
  }
  std::string aor;
  aor.reserve(strlen(to->url_user) + 1 + cfg_.domain.size());
  aor.append(to->url_user).append("@");
  for (char c : cfg_.domain) aor += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return aor;
}

void Registrar::handle(const SipRequestPtr& request) {
  const sip_t* sip = request->sip();
  std::string why;
  std::string aor = aor_for(sip, why);
  if (aor.empty()) {
    // Registering into a domain we do not serve is what scanners do; it counts toward a ban.
    if (why == "Domain Not Served Here") auth_.report_failure(request->source().ip, "", why);
    answer_error(request, "", why == "Domain Not Served Here" ? 404 : 400, why, "register.bad_request");
    return;
  }

  // Malformed Contacts get their 400 before any challenge; the binding fields are only built
  // for a request that authenticated (half the REGISTERs are answered 401).
  for (const sip_contact_t* m = sip->sip_contact; m; m = m->m_next) {
    if (m->m_url->url_type == url_any) continue;
    const char* problem = nullptr;
    uint32_t expires = 0;
    int q = 0;
    if (m->m_url->url_type != url_sip && m->m_url->url_type != url_sips)
      problem = "Unsupported Contact URI Scheme";
    else if (m->m_expires && !parse_delta(m->m_expires, expires))
      problem = "Bad Contact Expires Parameter";
    else if (!parse_q(m->m_q, q))
      problem = "Bad Contact q Parameter";
    if (problem) return answer_error(request, aor, 400, problem, "register.bad_request");
  }

  int64_t now = unix_now();
  auth_.verify(sip, now, false, [this, request, aor, now](const Authenticator::Outcome& outcome) {
    switch (outcome.verdict) {
      case Authenticator::Verdict::challenge:
        return challenge(request, false, aor, outcome.reason);
      case Authenticator::Verdict::stale:
        return challenge(request, true, aor, outcome.reason);
      case Authenticator::Verdict::bad_request:
        return answer_error(request, aor, 400, outcome.reason, "register.bad_request");
      case Authenticator::Verdict::forbidden:
        ++counters_.auth_failed;
        auth_.report_failure(request->source().ip, outcome.user, outcome.reason);
        log_warn("register.auth_failed").kv("aor", aor).kv("user", outcome.user).kv("reason", outcome.reason)
            .kv("src", request->source().to_string()).kv("call_id", request->call_id());
        request->respond_text(SIP_403_FORBIDDEN, {});
        return;
      case Authenticator::Verdict::unavailable:
        ++counters_.errors;
        log_error("register.store_unavailable").kv("aor", aor).kv("error", outcome.reason).kv("call_id", request->call_id());
        request->respond_text(503, "Store Unavailable", "Retry-After: 5\r\n");
        return;
      case Authenticator::Verdict::ok:
        break;
    }
    // Authorization: a user registers only its own AoR (RFC 3261 §10.3 step 3).
    if (aor.substr(0, aor.find('@')) != outcome.user) {
      auth_.report_failure(request->source().ip, outcome.user, "Username Does Not Match AoR");
      return answer_error(request, aor, 403, "Username Does Not Match AoR", "register.rejected");
    }
    after_auth(request, aor, build_update(*request, now));
  });
}

// The request as a change to the AoR's bindings (its Contacts were validated by handle()).
RegisterUpdate Registrar::build_update(const SipRequest& request, int64_t now) const {
  const sip_t* sip = request.sip();
  RegisterUpdate update;
  update.call_id = request.call_id();
  update.cseq = sip->sip_cseq ? sip->sip_cseq->cs_seq : 0;
  update.branch = sip->sip_via && sip->sip_via->v_branch ? sip->sip_via->v_branch : "";
  update.now = now;
  update.received = request.source().to_string();
  update.flow = request.source().flow;
  if (update.flow.empty() && request.source().transport == "udp" && behind_nat(sip, request.source()))
    update.flow = "udp~" + request.source().ip + "~" + std::to_string(request.source().port);
  update.user_agent = sip->sip_user_agent && sip->sip_user_agent->g_string ? sip->sip_user_agent->g_string : "";
  update.node = cfg_.node_id;
  if (sip->sip_expires) update.expires_header = static_cast<uint32_t>(sip->sip_expires->ex_delta);
  for (const sip_contact_t* m = sip->sip_contact; m; m = m->m_next) {
    if (m->m_url->url_type == url_any) {
      update.wildcard = true;
      continue;
    }
    ContactUpdate contact;
    contact.uri = url_string(m->m_url);
    contact.key = canonical_contact_key(m->m_url);
    if (m->m_expires) {
      uint32_t value = 0;
      parse_delta(m->m_expires, value);
      contact.expires_param = value;
    }
    parse_q(m->m_q, contact.q_milli);
    contact.instance = contact_param(m, "+sip.instance");
    update.contacts.push_back(std::move(contact));
  }
  return update;
}

void Registrar::after_auth(const SipRequestPtr& request, const std::string& aor, RegisterUpdate update) {
  RegisterOutcome early = check_register(cfg_.registrar, update);
  if (early.status == 423) {
    std::string min = std::to_string(early.min_expires);
    ++counters_.rejected;
    log_info("register.interval_too_brief").kv("aor", aor).kv("min_expires", early.min_expires).kv("call_id", request->call_id());
    request->respond_text(SIP_423_INTERVAL_TOO_BRIEF, "Min-Expires: " + min + "\r\n");
    return;
  }
  if (early.status != 200) return answer_error(request, aor, early.status, early.reason, "register.bad_request");

  if (script_.has_hook("on_register")) {
    const sip_t* sip = request->sip();
    RegisterHookRequest hook;
    hook.user = aor.substr(0, aor.find('@'));
    hook.domain = aor.substr(aor.find('@') + 1);
    hook.aor = aor;
    hook.source_ip = request->source().ip;
    hook.source_port = request->source().port;
    hook.transport = request->source().transport;
    hook.user_agent = update.user_agent;
    hook.call_id = update.call_id;
    hook.expires = sip->sip_expires ? static_cast<int>(sip->sip_expires->ex_delta) : -1;
    for (const ContactUpdate& c : update.contacts) hook.contacts.push_back(c.uri);
    HookResult verdict = script_.on_register(hook);
    if (!verdict.error.empty()) {
      ++counters_.errors;
      log_error("script.error").kv("hook", "on_register").kv("aor", aor).kv("call_id", update.call_id).kv("error", verdict.error);
      request->respond_text(500, "Script Error", {});
      return;
    }
    if (verdict.reject_code) {
      return answer_error(request, aor, verdict.reject_code,
                          verdict.reject_reason.empty() ? "Rejected" : verdict.reject_reason, "register.rejected");
    }
    update.attrs = std::move(verdict.attrs);
  }

  int64_t now = update.now;
  store_.lookup(aor, now, [this, request, aor, update = std::move(update)](const std::string& error, std::vector<Binding> current) mutable {
    if (!error.empty()) {
      ++counters_.errors;
      log_error("register.store_unavailable").kv("aor", aor).kv("error", error).kv("call_id", request->call_id());
      request->respond_text(503, "Store Unavailable", "Retry-After: 5\r\n");
      return;
    }
    RegisterOutcome outcome = apply_register(cfg_.registrar, update, std::move(current));
    if (outcome.status != 200) return answer_error(request, aor, outcome.status, outcome.reason, "register.rejected");
    int64_t now = update.now;
    if (!outcome.changed) return answer_ok(request, aor, ok_headers(outcome.bindings, now), outcome.bindings.size(), false);
    // The 200's headers and the NAT flows to keep open are taken now, so the bindings can move
    // into the store without a copy.
    std::string headers = ok_headers(outcome.bindings, now);
    size_t count = outcome.bindings.size();
    std::vector<std::pair<std::string, int64_t>> flows;
    if (keepalive_)
      for (const Binding& b : outcome.bindings)
        if (!b.flow.empty()) flows.emplace_back(b.flow, b.expires_at);
    store_.replace(aor, std::move(outcome.bindings),
                   [this, request, aor, headers = std::move(headers), count, flows = std::move(flows)](const std::string& error) {
      if (!error.empty()) {
        ++counters_.errors;
        log_error("register.store_unavailable").kv("aor", aor).kv("error", error).kv("call_id", request->call_id());
        request->respond_text(503, "Store Unavailable", "Retry-After: 5\r\n");
        return;
      }
      if (keepalive_)
        for (const auto& [flow, expires_at] : flows) keepalive_->seen(aor, flow, expires_at);
      answer_ok(request, aor, headers, count, true);
    });
  });
}

// The 200's Contact (every binding with its remaining time) and Date, as header lines.
std::string Registrar::ok_headers(const std::vector<Binding>& bindings, int64_t now) {
  std::string headers;
  headers.reserve(128 + 80 * bindings.size());
  bool first = true;
  for (const Binding& b : bindings) {
    if (!safe_in_header(b.contact)) continue;  // stored by another node or an older version
    headers += first ? "Contact: <" : ", <";
    first = false;
    headers += b.contact;
    headers += ">;expires=";
    append_decimal(headers, std::max<int64_t>(0, b.expires_at - now));
    if (b.q_milli >= 0) {
      char q[32];
      snprintf(q, sizeof q, ";q=%d.%03d", b.q_milli / 1000, b.q_milli % 1000);
      headers += q;
    }
  }
  if (!first) headers += "\r\n";
  // RFC 3261 §10.3 step 8: the 200 carries a Date.
  headers += date_line(now);
  return headers;
}

void Registrar::answer_ok(const SipRequestPtr& request, const std::string& aor, const std::string& headers,
                          size_t contacts, bool changed) {
  ++counters_.ok;
  // The key=value arguments cost string copies; skip them when the line is not written.
  if (log_enabled(LogLevel::info))
    log_info(changed ? "register.ok" : "register.query").kv("aor", aor).kv("contacts", contacts)
        .kv("src", request->source().to_string()).kv("call_id", request->call_id());
  request->respond_text(SIP_200_OK, headers);
}

void Registrar::answer_error(const SipRequestPtr& request, const std::string& aor, int status, const std::string& reason,
                             const char* event) {
  ++counters_.rejected;
  log_info(event).kv("aor", aor).kv("status", status).kv("reason", reason).kv("src", request->source().to_string())
      .kv("call_id", request->call_id());
  request->respond_text(status, reason.c_str(), {});
}

void Registrar::challenge(const SipRequestPtr& request, bool stale, const std::string& aor, const std::string& why) {
  ++counters_.challenged;
  if (log_enabled(LogLevel::debug))
    log_debug("register.challenge").kv("aor", aor).kv("stale", stale ? "true" : "false").kv("why", why)
      .kv("call_id", request->call_id());
  std::string& headers = headers_;
  headers.clear();
  // One WWW-Authenticate per algorithm (RFC 8760 §2.4), most preferred first.
  auth_.append_challenges(headers, unix_now(), stale, aor.substr(0, aor.find('@')));
  request->respond_text(SIP_401_UNAUTHORIZED, headers);
}

}  // namespace relais
