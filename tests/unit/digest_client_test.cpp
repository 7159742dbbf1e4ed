// digest_client_test.cpp — our client answers verify with our server-side computation.
#include <doctest/doctest.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>

#include "digest_auth.hpp"
#include "digest_client.hpp"

using namespace relais;

namespace {

struct Home {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  ~Home() { su_home_deinit(home); }
};

// Parses the answer back into credentials the way the registrar does.
DigestCredentials parse_answer(const std::string& header) {
  Home h;
  sip_authorization_t* au = sip_authorization_make(h.home, header.c_str());
  REQUIRE(au != nullptr);
  std::vector<std::string_view> params;
  for (const msg_param_t* p = au->au_params; p && *p; ++p) params.emplace_back(*p);
  DigestCredentials c;
  REQUIRE(parse_digest_params(au->au_scheme, params, c) == "");
  return c;
}

}  // namespace

TEST_CASE("an MD5 qop=auth challenge is answered with a response the server accepts") {
  Home h;
  sip_www_authenticate_t* chal = sip_www_authenticate_make(h.home, "Digest realm=\"op\", nonce=\"abc123\", qop=\"auth,auth-int\", opaque=\"xyz\"");
  REQUIRE(chal != nullptr);
  DigestAnswer a = answer_digest_challenge(chal, "REGISTER", "sip:op", "office", "secret", 1);
  REQUIRE(a.error == "");
  DigestCredentials c = parse_answer(a.header);
  CHECK(c.username == "office");
  CHECK(c.realm == "op");
  CHECK(c.opaque == "xyz");
  CHECK(c.qop == "auth");
  CHECK(c.nc == "00000001");
  std::string ha1 = digest_ha1(DigestAlgorithm::md5, "office", "op", "secret");
  CHECK(c.response == digest_response(DigestAlgorithm::md5, ha1, "abc123", c.nc, c.cnonce, "auth", "REGISTER", "sip:op"));
}

TEST_CASE("a challenge without qop is answered RFC 2069 style and SHA-256 is supported") {
  Home h;
  sip_proxy_authenticate_t* chal = sip_proxy_authenticate_make(h.home, "Digest realm=\"op\", nonce=\"n1\", algorithm=SHA-256");
  DigestAnswer a = answer_digest_challenge(chal, "INVITE", "sip:0612@op", "office", "secret", 3);
  REQUIRE(a.error == "");
  DigestCredentials c = parse_answer(a.header);
  CHECK(c.qop == "");
  std::string ha1 = digest_ha1(DigestAlgorithm::sha256, "office", "op", "secret");
  CHECK(c.response == digest_response(DigestAlgorithm::sha256, ha1, "n1", "", "", "", "INVITE", "sip:0612@op"));
}

TEST_CASE("unanswerable challenges give a reason instead of credentials") {
  Home h;
  CHECK(answer_digest_challenge(sip_www_authenticate_make(h.home, "Digest realm=\"op\", nonce=\"n\", algorithm=MD5-sess"), "REGISTER", "sip:op", "u", "p", 1)
            .header.empty());
  CHECK(answer_digest_challenge(sip_www_authenticate_make(h.home, "Digest realm=\"op\""), "REGISTER", "sip:op", "u", "p", 1).error ==
        "challenge without nonce");
  CHECK(answer_digest_challenge(sip_www_authenticate_make(h.home, "Basic realm=\"op\""), "REGISTER", "sip:op", "u", "p", 1).error ==
        "no Digest challenge");
  CHECK(answer_digest_challenge(nullptr, "REGISTER", "sip:op", "u", "p", 1).error == "no Digest challenge");
}
