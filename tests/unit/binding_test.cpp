// binding_test.cpp — the JSON form of a binding: round trip, tolerance, rejection.
#include <doctest/doctest.h>

#include <string>

#include "binding.hpp"

using relais::Binding;

namespace {

Binding full_binding() {
  Binding b;
  b.contact = "sip:100@10.0.0.5:5062;transport=udp";
  b.key = "sip:100@10.0.0.5:5062;transport=udp";
  b.call_id = "a84b4c76e66710@pc33.example.com";
  b.cseq = 4294967295u;
  b.expires_at = 1'900'000'000;
  b.q_milli = 700;
  b.received = "udp:203.0.113.5:5060";
  b.user_agent = "Yealink SIP-T46U \"quoted\" \\ back\nslash";
  b.instance = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";
  b.node = "node-a";
  b.registered_at = 1'899'999'000;
  b.attrs = {{"tenant", "clinic"}, {"note", "héllo ☎"}, {"", "empty key"}};
  return b;
}

}  // namespace

TEST_CASE("a binding survives a JSON round trip with every field intact") {
  Binding in = full_binding();
  Binding out;
  REQUIRE(relais::binding_from_json(relais::binding_to_json(in), out));
  CHECK(out == in);
}

TEST_CASE("a binding with default fields survives a JSON round trip") {
  Binding in;
  in.contact = "sip:a@b";
  in.key = "sip:a@b";
  Binding out;
  REQUIRE(relais::binding_from_json(relais::binding_to_json(in), out));
  CHECK(out == in);
  CHECK(out.q_milli == -1);
}

TEST_CASE("binding JSON from a newer node with unknown fields is accepted") {
  Binding out;
  REQUIRE(relais::binding_from_json(
      R"({"contact":"sip:a@b","key":"k","expires_at":5,"future":{"x":[1,2]},"flow_id":7})", out));
  CHECK(out.contact == "sip:a@b");
  CHECK(out.key == "k");
  CHECK(out.expires_at == 5);
  CHECK(out.cseq == 0);
  CHECK(out.attrs.empty());
}

TEST_CASE("binding JSON with invalid UTF-8 from the network still serializes") {
  Binding in = full_binding();
  in.user_agent = std::string("bad \xff\xfe bytes");
  std::string text;
  REQUIRE_NOTHROW(text = relais::binding_to_json(in));
  Binding out;
  REQUIRE(relais::binding_from_json(text, out));
  CHECK(out.contact == in.contact);
  CHECK(out.user_agent.find("bad ") == 0);
}

TEST_CASE("malformed binding JSON is rejected without throwing") {
  const char* bad[] = {
      "",
      "not json",
      "{",
      "[]",
      "42",
      "null",
      R"("a string")",
      R"({"key":"k","expires_at":1})",                               // no contact
      R"({"contact":"sip:a@b","expires_at":1})",                     // no key
      R"({"contact":"sip:a@b","key":"k"})",                          // no expiry
      R"({"contact":5,"key":"k","expires_at":1})",                   // wrong type
      R"({"contact":"sip:a@b","key":"k","expires_at":"1"})",         // number as string
      R"({"contact":"sip:a@b","key":"k","expires_at":1.5})",         // not an integer
      R"({"contact":"sip:a@b","key":"k","expires_at":1,"cseq":-1})",  // below uint32
      R"({"contact":"sip:a@b","key":"k","expires_at":1,"cseq":4294967296})",  // above uint32
      R"({"contact":"sip:a@b","key":"k","expires_at":18446744073709551615})",  // above int64
      R"({"contact":"sip:a@b","key":"k","expires_at":1,"q_milli":99999999999})",
      R"({"contact":"sip:a@b","key":"k","expires_at":1,"attrs":[]})",
      R"({"contact":"sip:a@b","key":"k","expires_at":1,"attrs":{"a":1}})",
      R"({"contact":"sip:a@b","key":"k","expires_at":1,"node":null})",
  };
  for (const char* text : bad) {
    CAPTURE(text);
    Binding out;
    out.contact = "untouched";
    bool ok = true;
    CHECK_NOTHROW(ok = relais::binding_from_json(text, out));
    CHECK_FALSE(ok);
    CHECK(out.contact == "untouched");
  }
}

TEST_CASE("deeply nested binding JSON is rejected without crashing") {
  std::string deep(100000, '[');
  Binding out;
  CHECK_FALSE(relais::binding_from_json(deep, out));
  std::string nested = R"({"contact":"sip:a@b","key":"k","expires_at":1,"x":)" +
                       std::string(5000, '[') + std::string(5000, ']') + "}";
  CHECK(relais::binding_from_json(nested, out));
}

TEST_CASE("normalizing a binding set keeps the last binding of each key, ordered by key") {
  std::vector<Binding> set(4);
  set[0].key = "b";
  set[0].contact = "first b";
  set[1].key = "a";
  set[2].key = "b";
  set[2].contact = "second b";
  set[3].key = "c";
  relais::normalize_bindings(set);
  REQUIRE(set.size() == 3);
  CHECK(set[0].key == "a");
  CHECK(set[1].key == "b");
  CHECK(set[1].contact == "second b");
  CHECK(set[2].key == "c");
}

TEST_CASE("binding JSON escapes quotes, backslashes and control bytes and keeps valid UTF-8") {
  relais::Binding b;
  b.contact = "sip:a@h";
  b.key = "sip:a@h";
  b.user_agent = std::string("Ph\"one\\ 2\n\x01\tend \xF0\x9F\x93\x9E caf\xC3\xA9");
  b.attrs["n\"ote"] = "v\\1";
  relais::Binding back;
  REQUIRE(relais::binding_from_json(relais::binding_to_json(b), back));
  CHECK(back.user_agent == b.user_agent);
  CHECK(back.attrs == b.attrs);
}

TEST_CASE("binding JSON replaces overlong and surrogate UTF-8 sequences") {
  relais::Binding b;
  b.user_agent = "a\xC0\xAF" "b\xED\xA0\x80" "c\xF4\x90\x80\x80" "d";
  relais::Binding back;
  REQUIRE(relais::binding_from_json(relais::binding_to_json(b), back));
  CHECK(back.user_agent.find('a') == 0);
  CHECK(back.user_agent.find("\xEF\xBF\xBD") != std::string::npos);
  CHECK(back.user_agent.back() == 'd');
}
