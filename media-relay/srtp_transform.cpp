// srtp_transform.cpp — RFC 3711 §3–4 with AES-128 in counter mode and HMAC-SHA1, key
// derivation rate 0 (RFC 4568 §6.3.6: KDR absent = 0; we refuse lines that set it).
#include "srtp_transform.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>

namespace relais::media {

namespace {

constexpr size_t kWindow = 128;

uint32_t rd32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
void wr32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24), p[1] = uint8_t(v >> 16), p[2] = uint8_t(v >> 8), p[3] = uint8_t(v);
}

// RFC 3711 §4.3.1 with kdr 0: x = label (right-aligned key_id, r = 0) XOR master salt;
// n bytes of AES-CM keystream under the master key at IV x || 0x0000.
bool prf(const uint8_t master_key[16], const uint8_t master_salt[14], uint8_t label, uint8_t* out, size_t n) {
  uint8_t iv[16] = {};
  std::memcpy(iv, master_salt, 14);
  iv[7] ^= label;
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (!c) return false;
  uint8_t zeros[32] = {};
  int len = 0;
  bool ok = EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), nullptr, master_key, iv) == 1 &&
            EVP_EncryptUpdate(c, out, &len, zeros, static_cast<int>(n)) == 1;
  EVP_CIPHER_CTX_free(c);
  return ok;
}

// Header length of an RTP packet (RFC 3550 §5.1, §5.3.1), 0 when it does not fit in len.
size_t rtp_header_length(const uint8_t* p, size_t len) {
  if (len < 12) return 0;
  size_t h = 12 + 4u * (p[0] & 0x0f);
  if (p[0] & 0x10) {
    if (len < h + 4) return 0;
    h += 4 + 4u * ((size_t(p[h + 2]) << 8) | p[h + 3]);
  }
  return h <= len ? h : 0;
}

}  // namespace

bool SrtpTransform::Replay::check(uint64_t index) const {
  if (!started || index > highest) return true;
  uint64_t delta = highest - index;
  if (delta >= kWindow) return false;
  return !((bits[delta / 64] >> (delta % 64)) & 1);
}

void SrtpTransform::Replay::accept(uint64_t index) {
  if (!started) {
    started = true;
    highest = index;
    bits[0] = 1;
    bits[1] = 0;
    return;
  }
  if (index > highest) {
    uint64_t shift = index - highest;
    if (shift >= kWindow) {
      bits[0] = bits[1] = 0;
    } else if (shift >= 64) {
      bits[1] = bits[0] << (shift - 64);
      bits[0] = 0;
    } else {
      bits[1] = (bits[1] << shift) | (bits[0] >> (64 - shift));
      bits[0] <<= shift;
    }
    bits[0] |= 1;
    highest = index;
    return;
  }
  uint64_t delta = highest - index;
  bits[delta / 64] |= uint64_t(1) << (delta % 64);
}

std::unique_ptr<SrtpTransform> SrtpTransform::create(const SrtpKey& key) {
  if (key.suite != SrtpSuite::aes_cm_128_hmac_sha1_80 && key.suite != SrtpSuite::aes_cm_128_hmac_sha1_32) return nullptr;
  std::unique_ptr<SrtpTransform> t(new SrtpTransform());
  t->tag_len_ = srtp_tag_length(key.suite);
  t->scratch_ = EVP_MD_CTX_new();
  if (!t->scratch_ || !t->derive(key, 0, t->rtp_) || !t->derive(key, 3, t->rtcp_)) return nullptr;
  return t;
}

SrtpTransform::~SrtpTransform() {
  for (Keys* k : {&rtp_, &rtcp_}) {
    EVP_CIPHER_CTX_free(k->cipher);
    EVP_MD_CTX_free(k->inner);
    EVP_MD_CTX_free(k->outer);
  }
  EVP_MD_CTX_free(scratch_);
}

