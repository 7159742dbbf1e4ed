// b2b_dial.cpp — the legs relais dials: parallel forking within a stage, serial stages, the
// no-answer timer, early media relayed to the caller, first 2xx wins and the rest are
// cancelled (or, if they answered too late, ACKed and hung up).
#include <event2/event.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_alloc.h>

#include <algorithm>
#include <optional>

#include "b2b_call.hpp"
#include "call_engine.hpp"
#include "call_memory.hpp"
#include "digest_client.hpp"
#include "log.hpp"
#include "sip_stack.hpp"

namespace relais {

namespace {

// Which failure the caller should hear when several forks fail: a 6xx or busy beats a
// generic error (RFC 3261 §16.7 picks similarly).
int failure_rank(int code) {
  if (code >= 600) return 4;
  if (code == 486) return 3;
  if (code == 408 || code == 480 || code == 487) return 1;
  return 2;
}

}  // namespace

bool B2bCall::dial(DialPlan plan, DialOptions options, std::function<void(const DialResult&)> done) {
  // A locally answered caller (menu, voicemail) can still be bridged to a callee.
  if (dialing_ || (answered_ && !local_answer_) || bridged_ || finished_ || plan.empty()) return false;
  {
    // Copied into the call's memory: the plan and options were built among short-lived objects.
    CallMemory memory;
    plan_ = plan;
    options_ = options;
    dial_done_ = std::move(done);
    if (!stage_timer_) stage_timer_ = evtimer_new(engine_.base(), on_stage_timeout, this);
    size_t widest = 0;
    for (const auto& stage : plan_) widest = std::max(widest, stage.size());
    b_legs_.reserve(widest);
  }
  dialing_ = true;
  stage_ = 0;
  last_failure_code_ = 0;
  last_failure_reason_.clear();
  std::string offer = payload_of(invite_->sip());
  if (!engine_.media() || media_offered_ || offer.empty()) {
    start_stage();
    return true;
  }
  // Anchor the media first: every callee gets the relay's address, never the caller's.
  media_request("offer", caller_tag(), "", offer, [](B2bCall& c, const std::string& error, const std::string& sdp) {
    if (!c.dialing_) return;
    if (!error.empty()) {
      log_error("call.media_failed").kv("call", c.id_).kv("call_id", c.call_id_).kv("error", error);
      return c.fail_dial(503, "Media Relay Unavailable");
    }
    assign_call_string(c.b_offer_sdp_, sdp);
    c.media_offered_ = true;
    c.start_stage();
  });
  return true;
}

void B2bCall::start_stage() {
  stage_timed_out_ = false;
  bool any = false;
  for (const std::string& target : plan_[stage_]) any = start_leg(target) || any;
  if (!any) return stage_failed();
  timeval tv{options_.timeout_seconds, 0};
  evtimer_add(stage_timer_, &tv);
}

bool B2bCall::start_leg(const std::string& target) {
  std::optional<CallMemory> memory(std::in_place);  // the leg, not its INVITE transaction
  auto leg = std::make_unique<BLeg>();
  leg->call = this;
  leg->target = target;
  std::string from_host = engine_.config().domain;
  std::string trunk_route, trunk_local;  // a TLS trunk's connection (SipStack::route_to_trunk)
  if (target.rfind("trunk:", 0) == 0) {
    // trunk:NAME/number → sip:number@trunk-domain, sent through the trunk's proxy.
    size_t slash = target.find('/');
    std::string name = target.substr(6, slash == std::string::npos ? std::string::npos : slash - 6);
    std::string number = slash == std::string::npos ? "" : target.substr(slash + 1);
    leg->trunk = engine_.trunk(name);
    if (!leg->trunk || number.empty()) {
      last_failure_code_ = 404;
      last_failure_reason_ = "Unknown Trunk";
      log_warn("call.bad_target").kv("call", id_).kv("target", target);
      return false;
    }
    // Over TLS the operator is reached through relais's own connection to it; while that is
    // down the leg fails at once rather than through Sofia, which cannot speak to it.
    SipStack::FlowTarget link = engine_.stack().route_to_trunk(name, trunk_route, trunk_local);
    if (link == SipStack::FlowTarget::gone) {
      last_failure_code_ = 503;
      last_failure_reason_ = "Trunk Unreachable";
      log_warn("call.trunk_link_down").kv("call", id_).kv("call_id", call_id_).kv("trunk", name);
      return false;
    }
    if (!engine_.claim_trunk(id_, name)) {
      last_failure_code_ = 503;
      last_failure_reason_ = "Trunk Capacity Reached";
      return false;
    }
    leg->request_uri = "sip:" + number + "@" + leg->trunk->domain;
    leg->route = trunk_route.empty() ? leg->trunk->proxy : trunk_route;
    from_host = leg->trunk->domain;
  } else {
    leg->request_uri = target;
  }
  // A contact that registered over a TCP/TLS connection is only reachable through it: once the
  // phone's connection has closed, the leg fails at once instead of dialing a dead socket.
  std::string flow_route;
  if (engine_.stack().route_to_flow(leg->request_uri, flow_route) == SipStack::FlowTarget::gone) {
    last_failure_code_ = 480;
    last_failure_reason_ = "Temporarily Unavailable";
    log_info("call.flow_gone").kv("call", id_).kv("call_id", call_id_).kv("target", leg->request_uri);
    return false;
  }

  su_home_t home[1] = {SU_HOME_INIT(home)};
  url_t* hop = url_make(home, (leg->route.empty() ? leg->request_uri : leg->route).c_str());
  if (!hop || (hop->url_type != url_sip && hop->url_type != url_sips) || !hop->url_host) {
    su_home_deinit(home);
    last_failure_code_ = 404;
    last_failure_reason_ = "Bad Target";
    log_warn("call.bad_target").kv("call", id_).kv("target", target);
    return false;
  }
  char transport[16] = "udp";
  if (hop->url_params) url_param(hop->url_params, "transport", transport, sizeof transport);
  leg->contact = trunk_local.empty() ? engine_.contact_toward(transport, hop->url_host)
                                     : "<sip:relais@" + trunk_local + ";transport=tls>";
  if (!flow_route.empty()) leg->route = flow_route;  // the Contact above follows the phone's transport

  // Topology hiding: a new Call-ID and From tag, the caller's identity under our domain, no
  // Via/Record-Route/Contact of leg A.
  // (From the copies kept at accept time: a locally answered call released its INVITE.)
  std::string user = options_.caller_id.empty() ? (caller_user_.empty() ? "anonymous" : caller_user_) : options_.caller_id;
  const std::string& display = caller_display_;
  std::string from = (display.empty() ? "" : display + " ") + "<sip:" + user + "@" + from_host + ">";
  std::string to = "<" + leg->request_uri + ">";
  leg->leg = nta_leg_tcreate(engine_.agent(), on_leg_request, reinterpret_cast<nta_leg_magic_t*>(this),
                             SIPTAG_FROM_STR(from.c_str()), SIPTAG_TO_STR(to.c_str()),
                             SIPTAG_CALL_ID(sip_call_id_create(home, nullptr)), TAG_END());
  su_home_deinit(home);
  if (!leg->leg) return false;
  nta_leg_tag(leg->leg, nullptr);
  memory.reset();
  if (!send_invite(*leg, "", false)) {
    nta_leg_destroy(leg->leg);
    last_failure_code_ = 503;
    last_failure_reason_ = "Cannot Reach Target";
    return false;
  }
  log_info("call.dial").kv("call", id_).kv("call_id", call_id_).kv("target", target);
  b_legs_.push_back(std::move(leg));
  return true;
}

bool B2bCall::send_invite(BLeg& leg, const std::string& authorization, bool proxy_auth) {
  // After a local answer the caller's INVITE is gone (released on its ACK); the B offer then
  // comes from the relay and no caller header is copied.
  static const sip_t no_invite{};
  const sip_t* sip = invite_->sip() ? invite_->sip() : &no_invite;
  std::string extra;
  for (const auto& [name, value] : options_.headers) extra += name + ": " + value + "\r\n";
  bool auth = !authorization.empty();
  leg.invite = nta_outgoing_tcreate(
      leg.leg, on_b_response, reinterpret_cast<nta_outgoing_magic_t*>(&leg),
      leg.route.empty() ? nullptr : URL_STRING_MAKE(leg.route.c_str()), SIP_METHOD_INVITE,
      URL_STRING_MAKE(leg.request_uri.c_str()), SIPTAG_CONTACT_STR(leg.contact.c_str()),
      TAG_IF(!media_offered_, SIPTAG_CONTENT_TYPE(sip->sip_content_type)),
      TAG_IF(!media_offered_, SIPTAG_PAYLOAD(sip->sip_payload)),
      TAG_IF(media_offered_, SIPTAG_CONTENT_TYPE_STR("application/sdp")),
      TAG_IF(media_offered_, SIPTAG_PAYLOAD_STR(b_offer_sdp_.c_str())),
      // Session timers (RFC 4028) are negotiated end to end: relais relays the refreshing
      // re-INVITE/UPDATE, so it passes the negotiation headers through.
      SIPTAG_SESSION_EXPIRES(sip->sip_session_expires), SIPTAG_MIN_SE(sip->sip_min_se),
      SIPTAG_SUPPORTED(sip->sip_supported),
      TAG_IF(auth && !proxy_auth, SIPTAG_AUTHORIZATION_STR(authorization.c_str())),
      TAG_IF(auth && proxy_auth, SIPTAG_PROXY_AUTHORIZATION_STR(authorization.c_str())),
      TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())), TAG_END());
  return leg.invite != nullptr;
}

