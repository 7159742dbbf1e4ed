// srtp_session.cpp — libsrtp2 policies for the SDES suites, and in-place protect/unprotect.
#include "srtp_session.hpp"

#include "srtp_transform.hpp"

#include <srtp2/srtp.h>
#include <sys/random.h>

#include <algorithm>
#include <cstring>

namespace relais::media {

namespace {

// srtp_init() registers the crypto kernel once per process; sessions may then be created and
// used from any thread (each session by one thread at a time).
bool library_ready() {
  static const bool ok = srtp_init() == srtp_err_status_ok;
  return ok;
}

uint32_t rd32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

bool set_policy(SrtpSuite suite, srtp_policy_t& policy) {
  switch (suite) {
    case SrtpSuite::aes_cm_128_hmac_sha1_80:
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtp);
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
      return true;
    case SrtpSuite::aes_cm_128_hmac_sha1_32:
      // RFC 4568 §6.2.2 / RFC 3711 §5.2: the 32-bit tag is for SRTP only; SRTCP keeps 80 bits.
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&policy.rtp);
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
      return true;
    case SrtpSuite::aead_aes_128_gcm:
      // RFC 7714 §12: AEAD_AES_128_GCM is the 16-octet-tag variant.
      srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp);
      srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp);
      return true;
    case SrtpSuite::none:
      break;
  }
  return false;
}

SrtpSession::Result map_status(srtp_err_status_t st) {
  switch (st) {
    case srtp_err_status_ok:
      return SrtpSession::Result::ok;
    case srtp_err_status_auth_fail:
      return SrtpSession::Result::auth_failed;
    case srtp_err_status_replay_fail:
    case srtp_err_status_replay_old:
      return SrtpSession::Result::replayed;
    default:
      return SrtpSession::Result::malformed;
  }
}

}  // namespace

const char* srtp_suite_name(SrtpSuite suite) {
  switch (suite) {
    case SrtpSuite::aes_cm_128_hmac_sha1_80:
      return "AES_CM_128_HMAC_SHA1_80";
    case SrtpSuite::aes_cm_128_hmac_sha1_32:
      return "AES_CM_128_HMAC_SHA1_32";
    case SrtpSuite::aead_aes_128_gcm:
      return "AEAD_AES_128_GCM";
    case SrtpSuite::none:
      break;
  }
  return "";
}

std::optional<SrtpSuite> srtp_suite_from_name(std::string_view name) {
  for (SrtpSuite s : kSrtpSuites)
    if (name == srtp_suite_name(s)) return s;
  return std::nullopt;
}

size_t srtp_key_length(SrtpSuite suite) {
  switch (suite) {
    case SrtpSuite::aes_cm_128_hmac_sha1_80:
    case SrtpSuite::aes_cm_128_hmac_sha1_32:
      return SRTP_AES_ICM_128_KEY_LEN_WSALT;  // 16 + 14
    case SrtpSuite::aead_aes_128_gcm:
      return SRTP_AES_GCM_128_KEY_LEN_WSALT;  // 16 + 12
    case SrtpSuite::none:
      break;
  }
  return 0;
}

size_t srtp_tag_length(SrtpSuite suite) {
  switch (suite) {
    case SrtpSuite::aes_cm_128_hmac_sha1_80:
      return 10;
    case SrtpSuite::aes_cm_128_hmac_sha1_32:
      return 4;
    case SrtpSuite::aead_aes_128_gcm:
      return 16;
    case SrtpSuite::none:
      break;
  }
  return 0;
}

bool srtp_suite_available(SrtpSuite suite) {
  if (suite == SrtpSuite::none) return false;
  if (suite != SrtpSuite::aead_aes_128_gcm) return library_ready();
  // GCM exists only when libsrtp was built with a crypto library (Debian's: NSS). Probe once.
  static const bool gcm = [] {
    SrtpKey key;
    key.suite = SrtpSuite::aead_aes_128_gcm;
    std::string error;
    return SrtpSession::create(key, SrtpSession::Direction::outbound, error) != nullptr;
  }();
  return gcm;
}