// Labels 0/1/2 (SRTP) or 3/4/5 (SRTCP): encryption key, authentication key, salt.
bool SrtpTransform::derive(const SrtpKey& key, int label_base, Keys& out) {
  const uint8_t* master_key = key.bytes.data();
  const uint8_t* master_salt = key.bytes.data() + 16;
  uint8_t enc[16], auth[20];
  bool ok = prf(master_key, master_salt, uint8_t(label_base), enc, sizeof enc) &&
            prf(master_key, master_salt, uint8_t(label_base + 1), auth, sizeof auth) &&
            prf(master_key, master_salt, uint8_t(label_base + 2), out.salt.data(), out.salt.size());
  out.cipher = EVP_CIPHER_CTX_new();
  out.inner = EVP_MD_CTX_new();
  out.outer = EVP_MD_CTX_new();
  ok = ok && out.cipher && out.inner && out.outer && EVP_EncryptInit_ex(out.cipher, EVP_aes_128_ctr(), nullptr, enc, nullptr) == 1;
  // HMAC (RFC 2104) with the pads hashed once: each packet then copies two SHA-1 states
  // instead of re-keying an HMAC context.
  uint8_t ipad[64], opad[64];
  std::memset(ipad, 0x36, sizeof ipad);
  std::memset(opad, 0x5c, sizeof opad);
  for (size_t i = 0; i < sizeof auth; ++i) ipad[i] ^= auth[i], opad[i] ^= auth[i];
  ok = ok && EVP_DigestInit_ex(out.inner, EVP_sha1(), nullptr) == 1 && EVP_DigestUpdate(out.inner, ipad, 64) == 1 &&
       EVP_DigestInit_ex(out.outer, EVP_sha1(), nullptr) == 1 && EVP_DigestUpdate(out.outer, opad, 64) == 1;
  OPENSSL_cleanse(enc, sizeof enc);
  OPENSSL_cleanse(auth, sizeof auth);
  OPENSSL_cleanse(ipad, sizeof ipad);
  OPENSSL_cleanse(opad, sizeof opad);
  return ok;
}

SrtpTransform::Stream* SrtpTransform::find(uint32_t ssrc) {
  if (last_ < streams_.size() && streams_[last_].ssrc == ssrc) return &streams_[last_];
  for (size_t i = 0; i < streams_.size(); ++i) {
    if (streams_[i].ssrc == ssrc) {
      last_ = i;
      return &streams_[i];
    }
  }
  return nullptr;
}

SrtpTransform::Stream* SrtpTransform::add(const Stream& stream) {
  streams_.push_back(stream);
  last_ = streams_.size() - 1;
  return &streams_.back();
}

// RFC 3711 §3.3.1: the rollover counter v that puts seq closest to the highest index seen.
uint64_t SrtpTransform::estimate(const Stream& s, uint16_t seq, uint32_t& roc) const {
  roc = s.roc;
  if (!s.started) return seq;
  if (s.s_l < 32768) {
    if (int(seq) - int(s.s_l) > 32768 && roc > 0) --roc;
  } else if (int(s.s_l) - 32768 > int(seq)) {
    ++roc;
  }
  return (uint64_t(roc) << 16) | seq;
}

// AES-CM IV (RFC 3711 §4.1.1): salt XOR SSRC·2^64 XOR index·2^16.
bool SrtpTransform::crypt(Keys& k, uint32_t ssrc, uint64_t index, uint8_t* data, size_t n) {
  uint8_t iv[16] = {};
  std::memcpy(iv, k.salt.data(), 14);
  iv[4] ^= uint8_t(ssrc >> 24), iv[5] ^= uint8_t(ssrc >> 16), iv[6] ^= uint8_t(ssrc >> 8), iv[7] ^= uint8_t(ssrc);
  for (int i = 0; i < 6; ++i) iv[13 - i] ^= uint8_t(index >> (8 * i));
  int out = 0;
  return EVP_EncryptInit_ex(k.cipher, nullptr, nullptr, nullptr, iv) == 1 &&
         (n == 0 || EVP_EncryptUpdate(k.cipher, data, &out, data, static_cast<int>(n)) == 1);
}

bool SrtpTransform::tag(Keys& k, const uint8_t* data, size_t n, const uint8_t* extra, size_t extra_n, uint8_t out[20]) {
  uint8_t inner[20];
  unsigned len = 0;
  return EVP_MD_CTX_copy_ex(scratch_, k.inner) == 1 && EVP_DigestUpdate(scratch_, data, n) == 1 &&
         EVP_DigestUpdate(scratch_, extra, extra_n) == 1 && EVP_DigestFinal_ex(scratch_, inner, &len) == 1 &&
         EVP_MD_CTX_copy_ex(scratch_, k.outer) == 1 && EVP_DigestUpdate(scratch_, inner, sizeof inner) == 1 &&
         EVP_DigestFinal_ex(scratch_, out, &len) == 1;
}