int B2bCall::on_b_response(nta_outgoing_magic_t* magic, nta_outgoing_t*, const sip_t* sip) {
  auto* leg = reinterpret_cast<BLeg*>(magic);
  leg->call->b_response(*leg, sip);
  return 0;
}

void B2bCall::b_response(BLeg& leg, const sip_t* sip) {
  int status = sip && sip->sip_status ? static_cast<int>(sip->sip_status->st_status) : 408;
  leg.status = status;
  if (status < 200) {
    // 180/183 (with early media SDP) go to the caller; 100 is hop-by-hop.
    if (status > 100 && !answered_ && !finished_) relay_response_to_caller(leg, sip);
    return;
  }
  if (status < 300) return b_answered(leg, sip);
  if ((status == 401 || status == 407) && leg.trunk && !leg.auth_tried && !leg.cancelled && !finished_) {
    // The operator challenges our INVITE: answer once with the trunk's credentials.
    leg.auth_tried = true;
    DigestAnswer answer = answer_digest_challenge(status == 401 ? sip->sip_www_authenticate : sip->sip_proxy_authenticate,
                                                  "INVITE", leg.request_uri, leg.trunk->username, leg.trunk->password, 1);
    nta_outgoing_t* old = leg.invite;
    if (!answer.header.empty() && send_invite(leg, answer.header, status == 407)) {
      nta_outgoing_destroy(old);
      return;
    }
    leg.invite = old;
    log_warn("call.trunk_auth_failed").kv("call", id_).kv("trunk", leg.trunk->name).kv("reason", answer.error);
  }
  if (status == 401 || status == 407) {
    // A challenge is addressed to relais, not to the caller (who could not answer it and
    // would get a 407 without Proxy-Authenticate): report it as our failure.
    return b_failed(leg, 503, "Upstream Authentication Failed");
  }
  b_failed(leg, status, sip && sip->sip_status ? sip->sip_status->st_phrase : "Request Timeout");
}

