// trunk_registration.cpp — outbound REGISTER state machine per trunk.
#include "trunk_registration.hpp"

#include <event2/event.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_alloc.h>

#include <algorithm>
#include <memory>

#include "call_engine.hpp"
#include "digest_client.hpp"
#include "log.hpp"
#include "sip_stack.hpp"

namespace relais {

namespace {
constexpr int kRetrySeconds = 30;  // after a failure; operators dislike tighter loops
}

TrunkRegistration::TrunkRegistration(CallEngine& engine, TrunkConfig trunk) : engine_(engine), trunk_(std::move(trunk)) {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  std::string aor = "<sip:" + trunk_.username + "@" + trunk_.domain + ">";
  leg_ = nta_leg_tcreate(engine_.agent(), nullptr, nullptr, SIPTAG_FROM_STR(aor.c_str()), SIPTAG_TO_STR(aor.c_str()),
                         SIPTAG_CALL_ID(sip_call_id_create(home, nullptr)), TAG_END());
  su_home_deinit(home);
  timer_ = evtimer_new(engine_.base(), on_timer, this);
}

TrunkRegistration::~TrunkRegistration() {
  if (timer_) event_free(timer_);
  if (pending_) nta_outgoing_destroy(pending_);
  if (leg_) nta_leg_destroy(leg_);
}

void TrunkRegistration::start() { send("", false); }

void TrunkRegistration::send(const std::string& authorization, bool proxy_auth) {
  if (!leg_) return;
  if (pending_) nta_outgoing_destroy(pending_);
  std::string next_hop = trunk_.proxy, local;
  if (trunk_.tls) {
    // Through relais's own connection to the operator, with a Contact on that connection: an
    // operator that reuses connections (RFC 5626 style, or Kamailio's) reaches us over it.
    if (engine_.stack().route_to_trunk(trunk_.name, next_hop, local) != SipStack::FlowTarget::routed) {
      log_info("trunk.register_waiting").kv("trunk", trunk_.name).kv("reason", "TLS connection not up");
      return;  // TrunkRegistrations::link_up sends it when the connection is up
    }
    contact_ = "<sip:" + trunk_.username + "@" + local + ";transport=tls>";
  } else {
    su_home_t home[1] = {SU_HOME_INIT(home)};
    url_t* proxy = url_make(home, trunk_.proxy.c_str());
    char transport[16] = "udp";
    if (proxy && proxy->url_params) url_param(proxy->url_params, "transport", transport, sizeof transport);
    contact_ = engine_.contact_toward(transport, proxy ? proxy->url_host : nullptr, trunk_.username);
    su_home_deinit(home);
  }
  std::string ruri = "sip:" + trunk_.domain;
  std::string expires = std::to_string(trunk_.expires);
  authenticated_attempt_ = !authorization.empty();
  pending_ = nta_outgoing_tcreate(
      leg_, on_response, reinterpret_cast<nta_outgoing_magic_t*>(this), URL_STRING_MAKE(next_hop.c_str()),
      SIP_METHOD_REGISTER, URL_STRING_MAKE(ruri.c_str()), SIPTAG_CONTACT_STR(contact_.c_str()),
      SIPTAG_EXPIRES_STR(expires.c_str()),
      TAG_IF(authenticated_attempt_ && !proxy_auth, SIPTAG_AUTHORIZATION_STR(authorization.c_str())),
      TAG_IF(authenticated_attempt_ && proxy_auth, SIPTAG_PROXY_AUTHORIZATION_STR(authorization.c_str())), TAG_END());
  if (!pending_) {
    log_error("trunk.register_failed").kv("trunk", trunk_.name).kv("reason", "cannot send REGISTER");
    schedule(kRetrySeconds);
  }
}

int TrunkRegistration::on_response(nta_outgoing_magic_t* magic, nta_outgoing_t*, const sip_t* sip) {
  reinterpret_cast<TrunkRegistration*>(magic)->response(sip);
  return 0;
}

void TrunkRegistration::response(const sip_t* sip) {
  int status = sip && sip->sip_status ? static_cast<int>(sip->sip_status->st_status) : 408;
  if (status < 200) return;
  // `sip` lives in the transaction's memory: destroy it only once we are done reading.
  std::unique_ptr<nta_outgoing_t, decltype(&nta_outgoing_destroy)> done(pending_, nta_outgoing_destroy);
  pending_ = nullptr;
  if ((status == 401 || status == 407) && !authenticated_attempt_) {
    const msg_auth_t* challenge = status == 401 ? sip->sip_www_authenticate : sip->sip_proxy_authenticate;
    DigestAnswer answer = answer_digest_challenge(challenge, "REGISTER", "sip:" + trunk_.domain, trunk_.username,
                                                  trunk_.password, ++nc_);
    if (!answer.header.empty()) return send(answer.header, status == 407);
    log_error("trunk.register_failed").kv("trunk", trunk_.name).kv("status", status).kv("reason", answer.error);
    registered_ = false;
    return schedule(kRetrySeconds);
  }
  if (status >= 300) {
    log_warn("trunk.register_failed").kv("trunk", trunk_.name).kv("status", status)
        .kv("reason", sip && sip->sip_status ? sip->sip_status->st_phrase : "timeout");
    registered_ = false;
    return schedule(kRetrySeconds);
  }
  // The registrar may shorten our expiry: its answer is in our Contact's expires or Expires.
  int granted = trunk_.expires;
  for (const sip_contact_t* m = sip->sip_contact; m; m = m->m_next)
    if (m->m_expires && m->m_url->url_user && trunk_.username == m->m_url->url_user) granted = atoi(m->m_expires);
  if (granted == trunk_.expires && sip->sip_expires) granted = static_cast<int>(sip->sip_expires->ex_delta);
  granted = std::max(granted, 10);
  if (!registered_) log_info("trunk.registered").kv("trunk", trunk_.name).kv("expires", granted).kv("contact", contact_);
  registered_ = true;
  // Refresh well before expiry so one lost refresh can be retried in time.
  schedule(std::max(5, granted * 3 / 4));
}

void TrunkRegistration::schedule(int seconds) {
  timeval tv{seconds, 0};
  evtimer_add(timer_, &tv);
}

void TrunkRegistration::on_timer(int, short, void* arg) {
  auto* self = static_cast<TrunkRegistration*>(arg);
  self->nc_ = 0;
  self->send("", false);
  self->engine_.kick();
}

void TrunkRegistration::link_up() {
  // A new connection: the operator may not know our Contact on it yet. Register now, unless
  // a REGISTER is already in flight.
  if (pending_) return;
  evtimer_del(timer_);
  nc_ = 0;
  send("", false);
}

void TrunkRegistrations::link_up(const std::string& trunk) {
  auto it = active_.find(trunk);
  if (it != active_.end()) it->second->link_up();
}

void TrunkRegistrations::apply(const std::map<std::string, TrunkConfig>& trunks) {
  for (auto it = active_.begin(); it != active_.end();) {
    auto fresh = trunks.find(it->first);
    if (fresh == trunks.end() || !fresh->second.register_ || !(fresh->second == current_[it->first]))
      it = active_.erase(it);
    else
      ++it;
  }
  for (const auto& [name, trunk] : trunks) {
    if (!trunk.register_ || active_.count(name)) continue;
    auto reg = std::make_unique<TrunkRegistration>(engine_, trunk);
    reg->start();
    active_[name] = std::move(reg);
  }
  current_ = trunks;
}

}  // namespace relais
