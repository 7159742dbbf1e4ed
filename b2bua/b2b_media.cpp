// b2b_media.cpp — anchoring a call's media on the ng relay: the caller's offer is rewritten
// before any callee sees it, each callee's answer before the caller sees it, re-offers in both
// directions likewise, and the relay's session is deleted when the call ends.
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>

#include "b2b_call.hpp"
#include "call_engine.hpp"
#include "call_memory.hpp"
#include "log.hpp"
#include "srtp_policy.hpp"

namespace relais {

namespace {

std::string header_text(const sip_header_t* h) {
  if (!h) return {};
  su_home_t home[1] = {SU_HOME_INIT(home)};
  char* text = sip_header_as_string(home, h);
  std::string out = text ? text : "";
  su_home_deinit(home);
  return out;
}

}  // namespace

std::string B2bCall::payload_of(const sip_t* sip) {
  return sip && sip->sip_payload && sip->sip_payload->pl_data ? std::string(sip->sip_payload->pl_data, sip->sip_payload->pl_len)
                                                              : std::string();
}

std::string B2bCall::caller_tag() const { return caller_tag_; }

void B2bCall::media_request(const char* command, const std::string& from_tag, const std::string& to_tag,
                            const std::string& sdp, SdpDone done) {
  NgClient* ng = engine_.media();
  bencode::Value request = bencode::Value::make_dict();
  request["command"] = bencode::Value::string(command);
  request["call-id"] = bencode::Value::string(call_id_);
  request["from-tag"] = bencode::Value::string(from_tag);
  if (!to_tag.empty()) request["to-tag"] = bencode::Value::string(to_tag);
  request["sdp"] = bencode::Value::string(sdp);
  // The relay's address replaces the endpoint's everywhere; ICE candidates would bypass it.
  bencode::Value replace = bencode::Value::make_list();
  replace.list.push_back(bencode::Value::string("origin"));
  replace.list.push_back(bencode::Value::string("session-connection"));
  request["replace"] = replace;
  request["ICE"] = bencode::Value::string("remove");
  if (std::string(command) == "offer") {
    std::string transport = offer_transport(from_tag == caller_tag(), sdp);
    if (!transport.empty()) request["transport-protocol"] = bencode::Value::string(transport);
  }
  // Symmetric latching is the relays' default (rtpengine warns about an explicit flag).
  media_used_ = true;
  uint64_t id = id_;
  CallEngine* engine = &engine_;
  ng->request(request, [engine, id, done = std::move(done)](const std::string& error, const bencode::Value& reply) {
    CallEngine::Context* ctx = engine->context_of(id);
    if (!ctx || !ctx->call) return;  // the call ended while the relay was thinking
    std::string why = error;
    std::string sdp = reply.get_string("sdp");
    if (why.empty() && sdp.empty()) why = "media relay returned no SDP";
    done(*ctx->call, why, sdp);
    engine->kick();
  });
}

std::string B2bCall::offer_transport(bool from_caller, const std::string& sdp) {
  if (!from_caller) return a_profile_;  // a re-offer from the callee: the caller's leg stays as it was
  if (a_profile_.empty()) a_profile_ = sdp_profile(sdp);
  SrtpPolicy callee = SrtpPolicy::optional;
  if (auto p = srtp_policy_from(options_.srtp)) callee = *p;
  else if (!plan_.empty() && !plan_[0].empty()) callee = target_srtp_policy(engine_.config(), plan_[0][0]);
  else callee = srtp_policy_from(engine_.config().media.srtp).value_or(SrtpPolicy::optional);
  std::string transport = srtp_transport_for(callee);
  // optional: the callee's leg takes the caller's profile (an SRTP phone to an SRTP phone stays
  // SRTP, each leg with its own keys).
  return transport.empty() ? a_profile_ : transport;
}

void B2bCall::media_delete() {
  if (!media_used_ || !engine_.media()) return;
  media_used_ = false;
  bencode::Value request = bencode::Value::make_dict();
  request["command"] = bencode::Value::string("delete");
  request["call-id"] = bencode::Value::string(call_id_);
  engine_.media()->request(request, [](const std::string&, const bencode::Value&) {});
}

void B2bCall::media_timeout() {
  if (answered_ && !finished_) return end_bridge("media-timeout", true, true);
  reject(503, "Media Timeout");
}

// 18x with SDP and 2xx from a callee: the SDP goes through the relay's answer first.
void B2bCall::relay_response_to_caller(BLeg& leg, const sip_t* sip) {
  int status = static_cast<int>(sip->sip_status->st_status);
  std::string phrase = sip->sip_status->st_phrase ? sip->sip_status->st_phrase : "";
  std::string sdp = payload_of(sip);
  std::string content_type = header_text(reinterpret_cast<const sip_header_t*>(sip->sip_content_type));
  std::string session_expires = header_text(reinterpret_cast<const sip_header_t*>(sip->sip_session_expires));
  std::string require = header_text(reinterpret_cast<const sip_header_t*>(sip->sip_require));
  auto send = [status, phrase, content_type, session_expires, require](B2bCall& c, const std::string& body) {
    if (c.finished_ || c.invite_->answered()) return;
    if (status < 200 && c.answered_) return;
    std::string contact = c.our_contact();
    c.invite_->respond(status, phrase.c_str(), SIPTAG_CONTACT_STR(contact.c_str()),
                       TAG_IF(!session_expires.empty(), SIPTAG_SESSION_EXPIRES_STR(session_expires.c_str())),
                       TAG_IF(!require.empty(), SIPTAG_REQUIRE_STR(require.c_str())),
                       TAG_IF(!body.empty(), SIPTAG_CONTENT_TYPE_STR(content_type.empty() ? "application/sdp" : content_type.c_str())),
                       TAG_IF(!body.empty(), SIPTAG_PAYLOAD_STR(body.c_str())), TAG_END());
  };
  if (sdp.empty() || !engine_.media()) return send(*this, sdp);
  assign_call_string(leg.remote_tag, sip->sip_to && sip->sip_to->a_tag ? sip->sip_to->a_tag : "");
  media_request("answer", caller_tag(), leg.remote_tag, sdp, [status, send](B2bCall& c, const std::string& error, const std::string& body) {
    if (error.empty()) return send(c, body);
    log_error("call.media_failed").kv("call", c.id_).kv("call_id", c.call_id_).kv("error", error);
    if (status < 200) return;  // early media stays unanchored-silent; the 200 decides
    // An answered callee whose media cannot be anchored: hang it up, tell the caller.
    if (c.bridged_) c.send_bye(c.bridged_->leg);
    c.finished_ = true;
    c.invite_->respond(503, "Media Relay Unavailable");
    c.fail_dial(503, "Media Relay Unavailable");
  });
}

}  // namespace relais