bool srtp_random_key(SrtpSuite suite, SrtpKey& out) {
  out = SrtpKey{};
  out.suite = suite;
  size_t n = srtp_key_length(suite);
  if (n == 0) return false;
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(out.bytes.data() + got, n - got, 0);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

void SrtpSession::Dealloc::operator()(srtp_ctx_t_* ctx) const {
  if (ctx) srtp_dealloc(ctx);
}

SrtpSession::SrtpSession(srtp_ctx_t_* ctx, std::unique_ptr<SrtpTransform> native, const SrtpKey& key)
    : ctx_(ctx), native_(std::move(native)), key_(key) {}

SrtpSession::~SrtpSession() = default;

std::unique_ptr<SrtpSession> SrtpSession::create(const SrtpKey& key, Direction dir, std::string& error) {
  if (key.suite == SrtpSuite::aes_cm_128_hmac_sha1_80 || key.suite == SrtpSuite::aes_cm_128_hmac_sha1_32) {
    auto native = SrtpTransform::create(key);
    if (!native) {
      error = "OpenSSL refused the SRTP key";
      return nullptr;
    }
    return std::unique_ptr<SrtpSession>(new SrtpSession(nullptr, std::move(native), key));
  }
  if (!library_ready()) {
    error = "srtp_init failed";
    return nullptr;
  }
  srtp_policy_t policy;
  std::memset(&policy, 0, sizeof policy);
  if (!set_policy(key.suite, policy)) {
    error = "unknown SRTP suite";
    return nullptr;
  }
  std::array<uint8_t, kSrtpMaxKeyLength> material = key.bytes;  // libsrtp wants a mutable pointer
  policy.key = material.data();
  policy.ssrc.type = dir == Direction::inbound ? ssrc_any_inbound : ssrc_any_outbound;
  policy.window_size = 128;  // RFC 3711 §3.3.2 minimum, libsrtp's default
  // No repeated indexes on send: encrypting two different payloads under one index would
  // reuse keystream. A duplicate from the plain side is dropped instead (counted).
  policy.allow_repeat_tx = 0;
  policy.next = nullptr;
  srtp_t ctx = nullptr;
  srtp_err_status_t st = srtp_create(&ctx, &policy);
  std::memset(material.data(), 0, material.size());
  if (st != srtp_err_status_ok) {
    if (ctx) srtp_dealloc(ctx);
    error = "srtp_create failed (" + std::to_string(static_cast<int>(st)) + ")";
    return nullptr;
  }
  return std::unique_ptr<SrtpSession>(new SrtpSession(ctx, nullptr, key));
}

bool SrtpSession::known(uint32_t ssrc) {
  if (have_last_ && ssrc == last_ssrc_) return true;
  if (std::find(ssrcs_.begin(), ssrcs_.begin() + static_cast<long>(ssrc_count_), ssrc) ==
      ssrcs_.begin() + static_cast<long>(ssrc_count_))
    return false;
  last_ssrc_ = ssrc;
  have_last_ = true;
  return true;
}

void SrtpSession::remember(uint32_t ssrc) {
  if (known(ssrc) || ssrc_count_ >= kMaxSsrcs) return;
  ssrcs_[ssrc_count_++] = ssrc;
  last_ssrc_ = ssrc;
  have_last_ = true;
}

SrtpSession::Result SrtpSession::protect_rtp(uint8_t* data, uint32_t& len, size_t capacity) {
  if (len < 12 || len + kSrtpMaxTrailer > capacity) return Result::malformed;
  uint32_t ssrc = rd32(data + 8);
  if (!known(ssrc)) {
    if (ssrc_count_ >= kMaxSsrcs) return Result::too_many_ssrcs;
    remember(ssrc);
  }
  if (native_) return native_->protect_rtp(data, len);
  int n = static_cast<int>(len);
  Result r = map_status(srtp_protect(ctx_.get(), data, &n));
  if (r == Result::ok) len = static_cast<uint32_t>(n);
  return r;
}

SrtpSession::Result SrtpSession::protect_rtcp(uint8_t* data, uint32_t& len, size_t capacity) {
  if (len < 8 || len + kSrtpMaxTrailer > capacity) return Result::malformed;
  uint32_t ssrc = rd32(data + 4);
  if (!known(ssrc)) {
    if (ssrc_count_ >= kMaxSsrcs) return Result::too_many_ssrcs;
    remember(ssrc);
  }
  if (native_) return native_->protect_rtcp(data, len);
  int n = static_cast<int>(len);
  Result r = map_status(srtp_protect_rtcp(ctx_.get(), data, &n));
  if (r == Result::ok) len = static_cast<uint32_t>(n);
  return r;
}

// Inbound: an SSRC is remembered only once a packet of it authenticated, so forged packets
// cannot use up the SSRC budget of the real sender.
SrtpSession::Result SrtpSession::unprotect_rtp(uint8_t* data, uint32_t& len) {
  if (len < 12) return Result::malformed;
  uint32_t ssrc = rd32(data + 8);
  bool fresh = !known(ssrc);
  if (fresh && ssrc_count_ >= kMaxSsrcs) return Result::too_many_ssrcs;
  Result r = Result::ok;
  if (native_) {
    r = native_->unprotect_rtp(data, len);
    if (r == Result::ok && fresh) remember(ssrc);
    return r;
  }
  int n = static_cast<int>(len);
  r = map_status(srtp_unprotect(ctx_.get(), data, &n));
  if (r != Result::ok) return r;
  len = static_cast<uint32_t>(n);
  if (fresh) remember(ssrc);
  return r;
}

SrtpSession::Result SrtpSession::unprotect_rtcp(uint8_t* data, uint32_t& len) {
  if (len < 8) return Result::malformed;
  uint32_t ssrc = rd32(data + 4);
  bool fresh = !known(ssrc);
  if (fresh && ssrc_count_ >= kMaxSsrcs) return Result::too_many_ssrcs;
  Result r = Result::ok;
  if (native_) {
    r = native_->unprotect_rtcp(data, len);
    if (r == Result::ok && fresh) remember(ssrc);
    return r;
  }
  int n = static_cast<int>(len);
  r = map_status(srtp_unprotect_rtcp(ctx_.get(), data, &n));
  if (r != Result::ok) return r;
  len = static_cast<uint32_t>(n);
  if (fresh) remember(ssrc);
  return r;
}

}  // namespace relais::media
