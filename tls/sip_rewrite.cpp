// sip_rewrite.cpp — header edits on raw message text. Only the lines that change are parsed;
// every other header is copied as it came (the edge must not normalise what it does not own).
#include "sip_rewrite.hpp"

#include <strings.h>

#include <vector>

namespace relais {

namespace {

constexpr std::string_view kFlowParam = "rls-flow";
constexpr std::string_view kSourceParam = "rls-src";

struct Line {
  std::string_view name;  // trimmed
  std::string_view raw;   // the whole header, continuation lines included, without the final CRLF
};

bool name_is(std::string_view name, std::string_view full, char compact = 0) {
  if (compact && name.size() == 1 && (name[0] | 0x20) == compact) return true;
  return name.size() == full.size() && strncasecmp(name.data(), full.data(), full.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits the header section (without the blank line) into the start line and header lines;
// continuation lines (RFC 3261 §7.3.1) stay with their header.
bool split_head(std::string_view head, std::string_view& start, std::vector<Line>& lines) {
  size_t end = head.find("\r\n");
  start = head.substr(0, end);
  if (end == std::string_view::npos) return true;
  size_t pos = end + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string_view::npos) e = head.size();
    std::string_view text = head.substr(pos, e - pos);
    if (!text.empty() && (text[0] == ' ' || text[0] == '\t') && !lines.empty()) {
      lines.back().raw = head.substr(lines.back().raw.data() - head.data(), e - (lines.back().raw.data() - head.data()));
    } else {
      size_t colon = text.find(':');
      if (colon == std::string_view::npos) return false;
      lines.push_back({trim(text.substr(0, colon)), text});
    }
    pos = e + 2;
  }
  return true;
}

// The value of a header with continuation lines joined by one space.
std::string value_of(const Line& line) {
  std::string_view v = line.raw.substr(line.raw.find(':') + 1);
  std::string out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\r' || v[i] == '\n') {
      if (!out.empty() && out.back() != ' ') out += ' ';
      continue;
    }
    out += v[i];
  }
  return std::string(trim(out));
}

// Splits on commas outside quotes and <...> (RFC 3261 §7.3.1 header lists).
std::vector<std::string_view> split_list(std::string_view v) {
  std::vector<std::string_view> out;
  bool quote = false, angle = false;
  size_t start = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '"' && !angle && (i == 0 || v[i - 1] != '\\')) quote = !quote;
    else if (c == '<' && !quote) angle = true;
    else if (c == '>' && !quote) angle = false;
    else if (c == ',' && !quote && !angle) {
      out.push_back(trim(v.substr(start, i - start)));
      start = i + 1;
    }
  }
  out.push_back(trim(v.substr(start)));
  return out;
}

struct Via {
  std::string transport;
  std::string sent_by;
  std::vector<std::pair<std::string, std::string>> params;  // name, "=value" or ""
  std::string rest;                                         // further via-parms of the header

  std::string str() const {
    std::string out = "SIP/2.0/" + transport + " " + sent_by;
    for (const auto& [name, value] : params) out += ";" + name + value;
    return out;
  }
  void erase(std::string_view name) {
    std::erase_if(params, [&](const auto& p) { return name_is(p.first, name); });
  }
  void set(std::string_view name, const std::string& value) {
    erase(name);
    params.emplace_back(std::string(name), value.empty() ? "" : "=" + value);
  }
};

