// registrar.hpp — REGISTER handling (RFC 3261 §10.3): authenticate, ask the script, apply the
// binding rules against the location store, answer with the AoR's current contacts.
#pragma once

#include <sofia-sip/sip.h>
#include <sofia-sip/url.h>

#include <cstdint>
#include <string>

#include "authenticator.hpp"
#include "binding_rules.hpp"
#include "config.hpp"
#include "location_store.hpp"
#include "script_engine.hpp"
#include "sip_request.hpp"

namespace relais {

class SipStack;

struct RegistrarCounters {
  uint64_t ok = 0;
  uint64_t challenged = 0;
  uint64_t auth_failed = 0;
  uint64_t rejected = 0;
  uint64_t errors = 0;
};

// Canonical form of a Contact URI for matching refreshes: scheme, user, lower-case host, port
// and the transport/maddr parameters; other parameters do not make a different contact.
std::string canonical_contact_key(const url_t* url);

class NatKeepalive;

class Registrar {
 public:
  Registrar(const Config& cfg, SipStack& stack, LocationStore& store, Authenticator& auth, ScriptEngine& script);

  void handle(const SipRequestPtr& request);
  void set_config(const Config& cfg);  // SIGHUP
  // NATed UDP registrations are reported here so their mappings get pinged.
  void set_keepalive(NatKeepalive* keepalive) { keepalive_ = keepalive; }
  const RegistrarCounters& counters() const { return counters_; }

  // "user@domain" if the To URI is ours, else empty (and `why` says which part is wrong).
  std::string aor_for(const sip_t* sip, std::string& why) const;

 private:
  void after_auth(const SipRequestPtr& request, const std::string& aor, RegisterUpdate update);
  RegisterUpdate build_update(const SipRequest& request, int64_t now) const;
  static std::string ok_headers(const std::vector<Binding>& bindings, int64_t now);
  void answer_ok(const SipRequestPtr& request, const std::string& aor, const std::string& headers, size_t contacts,
                 bool changed);
  void answer_error(const SipRequestPtr& request, const std::string& aor, int status, const std::string& reason,
                    const char* event);
  void challenge(const SipRequestPtr& request, bool stale, const std::string& aor, const std::string& why);

  Config cfg_;
  SipStack& stack_;
  LocationStore& store_;
  Authenticator& auth_;
  ScriptEngine& script_;
  RegistrarCounters counters_;
  NatKeepalive* keepalive_ = nullptr;
  std::string headers_;  // a response's extra header lines, reused (keeps its capacity)
};

}  // namespace relais
