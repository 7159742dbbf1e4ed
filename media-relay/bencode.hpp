// bencode.hpp — the bencoding of rtpengine's ng control protocol (dictionaries, lists,
// integers, byte strings), shared by relais-media (server) and relais (client).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace relais::bencode {

struct Value {
  enum class Type { string, integer, list, dict } type = Type::string;
  std::string str;
  int64_t num = 0;
  std::vector<Value> list;
  std::map<std::string, Value> dict;  // keys sorted, as bencoding requires

  static Value string(std::string s) { Value v; v.type = Type::string; v.str = std::move(s); return v; }
  static Value integer(int64_t n) { Value v; v.type = Type::integer; v.num = n; return v; }
  static Value make_list() { Value v; v.type = Type::list; return v; }
  static Value make_dict() { Value v; v.type = Type::dict; return v; }

  bool is_string() const { return type == Type::string; }
  bool is_dict() const { return type == Type::dict; }
  bool is_list() const { return type == Type::list; }
  bool is_integer() const { return type == Type::integer; }

  // Dictionary access; nullptr when absent or not a dict.
  const Value* find(const std::string& key) const;
  // The string at `key`, or `fallback`.
  std::string get_string(const std::string& key, const std::string& fallback = "") const;
  Value& operator[](const std::string& key) { type = Type::dict; return dict[key]; }
};

// Parses exactly one value spanning all of `text`. Bounded: depth ≤ 32, total items ≤ 10000;
// never throws. Returns nullopt and sets `error` on malformed input.
std::optional<Value> parse(std::string_view text, std::string& error);
std::string encode(const Value& value);

}  // namespace relais::bencode
