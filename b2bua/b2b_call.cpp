// b2b_call.cpp — the caller's side of a B2BUA call and everything after the answer: ACK and
// CANCEL from the caller, in-dialog requests relayed between the legs, BYE either way.
#include "b2b_call.hpp"

#include <event2/event.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_alloc.h>

#include "call_engine.hpp"
#include "call_memory.hpp"
#include "log.hpp"

namespace relais {

namespace {

int ignore_response(nta_outgoing_magic_t*, nta_outgoing_t*, const sip_t*) { return 0; }

// Completes `request` inside its nta callback the way SipStack does: nta destroys the
// transaction if we return the final status, otherwise the holder does later.
int complete_in_callback(SipRequestPtr& request) {
  if (request.use_count() > 1) {
    request->leave_callback();
    return 0;
  }
  if (!request->answered()) request->respond(500, "Request Not Handled");
  return request->final_status();
}

}  // namespace

B2bCall::B2bCall(CallEngine& engine, uint64_t id, SipRequestPtr invite)
    : engine_(engine), id_(id), invite_(std::move(invite)), call_id_(invite_->call_id()) {}

B2bCall::~B2bCall() {
  media_delete();
  if (stage_timer_) event_free(stage_timer_);
  destroy_b_legs();
  for (auto& relay : relays_)
    if (relay->outgoing) nta_outgoing_destroy(relay->outgoing);
  relays_.clear();
  if (invite_ && !invite_->answered()) invite_->respond(500, "Call Ended");
  invite_.reset();
  if (a_leg_) nta_leg_destroy(a_leg_);
}

bool B2bCall::accept_leg() {
  const sip_t* sip = invite_->sip();
  {
    CallMemory memory;  // the dialog leg and these copies live as long as the call
    // A server dialog: our local party is the request's To, the remote party its From.
    a_leg_ = nta_leg_tcreate(engine_.agent(), on_leg_request, reinterpret_cast<nta_leg_magic_t*>(this),
                             SIPTAG_CALL_ID(sip->sip_call_id), SIPTAG_FROM(sip->sip_to), SIPTAG_TO(sip->sip_from),
                             TAG_END());
    if (!a_leg_) return false;
    nta_leg_tag(a_leg_, nullptr);
    nta_leg_server_route(a_leg_, sip->sip_record_route, sip->sip_contact);
    caller_tag_ = sip->sip_from && sip->sip_from->a_tag ? sip->sip_from->a_tag : "";
    const url_t* from = sip->sip_from ? sip->sip_from->a_url : nullptr;
    caller_user_ = from && from->url_user ? from->url_user : "";
    caller_display_ = sip->sip_from && sip->sip_from->a_display ? sip->sip_from->a_display : "";
    caller_facing_host_ = sip->sip_request->rq_url->url_host ? sip->sip_request->rq_url->url_host : "";
  }
  // Into the transaction's memory, which goes a few seconds after the ACK.
  nta_incoming_tag(invite_->irq(), nta_leg_get_tag(a_leg_));
  nta_incoming_bind(invite_->irq(), on_a_invite_event, reinterpret_cast<nta_incoming_magic_t*>(this));
  return true;
}

void B2bCall::release_invite() {
  if (!invite_ || !invite_->msg() || !invite_->answered()) return;
  su_home_t home[1] = {SU_HOME_INIT(home)};
  size_t len = 0;
  if (char* text = msg_as_string(home, invite_->msg(), nullptr, 0, &len)) {
    CallMemory memory;
    invite_text_.assign(text, len);
  }
  su_home_deinit(home);
  invite_->release_transaction();
}

std::string B2bCall::our_contact() const {
  return engine_.contact_toward(invite_->source().transport, caller_facing_host_.c_str());
}

void B2bCall::ring() {
  if (answered_ || finished_) return;
  std::string contact = our_contact();
  invite_->respond(SIP_180_RINGING, SIPTAG_CONTACT_STR(contact.c_str()), TAG_END());
}

void B2bCall::reject(int code, const std::string& reason) {
  if (answered_ || finished_) return;
  cancel_other_legs(nullptr);
  finished_ = true;
  last_failure_code_ = code;
  last_failure_reason_ = reason;
  invite_->respond(code, reason.empty() ? nullptr : reason.c_str());
  log_info("call.rejected").kv("call", id_).kv("call_id", call_id_).kv("status", code).kv("reason", reason);
}

void B2bCall::redirect(const std::string& uri) {
  if (answered_ || finished_) return;
  cancel_other_legs(nullptr);
  finished_ = true;
  std::string contact = "<" + uri + ">";
  invite_->respond(SIP_302_MOVED_TEMPORARILY, SIPTAG_CONTACT_STR(contact.c_str()), TAG_END());
}

void B2bCall::hangup() {
  if (answered_ && !finished_) return end_bridge("script", true, true);
  reject(480, "Temporarily Unavailable");
}

int B2bCall::on_a_invite_event(nta_incoming_magic_t* magic, nta_incoming_t*, const sip_t* sip) {
  auto* self = reinterpret_cast<B2bCall*>(magic);
  if (!sip) {
    // Our 2xx was never ACKed (RFC 3261 §13.3.1.4): the caller is gone.
    if (self->answered_ && !self->finished_) self->end_bridge("caller", true, true);
    return 0;
  }
  if (sip->sip_request && sip->sip_request->rq_method == sip_method_ack) {
    // Our 2xx is acknowledged: its retransmission timer is done, the transaction too.
    log_debug("call.acked").kv("call", self->id_);
    self->release_invite();
    return 0;
  }
  if (sip->sip_request && sip->sip_request->rq_method == sip_method_cancel) {
    self->caller_gone_ = true;
    if (self->answered_ && !self->finished_ && !self->invite_->answered()) {
      // The callee answered but its 200 waits for the media relay: the CANCEL wins.
      self->end_bridge("caller", false, true);
      self->invite_->respond(SIP_487_REQUEST_TERMINATED);
      return 0;
    }
    if (!self->answered_ && !self->finished_) {
      self->cancel_other_legs(nullptr);
      self->finished_ = true;
      self->invite_->respond(SIP_487_REQUEST_TERMINATED);
      log_info("call.cancelled").kv("call", self->id_).kv("call_id", self->call_id_);
      self->notify(Event::ended);
      self->fail_dial(487, "Request Terminated");
    }
  }
  return 0;
}

int B2bCall::on_leg_request(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq, const sip_t* sip) {
  auto* self = reinterpret_cast<B2bCall*>(magic);
  BLeg* from_b = nullptr;
  for (auto& b : self->b_legs_)
    if (b->leg == leg) from_b = b.get();
  return self->leg_request(from_b, irq, sip);
}

int B2bCall::leg_request(BLeg* from_b, nta_incoming_t* irq, const sip_t* sip) {
  sip_method_t method = sip->sip_request->rq_method;
  if (method == sip_method_ack) {
    // ACKs of 2xx we sent (the far side was ACKed already). The caller's ACK normally reaches
    // the INVITE transaction (on_a_invite_event); if it comes here, the transaction is done too.
    if (!from_b) release_invite();
    return 200;
  }
  auto request = std::make_shared<SipRequest>(irq, sip);
  BLeg* bridged = bridged_leg();
  if (method == sip_method_bye) {
    request->respond(SIP_200_OK);
    if (from_b && from_b != bridged) {
      // A late fork hanging up: nothing is bridged to it.
    } else if (answered_ && !finished_) {
      end_bridge(from_b ? "callee" : "caller", from_b != nullptr, from_b == nullptr);
    }
    return complete_in_callback(request);
  }
  if (!from_b && method == sip_method_info) info_digits(sip);
  if (!from_b && local_answer_ && !bridged && !finished_) {
    local_request(request);
    return complete_in_callback(request);
  }
  if (!answered_ || finished_ || !bridged || (from_b && from_b != bridged)) {
    request->respond(SIP_481_NO_TRANSACTION);
    return complete_in_callback(request);
  }
  bool is_invite = method == sip_method_invite;
  for (auto& relay : relays_) {
    // RFC 3261 §14.2: an INVITE while one of ours is pending in this dialog gets 491.
    if (is_invite && relay->is_invite) {
      request->respond(SIP_491_REQUEST_PENDING);
      return complete_in_callback(request);
    }
  }
  relay_in_dialog(from_b == nullptr, request);
  return complete_in_callback(request);
}

void B2bCall::relay_in_dialog(bool to_callee, const SipRequestPtr& request) {
  std::string sdp = payload_of(request->sip());
  if (!engine_.media() || sdp.empty()) return send_relay(to_callee, request, "", false);
  // A re-offer (hold, codec change) is anchored like the first one, from whichever side.
  std::string from_tag = to_callee ? caller_tag() : bridged_->remote_tag;
  std::string to_tag = to_callee ? bridged_->remote_tag : caller_tag();
  media_request("offer", from_tag, to_tag, sdp, [to_callee, request](B2bCall& c, const std::string& error, const std::string& body) {
    if (!error.empty() || !c.bridged_) {
      log_error("call.media_failed").kv("call", c.id_).kv("call_id", c.call_id_).kv("error", error);
      request->respond(500, "Media Relay Unavailable");
      return;
    }
    c.send_relay(to_callee, request, body, true);
  });
}

void B2bCall::send_relay(bool to_callee, const SipRequestPtr& request, const std::string& sdp, bool media) {
  const sip_t* sip = request->sip();
  nta_leg_t* target = to_callee ? bridged_->leg : a_leg_;
  auto relay = std::make_unique<Relay>();
  relay->call = this;
  relay->request = request;
  relay->to_callee = to_callee;
  relay->is_invite = sip->sip_request->rq_method == sip_method_invite;
  relay->media = media;
  std::string contact = to_callee ? bridged_->contact : our_contact();
  relay->outgoing = nta_outgoing_tcreate(
      target, on_relay_response, reinterpret_cast<nta_outgoing_magic_t*>(relay.get()), nullptr,
      sip->sip_request->rq_method, sip->sip_request->rq_method_name, nullptr,
      TAG_IF(relay->is_invite || sip->sip_request->rq_method == sip_method_update, SIPTAG_CONTACT_STR(contact.c_str())),
      TAG_IF(!media, SIPTAG_CONTENT_TYPE(sip->sip_content_type)), TAG_IF(!media, SIPTAG_PAYLOAD(sip->sip_payload)),
      TAG_IF(media, SIPTAG_CONTENT_TYPE_STR("application/sdp")), TAG_IF(media, SIPTAG_PAYLOAD_STR(sdp.c_str())),
      TAG_END());
  if (!relay->outgoing) {
    request->respond(500, "Cannot Relay");
    return;
  }
  relays_.push_back(std::move(relay));
}

int B2bCall::on_relay_response(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip) {
  auto* relay = reinterpret_cast<Relay*>(magic);
  B2bCall* self = relay->call;
  int status = sip && sip->sip_status ? static_cast<int>(sip->sip_status->st_status) : 408;
  if (status < 200) return 0;
  if (relay->is_invite && status < 300) {
    // B2BUA: we ACK the far side ourselves; the requester's own ACK ends at our leg.
    send_ack(relay->to_callee ? self->bridged_->leg : self->a_leg_);
  }
  SipRequestPtr request = relay->request;
  bool to_callee = relay->to_callee, is_invite = relay->is_invite;
  std::string phrase = sip && sip->sip_status && sip->sip_status->st_phrase ? sip->sip_status->st_phrase : "";
  std::string body = payload_of(sip);
  bool media = relay->media && !body.empty() && status < 300;
  auto respond = [request, status, phrase, to_callee, is_invite, sip](B2bCall& c, const std::string& sdp, bool rewritten) {
    std::string contact = to_callee ? c.our_contact() : c.bridged_ ? c.bridged_->contact : c.our_contact();
    request->respond(status, phrase.c_str(), TAG_IF(is_invite && status < 300, SIPTAG_CONTACT_STR(contact.c_str())),
                     TAG_IF(!rewritten && sip, SIPTAG_CONTENT_TYPE(sip ? sip->sip_content_type : nullptr)),
                     TAG_IF(!rewritten && sip, SIPTAG_PAYLOAD(sip ? sip->sip_payload : nullptr)),
                     TAG_IF(rewritten, SIPTAG_CONTENT_TYPE_STR("application/sdp")),
                     TAG_IF(rewritten, SIPTAG_PAYLOAD_STR(sdp.c_str())), TAG_END());
  };
  if (!media) {
    respond(*self, "", false);
  } else {
    std::string from_tag = to_callee ? self->caller_tag() : self->bridged_->remote_tag;
    std::string to_tag = to_callee ? self->bridged_->remote_tag : self->caller_tag();
    // `sip` dies with this callback: the deferred reply only uses the copied strings.
    self->media_request("answer", from_tag, to_tag, body,
                        [request, status, phrase, to_callee, is_invite](B2bCall& c, const std::string& error, const std::string& sdp) {
                          if (!error.empty()) {
                            request->respond(500, "Media Relay Unavailable");
                            return;
                          }
                          std::string contact = to_callee ? c.our_contact() : c.bridged_ ? c.bridged_->contact : c.our_contact();
                          request->respond(status, phrase.c_str(), TAG_IF(is_invite, SIPTAG_CONTACT_STR(contact.c_str())),
                                           SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp.c_str()), TAG_END());
                        });
  }
  nta_outgoing_destroy(orq);
  for (auto it = self->relays_.begin(); it != self->relays_.end(); ++it) {
    if (it->get() == relay) {
      self->relays_.erase(it);
      break;
    }
  }
  return 0;
}

