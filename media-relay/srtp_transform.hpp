// srtp_transform.hpp — the RFC 3711 AES_CM_128 + HMAC-SHA1 transform (SRTP and SRTCP) on
// OpenSSL libcrypto, for the two SDES suites AES_CM_128_HMAC_SHA1_80 and _32.
// Why not libsrtp2 for these: Debian's libsrtp2 2.5 is built against NSS, whose AES-ICM and
// HMAC create a PK11 context per packet: 6–9 µs per packet measured here, against ~1 µs for
// the same work through OpenSSL EVP (docs/decisions.md). libsrtp2 still runs AEAD_AES_128_GCM
// and is the reference the tests check this code against.
// One owner thread; a session carries at most kMaxStreams SSRCs (SrtpSession bounds them).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "srtp_session.hpp"

struct evp_cipher_ctx_st;
struct evp_md_ctx_st;

namespace relais::media {

class SrtpTransform {
 public:
  using Result = SrtpSession::Result;
  // nullptr for a suite it does not implement (GCM) or when OpenSSL refuses.
  static std::unique_ptr<SrtpTransform> create(const SrtpKey& key);
  ~SrtpTransform();
  SrtpTransform(const SrtpTransform&) = delete;
  SrtpTransform& operator=(const SrtpTransform&) = delete;

  // In place; the caller guarantees room for the trailer (tag, SRTCP index).
  Result protect_rtp(uint8_t* data, uint32_t& len);
  Result unprotect_rtp(uint8_t* data, uint32_t& len);
  Result protect_rtcp(uint8_t* data, uint32_t& len);
  Result unprotect_rtcp(uint8_t* data, uint32_t& len);

 private:
  struct Replay {                 // RFC 3711 §3.3.2: highest index and a 128-packet window
    bool started = false;
    uint64_t highest = 0;
    uint64_t bits[2] = {0, 0};    // bit k: highest - k was seen
    bool check(uint64_t index) const;
    void accept(uint64_t index);
  };
  struct Stream {
    uint32_t ssrc = 0;
    uint32_t roc = 0;             // rollover counter of `s_l`
    uint16_t s_l = 0;             // highest sequence number (RFC 3711 §3.3.1)
    bool started = false;
    Replay rtp, rtcp;
    uint32_t rtcp_next = 0;       // outbound SRTCP index
  };
  struct Keys {                   // one direction's session keys (RTP or RTCP)
    evp_cipher_ctx_st* cipher = nullptr;
    evp_md_ctx_st* inner = nullptr;  // HMAC-SHA1 state after the key's ipad/opad block
    evp_md_ctx_st* outer = nullptr;
    std::array<uint8_t, 14> salt{};
  };

  SrtpTransform() = default;
  bool derive(const SrtpKey& key, int label_base, Keys& out);
  Stream* find(uint32_t ssrc);
  Stream* add(const Stream& stream);  // the caller checked kMaxSsrcs; becomes the cached last_
  uint64_t estimate(const Stream& s, uint16_t seq, uint32_t& roc) const;
  bool crypt(Keys& k, uint32_t ssrc, uint64_t index, uint8_t* data, size_t n);
  bool tag(Keys& k, const uint8_t* data, size_t n, const uint8_t* extra, size_t extra_n, uint8_t out[20]);

  Keys rtp_, rtcp_;
  size_t tag_len_ = 10;
  evp_md_ctx_st* scratch_ = nullptr;
  std::vector<Stream> streams_;
  size_t last_ = 0;
};

}  // namespace relais::media
