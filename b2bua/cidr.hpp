// cidr.hpp — IPv4/IPv6 address ranges ("192.0.2.0/24", "2001:db8::/32", "198.51.100.7") for
// trunk source matching and access lists.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace relais {

class Cidr {
 public:
  static std::optional<Cidr> parse(const std::string& text);
  bool contains(const std::string& ip) const;
  // `v6` is an address as 16 bytes, IPv4 in its mapped form ::ffff:a.b.c.d (SourceIp): no
  // text parsing on the per-request path.
  bool contains(const std::array<uint8_t, 16>& v6) const;
  std::string to_string() const { return text_; }

 private:
  int family_ = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes_{};
  int prefix_ = 0;
  std::string text_;
};

// True if `ip` is inside any of `ranges`.
bool cidr_match(const std::vector<Cidr>& ranges, const std::string& ip);

}  // namespace relais
