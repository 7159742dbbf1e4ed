// binding.cpp — JSON form of a Binding, shared by the SQLite and Redis backends.
#include "binding.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <string_view>
#include <limits>

#include <nlohmann/json.hpp>

namespace relais {

namespace {

using nlohmann::json;

// Each reader leaves `out` untouched when the field is absent (older writers) and fails on a
// present field of the wrong type, so a corrupted row is reported rather than half-read.
bool read_string(const json& j, const char* name, std::string& out, bool required = false) {
  auto it = j.find(name);
  if (it == j.end()) return !required;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

bool read_int64(const json& j, const char* name, int64_t& out, bool required = false) {
  auto it = j.find(name);
  if (it == j.end()) return !required;
  if (it->is_number_unsigned()) {
    auto v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    out = static_cast<int64_t>(v);
    return true;
  }
  if (!it->is_number_integer()) return false;
  out = it->get<int64_t>();
  return true;
}

template <typename T>
bool read_bounded(const json& j, const char* name, T& out) {
  int64_t v = out;
  if (!read_int64(j, name, v)) return false;
  if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) return false;
  out = static_cast<T>(v);
  return true;
}

}  // namespace

namespace {

// Appends `s` as a JSON string. Header values come off the network and may hold invalid UTF-8:
// such bytes become U+FFFD (what nlohmann's error_handler_t::replace does), never an error.
// Bytes a JSON string holds as they are.
constexpr auto kPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    // Printable ASCII other than '"' and '\\' (nearly every byte of a binding) goes in runs.
    size_t run = i;
    while (run < s.size() && kPlain[static_cast<unsigned char>(s[run])]) ++run;
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      continue;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c < 0x20) {
        char esc[8];
        snprintf(esc, sizeof esc, "\\u%04x", c);
        out += esc;
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // Length of a well-formed UTF-8 sequence starting here (RFC 3629), or 0.
    size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    bool ok = len && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (ok && len == 3) {
      unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);  // overlong, surrogates
    }
    if (ok && len == 4) {
      unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  out += '"';
}

// `key` is the field's opening text, e.g. ",\"call_id\":" (the first field has no comma).
void append_field(std::string& out, std::string_view key, std::string_view value) {
  out.append(key);
  append_json_string(out, value);
}

void append_field(std::string& out, std::string_view key, long long value) {
  out.append(key);
  char digits[24];
  char* end = digits + sizeof digits;
  char* p = end;
  unsigned long long u = value < 0 ? 0ULL - static_cast<unsigned long long>(value) : static_cast<unsigned long long>(value);
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u);
  if (value < 0) *--p = '-';
  out.append(p, static_cast<size_t>(end - p));
}

}  // namespace

// Written by hand rather than through nlohmann::json: a binding is serialized for every
// REGISTER that changes it, and building a json tree first cost ~11 % of relais's CPU under
// REGISTER load (callgrind). binding_from_json still parses with nlohmann (start-up, Redis).
std::string binding_to_json(const Binding& b) {
  std::string out;
  write_binding_json(out, b);
  return out;
}

void write_binding_json(std::string& out, const Binding& b) {
  out.clear();
  out.reserve(256 + b.contact.size() + b.user_agent.size());
  append_field(out, "{\"contact\":", b.contact);
  append_field(out, ",\"key\":", b.key);
  append_field(out, ",\"call_id\":", b.call_id);
  append_field(out, ",\"cseq\":", static_cast<long long>(b.cseq));
  append_field(out, ",\"branch\":", b.branch);
  append_field(out, ",\"expires_at\":", static_cast<long long>(b.expires_at));
  // Fields at their default (no q, no instance, no attrs) are left out: a reader takes an
  // absent field as its default, and most bindings have them so.
  if (b.q_milli != -1) append_field(out, ",\"q_milli\":", static_cast<long long>(b.q_milli));
  append_field(out, ",\"received\":", b.received);
  if (!b.flow.empty()) append_field(out, ",\"flow\":", b.flow);
  append_field(out, ",\"user_agent\":", b.user_agent);
  if (!b.instance.empty()) append_field(out, ",\"instance\":", b.instance);
  append_field(out, ",\"node\":", b.node);
  append_field(out, ",\"registered_at\":", static_cast<long long>(b.registered_at));
  if (!b.attrs.empty()) {
    out += ",\"attrs\":{";
    bool first = true;
    for (const auto& [k, v] : b.attrs) {
      if (!first) out += ',';
      first = false;
      append_json_string(out, k);
      out += ':';
      append_json_string(out, v);
    }
    out += '}';
  }
  out += '}';
}

bool binding_from_json(const std::string& text, Binding& out) {
  try {
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return false;
    Binding b;
    bool ok = read_string(j, "contact", b.contact, true) && read_string(j, "key", b.key, true) &&
              read_string(j, "call_id", b.call_id) && read_bounded(j, "cseq", b.cseq) &&
              read_string(j, "branch", b.branch) &&
              read_int64(j, "expires_at", b.expires_at, true) &&
              read_bounded(j, "q_milli", b.q_milli) && read_string(j, "received", b.received) &&
              read_string(j, "flow", b.flow) &&
              read_string(j, "user_agent", b.user_agent) &&
              read_string(j, "instance", b.instance) && read_string(j, "node", b.node) &&
              read_int64(j, "registered_at", b.registered_at);
    if (!ok) return false;
    if (auto it = j.find("attrs"); it != j.end()) {
      if (!it->is_object()) return false;
      for (const auto& [k, v] : it->items()) {
        if (!v.is_string()) return false;
        b.attrs.emplace(k, v.get<std::string>());
      }
    }
    out = std::move(b);
    return true;
  } catch (const std::exception&) {
    // parse() with allow_exceptions=false does not throw on syntax errors; this guards the
    // remaining paths (allocation, depth) so a bad row never escapes as an exception.
    return false;
  }
}

void normalize_bindings(std::vector<Binding>& bindings) {
  if (bindings.size() < 2) return;  // the usual case, and stable_sort would allocate for it
  // stable_sort keeps the given order among equal keys, so the last duplicate is the one kept.
  std::stable_sort(bindings.begin(), bindings.end(),
                   [](const Binding& a, const Binding& b) { return a.key < b.key; });
  auto last = bindings.end();
  auto out = bindings.begin();
  for (auto it = bindings.begin(); it != last;) {
    auto next = it + 1;
    while (next != last && next->key == it->key) ++next;
    if (out != next - 1) *out = std::move(*(next - 1));
    ++out;
    it = next;
  }
  bindings.erase(out, last);
}

}  // namespace relais
