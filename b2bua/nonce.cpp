// nonce.cpp — HMAC-signed nonces (OpenSSL) and nc tracking.
#include "nonce.hpp"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <openssl/evp.h>

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

void NonceIssuer::MdCtxFree::operator()(evp_md_ctx_st* c) const { EVP_MD_CTX_free(c); }

NonceIssuer::NonceIssuer(std::string secret, int64_t ttl_seconds) : secret_(std::move(secret)), ttl_(ttl_seconds) {
  if (secret_.empty()) {
    // No configured secret: a random one per process. Nonces then only verify on this node
    // and are invalid after a restart (clients just get a fresh challenge).
    unsigned char random[32];
    RAND_bytes(random, sizeof random);
    secret_ = to_hex(random, sizeof random);
  }
  RAND_bytes(reinterpret_cast<unsigned char*>(&counter_), sizeof counter_);
  // RFC 2104: K' = H(K) if longer than the block, padded to 64 bytes; inner = H(K' ^ ipad || m),
  // outer = H(K' ^ opad || inner).
  unsigned char key[64] = {0};
  if (secret_.size() > sizeof key) {
    unsigned len = 0;
    EVP_Digest(secret_.data(), secret_.size(), key, &len, EVP_sha256(), nullptr);
  } else {
    memcpy(key, secret_.data(), secret_.size());
  }
  unsigned char ipad[64], opad[64];
  for (int i = 0; i < 64; ++i) {
    ipad[i] = key[i] ^ 0x36;
    opad[i] = key[i] ^ 0x5c;
  }
  inner_.reset(EVP_MD_CTX_new());
  outer_.reset(EVP_MD_CTX_new());
  scratch_.reset(EVP_MD_CTX_new());
  EVP_DigestInit_ex(inner_.get(), EVP_sha256(), nullptr);
  EVP_DigestUpdate(inner_.get(), ipad, sizeof ipad);
  EVP_DigestInit_ex(outer_.get(), EVP_sha256(), nullptr);
  EVP_DigestUpdate(outer_.get(), opad, sizeof opad);
}

std::string NonceIssuer::mac(std::string_view body) const {
  unsigned char inner[EVP_MAX_MD_SIZE], out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_MD_CTX* c = scratch_.get();
  EVP_MD_CTX_copy_ex(c, inner_.get());
  EVP_DigestUpdate(c, body.data(), body.size());
  EVP_DigestFinal_ex(c, inner, &len);
  EVP_MD_CTX_copy_ex(c, outer_.get());
  EVP_DigestUpdate(c, inner, len);
  EVP_DigestFinal_ex(c, out, &len);
  return to_hex(out, kMacHex / 2);
}

std::string NonceIssuer::issue(int64_t now) const {
  char stamp[kStampHex + 1];
  snprintf(stamp, sizeof stamp, "%016llx", static_cast<unsigned long long>(now));
  uint64_t unique = ++counter_;
  std::string body = std::string(stamp) + to_hex(reinterpret_cast<const unsigned char*>(&unique), sizeof unique);
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