// The first via-parm of a Via header value: "SIP / 2.0 / TLS host:port ;p=v".
bool parse_top_via(const std::string& value, Via& via) {
  std::vector<std::string_view> items = split_list(value);
  std::string_view v = items.front();
  for (size_t i = 1; i < items.size(); ++i) via.rest += (via.rest.empty() ? "" : ", ") + std::string(items[i]);
  std::string_view protocol[3];
  for (int i = 0; i < 3; ++i) {
    v = trim(v);
    size_t end = 0;
    while (end < v.size() && v[end] != '/' && v[end] != ' ' && v[end] != '\t') ++end;
    protocol[i] = v.substr(0, end);
    v = trim(v.substr(end));
    if (i < 2) {
      if (v.empty() || v[0] != '/') return false;
      v.remove_prefix(1);
    }
  }
  if (!name_is(protocol[0], "SIP") || protocol[1] != "2.0" || protocol[2].empty()) return false;
  via.transport = std::string(protocol[2]);
  size_t semi = v.find(';');
  via.sent_by = std::string(trim(v.substr(0, semi)));
  if (via.sent_by.empty() || via.sent_by.find_first_of(" \t") != std::string::npos) return false;
  while (semi != std::string_view::npos) {
    v = v.substr(semi + 1);
    semi = v.find(';');
    std::string_view p = trim(v.substr(0, semi));
    if (p.empty()) continue;
    size_t eq = p.find('=');
    if (eq == std::string_view::npos)
      via.params.emplace_back(std::string(p), "");
    else
      via.params.emplace_back(std::string(trim(p.substr(0, eq))), "=" + std::string(trim(p.substr(eq + 1))));
  }
  return true;
}

bool is_dialog_method(std::string_view method) {
  return method == "INVITE" || method == "SUBSCRIBE" || method == "REFER";
}

std::string_view request_method(std::string_view start) { return start.substr(0, start.find(' ')); }

std::string_view cseq_method(const std::vector<Line>& lines) {
  for (const Line& l : lines) {
    if (!name_is(l.name, "CSeq")) continue;
    std::string_view v = trim(l.raw.substr(l.raw.find(':') + 1));
    size_t sp = v.find_first_of(" \t");
    return sp == std::string_view::npos ? std::string_view() : trim(v.substr(sp));
  }
  return {};
}

// Route/Record-Route without the entries pointing at an edge flow; empty when none remain.
std::string without_flow_entries(const Line& line) {
  std::string value = value_of(line);
  if (value.find(kFlowParam) == std::string::npos) return std::string(line.name) + ": " + value;
  std::string kept;
  for (std::string_view item : split_list(value)) {
    if (item.empty() || item.find(kFlowParam) != std::string_view::npos) continue;
    kept += (kept.empty() ? "" : ", ") + std::string(item);
  }
  return kept.empty() ? std::string() : std::string(line.name) + ": " + kept;
}

struct Edit {
  std::string_view start;
  std::vector<Line> lines;
  bool response = false;
  size_t top_via = SIZE_MAX;
  Via via;
};

bool prepare(std::string_view message, size_t header_length, Edit& e, std::string& why) {
  if (header_length < 4 || header_length > message.size()) {
    why = "bad framing";
    return false;
  }
  e.lines.reserve(24);
  if (!split_head(message.substr(0, header_length - 4), e.start, e.lines)) {
    why = "header line without colon";
    return false;
  }
  e.response = e.start.substr(0, 8) == "SIP/2.0 ";
  for (size_t i = 0; i < e.lines.size(); ++i) {
    if (name_is(e.lines[i].name, "Via", 'v')) {
      e.top_via = i;
      break;
    }
  }
  if (e.top_via == SIZE_MAX) {
    why = "no Via";
    return false;
  }
  if (!parse_top_via(value_of(e.lines[e.top_via]), e.via)) {
    why = "unparsable Via";
    return false;
  }
  return true;
}

void append_line(std::string& out, std::string_view line) {
  out.append(line);
  out.append("\r\n");
}

// Writes the message with the top Via replaced and `extra` headers placed by `place`.
void emit(std::string_view message, size_t header_length, const Edit& e, std::string& out,
          const std::string& record_route, bool rr_first, bool strip_flow_routes) {
  out.clear();
  out.reserve(message.size() + 256);
  append_line(out, e.start);
  bool rr_pending = !record_route.empty();
  size_t last_rr = SIZE_MAX;
  if (rr_pending && !rr_first)
    for (size_t i = 0; i < e.lines.size(); ++i)
      if (name_is(e.lines[i].name, "Record-Route")) last_rr = i;
  for (size_t i = 0; i < e.lines.size(); ++i) {
    const Line& l = e.lines[i];
    bool is_rr = name_is(l.name, "Record-Route");
    if (rr_pending && rr_first && is_rr) {
      append_line(out, "Record-Route: " + record_route);
      rr_pending = false;
    }
    if (i == e.top_via) {
      append_line(out, std::string(l.name) + ": " + e.via.str());
      if (!e.via.rest.empty()) append_line(out, std::string(l.name) + ": " + e.via.rest);
    } else if (strip_flow_routes && (is_rr || name_is(l.name, "Route"))) {
      std::string kept = without_flow_entries(l);
      if (!kept.empty()) append_line(out, kept);
    } else {
      append_line(out, l.raw);
    }
    if (rr_pending && !rr_first && i == last_rr) {
      append_line(out, "Record-Route: " + record_route);
      rr_pending = false;
    }
  }
  if (rr_pending) append_line(out, "Record-Route: " + record_route);
  out.append("\r\n");
  out.append(message.substr(header_length));
}

}  // namespace

