// cidr_test.cpp — address ranges for trunk sources and access lists.
#include <doctest/doctest.h>

#include "cidr.hpp"

using namespace relais;

TEST_CASE("an IPv4 range matches its addresses and nothing else") {
  auto net = Cidr::parse("192.0.2.0/24");
  REQUIRE(net);
  CHECK(net->contains("192.0.2.1"));
  CHECK(net->contains("192.0.2.255"));
  CHECK_FALSE(net->contains("192.0.3.1"));
  CHECK_FALSE(net->contains("2001:db8::1"));
  CHECK_FALSE(net->contains("not an ip"));
}

TEST_CASE("a bare address is a /32 or /128 and odd prefixes work") {
  auto one = Cidr::parse("198.51.100.7");
  REQUIRE(one);
  CHECK(one->contains("198.51.100.7"));
  CHECK_FALSE(one->contains("198.51.100.8"));
  auto odd = Cidr::parse("10.0.0.0/9");
  REQUIRE(odd);
  CHECK(odd->contains("10.127.255.255"));
  CHECK_FALSE(odd->contains("10.128.0.0"));
  auto v6 = Cidr::parse("2001:db8::/32");
  REQUIRE(v6);
  CHECK(v6->contains("2001:db8:ffff::1"));
  CHECK_FALSE(v6->contains("2001:db9::1"));
}

TEST_CASE("an IPv4-mapped IPv6 source matches an IPv4 range") {
  auto net = Cidr::parse("127.0.0.0/8");
  REQUIRE(net);
  CHECK(net->contains("::ffff:127.0.0.1"));
}

TEST_CASE("malformed ranges are refused") {
  CHECK_FALSE(Cidr::parse("192.0.2.0/33"));
  CHECK_FALSE(Cidr::parse("192.0.2.0/"));
  CHECK_FALSE(Cidr::parse("192.0.2/24"));
  CHECK_FALSE(Cidr::parse("::/129"));
  CHECK_FALSE(Cidr::parse(""));
}
