// bencode_test.cpp — the ng protocol's bencoding: round trips and hostile input refused.
#include <doctest/doctest.h>

#include <string>

#include "bencode.hpp"

using relais::bencode::Value;
namespace bencode = relais::bencode;

TEST_CASE("a nested ng request survives encode and parse unchanged") {
  Value v = Value::make_dict();
  v["command"] = Value::string("offer");
  v["call-id"] = Value::string(std::string("a\0b c", 5));
  v["limit"] = Value::integer(-42);
  Value flags = Value::make_list();
  flags.list.push_back(Value::string("trust-address"));
  flags.list.push_back(Value::make_dict());
  v["flags"] = flags;
  std::string text = bencode::encode(v);
  std::string error;
  auto back = bencode::parse(text, error);
  REQUIRE(back);
  CHECK(bencode::encode(*back) == text);
  CHECK(back->get_string("call-id") == std::string("a\0b c", 5));
  CHECK(back->find("limit")->num == -42);
  CHECK(back->find("flags")->list.size() == 2);
}

TEST_CASE("dictionary keys come out sorted as bencoding requires") {
  Value v = Value::make_dict();
  v["z"] = Value::integer(1);
  v["a"] = Value::integer(2);
  CHECK(bencode::encode(v) == "d1:ai2e1:zi1ee");
}

TEST_CASE("the empty string, empty list and empty dict round-trip") {
  std::string error;
  for (const char* text : {"0:", "le", "de", "i0e"}) {
    auto v = bencode::parse(text, error);
    REQUIRE(v);
    CHECK(bencode::encode(*v) == text);
  }
}

TEST_CASE("malformed input is refused with a reason, never thrown") {
  const char* bad[] = {"", "d", "l", "i12", "ie", "i-e", "x", "5:abc", "d3:keye", "d1:ai1e",
                       "3abc", "d7:command4:pingee", "i1ei2e", "-1:a", "d i1e 1:a e"};
  for (const char* text : bad) {
    std::string error;
    CAPTURE(text);
    CHECK_FALSE(bencode::parse(text, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("huge lengths and integers are refused without allocating") {
  std::string error;
  CHECK_FALSE(bencode::parse("999999999:abc", error));
  CHECK_FALSE(bencode::parse("99999999999999:abc", error));
  CHECK_FALSE(bencode::parse("i99999999999999999999e", error));
  CHECK_FALSE(bencode::parse("d7:command999999999:x", error));
}

TEST_CASE("deep nesting and too many items are refused") {
  std::string error;
  CHECK_FALSE(bencode::parse(std::string(100000, 'l') + std::string(100000, 'e'), error));
  CHECK(error.find("deep") != std::string::npos);
  std::string ok_depth = std::string(30, 'l') + std::string(30, 'e');
  CHECK(bencode::parse(ok_depth, error));
  std::string many = "l";
  for (int i = 0; i < 20000; ++i) many += "i1e";
  many += "e";
  CHECK_FALSE(bencode::parse(many, error));
}

TEST_CASE("every prefix of a valid request is refused, none crashes") {
  std::string text = "d7:call-id3:abc7:command5:offer5:flagsl13:trust-addressee";
  std::string error;
  REQUIRE(bencode::parse(text, error));
  for (size_t n = 0; n < text.size(); ++n) CHECK_FALSE(bencode::parse(text.substr(0, n), error));
}
