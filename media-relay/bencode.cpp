// bencode.cpp — a bounded recursive-descent bencode parser and an encoder.
#include "bencode.hpp"

#include <cctype>

namespace relais::bencode {

namespace {

constexpr int kMaxDepth = 32;
constexpr size_t kMaxItems = 10000;
constexpr size_t kMaxStringDigits = 9;  // < 1 GB; a UDP datagram is far smaller anyway

struct Parser {
  std::string_view in;
  size_t pos = 0;
  size_t items = 0;
  std::string error;

  bool fail(const char* why) {
    if (error.empty()) error = std::string(why) + " at offset " + std::to_string(pos);
    return false;
  }

  bool value(Value& out, int depth) {
    if (depth > kMaxDepth) return fail("nesting too deep");
    if (++items > kMaxItems) return fail("too many items");
    if (pos >= in.size()) return fail("unexpected end");
    char c = in[pos];
    if (c == 'i') return integer(out);
    if (c == 'l') {
      ++pos;
      out = Value::make_list();
      while (pos < in.size() && in[pos] != 'e') {
        out.list.emplace_back();
        if (!value(out.list.back(), depth + 1)) return false;
      }
      if (pos >= in.size()) return fail("unterminated list");
      ++pos;
      return true;
    }
    if (c == 'd') {
      ++pos;
      out = Value::make_dict();
      while (pos < in.size() && in[pos] != 'e') {
        Value key;
        if (!string(key)) return false;
        Value item;
        if (!value(item, depth + 1)) return false;
        out.dict[key.str] = std::move(item);
      }
      if (pos >= in.size()) return fail("unterminated dictionary");
      ++pos;
      return true;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return string(out);
    return fail("unexpected byte");
  }

  bool integer(Value& out) {
    ++pos;  // 'i'
    size_t start = pos;
    bool negative = pos < in.size() && in[pos] == '-';
    if (negative) ++pos;
    int64_t n = 0;
    size_t digits = 0;
    while (pos < in.size() && std::isdigit(static_cast<unsigned char>(in[pos]))) {
      if (++digits > 18) return fail("integer too large");
      n = n * 10 + (in[pos++] - '0');
    }
    if (digits == 0 || pos >= in.size() || in[pos] != 'e') return fail("bad integer");
    (void)start;
    ++pos;
    out = Value::integer(negative ? -n : n);
    return true;
  }

  bool string(Value& out) {
    size_t len = 0, digits = 0;
    while (pos < in.size() && std::isdigit(static_cast<unsigned char>(in[pos]))) {
      if (++digits > kMaxStringDigits) return fail("string length too large");
      len = len * 10 + static_cast<size_t>(in[pos++] - '0');
    }
    if (digits == 0 || pos >= in.size() || in[pos] != ':') return fail("bad string length");
    ++pos;
    if (len > in.size() - pos) return fail("string runs past the end");
    out = Value::string(std::string(in.substr(pos, len)));
    pos += len;
    return true;
  }
};

void encode_into(const Value& v, std::string& out) {
  switch (v.type) {
    case Value::Type::string:
      out += std::to_string(v.str.size());
      out += ':';
      out += v.str;
      break;
    case Value::Type::integer:
      out += 'i';
      out += std::to_string(v.num);
      out += 'e';
      break;
    case Value::Type::list:
      out += 'l';
      for (const Value& item : v.list) encode_into(item, out);
      out += 'e';
      break;
    case Value::Type::dict:
      out += 'd';
      for (const auto& [key, item] : v.dict) {
        out += std::to_string(key.size());
        out += ':';
        out += key;
        encode_into(item, out);
      }
      out += 'e';
      break;
  }
}

}  // namespace

const Value* Value::find(const std::string& key) const {
  if (type != Type::dict) return nullptr;
  auto it = dict.find(key);
  return it == dict.end() ? nullptr : &it->second;
}

std::string Value::get_string(const std::string& key, const std::string& fallback) const {
  const Value* v = find(key);
  return v && v->is_string() ? v->str : fallback;
}

std::optional<Value> parse(std::string_view text, std::string& error) {
  Parser p{text};
  Value out;
  if (!p.value(out, 0)) {
    error = p.error;
    return std::nullopt;
  }
  if (p.pos != text.size()) {
    error = "trailing bytes at offset " + std::to_string(p.pos);
    return std::nullopt;
  }
  return out;
}

std::string encode(const Value& value) {
  std::string out;
  encode_into(value, out);
  return out;
}

}  // namespace relais::bencode