SrtpTransform::Result SrtpTransform::protect_rtp(uint8_t* data, uint32_t& len) {
  size_t h = rtp_header_length(data, len);
  if (!h) return Result::malformed;
  uint32_t ssrc = rd32(data + 8);
  uint16_t seq = uint16_t((data[2] << 8) | data[3]);
  Stream* s = find(ssrc);
  if (!s) {
    if (streams_.size() >= SrtpSession::kMaxSsrcs) return Result::too_many_ssrcs;
    Stream fresh;
    fresh.ssrc = ssrc;
    s = add(fresh);
  }
  uint32_t roc = 0;
  uint64_t index = estimate(*s, seq, roc);
  // Never the same index twice under one key: that would reuse keystream.
  if (!s->rtp.check(index)) return Result::replayed;
  if (!crypt(rtp_, ssrc, index, data + h, len - h)) return Result::malformed;
  uint8_t roc_be[4], mac[20];
  wr32(roc_be, roc);
  if (!tag(rtp_, data, len, roc_be, 4, mac)) return Result::malformed;
  std::memcpy(data + len, mac, tag_len_);
  len += static_cast<uint32_t>(tag_len_);
  s->rtp.accept(index);
  if (!s->started || index > ((uint64_t(s->roc) << 16) | s->s_l)) s->roc = roc, s->s_l = seq;
  s->started = true;
  return Result::ok;
}

SrtpTransform::Result SrtpTransform::unprotect_rtp(uint8_t* data, uint32_t& len) {
  if (len < tag_len_ + 12) return Result::malformed;
  size_t n = len - tag_len_;
  size_t h = rtp_header_length(data, n);
  if (!h) return Result::malformed;
  uint32_t ssrc = rd32(data + 8);
  uint16_t seq = uint16_t((data[2] << 8) | data[3]);
  Stream fresh;
  Stream* s = find(ssrc);
  if (!s) {
    if (streams_.size() >= SrtpSession::kMaxSsrcs) return Result::too_many_ssrcs;
    fresh.ssrc = ssrc;
    s = &fresh;  // kept only once a packet of it authenticates
  }
  uint32_t roc = 0;
  uint64_t index = estimate(*s, seq, roc);
  if (!s->rtp.check(index)) return Result::replayed;
  uint8_t roc_be[4], mac[20];
  wr32(roc_be, roc);
  if (!tag(rtp_, data, n, roc_be, 4, mac)) return Result::malformed;
  if (CRYPTO_memcmp(mac, data + n, tag_len_) != 0) return Result::auth_failed;
  if (!crypt(rtp_, ssrc, index, data + h, n - h)) return Result::malformed;
  len = static_cast<uint32_t>(n);
  if (s == &fresh) s = add(fresh);
  s->rtp.accept(index);
  if (!s->started || index > ((uint64_t(s->roc) << 16) | s->s_l)) s->roc = roc, s->s_l = seq;
  s->started = true;
  return Result::ok;
}

// SRTCP (RFC 3711 §3.4): the first 8 octets stay clear, then E||index (31 bits), then the
// 80-bit tag (also for the _32 suite: RFC 4568 §6.2.2).
SrtpTransform::Result SrtpTransform::protect_rtcp(uint8_t* data, uint32_t& len) {
  if (len < 8) return Result::malformed;
  uint32_t ssrc = rd32(data + 4);
  Stream* s = find(ssrc);
  if (!s) {
    if (streams_.size() >= SrtpSession::kMaxSsrcs) return Result::too_many_ssrcs;
    Stream fresh;
    fresh.ssrc = ssrc;
    s = add(fresh);
  }
  uint32_t index = s->rtcp_next & 0x7fffffff;
  if (!crypt(rtcp_, ssrc, index, data + 8, len - 8)) return Result::malformed;
  wr32(data + len, 0x80000000u | index);
  len += 4;
  uint8_t mac[20];
  if (!tag(rtcp_, data, len, nullptr, 0, mac)) return Result::malformed;
  std::memcpy(data + len, mac, 10);
  len += 10;
  s->rtcp_next = (index + 1) & 0x7fffffff;
  return Result::ok;
}

SrtpTransform::Result SrtpTransform::unprotect_rtcp(uint8_t* data, uint32_t& len) {
  if (len < 8 + 4 + 10) return Result::malformed;
  size_t n = len - 10;
  uint32_t e_index = rd32(data + n - 4);
  uint32_t index = e_index & 0x7fffffff;
  uint32_t ssrc = rd32(data + 4);
  Stream fresh;
  Stream* s = find(ssrc);
  if (!s) {
    if (streams_.size() >= SrtpSession::kMaxSsrcs) return Result::too_many_ssrcs;
    fresh.ssrc = ssrc;
    s = &fresh;
  }
  if (!s->rtcp.check(index)) return Result::replayed;
  uint8_t mac[20];
  if (!tag(rtcp_, data, n, nullptr, 0, mac)) return Result::malformed;
  if (CRYPTO_memcmp(mac, data + n, 10) != 0) return Result::auth_failed;
  if ((e_index & 0x80000000u) && !crypt(rtcp_, ssrc, index, data + 8, n - 4 - 8)) return Result::malformed;
  len = static_cast<uint32_t>(n - 4);
  if (s == &fresh) s = add(fresh);
  s->rtcp.accept(index);
  return Result::ok;
}

}  // namespace relais::media