void B2bCall::send_ack(nta_leg_t* leg) {
  if (nta_outgoing_t* ack = nta_outgoing_tcreate(leg, ignore_response, nullptr, nullptr, SIP_METHOD_ACK, nullptr, TAG_END()))
    nta_outgoing_destroy(ack);
}

void B2bCall::fail_dial(int code, const std::string& reason) {
  last_failure_code_ = code;
  last_failure_reason_ = reason;
  DialResult r;
  r.code = code;
  r.reason = reason;
  finish_dial(r);
}

void B2bCall::send_bye(nta_leg_t* leg) {
  if (!leg) return;
  // No callback: nta's default handler releases the transaction on its final response, so a
  // BYE outlives the call object safely.
  nta_outgoing_tcreate(leg, nullptr, nullptr, nullptr, SIP_METHOD_BYE, nullptr, TAG_END());
}

void B2bCall::end_bridge(const char* ended_by, bool bye_caller, bool bye_callee) {
  if (finished_) return;
  finished_ = true;
  if (bye_caller) send_bye(a_leg_);
  if (bye_callee)
    if (BLeg* b = bridged_leg()) send_bye(b->leg);
  log_info("call.hangup").kv("call", id_).kv("call_id", call_id_).kv("by", ended_by);
  notify(Event::ended);
  if (dialing_ && !bridged_leg()) {
    // A locally answered caller hung up while its transfer was still ringing.
    cancel_other_legs(nullptr);
    return fail_dial(487, "Request Terminated");
  }
  DialResult r;
  r.answered = true;
  r.code = 200;
  r.reason = "OK";
  if (BLeg* b = bridged_leg()) r.target = b->target;
  r.ended_by = ended_by;
  finish_dial(r);
}

void B2bCall::finish_dial(DialResult result) {
  if (!dialing_) return;
  dialing_ = false;
  if (stage_timer_) evtimer_del(stage_timer_);
  auto done = std::move(dial_done_);
  dial_done_ = nullptr;
  if (done) done(result);
}

}  // namespace relais
