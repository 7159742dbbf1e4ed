// cidr.cpp — prefix matching on raw address bytes.
#include "cidr.hpp"

#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>

namespace relais {

namespace {

bool to_bytes(const std::string& ip, int& family, std::array<uint8_t, 16>& out) {
  out.fill(0);
  if (inet_pton(AF_INET, ip.c_str(), out.data()) == 1) {
    family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, ip.c_str(), out.data()) == 1) {
    family = AF_INET6;
    return true;
  }
  return false;
}

}  // namespace

std::optional<Cidr> Cidr::parse(const std::string& text) {
  Cidr c;
  c.text_ = text;
  std::string addr = text;
  size_t slash = text.find('/');
  int max_prefix = 0;
  if (slash != std::string::npos) addr = text.substr(0, slash);
  if (!to_bytes(addr, c.family_, c.bytes_)) return std::nullopt;
  max_prefix = c.family_ == AF_INET ? 32 : 128;
  c.prefix_ = max_prefix;
  if (slash != std::string::npos) {
    std::string bits = text.substr(slash + 1);
    char* end = nullptr;
    long p = strtol(bits.c_str(), &end, 10);
    if (bits.empty() || *end || p < 0 || p > max_prefix) return std::nullopt;
    c.prefix_ = static_cast<int>(p);
  }
  return c;
}

bool Cidr::contains(const std::string& ip) const {
  int family = 0;
  std::array<uint8_t, 16> bytes{};
  if (!to_bytes(ip, family, bytes)) return false;
  if (family != family_) {
    // An IPv4-mapped IPv6 source (::ffff:a.b.c.d) still matches an IPv4 range.
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family == AF_INET6 && family_ == AF_INET && memcmp(bytes.data(), mapped, 12) == 0) {
      memmove(bytes.data(), bytes.data() + 12, 4);
    } else {
      return false;
    }
  }
  int full = prefix_ / 8, rest = prefix_ % 8;
  if (memcmp(bytes.data(), bytes_.data(), static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (bytes[static_cast<size_t>(full)] & mask) == (bytes_[static_cast<size_t>(full)] & mask);
}

bool Cidr::contains(const std::array<uint8_t, 16>& v6) const {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  bool v4 = memcmp(v6.data(), mapped, 12) == 0;
  if (family_ == AF_INET && !v4) return false;
  const uint8_t* bytes = family_ == AF_INET ? v6.data() + 12 : v6.data();
  int full = prefix_ / 8, rest = prefix_ % 8;
  if (memcmp(bytes, bytes_.data(), static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (bytes[full] & mask) == (bytes_[static_cast<size_t>(full)] & mask);
}

bool cidr_match(const std::vector<Cidr>& ranges, const std::string& ip) {
  for (const Cidr& c : ranges)
    if (c.contains(ip)) return true;
  return false;
}

}  // namespace relais
