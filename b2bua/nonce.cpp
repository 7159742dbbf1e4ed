// nonce.cpp — HMAC-signed nonces (OpenSSL) and nc tracking.
#include "nonce.hpp"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace relais {

namespace {
constexpr size_t kStampHex = 16;
constexpr size_t kRandomHex = 16;
constexpr size_t kMacHex = 32;
constexpr size_t kNonceLen = kStampHex + kRandomHex + kMacHex;

std::string to_hex(const unsigned char* data, size_t len) {
  static const char digits[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 0xf];
  }
  return out;
}
}  // namespace

NonceIssuer::NonceIssuer(std::string secret, int64_t ttl_seconds) : secret_(std::move(secret)), ttl_(ttl_seconds) {
  if (secret_.empty()) {
    // No configured secret: a random one per process. Nonces then only verify on this node
    // and are invalid after a restart (clients just get a fresh challenge).
    unsigned char random[32];
    RAND_bytes(random, sizeof random);
    secret_ = to_hex(random, sizeof random);
  }
}

std::string NonceIssuer::mac(std::string_view body) const {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), out, &len);
  return to_hex(out, kMacHex / 2);
}

std::string NonceIssuer::issue(int64_t now) const {
  char stamp[kStampHex + 1];
  snprintf(stamp, sizeof stamp, "%016llx", static_cast<unsigned long long>(now));
  unsigned char random[kRandomHex / 2];
  RAND_bytes(random, sizeof random);
  std::string body = std::string(stamp) + to_hex(random, sizeof random);
  return body + mac(body);
}

NonceIssuer::Check NonceIssuer::check(std::string_view nonce, int64_t now) const {
  if (nonce.size() != kNonceLen) return Check::invalid;
  std::string_view body = nonce.substr(0, kStampHex + kRandomHex);
  std::string expected = mac(body);
  if (CRYPTO_memcmp(expected.data(), nonce.data() + body.size(), kMacHex) != 0) return Check::invalid;
  std::string stamp(nonce.substr(0, kStampHex));
  char* end = nullptr;
  unsigned long long issued = strtoull(stamp.c_str(), &end, 16);
  if (end != stamp.c_str() + kStampHex) return Check::invalid;
  int64_t age = now - static_cast<int64_t>(issued);
  if (age < -5) return Check::invalid;  // from the future beyond clock skew between nodes
  if (age > ttl_) return Check::stale;
  return Check::valid;
}

bool NonceCounts::accept(std::string_view nonce, uint32_t nc, int64_t now, int64_t ttl) {
  if (now - rotated_at_ >= ttl || current_.size() >= max_entries_ / 2) rotate(now, ttl);
  std::string key(nonce);
  auto [it, inserted] = current_.try_emplace(key, 0);
  uint32_t highest = it->second;
  if (inserted) {
    auto old = previous_.find(key);
    if (old != previous_.end()) highest = old->second;
  }
  it->second = std::max(highest, nc);
  return nc >= highest;
}

void NonceCounts::rotate(int64_t now, int64_t) {
  // A table that fills within one lifetime means a flood: the oldest generation goes, which
  // at worst lets one old nonce be replayed once, better than unbounded memory.
  previous_ = std::move(current_);
  current_.clear();
  rotated_at_ = now;
}

}  // namespace relais
