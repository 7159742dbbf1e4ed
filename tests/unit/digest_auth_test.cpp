// digest_auth_test.cpp — Digest computations against the RFC examples, and credential parsing.
#include <doctest/doctest.h>

#include "digest_auth.hpp"

using namespace relais;

TEST_CASE("the RFC 2617 section 3.5 example response is reproduced") {
  std::string ha1 = digest_ha1(DigestAlgorithm::md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
  std::string response = digest_response(DigestAlgorithm::md5, ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001",
                                         "0a4f113b", "auth", "GET", "/dir/index.html");
  CHECK(response == "6629fae49393a05397450978507c4ef1");
}

TEST_CASE("the RFC 7616 section 3.9.1 MD5 and SHA-256 example responses are reproduced") {
  const char* nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
  const char* cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
  std::string md5_ha1 = digest_ha1(DigestAlgorithm::md5, "Mufasa", "http-auth@example.org", "Circle of Life");
  CHECK(digest_response(DigestAlgorithm::md5, md5_ha1, nonce, "00000001", cnonce, "auth", "GET", "/dir/index.html") ==
        "8ca523f5e9506fed4657c9700eebdbec");
  std::string sha_ha1 = digest_ha1(DigestAlgorithm::sha256, "Mufasa", "http-auth@example.org", "Circle of Life");
  CHECK(digest_response(DigestAlgorithm::sha256, sha_ha1, nonce, "00000001", cnonce, "auth", "GET", "/dir/index.html") ==
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}

TEST_CASE("a response without qop follows RFC 2069") {
  std::string ha1 = digest_ha1(DigestAlgorithm::md5, "u", "r", "p");
  std::string ha2 = digest_hash_hex(DigestAlgorithm::md5, "REGISTER:sip:example.com");
  CHECK(digest_response(DigestAlgorithm::md5, ha1, "n", "", "", "", "REGISTER", "sip:example.com") ==
        digest_hash_hex(DigestAlgorithm::md5, ha1 + ":n:" + ha2));
}

TEST_CASE("algorithm tokens are parsed case-insensitively and unknown ones refused") {
  CHECK(parse_digest_algorithm("") == DigestAlgorithm::md5);
  CHECK(parse_digest_algorithm("md5") == DigestAlgorithm::md5);
  CHECK(parse_digest_algorithm("SHA-256") == DigestAlgorithm::sha256);
  CHECK(parse_digest_algorithm("sha-256") == DigestAlgorithm::sha256);
  CHECK_FALSE(parse_digest_algorithm("MD5-sess").has_value());
  CHECK_FALSE(parse_digest_algorithm("SHA-512-256").has_value());
}

TEST_CASE("well-formed credentials are parsed and unquoted") {
  DigestCredentials c;
  std::vector<std::string_view> params = {"username=\"alice\"", "realm=\"office\"", "nonce=\"abc\"",
                                          "uri=\"sip:office\"", "response=\"0123abcd\"", "algorithm=SHA-256",
                                          "qop=auth", "nc=00000001", "cnonce=\"xyz\""};
  CHECK(parse_digest_params("Digest", params, c) == "");
  CHECK(c.username == "alice");
  CHECK(c.realm == "office");
  CHECK(c.algorithm == "SHA-256");
  CHECK(c.nc == "00000001");
}

TEST_CASE("malformed credentials are refused with a reason") {
  DigestCredentials c;
  std::vector<std::string_view> base = {"username=\"a\"", "nonce=\"n\"", "uri=\"sip:x\"", "response=\"00\""};
  CHECK(parse_digest_params("Basic", base, c) == "Unsupported authorization scheme");

  auto without = [&](std::string_view name) {
    std::vector<std::string_view> p;
    for (auto v : base)
      if (v.substr(0, name.size()) != name) p.push_back(v);
    DigestCredentials out;
    return parse_digest_params("Digest", p, out);
  };
  CHECK(without("username") == "Missing username in credentials");
  CHECK(without("nonce") == "Missing nonce in credentials");
  CHECK(without("uri") == "Missing uri in credentials");
  CHECK(without("response") == "Missing response in credentials");

  auto with = [&](std::string_view extra) {
    std::vector<std::string_view> p = base;
    p.push_back(extra);
    DigestCredentials out;
    return parse_digest_params("Digest", p, out);
  };
  CHECK(with("algorithm=MD5-sess") == "Unsupported digest algorithm");
  CHECK(with("qop=auth-int") == "Unsupported qop");
  CHECK(with("username=\"b\"") == "Duplicate authorization parameter");
  std::string huge = "cnonce=\"" + std::string(10000, 'x') + "\"";
  CHECK(with(huge) == "Authorization parameter too long");

  std::vector<std::string_view> bad_response = {"username=\"a\"", "nonce=\"n\"", "uri=\"sip:x\"", "response=\"zz\""};
  CHECK(parse_digest_params("Digest", bad_response, c) == "Malformed response in credentials");
  std::vector<std::string_view> qop_no_nc = {"username=\"a\"", "nonce=\"n\"", "uri=\"sip:x\"", "response=\"00\"", "qop=auth", "cnonce=\"c\""};
  DigestCredentials d;
  CHECK(parse_digest_params("Digest", qop_no_nc, d) == "Malformed nc in credentials");
}

TEST_CASE("digests compare equal regardless of hex case and differ otherwise") {
  CHECK(digest_equal("abcdef01", "ABCDEF01"));
  CHECK_FALSE(digest_equal("abcdef01", "abcdef02"));
  CHECK_FALSE(digest_equal("abcdef01", "abcdef0"));
}
