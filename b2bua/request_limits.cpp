// request_limits.cpp — field size and Content-Length checks.
#include "request_limits.hpp"

#include <sofia-sip/sip_header.h>

#include <cstring>

namespace relais {

namespace {

// Field limits well above anything a real phone sends (a Call-ID is ~40 bytes, a user part a
// few digits) and far below what makes log lines, store keys or Lua strings a problem.
constexpr size_t kMaxCallId = 256;
constexpr size_t kMaxUser = 128;
constexpr size_t kMaxHost = 255;
constexpr size_t kMaxContacts = 32;

size_t len(const char* s) { return s ? strlen(s) : 0; }

bool url_too_long(const url_t* url) {
  return url && (len(url->url_user) > kMaxUser || len(url->url_host) > kMaxHost ||
                 len(url->url_params) > kMaxHeaderBytes || len(url->url_headers) > kMaxHeaderBytes);
}

}  // namespace

std::string request_limit_problem(msg_t*, const sip_t* sip, bool datagram) {
  // Lines Sofia could not parse at all (no colon, garbage) end up in sip_error; nta lets them
  // through unless they hit an essential header.
  if (sip->sip_error) return "Malformed Header Line";
  if (sip->sip_call_id && len(sip->sip_call_id->i_id) > kMaxCallId) return "Call-ID Too Long";
  if (sip->sip_from && url_too_long(sip->sip_from->a_url)) return "From Too Long";
  if (sip->sip_to && url_too_long(sip->sip_to->a_url)) return "To Too Long";
  if (sip->sip_request && url_too_long(sip->sip_request->rq_url)) return "Request-URI Too Long";
  if (sip->sip_user_agent && len(sip->sip_user_agent->g_string) > kMaxHeaderBytes) return "User-Agent Too Long";
  size_t contacts = 0;
  for (const sip_contact_t* m = sip->sip_contact; m; m = m->m_next) {
    if (++contacts > kMaxContacts) return "Too Many Contacts In Request";
    if (url_too_long(m->m_url)) return "Contact Too Long";
  }
  for (const sip_unknown_t* u = sip->sip_unknown; u; u = u->un_next)
    if (len(u->un_value) > kMaxHeaderBytes) return "Header Too Long";
  // RFC 3261 §18.3: over UDP a Content-Length larger than the datagram's body means the
  // message was truncated; such a message must be discarded or answered 400.
  if (datagram && sip->sip_content_length) {
    usize_t body = sip->sip_payload ? sip->sip_payload->pl_len : 0;
    if (sip->sip_content_length->l_length > body) return "Content-Length Exceeds Body";
  }
  return {};
}

}  // namespace relais
