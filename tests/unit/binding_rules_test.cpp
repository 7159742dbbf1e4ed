// binding_rules_test.cpp — RFC 3261 §10.3 add/refresh/remove/order rules without a network.
#include <doctest/doctest.h>

#include "binding_rules.hpp"

using namespace relais;

namespace {

RegistrarSettings settings() {
  RegistrarSettings s;
  s.min_expires = 60;
  s.max_expires = 3600;
  s.default_expires = 1800;
  s.max_contacts = 3;
  return s;
}

ContactUpdate contact(const std::string& uri, std::optional<uint32_t> expires = std::nullopt) {
  ContactUpdate c;
  c.uri = uri;
  c.key = uri;
  c.expires_param = expires;
  return c;
}

RegisterUpdate update(const std::string& call_id, uint32_t cseq, std::vector<ContactUpdate> contacts,
                      std::optional<uint32_t> expires = std::nullopt, int64_t now = 1000) {
  RegisterUpdate u;
  u.call_id = call_id;
  u.cseq = cseq;
  u.contacts = std::move(contacts);
  u.expires_header = expires;
  u.now = now;
  u.received = "udp:127.0.0.1:5062";
  return u;
}

}  // namespace

TEST_CASE("a new contact is bound with the default expiry when none is given") {
  auto out = apply_register(settings(), update("c1", 1, {contact("sip:a@h")}), {});
  REQUIRE(out.status == 200);
  CHECK(out.changed);
  REQUIRE(out.bindings.size() == 1);
  CHECK(out.bindings[0].expires_at == 1000 + 1800);
  CHECK(out.bindings[0].received == "udp:127.0.0.1:5062");
}

TEST_CASE("the contact parameter overrides the Expires header and the maximum clamps it") {
  auto out = apply_register(settings(), update("c1", 1, {contact("sip:a@h", 120), contact("sip:b@h")}, 99999), {});
  REQUIRE(out.status == 200);
  REQUIRE(out.bindings.size() == 2);
  CHECK(out.bindings[0].expires_at == 1000 + 120);
  CHECK(out.bindings[1].expires_at == 1000 + 3600);
}

TEST_CASE("an expiry below the minimum gets 423 with Min-Expires, but zero is allowed") {
  auto brief = check_register(settings(), update("c1", 1, {contact("sip:a@h", 30)}));
  CHECK(brief.status == 423);
  CHECK(brief.min_expires == 60);
  CHECK(check_register(settings(), update("c1", 1, {contact("sip:a@h", 0)})).status == 200);
}

TEST_CASE("a refresh with a higher CSeq updates the binding in place") {
  auto first = apply_register(settings(), update("c1", 1, {contact("sip:a@h", 600)}), {});
  auto second = apply_register(settings(), update("c1", 2, {contact("sip:a@h", 900)}, std::nullopt, 1100), first.bindings);
  REQUIRE(second.status == 200);
  REQUIRE(second.bindings.size() == 1);
  CHECK(second.bindings[0].expires_at == 1100 + 900);
  CHECK(second.bindings[0].cseq == 2);
}

TEST_CASE("the same Call-ID with an equal or lower CSeq is refused unless it is a retransmission") {
  RegisterUpdate u = update("c1", 5, {contact("sip:a@h", 600)});
  u.branch = "z9hG4bK-1";
  auto first = apply_register(settings(), u, {});
  CHECK(apply_register(settings(), update("c1", 4, {contact("sip:a@h", 0)}), first.bindings).status == 500);
  RegisterUpdate reused = update("c1", 5, {contact("sip:a@h", 900)});
  reused.branch = "z9hG4bK-2";
  CHECK(apply_register(settings(), reused, first.bindings).status == 500);
  // The same request retransmitted (stateless registrar): same answer, nothing changed.
  RegisterUpdate again = update("c1", 5, {contact("sip:a@h", 600)}, std::nullopt, 1010);
  again.branch = "z9hG4bK-1";
  auto out = apply_register(settings(), again, first.bindings);
  CHECK(out.status == 200);
  CHECK_FALSE(out.changed);
  REQUIRE(out.bindings.size() == 1);
  CHECK(out.bindings[0].expires_at == first.bindings[0].expires_at);
  // A different Call-ID (the phone rebooted) may update whatever its CSeq.
  CHECK(apply_register(settings(), update("c2", 1, {contact("sip:a@h", 600)}), first.bindings).status == 200);
}

TEST_CASE("expires zero removes one contact and keeps the others") {
  auto two = apply_register(settings(), update("c1", 1, {contact("sip:a@h"), contact("sip:b@h")}), {});
  auto one = apply_register(settings(), update("c1", 2, {contact("sip:a@h", 0)}), two.bindings);
  REQUIRE(one.status == 200);
  REQUIRE(one.bindings.size() == 1);
  CHECK(one.bindings[0].contact == "sip:b@h");
}

TEST_CASE("the wildcard removes every binding and needs Expires zero and no other contact") {
  auto two = apply_register(settings(), update("c1", 1, {contact("sip:a@h"), contact("sip:b@h")}), {});
  RegisterUpdate star = update("c1", 2, {}, 0);
  star.wildcard = true;
  auto none = apply_register(settings(), star, two.bindings);
  CHECK(none.status == 200);
  CHECK(none.changed);
  CHECK(none.bindings.empty());

  RegisterUpdate bad_expires = update("c1", 3, {}, 60);
  bad_expires.wildcard = true;
  CHECK(check_register(settings(), bad_expires).status == 400);
  RegisterUpdate not_alone = update("c1", 3, {contact("sip:a@h")}, 0);
  not_alone.wildcard = true;
  CHECK(check_register(settings(), not_alone).status == 400);
}

TEST_CASE("a query changes nothing and returns the current bindings") {
  auto two = apply_register(settings(), update("c1", 1, {contact("sip:a@h"), contact("sip:b@h")}), {});
  auto query = apply_register(settings(), update("c9", 1, {}), two.bindings);
  CHECK(query.status == 200);
  CHECK_FALSE(query.changed);
  CHECK(query.bindings.size() == 2);
}

TEST_CASE("more contacts than the maximum are refused with 403") {
  auto three = apply_register(settings(), update("c1", 1, {contact("sip:a@h"), contact("sip:b@h"), contact("sip:c@h")}), {});
  REQUIRE(three.status == 200);
  CHECK(apply_register(settings(), update("c2", 1, {contact("sip:d@h")}), three.bindings).status == 403);
}

TEST_CASE("an instance id matches a binding even when the contact address changed") {
  ContactUpdate before = contact("sip:a@10.0.0.1", 600);
  before.instance = "<urn:uuid:1>";
  auto first = apply_register(settings(), update("c1", 1, {before}), {});
  ContactUpdate after = contact("sip:a@10.0.0.2", 600);
  after.instance = "<urn:uuid:1>";
  auto second = apply_register(settings(), update("c2", 1, {after}), first.bindings);
  REQUIRE(second.bindings.size() == 1);
  CHECK(second.bindings[0].contact == "sip:a@10.0.0.2");
}

TEST_CASE("bindings are ordered by q, highest first") {
  ContactUpdate low = contact("sip:low@h");
  low.q_milli = 100;
  ContactUpdate high = contact("sip:high@h");
  high.q_milli = 900;
  auto out = apply_register(settings(), update("c1", 1, {low, high}), {});
  REQUIRE(out.bindings.size() == 2);
  CHECK(out.bindings[0].contact == "sip:high@h");
}
