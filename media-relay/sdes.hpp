// sdes.hpp — SDP Security Descriptions (RFC 4568): reading and writing one a=crypto attribute.
// Only what we can honour is accepted: one inline key of the suite's exact length, an optional
// lifetime, no MKI, no session parameters but WSH (RFC 4568 §6.3.7, a hint we may ignore).
// Anything else makes the line unusable (RFC 4568 §6.1: such a line must not be used), never an
// exception.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "srtp_session.hpp"

namespace relais::media {

struct CryptoAttr {
  uint32_t tag = 0;  // 1..999999999 (RFC 4568 §9.1: 1*9DIGIT)
  SrtpKey key;       // suite + key material
  bool operator==(const CryptoAttr&) const = default;
};

// `value` is the attribute value after "a=crypto:", e.g.
// "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20".
// nullopt + error for a line we cannot use (unknown suite, bad base64, wrong key length, MKI...).
std::optional<CryptoAttr> sdes_parse(std::string_view value, std::string& error);

// "a=crypto:<tag> <suite> inline:<base64 key||salt>" (no lifetime, no MKI).
std::string sdes_format(const CryptoAttr& attr);

// RFC 4648 base64 with padding; decode refuses any other character and bad padding.
std::string base64_encode(const uint8_t* data, size_t len);
bool base64_decode(std::string_view text, uint8_t* out, size_t cap, size_t& len);

}  // namespace relais::media
