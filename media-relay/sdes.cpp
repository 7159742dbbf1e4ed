// sdes.cpp — a=crypto (RFC 4568 §9.1 grammar):
//   tag SP crypto-suite SP key-params *(SP session-param)
//   key-params = "inline:" key-salt ["|" lifetime] ["|" mki-value ":" mki-length]
#include "sdes.hpp"

#include <charconv>

namespace relais::media {

namespace {

constexpr size_t kMaxValue = 512;
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// RFC 4568 §6.1: the lifetime is a packet count, optionally as a power of two. We never rekey,
// and libsrtp stops at its own 2^48 limit, so only the syntax matters; 2^0..2^48 or a count.
bool valid_lifetime(std::string_view s) {
  if (s.substr(0, 2) == "2^") {
    uint32_t exp = 0;
    std::string_view e = s.substr(2);
    auto [p, ec] = std::from_chars(e.data(), e.data() + e.size(), exp);
    return all_digits(e) && ec == std::errc() && p == e.data() + e.size() && exp <= 48;
  }
  return all_digits(s) && s.size() <= 15;
}

}  // namespace

std::string base64_encode(const uint8_t* data, size_t len) {
  std::string out;
  out.reserve((len + 2) / 3 * 4);
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = uint32_t(data[i]) << 16;
    if (i + 1 < len) v |= uint32_t(data[i + 1]) << 8;
    if (i + 2 < len) v |= data[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < len ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < len ? kAlphabet[v & 63] : '=';
  }
  return out;
}

bool base64_decode(std::string_view text, uint8_t* out, size_t cap, size_t& len) {
  len = 0;
  // Senders differ on padding (RFC 4568 keys of 30 bytes need none; 28-byte GCM keys do):
  // accept both, but nothing after the padding.
  size_t pad = 0;
  while (!text.empty() && text.back() == '=' && pad < 2) {
    text.remove_suffix(1);
    ++pad;
  }
  if (text.size() % 4 == 1) return false;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = b64_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (len >= cap) return false;
      out[len++] = static_cast<uint8_t>((acc >> bits) & 0xff);
    }
  }
  return true;
}

std::optional<CryptoAttr> sdes_parse(std::string_view value, std::string& error) {
  if (value.size() > kMaxValue) return error = "a=crypto too long", std::nullopt;
  // Split on spaces: tag, suite, key-params, session params.
  std::string_view words[8];
  size_t count = 0;
  for (size_t i = 0; i < value.size();) {
    while (i < value.size() && value[i] == ' ') ++i;
    size_t start = i;
    while (i < value.size() && value[i] != ' ') ++i;
    if (i == start) break;
    if (count == 8) return error = "too many a=crypto parameters", std::nullopt;
    words[count++] = value.substr(start, i - start);
  }
  if (count < 3) return error = "a=crypto needs a tag, a suite and a key", std::nullopt;

  CryptoAttr attr;
  if (!all_digits(words[0]) || words[0].size() > 9) return error = "bad a=crypto tag", std::nullopt;
  std::from_chars(words[0].data(), words[0].data() + words[0].size(), attr.tag);

  auto suite = srtp_suite_from_name(words[1]);
  if (!suite) return error = "unsupported crypto suite", std::nullopt;
  attr.key.suite = *suite;

  std::string_view params = words[2];
  // Several keys (";"-separated) are only meaningful with MKIs, which we do not support.
  if (params.find(';') != std::string_view::npos) return error = "several keys (MKI) not supported", std::nullopt;
  if (params.substr(0, 7) != "inline:") return error = "key method is not inline", std::nullopt;
  params.remove_prefix(7);
  std::string_view key_salt = params.substr(0, params.find('|'));
  if (size_t bar = params.find('|'); bar != std::string_view::npos) {
    std::string_view rest = params.substr(bar + 1);
    std::string_view first = rest.substr(0, rest.find('|'));
    bool more = rest.find('|') != std::string_view::npos;
    // One field may be a lifetime or an MKI ("value:length"); an MKI is refused.
    if (first.find(':') != std::string_view::npos || more) return error = "MKI not supported", std::nullopt;
    if (!valid_lifetime(first)) return error = "bad key lifetime", std::nullopt;
  }
  size_t want = srtp_key_length(attr.key.suite);
  uint8_t raw[64];
  size_t got = 0;
  if (!base64_decode(key_salt, raw, sizeof raw, got)) return error = "bad base64 key", std::nullopt;
  if (got != want) return error = "wrong key length for the suite", std::nullopt;
  for (size_t i = 0; i < got; ++i) attr.key.bytes[i] = raw[i];

  for (size_t i = 3; i < count; ++i) {
    // RFC 4568 §6.3.7: WSH is a receiver's hint; everything else changes the transform
    // (UNENCRYPTED_SRTP, KDR, FEC_ORDER ...) and we cannot honour it.
    if (words[i].substr(0, 4) == "WSH=" && all_digits(words[i].substr(4))) continue;
    return error = "unsupported session parameter", std::nullopt;
  }
  return attr;
}

std::string sdes_format(const CryptoAttr& attr) {
  return "a=crypto:" + std::to_string(attr.tag) + " " + srtp_suite_name(attr.key.suite) + " inline:" +
         base64_encode(attr.key.bytes.data(), srtp_key_length(attr.key.suite));
}

}  // namespace relais::media
