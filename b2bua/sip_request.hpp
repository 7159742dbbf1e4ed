// sip_request.hpp — one incoming request that may be answered now or later (after a store
// reply), answered exactly once, and released exactly once. Either a server transaction
// (nta_incoming_t: INVITE and in-dialog requests) or a stateless request (REGISTER, OPTIONS:
// answered with nta_msg_treply, so nothing lingers for Timer J after the answer).
#pragma once

#include <sofia-sip/nta.h>
#include <sofia-sip/sip.h>

#include <memory>
#include <string>
#include <string_view>

namespace relais {

struct SourceAddress {
  std::string transport;  // "udp" | "tcp" | "tls"
  std::string ip;
  int port = 0;
  std::string flow;       // TCP/TLS: the edge's token for the connection (tls/stream_edge.hpp)
  std::string to_string() const { return transport + ":" + (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(port); }
};

class SipRequest {
 public:
  SipRequest(nta_incoming_t* irq, const sip_t* sip);
  // Stateless: takes over `msg` (our reference), answers through `agent`.
  SipRequest(nta_agent_t* agent, msg_t* msg, const sip_t* sip);
  ~SipRequest();  // an unanswered request gets 500 here, so no path can leave a client hanging
  SipRequest(const SipRequest&) = delete;
  SipRequest& operator=(const SipRequest&) = delete;

  const sip_t* sip() const { return sip_; }
  msg_t* msg() const { return msg_; }
  nta_incoming_t* irq() const { return irq_; }
  const SourceAddress& source() const { return source_; }
  std::string call_id() const;
  const char* method_name() const;

  // Sends a response: provisional ones (1xx) as often as needed, then one final one. `phrase` must outlive the call only (nta copies it into the
  // response message). Extra headers go in as Sofia tags. Returns false if already answered.
  bool respond(int status, const char* phrase, tag_type_t tag, tag_value_t value, ...);
  bool respond(int status, const char* phrase) { return respond(status, phrase, TAG_END()); }
  // The same answer with extra headers given as text: complete lines, each ending in CRLF
  // ("Contact: <sip:a@b>;expires=60\r\n"), added after the ones copied from the request. A
  // stateless UDP request answered while Sofia is still delivering it (the registrar's
  // synchronous path) gets its response written as text and sent on the socket it came in on,
  // as Kamailio's sl does: no response msg_t, no header objects, no encoder pass, one syscall.
  // Anything else goes through nta with `extra` parsed into headers.
  bool respond_text(int status, const char* phrase, std::string_view extra);
  bool answered() const { return answered_; }

  // Frees the server transaction and the request message once both have served (an INVITE
  // after its ACK): the transaction lives in the message's memory, ~4 KiB a held call would
  // otherwise keep. sip() and msg() are null afterwards; source() stays.
  void release_transaction();

  // Within the leg callback nta destroys the transaction itself once we return the status;
  // outside it we must. SipStack flips this after the callback returns.
  void leave_callback() { in_callback_ = false; }
  int final_status() const { return status_; }

 private:
  void read_source();
  void read_edge_source();
  bool send_text(int status, const char* phrase, std::string_view extra);

  nta_incoming_t* irq_ = nullptr;
  nta_agent_t* agent_ = nullptr;  // set for stateless requests
  msg_t* msg_;          // our reference to the request message (source address, raw headers)
  const sip_t* sip_;
  SourceAddress source_;
  bool answered_ = false;
  bool in_callback_ = true;
  int status_ = 0;
};

using SipRequestPtr = std::shared_ptr<SipRequest>;

}  // namespace relais
