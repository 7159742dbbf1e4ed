// binding.hpp — one registered contact of an address-of-record (RFC 3261 §10), as stored.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace relais {

struct Binding {
  std::string contact;      // Contact URI as the UA sent it, without <> (e.g. "sip:100@10.0.0.5:5062;transport=udp")
  std::string key;          // canonical form of the URI used to match refreshes (RFC 3261 §19.1.4)
  std::string call_id;      // Call-ID of the REGISTER that created/refreshed it (§10.3 step 7)
  uint32_t cseq = 0;        // CSeq number of that REGISTER
  std::string branch;       // its top Via branch: tells a retransmission from a reused CSeq
  int64_t expires_at = 0;   // unix time (seconds) at which the binding is gone
  int q_milli = -1;         // Contact q-value ×1000, -1 when the UA gave none
  std::string received;     // "udp:203.0.113.5:5060": the flow the REGISTER arrived on
  std::string flow;         // TCP/TLS: the edge's connection token; requests to the contact use it
  std::string user_agent;   // User-Agent header, for operators
  std::string instance;     // +sip.instance (RFC 5626), empty if absent
  std::string node;         // id of the relais node that accepted it
  int64_t registered_at = 0;  // unix time of the last successful REGISTER
  std::map<std::string, std::string> attrs;  // annotations set by the on_register hook

  bool operator==(const Binding&) const = default;
};

// Stored credentials of a user. Plain passwords never leave config; the store keeps HA1s
// (RFC 7616 §3.4.2: H(username:realm:password)) so a leaked database does not leak passwords.
struct UserRecord {
  std::string user;
  std::string domain;       // realm the HA1s were computed for
  std::string ha1_md5;      // hex
  std::string ha1_sha256;   // hex; may be empty if only MD5 is provisioned
  bool operator==(const UserRecord&) const = default;
};

// JSON (nlohmann) round trip used by both store backends; unknown fields are ignored so an
// older node can read a newer node's bindings.
std::string binding_to_json(const Binding& b);
// The same into `out` (replacing its content), which keeps its capacity from one binding to the next.
void write_binding_json(std::string& out, const Binding& b);
bool binding_from_json(const std::string& text, Binding& out);  // false on malformed text

// The form both backends store and return a binding set in: one binding per key (the last one
// given wins, as a refresh replaces), ordered by key. Redis hashes have no order, so both
// backends agree on this one rather than on insertion order.
void normalize_bindings(std::vector<Binding>& bindings);

}  // namespace relais