void B2bCall::b_answered(BLeg& leg, const sip_t* sip) {
  if (leg.answered) {
    send_ack(leg.leg);  // a retransmitted 2xx: our ACK was lost
    return;
  }
  {
    CallMemory memory;  // into the leg's memory, which lives as long as the call
    nta_leg_rtag(leg.leg, sip->sip_to ? sip->sip_to->a_tag : nullptr);
    nta_leg_client_route(leg.leg, sip->sip_record_route, sip->sip_contact);
    leg.remote_tag = sip->sip_to && sip->sip_to->a_tag ? sip->sip_to->a_tag : "";
  }
  send_ack(leg.leg);
  leg.answered = true;
  if (bridged_ || (answered_ && !local_answer_) || finished_ || caller_gone_) {
    // Another fork won, or the caller left while this 2xx was on its way.
    send_bye(leg.leg);
    return;
  }
  bool was_local = local_answer_;
  answered_ = true;
  bridged_ = &leg;
  evtimer_del(stage_timer_);
  cancel_other_legs(&leg);
  // To a locally answered caller this only re-points the relay at the callee: the caller's
  // INVITE was answered by us already.
  relay_response_to_caller(leg, sip);
  if (was_local)
    notify(Event::bridged);
  else
    engine_.call_answered();
  log_info("call.answered").kv("call", id_).kv("call_id", call_id_).kv("target", leg.target);
  // The INVITE client transaction holds our request and this 2xx (~4 KiB) for the whole call;
  // once ACKed it has nothing more to do. nta does not touch it after this callback returns,
  // and `sip` (its response) is not used past this point.
  nta_outgoing_destroy(leg.invite);
  leg.invite = nullptr;
}

