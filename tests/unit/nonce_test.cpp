// nonce_test.cpp — signed nonces expire, are bound to the secret, and nc replays are caught.
#include <doctest/doctest.h>

#include "nonce.hpp"

using namespace relais;

TEST_CASE("a fresh nonce is valid until its lifetime passes, then stale") {
  NonceIssuer issuer("secret", 300);
  std::string nonce = issuer.issue(1000);
  CHECK(issuer.check(nonce, 1000) == NonceIssuer::Check::valid);
  CHECK(issuer.check(nonce, 1300) == NonceIssuer::Check::valid);
  CHECK(issuer.check(nonce, 1301) == NonceIssuer::Check::stale);
}

TEST_CASE("nonces are unique, bound to the secret and tamper-evident") {
  NonceIssuer a("secret-a", 300), b("secret-b", 300), a2("secret-a", 300);
  std::string nonce = a.issue(1000);
  CHECK(a.issue(1000) != nonce);
  CHECK(a2.check(nonce, 1001) == NonceIssuer::Check::valid);  // another node with the same secret
  CHECK(b.check(nonce, 1001) == NonceIssuer::Check::invalid);
  std::string forged = nonce;
  forged[15] = forged[15] == '0' ? '1' : '0';  // move the timestamp
  CHECK(a.check(forged, 1001) == NonceIssuer::Check::invalid);
  CHECK(a.check("", 1001) == NonceIssuer::Check::invalid);
  CHECK(a.check(std::string(64, 'z'), 1001) == NonceIssuer::Check::invalid);
  CHECK(a.check(nonce + "0", 1001) == NonceIssuer::Check::invalid);
}

TEST_CASE("a nonce issued in the future beyond clock skew is refused") {
  NonceIssuer issuer("s", 300);
  std::string nonce = issuer.issue(2000);
  CHECK(issuer.check(nonce, 1990) == NonceIssuer::Check::invalid);
  CHECK(issuer.check(nonce, 1998) == NonceIssuer::Check::valid);
}

TEST_CASE("nonce counts may repeat but never go back, and old nonces are forgotten") {
  NonceCounts counts(100);
  CHECK(counts.accept("n1", 1, 1000, 300));
  CHECK(counts.accept("n1", 2, 1000, 300));
  CHECK(counts.accept("n1", 2, 1000, 300));  // a retransmission
  CHECK_FALSE(counts.accept("n1", 1, 1000, 300));
  CHECK(counts.accept("n2", 1, 1000, 300));
  CHECK(counts.accept("n3", 1, 1400, 300));  // one lifetime later: n1, n2 move to the old generation
  CHECK_FALSE(counts.accept("n1", 1, 1401, 300));  // still remembered there
  CHECK(counts.accept("n4", 1, 1800, 300));  // two lifetimes: n2 (not seen since) is forgotten
  CHECK(counts.accept("n2", 0, 1801, 300));
  CHECK_FALSE(counts.accept("n1", 1, 1802, 300));  // n1 was seen again at 1401: still known
  CHECK(counts.size() == 5);  // n1 is in both generations until the next rotation
}

TEST_CASE("the nonce-count table stays bounded under a flood of nonces") {
  NonceCounts counts(50);
  for (int i = 0; i < 1000; ++i) counts.accept("n" + std::to_string(i), 1, 1000, 300);
  CHECK(counts.size() <= 50);
}
