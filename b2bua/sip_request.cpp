// sip_request.cpp — answering and releasing a server transaction.
#include "sip_request.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/su_tagarg.h>

#include "log.hpp"
#include "server_header.hpp"

#include <cstring>
#include <set>

namespace relais {

namespace {
// nta keeps the reason-phrase pointer in the response it may retransmit later, so phrases
// must live for the process. Phrases come from our code and the operator's script, so the set
// stays small; past a bound we fall back to Sofia's standard phrase.
const char* stable_phrase(const char* phrase) {
  static std::set<std::string> phrases;
  // Phrases relayed from the far end are network input: only short ones are kept.
  if (!phrase || strlen(phrase) > 64) return nullptr;
  auto it = phrases.find(phrase);
  if (it != phrases.end()) return it->c_str();
  if (phrases.size() >= 1024) return nullptr;
  return phrases.insert(phrase).first->c_str();
}
}  // namespace

SipRequest::SipRequest(nta_incoming_t* irq, const sip_t* sip)
    : irq_(irq), msg_(nta_incoming_getrequest(irq)), sip_(sip) {
  read_source();
}

SipRequest::SipRequest(nta_agent_t* agent, msg_t* msg, const sip_t* sip)
    : agent_(agent), msg_(msg), sip_(sip), in_callback_(false) {
  read_source();
}

void SipRequest::read_source() {
  if (su_addrinfo_t* ai = msg_ ? msg_addrinfo(msg_) : nullptr) {
    source_.transport = ai->ai_protocol == IPPROTO_TCP ? "tcp" : "udp";
    char text[INET6_ADDRSTRLEN] = {0};
    const sockaddr* sa = ai->ai_addr;
    if (sa && sa->sa_family == AF_INET6) {
      auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
      inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
      source_.port = ntohs(in6->sin6_port);
    } else if (sa && sa->sa_family == AF_INET) {
      auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
      inet_ntop(AF_INET, &in4->sin_addr, text, sizeof text);
      source_.port = ntohs(in4->sin_port);
    }
    source_.ip = text;
    if (ai->ai_protocol == IPPROTO_TCP) read_edge_source();
  }
}

// Every TCP message reached Sofia through the stream edge (tls/), on Sofia's only TCP listener
// (127.0.0.1); the phone's real address and flow are in the top Via, where the edge put them
// after removing any a phone had sent itself.
void SipRequest::read_edge_source() {
  const sip_via_t* via = sip_ ? sip_->sip_via : nullptr;
  const char* src = via ? msg_params_find(via->v_params, "rls-src") : nullptr;
  const char* flow = via ? msg_params_find(via->v_params, "rls-flow") : nullptr;
  if (!src || !flow) return;
  std::string text = src;
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') text = text.substr(1, text.size() - 2);
  // "tls:203.0.113.5:5061" or "tcp:[2001:db8::1]:5060"
  size_t colon = text.find(':'), last = text.rfind(':');
  if (colon == std::string::npos || last <= colon) return;
  std::string ip = text.substr(colon + 1, last - colon - 1);
  if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  source_.transport = text.substr(0, colon);
  source_.ip = ip;
  source_.port = atoi(text.c_str() + last + 1);
  source_.flow = flow;
}

SipRequest::~SipRequest() {
  if (!answered_) respond(500, "Request Not Handled");
  if (irq_ && !in_callback_) nta_incoming_destroy(irq_);
  if (msg_) msg_destroy(msg_);
}

void SipRequest::release_transaction() {
  if (in_callback_ || !answered_) return;
  if (irq_) nta_incoming_destroy(irq_);  // nta frees it when its timers are done
  irq_ = nullptr;
  if (msg_) msg_destroy(msg_);
  msg_ = nullptr;
  sip_ = nullptr;
}

std::string SipRequest::call_id() const {
  return sip_ && sip_->sip_call_id && sip_->sip_call_id->i_id ? sip_->sip_call_id->i_id : "";
}

const char* SipRequest::method_name() const {
  return sip_ && sip_->sip_request ? sip_->sip_request->rq_method_name : "?";
}

bool SipRequest::respond(int status, const char* phrase, tag_type_t tag, tag_value_t value, ...) {
  if (answered_) return false;
  if (status >= 200) {
    answered_ = true;
    status_ = status;
  }
  ta_list ta;
  ta_start(ta, tag, value);
  if (irq_) {
    nta_incoming_treply(irq_, status, stable_phrase(phrase), SIPTAG_SERVER(server_header()), ta_tags(ta));
  } else if (agent_ && msg_) {
    // nta_msg_treply consumes a reference; ours keeps `sip_` valid until we are destroyed.
    nta_msg_treply(agent_, msg_ref_create(msg_), status, stable_phrase(phrase), SIPTAG_SERVER(server_header()),
                   ta_tags(ta));
  }
  ta_end(ta);
  return true;
}

}  // namespace relais
