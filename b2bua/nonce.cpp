// nonce.cpp — HMAC-signed nonces (OpenSSL) and nc tracking.
#include "nonce.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <functional>

// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, whose context copy is
// the cost we avoid here (see nonce.hpp). They remain in OpenSSL 3's API.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace relais {

namespace {
constexpr size_t kStampHex = 16;
constexpr size_t kRandomHex = 16;
constexpr size_t kMacHex = 32;
static_assert(kStampHex + kRandomHex + kMacHex == NonceIssuer::kLength);

const char kDigits[] = "0123456789abcdef";

void hex_into(const unsigned char* data, size_t len, char* out) {
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
}

std::string to_hex(const unsigned char* data, size_t len) {
  std::string out(len * 2, '0');
  hex_into(data, len, out.data());
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
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
  RAND_bytes(reinterpret_cast<unsigned char*>(&counter_), sizeof counter_);
  // RFC 2104: K' = H(K) if longer than the block, padded to 64 bytes; inner = H(K' ^ ipad || m),
  // outer = H(K' ^ opad || inner).
  unsigned char key[64] = {0};
  if (secret_.size() > sizeof key) {
    SHA256(reinterpret_cast<const unsigned char*>(secret_.data()), secret_.size(), key);
  } else {
    memcpy(key, secret_.data(), secret_.size());
  }
  unsigned char ipad[64], opad[64];
  for (int i = 0; i < 64; ++i) {
    ipad[i] = key[i] ^ 0x36;
    opad[i] = key[i] ^ 0x5c;
  }
  SHA256_Init(&inner_);
  SHA256_Update(&inner_, ipad, sizeof ipad);
  SHA256_Init(&outer_);
  SHA256_Update(&outer_, opad, sizeof opad);
}

void NonceIssuer::mac(std::string_view body, char out[kMacHex]) const {
  unsigned char inner[SHA256_DIGEST_LENGTH], full[SHA256_DIGEST_LENGTH];
  SHA256_CTX c = inner_;
  SHA256_Update(&c, body.data(), body.size());
  SHA256_Final(inner, &c);
  c = outer_;
  SHA256_Update(&c, inner, sizeof inner);
  SHA256_Final(full, &c);
  OPENSSL_cleanse(&c, sizeof c);
  hex_into(full, kMacHex / 2, out);
}

void NonceIssuer::issue(int64_t now, char out[kLength]) const {
  auto stamp = static_cast<uint64_t>(now);
  for (size_t i = 0; i < kStampHex; ++i) out[i] = kDigits[(stamp >> (60 - 4 * i)) & 0xf];
  uint64_t unique = ++counter_;
  hex_into(reinterpret_cast<const unsigned char*>(&unique), sizeof unique, out + kStampHex);
  mac(std::string_view(out, kStampHex + kRandomHex), out + kStampHex + kRandomHex);
}

std::string NonceIssuer::issue(int64_t now) const {
  std::string out(kLength, '0');
  issue(now, out.data());
  return out;
}

NonceIssuer::Check NonceIssuer::check(std::string_view nonce, int64_t now) const {
  if (nonce.size() != kLength) return Check::invalid;
  std::string_view body = nonce.substr(0, kStampHex + kRandomHex);
  char expected[kMacHex];
  mac(body, expected);
  if (CRYPTO_memcmp(expected, nonce.data() + body.size(), kMacHex) != 0) return Check::invalid;
  uint64_t issued = 0;
  for (size_t i = 0; i < kStampHex; ++i) {
    int v = hex_value(nonce[i]);
    if (v < 0) return Check::invalid;
    issued = issued << 4 | static_cast<uint64_t>(v);
  }
  int64_t age = now - static_cast<int64_t>(issued);
  if (age < -5) return Check::invalid;  // from the future beyond clock skew between nodes
  if (age > ttl_) return Check::stale;
  return Check::valid;
}

NonceCounts::Slot* NonceCounts::Table::find(uint64_t key) {
  size_t mask = slots.size() - 1;
  for (size_t i = static_cast<size_t>(key) & mask;; i = (i + 1) & mask)
    if (slots[i].key == key || slots[i].key == 0) return &slots[i];
}

void NonceCounts::Table::grow() {
  std::vector<Slot> old = std::move(slots);
  slots.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
  for (const Slot& s : old)
    if (s.key) *find(s.key) = s;
}

void NonceCounts::Table::clear() {
  std::fill(slots.begin(), slots.end(), Slot{});
  used = 0;
}

bool NonceCounts::accept(std::string_view nonce, uint32_t nc, int64_t now, int64_t ttl) {
  if (now - rotated_at_ >= ttl || current_.used >= max_entries_ / 2) rotate(now, ttl);
  uint64_t key = std::hash<std::string_view>{}(nonce);
  if (key == 0) key = 1;
  if (current_.slots.empty()) current_.grow();
  Slot* slot = current_.find(key);
  if (slot->key == key) {
    uint32_t highest = slot->nc;
    slot->nc = std::max(highest, nc);
    return nc >= highest;
  }
  uint32_t highest = 0;
  if (!previous_.slots.empty())
    if (const Slot* old = previous_.find(key); old->key == key) highest = old->nc;
  if (2 * (current_.used + 1) > current_.slots.size()) {
    current_.grow();
    slot = current_.find(key);
  }
  *slot = Slot{key, std::max(highest, nc)};
  ++current_.used;
  return nc >= highest;
}

void NonceCounts::rotate(int64_t now, int64_t) {
  // A table that fills within one lifetime means a flood: the oldest generation goes, which
  // at worst lets one old nonce be replayed once, better than unbounded memory. The tables
  // swap and the new current one is wiped, keeping its memory (no frees on the SIP loop).
  std::swap(previous_, current_);
  current_.clear();
  rotated_at_ = now;
}

}  // namespace relais
