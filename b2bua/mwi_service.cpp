// mwi_service.cpp — admitting SUBSCRIBEs to message-summary (event package, mailbox, digest,
// limits), the subscription's server dialog, its refreshes and its expiry.
#include "mwi_service.hpp"

#include <event2/event.h>
#include <sofia-sip/nta_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su_tagarg.h>
#include <strings.h>

#include <algorithm>
#include <ctime>

#include "event_loop.hpp"
#include "local_contact.hpp"
#include "log.hpp"
#include "sip_stack.hpp"

namespace relais {

namespace {

constexpr const char* kPackage = "message-summary";
constexpr const char* kBodyType = "application/simple-message-summary";

int64_t unix_now() { return static_cast<int64_t>(time(nullptr)); }

const char* user_of(const sip_addr_t* a) { return a && a->a_url->url_user ? a->a_url->url_user : ""; }

// Event package names are tokens; phones differ in case, and matching loosely costs nothing.
bool is_message_summary(const sip_t* sip) {
  return sip->sip_event && sip->sip_event->o_type && strcasecmp(sip->sip_event->o_type, kPackage) == 0;
}

// RFC 6665 §4.2.1.1: a subscriber that lists the bodies it accepts must list ours (or a
// wildcard), else 406. An Accept header with no value accepts nothing.
bool accepts_summary(const sip_t* sip) {
  if (!sip->sip_accept) return true;
  for (const sip_accept_t* a = sip->sip_accept; a; a = a->ac_next) {
    if (!a->ac_type) continue;
    if (strcasecmp(a->ac_type, kBodyType) == 0 || strcmp(a->ac_type, "*/*") == 0 ||
        strcasecmp(a->ac_type, "application/*") == 0)
      return true;
  }
  return false;
}

// The duration granted for a SUBSCRIBE: the default when it names none, at most the maximum,
// 0 for an unsubscribe or a fetch (RFC 6665 §4.1.2.3, §4.3), -1 when too brief (423).
int granted_expires(const sip_t* sip, const MwiSettings& s) {
  if (!sip->sip_expires) return s.default_expires;
  unsigned long requested = sip->sip_expires->ex_delta;
  if (requested == 0) return 0;
  if (requested < static_cast<unsigned long>(s.min_expires)) return -1;
  return static_cast<int>(std::min<unsigned long>(requested, static_cast<unsigned long>(s.max_expires)));
}

}  // namespace

MwiService::MwiService(const Config& cfg, EventLoop& loop, SipStack& stack, LocationStore& store, Authenticator& auth,
                       MwiSettings settings)
    : cfg_(cfg), loop_(loop), stack_(stack), store_(store), auth_(auth), settings_(settings) {
  reaper_ = evtimer_new(loop_.base(), on_reap, this);
}

MwiService::~MwiService() {
  // Subscribers learn the subscription is over (RFC 6665 §4.2.2). "probation" with a
  // retry-after, not "deactivated": a restart takes seconds, and an immediate retry would
  // reach nobody and leave the phone waiting for its own, often much longer, back-off.
  for (auto& [id, sub] : subs_) {
    if (sub->dead || sub->final_sent || !sub->leg) continue;
    if (sub->notify) {
      nta_outgoing_destroy(sub->notify);
      sub->notify = nullptr;
    }
    sub->terminated = true;
    sub->reason = "probation;retry-after=30";
    send_notify(*sub, false);
    // No callback from here on: nta's default handler frees the transaction on its answer,
    // or the agent does when it goes.
    if (sub->notify) nta_outgoing_bind(sub->notify, nullptr, nullptr);
    sub->notify = nullptr;
  }
  subs_.clear();
  unsolicited_.clear();
  if (reaper_) event_free(reaper_);
  loop_.kick();
}

MwiService::Subscription::~Subscription() {
  if (timer) event_free(timer);
  if (notify) nta_outgoing_destroy(notify);
  if (leg) nta_leg_destroy(leg);
}

void MwiService::set_config(const Config& cfg) {
  cfg_ = cfg;
  settings_ = cfg.mwi;
}

void MwiService::set_persistence(Load load, Save save) {
  load_ = std::move(load);
  save_ = std::move(save);
}

bool MwiService::ours(const char* host) const {
  if (!host) return false;
  if (strcasecmp(host, cfg_.domain.c_str()) == 0 || stack_.is_local_host(host)) return true;
  for (const std::string& alias : cfg_.aliases)
    if (strcasecmp(host, alias.c_str()) == 0) return true;
  return false;
}

// RFC 3842 §3: the Request-URI names the account. A Request-URI without a user (the
// server's address) falls back on the To URI, which phones set to the same account.
std::string MwiService::mailbox_of(const sip_t* sip) const {
  const url_t* ruri = sip->sip_request->rq_url;
  const url_t* to = sip->sip_to ? sip->sip_to->a_url : nullptr;
  const url_t* account = ruri->url_user && *ruri->url_user ? ruri : to;
  if (!account || !account->url_user || !ours(account->url_host)) return {};
  if (account->url_type != url_sip && account->url_type != url_sips) return {};
  return valid_mailbox(account->url_user) ? account->url_user : "";
}

void MwiService::reject(const SipRequestPtr& request, int status, const char* phrase, const char* why,
                        tag_type_t tag, tag_value_t value, ...) {
  ++counters_.rejected;
  if (reject_log_.allow())
    log_info("mwi.subscribe_rejected").kv("status", status).kv("reason", why ? why : phrase)
        .kv("ruri_user", request->sip()->sip_request->rq_url->url_user).kv("from", user_of(request->sip()->sip_from))
        .kv("call_id", request->call_id()).kv("src", request->source().to_string());
  ta_list ta;
  ta_start(ta, tag, value);
  request->respond(status, phrase, ta_tags(ta));
  ta_end(ta);
}

void MwiService::handle_subscribe(const SipRequestPtr& request) {
  const sip_t* sip = request->sip();
  if (sip->sip_to && sip->sip_to->a_tag)
    // A refresh of a dialog we do not have (expired, or relais restarted): RFC 6665
    // §4.1.2.2 has the subscriber start a new subscription on 481.
    return reject(request, SIP_481_NO_TRANSACTION, "unknown subscription dialog", TAG_END());
  if (!is_message_summary(sip))
    return reject(request, SIP_489_BAD_EVENT, "event package not supported", SIPTAG_ALLOW_EVENTS_STR(kPackage),
                  TAG_END());
  if (!accepts_summary(sip))
    return reject(request, SIP_406_NOT_ACCEPTABLE, "simple-message-summary not accepted", SIPTAG_ACCEPT_STR(kBodyType),
                  TAG_END());
  // RFC 6665 §4.1.2.1: the Contact is where our NOTIFYs go.
  if (!sip->sip_contact || !sip->sip_contact->m_url->url_host)
    return reject(request, 400, "Missing Contact", nullptr, TAG_END());
  std::string mailbox = mailbox_of(sip);
  if (mailbox.empty()) return reject(request, 404, "Mailbox Not Found", "not a local mailbox", TAG_END());
  int expires = granted_expires(sip, settings_);
  if (expires < 0) {
    std::string min = std::to_string(settings_.min_expires);
    return reject(request, SIP_423_INTERVAL_TOO_BRIEF, nullptr, SIPTAG_MIN_EXPIRES_STR(min.c_str()), TAG_END());
  }
  if (cfg_.users.count(mailbox)) return after_lookup(request, mailbox, expires);
  // Users provisioned with --add-user live in the store only.
  std::weak_ptr<int> alive = life_;
  store_.find_user(mailbox, cfg_.auth.realm,
                   [this, alive, request, mailbox, expires](const std::string& error, std::optional<UserRecord> user) {
                     if (alive.expired()) return;
                     if (!error.empty())
                       return reject(request, 503, "Store Unavailable", error.c_str(), SIPTAG_RETRY_AFTER_STR("5"), TAG_END());
                     if (!user) return reject(request, 404, "Mailbox Not Found", "no such user", TAG_END());
                     after_lookup(request, mailbox, expires);
                   });
  loop_.kick();
}

void MwiService::after_lookup(const SipRequestPtr& request, const std::string& mailbox, int expires) {
  const sip_t* sip = request->sip();
  if (!settings_.authenticate) {
    // Without digest, the From user stands for the subscriber (trusted networks only).
    const char* from = sip->sip_from && ours(sip->sip_from->a_url->url_host) ? user_of(sip->sip_from) : "";
    return after_auth(request, mailbox, expires, from);
  }
  std::weak_ptr<int> alive = life_;
  // RFC 3261 §22.3: like INVITE, a request to relais acting for its users is challenged with 407.
  auth_.verify(sip, unix_now(), true, [this, alive, request, mailbox, expires](const Authenticator::Outcome& outcome) {
    if (alive.expired()) return;
    switch (outcome.verdict) {
      case Authenticator::Verdict::ok:
        return after_auth(request, mailbox, expires, outcome.user);
      case Authenticator::Verdict::challenge:
      case Authenticator::Verdict::stale:
        return challenge(request, outcome.verdict == Authenticator::Verdict::stale, outcome.reason);
      case Authenticator::Verdict::bad_request:
        return reject(request, 400, outcome.reason.c_str(), nullptr, TAG_END());
      case Authenticator::Verdict::forbidden:
        auth_.report_failure(request->source().ip, outcome.user, outcome.reason);
        log_warn("mwi.auth_failed").kv("user", outcome.user).kv("reason", outcome.reason)
            .kv("src", request->source().to_string()).kv("call_id", request->call_id());
        return reject(request, SIP_403_FORBIDDEN, outcome.reason.c_str(), TAG_END());
      case Authenticator::Verdict::unavailable:
        return reject(request, 503, "Store Unavailable", outcome.reason.c_str(), SIPTAG_RETRY_AFTER_STR("5"), TAG_END());
    }
  });
  loop_.kick();
}

void MwiService::challenge(const SipRequestPtr& request, bool stale, const std::string& why) {
  ++counters_.challenged;
  std::string user = user_of(request->sip()->sip_from);
  log_debug("mwi.challenge").kv("user", user).kv("why", why).kv("call_id", request->call_id());
  std::vector<std::string> headers = auth_.challenges(unix_now(), stale, user);
  request->respond(SIP_407_PROXY_AUTH_REQUIRED, SIPTAG_PROXY_AUTHENTICATE_STR(headers.empty() ? nullptr : headers[0].c_str()),
                   TAG_IF(headers.size() > 1, SIPTAG_PROXY_AUTHENTICATE_STR(headers.size() > 1 ? headers[1].c_str() : nullptr)),
                   TAG_END());
}

void MwiService::after_auth(const SipRequestPtr& request, const std::string& mailbox, int expires,
                            const std::string& subscriber) {
  if (subscriber != mailbox && !settings_.any_mailbox)
    return reject(request, 403, "Not Your Mailbox", ("subscriber " + subscriber + " asked for " + mailbox).c_str(), TAG_END());
  accept(request, mailbox, expires);
  loop_.kick();
}

void MwiService::accept(const SipRequestPtr& request, const std::string& mailbox, int expires) {
  auto listed = by_mailbox_.find(mailbox);
  size_t of_mailbox = listed == by_mailbox_.end() ? 0 : listed->second.size();
  // Every subscription holds a dialog leg and a timer: bounded, so a flood of SUBSCRIBEs
  // (even authenticated ones) cannot grow memory without limit.
  if (counters_.active >= settings_.max_subscriptions || of_mailbox >= settings_.max_per_mailbox)
    return reject(request, 503, "Too Many Subscriptions",
                  counters_.active >= settings_.max_subscriptions ? "subscription limit" : "mailbox subscription limit",
                  SIPTAG_RETRY_AFTER_STR("60"), TAG_END());
  const sip_t* sip = request->sip();
  if (!request->irq()) return reject(request, 500, "No Transaction", nullptr, TAG_END());
  auto sub = std::make_unique<Subscription>();
  sub->service = this;
  sub->id = next_id_++;
  sub->mailbox = mailbox;
  sub->subscriber = user_of(sip->sip_from);
  sub->call_id = request->call_id();
  sub->event_id = sip->sip_event->o_id ? sip->sip_event->o_id : "";
  sub->contact = local_contact(stack_.listening(), request->source().transport, request->source().ip, "relais");
  // A server dialog: our side is the request's To, the subscriber its From (RFC 6665 §4.2.1).
  sub->leg = nta_leg_tcreate(stack_.agent(), on_leg_request, reinterpret_cast<nta_leg_magic_t*>(sub.get()),
                             SIPTAG_CALL_ID(sip->sip_call_id), SIPTAG_FROM(sip->sip_to), SIPTAG_TO(sip->sip_from),
                             NTATAG_REMOTE_CSEQ(sip->sip_cseq ? sip->sip_cseq->cs_seq : 0), TAG_END());
  if (!sub->leg) return reject(request, 500, "Cannot Create Dialog", nullptr, TAG_END());
  nta_leg_tag(sub->leg, nullptr);
  nta_incoming_tag(request->irq(), nta_leg_get_tag(sub->leg));
  nta_leg_server_route(sub->leg, sip->sip_record_route, sip->sip_contact);
  std::string granted = std::to_string(expires);
  request->respond(SIP_200_OK, SIPTAG_EXPIRES_STR(granted.c_str()), SIPTAG_CONTACT_STR(sub->contact.c_str()), TAG_END());

  ++counters_.subscribed;
  ++counters_.active;
  by_mailbox_[mailbox].insert(sub->id);
  if (expires == 0) {
    // A fetch: one NOTIFY with the state, and the subscription is over (RFC 6665 §4.3).
    sub->terminated = true;
    sub->reason = "timeout";
  } else {
    sub->expires_at = unix_now() + expires;
    arm_expiry(*sub);
  }
  log_info("mwi.subscribe").kv("mailbox", mailbox).kv("subscriber", sub->subscriber).kv("expires", expires)
      .kv("call_id", sub->call_id).kv("src", request->source().to_string());
  Subscription& s = *sub;
  subs_[sub->id] = std::move(sub);
  send_notify(s);
}

int MwiService::on_leg_request(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq, const sip_t* sip) {
  auto* sub = reinterpret_cast<Subscription*>(magic);
  return sub->service->in_dialog(*sub, irq, sip);
}

int MwiService::in_dialog(Subscription& sub, nta_incoming_t* irq, const sip_t* sip) {
  if (sip->sip_request->rq_method == sip_method_ack) return 200;  // nothing to answer
  // Answered here, inside nta's callback: returning the final status lets nta free the
  // transaction.
  SipRequest request(irq, sip);
  if (sip->sip_request->rq_method != sip_method_subscribe) {
    request.respond(SIP_405_METHOD_NOT_ALLOWED, SIPTAG_ALLOW_STR("SUBSCRIBE"), TAG_END());
    return request.final_status();
  }
  if (sub.dead || sub.terminated) {
    request.respond(SIP_481_NO_TRANSACTION);
    return request.final_status();
  }
  if (!is_message_summary(sip)) {
    request.respond(SIP_489_BAD_EVENT, SIPTAG_ALLOW_EVENTS_STR(kPackage), TAG_END());
    return request.final_status();
  }
  int expires = granted_expires(sip, settings_);
  if (expires < 0) {
    std::string min = std::to_string(settings_.min_expires);
    request.respond(SIP_423_INTERVAL_TOO_BRIEF, SIPTAG_MIN_EXPIRES_STR(min.c_str()), TAG_END());
    return request.final_status();
  }
  // SUBSCRIBE is a target refresh request (RFC 6665 §4.1.2.2): a new Contact moves our NOTIFYs.
  if (sip->sip_contact) nta_leg_server_route(sub.leg, nullptr, sip->sip_contact);
  std::string granted = std::to_string(expires);
  request.respond(SIP_200_OK, SIPTAG_EXPIRES_STR(granted.c_str()), SIPTAG_CONTACT_STR(sub.contact.c_str()), TAG_END());
  ++counters_.refreshed;
  if (expires == 0) {
    sub.terminated = true;
    sub.reason = "timeout";
    log_info("mwi.unsubscribe").kv("mailbox", sub.mailbox).kv("call_id", sub.call_id);
  } else {
    sub.expires_at = unix_now() + expires;
    arm_expiry(sub);
    log_info("mwi.refresh").kv("mailbox", sub.mailbox).kv("expires", expires).kv("call_id", sub.call_id);
  }
  send_notify(sub);
  return request.final_status();
}

void MwiService::arm_expiry(Subscription& sub) {
  if (!sub.timer) sub.timer = evtimer_new(loop_.base(), on_expiry, &sub);
  if (!sub.timer) return;
  timeval tv{static_cast<time_t>(std::max<int64_t>(sub.expires_at - unix_now(), 0)), 0};
  evtimer_add(sub.timer, &tv);
}

void MwiService::on_expiry(int, short, void* arg) {
  auto& sub = *static_cast<Subscription*>(arg);
  MwiService& self = *sub.service;
  if (sub.dead || sub.terminated) return;
  ++self.counters_.expired;
  log_info("mwi.expired").kv("mailbox", sub.mailbox).kv("call_id", sub.call_id);
  // RFC 6665 §4.2.2: the notifier ends an expired subscription with a final NOTIFY.
  sub.terminated = true;
  sub.reason = "timeout";
  self.send_notify(sub);
  self.loop_.kick();
}

void MwiService::drop(Subscription& sub, const char* why) {
  if (sub.dead) return;
  sub.dead = true;
  --counters_.active;
  auto listed = by_mailbox_.find(sub.mailbox);
  if (listed != by_mailbox_.end()) {
    listed->second.erase(sub.id);
    if (listed->second.empty()) by_mailbox_.erase(listed);
  }
  log_info("mwi.ended").kv("mailbox", sub.mailbox).kv("reason", why).kv("call_id", sub.call_id);
  doomed_.push_back(sub.id);
  timeval now{0, 0};
  evtimer_add(reaper_, &now);
}

void MwiService::on_reap(int, short, void* arg) {
  auto* self = static_cast<MwiService*>(arg);
  std::vector<uint64_t> doomed = std::move(self->doomed_);
  self->doomed_.clear();
  for (uint64_t id : doomed) self->subs_.erase(id);
  self->loop_.kick();
}

}  // namespace relais
