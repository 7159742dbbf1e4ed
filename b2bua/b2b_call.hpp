// b2b_call.hpp — one B2BUA call: the caller's leg (A, a server dialog) and the legs relais
// dials (B, client dialogs), on Sofia nta. Nothing of leg A's Call-ID, tags, Via, Contact or
// Record-Route reaches a B leg (topology hiding): every B leg is a fresh dialog of relais.
#pragma once

#include <sofia-sip/nta.h>
#include <sofia-sip/sip.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sip_request.hpp"

struct event;

namespace relais {

class CallEngine;

struct DialOptions {
  int timeout_seconds = 30;   // per stage: no final answer by then → cancelled, code 408
  std::string caller_id;      // user part / display shown to the callee; empty = caller's
  std::map<std::string, std::string> headers;  // extra headers on the B INVITE
  std::string srtp;           // callee leg: "never" | "optional" | "mandatory"; "" = by target (srtp_policy.hpp)
};

struct DialResult {
  bool answered = false;
  int code = 0;               // final status of the attempt (200 when answered)
  std::string reason;
  std::string target;         // the target that answered (or the last one tried)
  std::string ended_by;       // "caller" | "callee" when an answered call ended
};

// Targets of one dial: stages tried one after another (serial), each a set rung in parallel.
using DialPlan = std::vector<std::vector<std::string>>;

class B2bCall {
 public:
  B2bCall(CallEngine& engine, uint64_t id, SipRequestPtr invite);
  ~B2bCall();
  B2bCall(const B2bCall&) = delete;
  B2bCall& operator=(const B2bCall&) = delete;

  uint64_t id() const { return id_; }
  const std::string& call_id() const { return call_id_; }
  std::string caller_tag() const;  // the caller's From tag (the relay's from-tag for its side)
  const SipRequestPtr& invite() const { return invite_; }
  // The caller's INVITE as text once the message itself was released, else empty.
  const std::string& invite_text() const { return invite_text_; }
  // Drops the caller's INVITE transaction and message after the ACK (keeps a text copy).
  void release_invite();

  // Creates the A dialog leg (our To tag, ACK/CANCEL binding). False if nta refused.
  bool accept_leg();

  // Caller-side verbs. Each is a no-op once the A side has a final answer.
  void ring();
  void reject(int code, const std::string& reason);
  void redirect(const std::string& uri);
  void hangup();  // answered: BYE both sides; else 480

  // Rings the plan; `done` runs once: when the bridged call ends (answered) or every stage
  // failed, or the caller cancelled. Only one dial at a time.
  bool dial(DialPlan plan, DialOptions options, std::function<void(const DialResult&)> done);

  // The media relay found the call dead (no RTP): hang up both sides.
  void media_timeout();

  // Answers the caller with relais itself as the far end (menus, voicemail): the media stays
  // anchored on the relay, which plays to and records from the caller. `done(error)` runs once
  // ("" = answered). A later dial() bridges the caller to the callee without a new answer.
  void answer_locally(std::function<void(const std::string& error)> done);
  bool answered_locally() const { return local_answer_; }

  // What the engine hears about the call besides dial results: the call ended (either side or
  // the script), a dial from a locally answered call got bridged, a digit arrived by SIP INFO.
  enum class Event { ended, bridged, info_digit };
  void set_observer(std::function<void(Event, const std::string& digit)> observer) { observer_ = std::move(observer); }

  bool answered() const { return answered_; }
  bool finished() const { return finished_; }  // A side has a final answer and no bridge is up
  bool caller_gone() const { return caller_gone_; }
  int last_failure_code() const { return last_failure_code_; }
  const std::string& last_failure_reason() const { return last_failure_reason_; }

 private:
  struct BLeg {
    B2bCall* call = nullptr;
    std::string target;
    std::string contact;   // our Contact toward this callee
    std::string request_uri;
    std::string route;     // next hop when it is not the Request-URI (a trunk's proxy)
    const struct TrunkConfig* trunk = nullptr;
    std::string remote_tag;  // the callee's To tag once it answered (ng to-tag)
    bool auth_tried = false;
    nta_leg_t* leg = nullptr;
    nta_outgoing_t* invite = nullptr;
    int status = 0;
    bool cancelled = false;
    bool failed = false;
    bool answered = false;
  };
  // A request relayed from one side to the other, answered when the far side answers.
  struct Relay {
    B2bCall* call = nullptr;
    SipRequestPtr request;
    nta_outgoing_t* outgoing = nullptr;
    bool to_callee = true;
    bool is_invite = false;
    bool media = false;  // the SDP went through the relay; the answer must too
  };

