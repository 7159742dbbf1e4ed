// srtp_session.hpp — one direction of SRTP/SRTCP for one side of a stream pair, around libsrtp2's
// srtp_t (RAII: srtp_dealloc). Inbound sessions decrypt and authenticate what a side sends us;
// outbound sessions protect what we send to it. The suites are the SDES ones (RFC 4568 §6.2,
// RFC 7714 §12 for GCM); keys are master key || master salt as carried in a=crypto. The
// AES-CM suites run on srtp_transform.hpp (OpenSSL), GCM on libsrtp2.
// One owner thread per session (the worker that owns the pair): libsrtp keeps no shared
// mutable state between sessions once srtp_init() has run.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct srtp_ctx_t_;

namespace relais::media {

class SrtpTransform;

enum class SrtpSuite : uint8_t { none, aes_cm_128_hmac_sha1_80, aes_cm_128_hmac_sha1_32, aead_aes_128_gcm };

// Every suite we may negotiate, in the order we prefer them when we offer.
inline constexpr SrtpSuite kSrtpSuites[] = {SrtpSuite::aes_cm_128_hmac_sha1_80, SrtpSuite::aes_cm_128_hmac_sha1_32,
                                           SrtpSuite::aead_aes_128_gcm};

// libsrtp may write this much after a packet it protects (tag, MKI, SRTCP index): a buffer must
// hold the packet plus this (SRTP_MAX_TRAILER_LEN + 4 in srtp.h).
inline constexpr size_t kSrtpMaxTrailer = 16 + 128 + 4;
inline constexpr size_t kSrtpMaxKeyLength = 30;

struct SrtpKey {
  SrtpSuite suite = SrtpSuite::none;
  std::array<uint8_t, kSrtpMaxKeyLength> bytes{};  // master key || salt, srtp_key_length() used
  bool operator==(const SrtpKey&) const = default;
};

// What a worker does with one side of a stream pair: relay plain RTP, decrypt what the side
// sends with `rx` and protect what goes to it with `tx`, or (SRTP offered, no answer yet)
// drop what it sends because no key can authenticate it.
struct SideSrtp {
  enum class Mode : uint8_t { plain, srtp, pending };
  Mode mode = Mode::plain;
  SrtpKey rx, tx;
  bool operator==(const SideSrtp&) const = default;
};

const char* srtp_suite_name(SrtpSuite suite);  // the SDES name, "" for none
std::optional<SrtpSuite> srtp_suite_from_name(std::string_view name);
size_t srtp_key_length(SrtpSuite suite);        // key + salt bytes: 30, or 28 for GCM
size_t srtp_tag_length(SrtpSuite suite);        // SRTP auth tag added to each RTP packet
// Whether this libsrtp build can run the suite (GCM needs a crypto backend: OpenSSL or NSS).
bool srtp_suite_available(SrtpSuite suite);
// A fresh random key for the suite (getrandom); false if the kernel gave no randomness.
bool srtp_random_key(SrtpSuite suite, SrtpKey& out);

class SrtpSession {
 public:
  enum class Direction { inbound, outbound };
  enum class Result { ok, auth_failed, replayed, too_many_ssrcs, malformed };
  // Distinct SSRCs one session carries; a new SSRC beyond it is refused. libsrtp allocates a
  // stream per SSRC: without a bound, a plain RTP side sending random SSRCs would grow the
  // outbound session without limit.
  static constexpr size_t kMaxSsrcs = 32;

  // nullptr + error when libsrtp refuses the key or suite.
  static std::unique_ptr<SrtpSession> create(const SrtpKey& key, Direction dir, std::string& error);
  ~SrtpSession();
  SrtpSession(const SrtpSession&) = delete;
  SrtpSession& operator=(const SrtpSession&) = delete;

  // In place. protect: `capacity` is the buffer's size; the packet grows by the trailer.
  // unprotect: len shrinks to the plain packet. Anything but ok leaves the packet unusable.
  Result protect_rtp(uint8_t* data, uint32_t& len, size_t capacity);
  Result unprotect_rtp(uint8_t* data, uint32_t& len);
  Result protect_rtcp(uint8_t* data, uint32_t& len, size_t capacity);
  Result unprotect_rtcp(uint8_t* data, uint32_t& len);

  const SrtpKey& key() const { return key_; }

 private:
  struct Dealloc {
    void operator()(srtp_ctx_t_* ctx) const;  // srtp_dealloc
  };
  SrtpSession(srtp_ctx_t_* ctx, std::unique_ptr<SrtpTransform> native, const SrtpKey& key);
  bool known(uint32_t ssrc);     // seen before (and caches it as the last one)
  void remember(uint32_t ssrc);  // no-op when full

  // AES-CM suites run on our OpenSSL transform (srtp_transform.hpp says why), GCM on libsrtp2.
  std::unique_ptr<srtp_ctx_t_, Dealloc> ctx_;
  std::unique_ptr<SrtpTransform> native_;
  SrtpKey key_;
  std::array<uint32_t, kMaxSsrcs> ssrcs_{};
  size_t ssrc_count_ = 0;
  uint32_t last_ssrc_ = 0;
  bool have_last_ = false;
};

}  // namespace relais::media