void B2bCall::b_failed(BLeg& leg, int status, const char* phrase) {
  if (leg.failed) return;
  leg.failed = true;
  if (!leg.cancelled || stage_timed_out_ || !last_failure_code_) {
    int code = stage_timed_out_ && leg.cancelled ? 408 : status;
    const char* reason = stage_timed_out_ && leg.cancelled ? "No Answer" : phrase;
    if (!last_failure_code_ || failure_rank(code) >= failure_rank(last_failure_code_)) {
      last_failure_code_ = code;
      last_failure_reason_ = reason ? reason : "";
    }
  }
  if (bridged_ || (answered_ && !local_answer_) || finished_) return;
  for (auto& b : b_legs_)
    if (!b->failed && !b->answered) return;  // others still ringing
  stage_failed();
}

void B2bCall::stage_failed() {
  evtimer_del(stage_timer_);
  if (caller_gone_ || finished_) return;
  if (++stage_ < plan_.size()) {
    destroy_b_legs();
    return start_stage();
  }
  DialResult r;
  r.code = last_failure_code_ ? last_failure_code_ : 480;
  r.reason = last_failure_reason_.empty() ? "Temporarily Unavailable" : last_failure_reason_;
  if (!b_legs_.empty()) r.target = b_legs_.back()->target;
  log_info("call.dial_failed").kv("call", id_).kv("call_id", call_id_).kv("status", r.code).kv("reason", r.reason);
  finish_dial(r);
}

void B2bCall::on_stage_timeout(int, short, void* arg) {
  auto* self = static_cast<B2bCall*>(arg);
  self->stage_timed_out_ = true;
  log_info("call.no_answer").kv("call", self->id_).kv("call_id", self->call_id_);
  self->cancel_other_legs(nullptr);
  // Legs that never answered anything cannot be cancelled (RFC 3261 §9.1): count them as
  // failed now instead of waiting for their transaction timeout.
  for (auto& b : self->b_legs_)
    if (!b->failed && !b->answered && b->status < 100) self->b_failed(*b, 408, "No Answer");
}

void B2bCall::cancel_other_legs(const BLeg* keep) {
  for (auto& b : b_legs_) {
    if (b.get() == keep || b->answered || b->failed || b->cancelled || !b->invite) continue;
    b->cancelled = true;
    nta_outgoing_cancel(b->invite);
  }
}

B2bCall::BLeg* B2bCall::bridged_leg() const { return bridged_; }

void B2bCall::destroy_b_legs() {
  for (auto& b : b_legs_) {
    if (b->invite) {
      if (!b->answered && !b->failed && !b->cancelled) nta_outgoing_cancel(b->invite);
      nta_outgoing_destroy(b->invite);
    }
    if (b->leg) nta_leg_destroy(b->leg);
  }
  b_legs_.clear();
}

}  // namespace relais
