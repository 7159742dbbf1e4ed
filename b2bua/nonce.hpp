// nonce.hpp — stateless, signed, expiring Digest nonces and a bounded nonce-count replay guard.
#pragma once

#include <openssl/sha.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace relais {

// A nonce is hex(issue time) + hex(random) + hex(HMAC-SHA256(secret, both)[0..16)). Any node
// holding the same secret can check it, so a phone may register through any node of a cluster
// without the nodes sharing nonce state.
class NonceIssuer {
 public:
  enum class Check { valid, stale, invalid };

  NonceIssuer(std::string secret, int64_t ttl_seconds);

  static constexpr size_t kLength = 64;  // hex characters

  std::string issue(int64_t now) const;
  void issue(int64_t now, char out[kLength]) const;
  Check check(std::string_view nonce, int64_t now) const;
  int64_t ttl() const { return ttl_; }

 private:
  // Writes the first 16 bytes of HMAC-SHA256(secret, body) as 32 hex characters.
  void mac(std::string_view body, char out[32]) const;
  std::string secret_;
  int64_t ttl_;
  // HMAC-SHA256 with the key's inner and outer pads hashed once (RFC 2104): each nonce then
  // costs two one-block hashes from a copied state. OpenSSL's SHA256_CTX is a plain struct:
  // copying it is a memcpy, where EVP_MD_CTX_copy_ex went through the provider (~6,000
  // instructions per MAC under callgrind).
  SHA256_CTX inner_{}, outer_{};
  // Uniqueness, not secrecy: the MAC makes nonces unforgeable, a random-started counter makes
  // each one distinct without asking the DRBG per challenge.
  mutable uint64_t counter_ = 0;
};

// RFC 7616 §3.4: with qop, the server should check that nc increases for a nonce, which stops a
// captured REGISTER from being replayed. Remembers the highest nc per nonce for the nonce's
// lifetime; bounded so a flood of nonces cannot grow it without limit.
class NonceCounts {
 public:
  explicit NonceCounts(size_t max_entries = 200000) : max_entries_(max_entries) {}

  // False if `nc` is lower than the highest nc seen with `nonce`; records it otherwise. An
  // equal nc is accepted: stateless REGISTERs are retransmitted byte for byte, and the
  // registrar treats such a repeat as a no-op.
  bool accept(std::string_view nonce, uint32_t nc, int64_t now, int64_t ttl);
  size_t size() const { return current_.used + previous_.used; }

 private:
  // Two generations rotated every nonce lifetime (or when full): O(1) per request, no scans,
  // and every nonce stays remembered for at least its lifetime unless the table overflows.
  // Each generation is an open-addressing table of (64-bit hash of the nonce, highest nc):
  // no allocation per nonce and one cache line per probe, where a node-based map cost an
  // allocation and several cache misses for every registration (~2.5 % of relais's CPU under
  // REGISTER load, perf). Nonces reaching here passed their MAC check, so they are ours and
  // cannot be chosen to collide; two sharing a hash (~1 in 10^9 for a full table) would only
  // make the later one's nc count from the other's.
  struct Slot {
    uint64_t key = 0;  // 0: empty
    uint32_t nc = 0;
  };
  struct Table {
    std::vector<Slot> slots;  // size a power of two, at most half full
    size_t used = 0;
    Slot* find(uint64_t key);  // the slot holding `key`, or the empty one where it would go
    void grow();
    void clear();
  };
  void rotate(int64_t now, int64_t ttl);
  Table current_, previous_;
  size_t max_entries_;
  int64_t rotated_at_ = 0;
};

}  // namespace relais
