// binding_rules.hpp — RFC 3261 §10.3 steps 6–8 as a pure function: given the current bindings of
// an AoR and a parsed REGISTER, the new set of bindings or the reason to refuse.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "binding.hpp"
#include "config.hpp"

namespace relais {

struct ContactUpdate {
  std::string uri;           // as sent, without <>
  std::string key;           // canonical form for matching (see canonical_contact_key)
  std::optional<uint32_t> expires_param;  // ;expires= on this Contact
  int q_milli = -1;
  std::string instance;      // +sip.instance
};

struct RegisterUpdate {
  std::string call_id;
  uint32_t cseq = 0;
  std::string branch;                     // top Via branch
  bool wildcard = false;                  // Contact: *
  std::optional<uint32_t> expires_header; // Expires header
  std::vector<ContactUpdate> contacts;    // empty and !wildcard = query
  std::string received;                   // source flow, stored on new/refreshed bindings
  std::string flow;                       // the edge's connection token (TCP/TLS), or empty
  std::string user_agent;
  std::string node;
  std::map<std::string, std::string> attrs;  // from the on_register hook
  int64_t now = 0;
};

struct RegisterOutcome {
  int status = 200;           // 200, or the error to answer
  std::string reason;         // phrase for errors
  int min_expires = 0;        // set with 423
  bool changed = false;       // bindings need writing back
  std::vector<Binding> bindings;  // the AoR's bindings after the request (valid when 200)
};

// Checks that need no stored state (RFC 3261 §10.3 step 6/7 preconditions): wildcard rules and
// 423 Interval Too Brief. Run before reading the store so bad requests cost nothing.
RegisterOutcome check_register(const RegistrarSettings& settings, const RegisterUpdate& update);

// Applies the update to `current` (bindings already filtered for expiry).
RegisterOutcome apply_register(const RegistrarSettings& settings, const RegisterUpdate& update,
                               std::vector<Binding> current);

}  // namespace relais