  // A side (b2b_call.cpp)
  static int on_a_invite_event(nta_incoming_magic_t* magic, nta_incoming_t* irq, const sip_t* sip);
  static int on_leg_request(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq, const sip_t* sip);
  int leg_request(BLeg* from_b, nta_incoming_t* irq, const sip_t* sip);
  void relay_in_dialog(bool to_callee, const SipRequestPtr& request);
  void send_relay(bool to_callee, const SipRequestPtr& request, const std::string& sdp, bool media);
  static int on_relay_response(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip);
  void end_bridge(const char* ended_by, bool send_bye_to_caller, bool send_bye_to_callee);
  void send_bye(nta_leg_t* leg);
  static void send_ack(nta_leg_t* leg);  // ACK for a 2xx on that dialog
  // Ends the dial attempt without an answer: remembers why and tells the waiting script.
  void fail_dial(int code, const std::string& reason);
  void finish_dial(DialResult result);
  std::string our_contact() const;

  // Media anchoring (b2b_media.cpp): SDP through the ng relay when one is configured.
  using SdpDone = std::function<void(B2bCall& call, const std::string& error, const std::string& sdp)>;
  void media_request(const char* command, const std::string& from_tag, const std::string& to_tag,
                     const std::string& sdp, SdpDone done);
  void media_delete();
  // The ng transport-protocol of an offer (b2b_media.cpp): towards the callee by its SRTP
  // policy, towards the caller its own profile, so re-INVITEs keep each leg as negotiated.
  std::string offer_transport(bool from_caller, const std::string& sdp);
  static std::string payload_of(const sip_t* sip);
  void relay_response_to_caller(BLeg& leg, const sip_t* sip);

  // Locally answered calls (b2b_local.cpp)
  void local_request(const SipRequestPtr& request);
  void info_digits(const sip_t* sip);
  void notify(Event event, const std::string& digit = "") {
    if (observer_) observer_(event, digit);
  }

  // B side (b2b_dial.cpp)
  void start_stage();
  bool start_leg(const std::string& target);
  bool send_invite(BLeg& leg, const std::string& authorization, bool proxy_auth);
  static int on_b_response(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip);
  void b_response(BLeg& leg, const sip_t* sip);
  void b_answered(BLeg& leg, const sip_t* sip);
  void b_failed(BLeg& leg, int status, const char* phrase);
  void cancel_other_legs(const BLeg* keep);
  static void on_stage_timeout(int, short, void* arg);
  void stage_failed();
  BLeg* bridged_leg() const;
  void destroy_b_legs();

  CallEngine& engine_;
  uint64_t id_;
  SipRequestPtr invite_;       // the caller's INVITE server transaction
  std::string call_id_;        // A side Call-ID, for logs
  // What the call still needs of the caller's INVITE once that message is released (after the
  // ACK): our Contact toward the caller, the caller's tag (ng from-tag), and the INVITE as text
  // for call:header().
  std::string caller_tag_;
  std::string caller_user_, caller_display_;  // the caller's From, for the B legs' From
  std::string caller_facing_host_;
  std::string invite_text_;
  nta_leg_t* a_leg_ = nullptr;
  bool answered_ = false;      // A side got our 2xx
  bool finished_ = false;
  bool caller_gone_ = false;   // CANCEL or BYE from the caller

  DialPlan plan_;
  size_t stage_ = 0;
  bool stage_timed_out_ = false;
  DialOptions options_;
  std::function<void(const DialResult&)> dial_done_;
  bool dialing_ = false;
  std::vector<std::unique_ptr<BLeg>> b_legs_;
  std::vector<std::unique_ptr<Relay>> relays_;
  ::event* stage_timer_ = nullptr;
  BLeg* bridged_ = nullptr;    // the leg that won the dial
  std::string b_offer_sdp_;    // the caller's SDP as rewritten by the relay, sent to callees
  std::string a_profile_;      // the caller's RTP profile (RTP/AVP, RTP/SAVP): kept on its leg
  bool media_offered_ = false;
  bool media_used_ = false;    // a session exists on the relay (delete it at the end)
  int last_failure_code_ = 0;
  std::string last_failure_reason_;
  bool local_answer_ = false;  // relais answered the caller itself (answer_locally)
  bool local_answering_ = false;
  int local_pt_ = 0, local_event_pt_ = -1;  // the codec (and telephone-event) of that answer
  std::string local_sdp_;      // our answer as the caller saw it (repeated to a bare re-INVITE)
  std::function<void(Event, const std::string&)> observer_;
};

}  // namespace relais
