// binding.cpp — JSON form of a Binding, shared by the SQLite and Redis backends.
#include "binding.hpp"

#include <algorithm>
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

std::string binding_to_json(const Binding& b) {
  json j = {
      {"contact", b.contact},       {"key", b.key},
      {"call_id", b.call_id},       {"cseq", b.cseq},          {"branch", b.branch},
      {"expires_at", b.expires_at}, {"q_milli", b.q_milli},
      {"received", b.received},     {"user_agent", b.user_agent},
      {"instance", b.instance},     {"node", b.node},
      {"registered_at", b.registered_at},
  };
  json attrs = json::object();
  for (const auto& [k, v] : b.attrs) attrs[k] = v;
  j["attrs"] = std::move(attrs);
  // Header values come off the network and may hold invalid UTF-8; the default handler would
  // throw, so such bytes become U+FFFD instead.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
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
