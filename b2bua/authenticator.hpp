// authenticator.hpp — checks Digest credentials on a request against users from config and the
// store, and builds the challenges (RFC 3261 §22.4, RFC 7616, RFC 8760).
#pragma once

#include <sofia-sip/sip.h>

#include <functional>
#include <map>
#include <unordered_map>
#include <string>
#include <vector>

#include "config.hpp"
#include "location_store.hpp"
#include "nonce.hpp"

namespace relais {

class Authenticator {
 public:
  enum class Verdict { ok, challenge, stale, forbidden, bad_request, unavailable };
  struct Outcome {
    Verdict verdict = Verdict::challenge;
    std::string reason;  // for bad_request / forbidden / unavailable logs and phrases
    std::string user;    // the authenticated username when ok (or the claimed one otherwise)
  };
  using Done = std::function<void(const Outcome&)>;

  Authenticator(const Config& cfg, LocationStore& store);

  // Replaces the config users (SIGHUP). Nonces stay valid: the secret is not rotated.
  void set_users(const Config& cfg);

  // `done` may run before verify returns (config users, SQLite) or later (Redis).
  // `proxy`: read Proxy-Authorization (INVITE, 407) instead of Authorization (REGISTER, 401).
  void verify(const sip_t* sip, int64_t now, bool proxy, Done done);

  // WWW-Authenticate values, one per algorithm offered to `user` (its own list from config,
  // else auth.algorithms) in preference order.
  std::vector<std::string> challenges(int64_t now, bool stale, const std::string& user) const;
  // The same as complete "WWW-Authenticate: ...\r\n" lines appended to `out` (the registrar's
  // text responses).
  void append_challenges(std::string& out, int64_t now, bool stale, const std::string& user) const;

  const std::string& realm() const { return realm_; }

  // Failed credentials (wrong password, unknown user, a user claiming another's identity)
  // feed the SBC's per-source ban counter. verify() does not know the source address, so its
  // callers report each failure they answer with the request's source.
  using FailureHook = std::function<void(const std::string& source_ip, const std::string& user, const std::string& reason)>;
  void set_failure_hook(FailureHook hook) { failure_hook_ = std::move(hook); }
  void report_failure(const std::string& source_ip, const std::string& user, const std::string& reason) const {
    if (failure_hook_) failure_hook_(source_ip, user, reason);
  }

 private:
  struct Hashes {
    std::string md5;
    std::string sha256;
    std::vector<DigestAlgorithm> algorithms;  // empty = the global list
  };
  const std::vector<DigestAlgorithm>& algorithms_for(const std::string& user) const;
  void check_response(const sip_t* sip, const struct DigestCredentials& creds, const Hashes& hashes,
                      int64_t now, const Done& done);

  LocationStore& store_;
  std::string realm_;
  std::vector<DigestAlgorithm> algorithms_;
  NonceIssuer nonces_;
  NonceCounts counts_;
  std::unordered_map<std::string, Hashes> users_;  // config users, HA1s precomputed for realm_
  FailureHook failure_hook_;
};

}  // namespace relais