bool rewrite_toward_core(std::string_view message, size_t header_length, const FlowAddressing& flow,
                         std::string& out, std::string& why) {
  Edit e;
  if (!prepare(message, header_length, e, why)) return false;
  std::string rr;
  if (e.response) {
    // Our own Via on a request we forwarded for Sofia: give Sofia back exactly what it sent.
    e.via.transport = "TCP";
    e.via.sent_by = flow.core_sent_by;
    if (is_dialog_method(cseq_method(e.lines))) rr = flow.record_route;
    emit(message, header_length, e, out, rr, false, false);
    return true;
  }
  e.via.transport = "TCP";
  // A phone must not choose its own flow or source: whatever it sent under our names goes.
  e.via.erase(kFlowParam);
  e.via.set(kSourceParam, "\"" + flow.source + "\"");
  e.via.set(kFlowParam, flow.token);
  if (is_dialog_method(request_method(e.start))) rr = flow.record_route;
  emit(message, header_length, e, out, rr, true, false);
  return true;
}

bool rewrite_toward_phone(std::string_view message, size_t header_length, const FlowAddressing& flow,
                          std::string& out, std::string& why) {
  Edit e;
  if (!prepare(message, header_length, e, why)) return false;
  e.via.transport = flow.transport;
  if (e.response) {
    e.via.erase(kFlowParam);
    e.via.erase(kSourceParam);
    // RFC 3581: what nta wrote is the edge's internal address; the phone wants its own.
    e.via.set("received", flow.peer_ip.find(':') == std::string::npos ? flow.peer_ip : "[" + flow.peer_ip + "]");
    e.via.set("rport", std::to_string(flow.peer_port));
  } else {
    e.via.sent_by = flow.public_sent_by;
  }
  emit(message, header_length, e, out, "", false, true);
  return true;
}

std::string local_response(std::string_view head, int status, const char* reason) {
  std::string_view start;
  std::vector<Line> lines;
  size_t end = head.find("\r\n\r\n");
  if (end != std::string_view::npos) head = head.substr(0, end);
  // A header cut short by the size limit is dropped, not echoed half.
  size_t last = head.rfind("\r\n");
  if (end == std::string_view::npos && last != std::string_view::npos) head = head.substr(0, last);
  if (!split_head(head, start, lines) || start.substr(0, 8) == "SIP/2.0 " || start.find(' ') == std::string_view::npos)
    return {};
  std::string out = "SIP/2.0 " + std::to_string(status) + " " + reason + "\r\n";
  bool have[5] = {false, false, false, false, false};
  for (const Line& l : lines) {
    int which = name_is(l.name, "Via", 'v') ? 0 : name_is(l.name, "From", 'f') ? 1 : name_is(l.name, "To", 't') ? 2
              : name_is(l.name, "Call-ID", 'i') ? 3 : name_is(l.name, "CSeq") ? 4 : -1;
    if (which < 0 || l.raw.size() > 2048) continue;
    have[which] = true;
    std::string line(l.raw);
    // RFC 3261 §8.2.6.2: a final response carries a To tag.
    if (which == 2 && line.find(";tag=") == std::string::npos) line += ";tag=rls-edge";
    append_line(out, line);
  }
  for (bool h : have)
    if (!h) return {};
  out += "Content-Length: 0\r\n\r\n";
  return out;
}

}  // namespace relais
