// nonce.hpp — stateless, signed, expiring Digest nonces and a bounded nonce-count replay guard.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace relais {

// A nonce is hex(issue time) + hex(random) + hex(HMAC-SHA256(secret, both)[0..16)). Any node
// holding the same secret can check it, so a phone may register through any node of a cluster
// without the nodes sharing nonce state.
class NonceIssuer {
 public:
  enum class Check { valid, stale, invalid };

  NonceIssuer(std::string secret, int64_t ttl_seconds);

  std::string issue(int64_t now) const;
  Check check(std::string_view nonce, int64_t now) const;
  int64_t ttl() const { return ttl_; }

 private:
  std::string mac(std::string_view body) const;
  std::string secret_;
  int64_t ttl_;
};

// RFC 7616 §3.4: with qop, the server should check that nc increases for a nonce, which stops a
// captured REGISTER from being replayed. Remembers the highest nc per nonce for the nonce's
// lifetime; bounded so a flood of nonces cannot grow it without limit.
class NonceCounts {
 public:
  explicit NonceCounts(size_t max_entries = 200000) : max_entries_(max_entries) {}

  // True if `nc` is higher than any nc seen before with `nonce` (and records it).
  bool accept(std::string_view nonce, uint32_t nc, int64_t now, int64_t ttl);
  size_t size() const { return seen_.size(); }

 private:
  struct Seen {
    uint32_t nc;
    int64_t expires;
  };
  void purge(int64_t now);
  std::unordered_map<std::string, Seen> seen_;
  size_t max_entries_;
  int64_t next_purge_ = 0;
};

}  // namespace relais
