// sdp.cpp — line-based SDP reading and rewriting. We keep every line we do not have to change
// byte for byte (codecs, fmtp, direction, crypto...) instead of re-printing a parsed tree:
// a relay must not alter what it does not understand.
#include "sdp.hpp"

#include <charconv>

namespace relais::media {

namespace {

constexpr size_t kMaxBody = 65536;
constexpr size_t kMaxLines = 2000;
constexpr size_t kMaxMedia = 32;

std::vector<std::string_view> split_words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

bool to_u32(std::string_view s, uint32_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// "c=IN IP4 1.2.3.4[/ttl]" → address; IPv6 is refused: the relay binds IPv4 only.
bool parse_connection(std::string_view value, std::string& address, std::string& error) {
  auto w = split_words(value);
  if (w.size() != 3 || w[0] != "IN") return error = "bad c= line", false;
  if (w[1] != "IP4") return error = "only IP4 connection addresses are supported", false;
  std::string_view addr = w[2];
  if (size_t slash = addr.find('/'); slash != std::string_view::npos) addr = addr.substr(0, slash);
  if (addr.empty() || addr.size() > 64) return error = "bad c= address", false;
  address = std::string(addr);
  return true;
}

uint32_t static_clock_rate(uint32_t pt, std::string_view type) {
  // RFC 3551 table 4/5 static payload types.
  if (pt <= 9 || pt == 12 || pt == 13 || pt == 15 || pt == 18) return 8000;
  if (pt == 10 || pt == 11) return 44100;
  if (pt == 14 || pt == 25 || pt == 26 || pt == 28 || (pt >= 31 && pt <= 34)) return 90000;
  return type == "video" ? 90000 : 8000;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  return true;
}

// "PCMU/8000" → name PCMU, rate 8000 (0 when absent or unreadable).
void split_encoding(std::string_view enc, std::string_view& name, uint32_t& rate) {
  size_t slash = enc.find('/');
  name = enc.substr(0, slash);
  rate = 0;
  if (slash == std::string_view::npos) return;
  std::string_view r = enc.substr(slash + 1);
  r = r.substr(0, r.find('/'));
  if (!to_u32(r, rate) || rate > 1000000) rate = 0;
}

// The media services' view of a section: which G.711 law to send and how DTMF is carried.
// One pass over the section's rtpmaps into a table by payload type, then the formats in order.
void find_service_formats(SdpMedia& m, const std::vector<std::string>& lines) {
  std::string_view names[128];
  uint32_t rates[128] = {};
  for (size_t i = m.first_line; i < m.end_line; ++i) {
    std::string_view line = lines[i];
    if (!starts_with(line, "a=rtpmap:")) continue;
    auto w = split_words(line.substr(9));
    uint32_t pt = 0;
    if (w.size() < 2 || !to_u32(w[0], pt) || pt > 127 || !names[pt].empty()) continue;
    split_encoding(w[1], names[pt], rates[pt]);
  }
  names[0] = names[0].empty() ? "PCMU" : names[0];  // RFC 3551 static types need no rtpmap
  names[8] = names[8].empty() ? "PCMA" : names[8];
  if (!rates[0]) rates[0] = 8000;
  if (!rates[8]) rates[8] = 8000;
  for (const std::string& f : m.formats) {
    uint32_t pt = 0;
    if (!to_u32(f, pt) || pt > 127) continue;
    bool pcmu = iequals(names[pt], "PCMU"), pcma = iequals(names[pt], "PCMA");
    if ((pcmu || pcma) && rates[pt] == 8000 && m.g711_pt < 0) {
      m.g711_pt = static_cast<int>(pt);
      m.g711_alaw = pcma;
    }
    if (iequals(names[pt], "telephone-event") && rates[pt] > 0 && m.te_pt < 0) {
      m.te_pt = static_cast<int>(pt);
      m.te_rate = rates[pt];
    }
  }
}

bool is_ice_attribute(std::string_view a) {
  return starts_with(a, "a=ice-") || starts_with(a, "a=candidate:") || a == "a=end-of-candidates" ||
         starts_with(a, "a=remote-candidates") || a == "a=ice-lite";
}

}  // namespace

std::optional<Sdp> sdp_parse(std::string_view text, std::string& error) {
  if (text.size() > kMaxBody) return error = "SDP too large", std::nullopt;
  Sdp sdp;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line.size() < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z')
      return error = "malformed SDP line", std::nullopt;
    if (sdp.lines.size() >= kMaxLines) return error = "too many SDP lines", std::nullopt;
    sdp.lines.emplace_back(line);
  }
  if (sdp.lines.empty() || sdp.lines[0] != "v=0") return error = "SDP does not start with v=0", std::nullopt;

  std::string session_address;
  for (size_t i = 0; i < sdp.lines.size(); ++i) {
    std::string_view line = sdp.lines[i];
    std::string_view value = line.substr(2);
    if (line[0] == 'm') {
      if (sdp.media.size() >= kMaxMedia) return error = "too many m= lines", std::nullopt;
      auto w = split_words(value);
      if (w.size() < 4) return error = "bad m= line", std::nullopt;
      SdpMedia m;
      m.type = std::string(w[0]);
      std::string_view port = w[1];
      if (size_t slash = port.find('/'); slash != std::string_view::npos) port = port.substr(0, slash);
      uint32_t p = 0;
      if (!to_u32(port, p) || p > 65535) return error = "bad m= port", std::nullopt;
      m.port = static_cast<uint16_t>(p);
      m.proto = std::string(w[2]);
      for (size_t k = 3; k < w.size(); ++k) m.formats.emplace_back(w[k]);
      m.address = session_address;
      m.first_line = i;
      if (!sdp.media.empty()) sdp.media.back().end_line = i;
      sdp.media.push_back(std::move(m));
      continue;
    }
    if (line[0] == 'c') {
      std::string addr;
      if (!parse_connection(value, addr, error)) return std::nullopt;
      if (sdp.media.empty()) session_address = addr;
      else sdp.media.back().address = addr;
      continue;
    }
    if (sdp.media.empty() || line[0] != 'a') continue;
    SdpMedia& m = sdp.media.back();
    if (value == "rtcp-mux") {
      m.rtcp_mux = true;
    } else if (starts_with(value, "rtcp:")) {
      auto w = split_words(value.substr(5));
      uint32_t p = 0;
      if (w.empty() || !to_u32(w[0], p) || p == 0 || p > 65535) return error = "bad a=rtcp", std::nullopt;
      m.rtcp_port = static_cast<uint16_t>(p);
      if (w.size() == 4 && w[1] == "IN" && w[2] == "IP4") m.rtcp_address = std::string(w[3]);
    } else if (starts_with(value, "rtpmap:") && !m.formats.empty()) {
      // a=rtpmap:<pt> <encoding>/<rate>[/<channels>] — only the first format's rate matters.
      auto w = split_words(value.substr(7));
      if (w.size() >= 2 && w[0] == m.formats[0]) {
        std::string_view enc = w[1];
        size_t slash = enc.find('/');
        uint32_t rate = 0;
        if (slash != std::string_view::npos) {
          std::string_view r = enc.substr(slash + 1);
          r = r.substr(0, r.find('/'));
          if (to_u32(r, rate) && rate > 0 && rate <= 1000000) m.clock_rate = rate;
        }
      }
    }
  }
  if (!sdp.media.empty()) sdp.media.back().end_line = sdp.lines.size();
  for (SdpMedia& m : sdp.media) {
    if (m.address.empty() && m.port != 0) return error = "stream without a c= address", std::nullopt;
    bool has_rtpmap = false;
    for (size_t i = m.first_line; i < m.end_line; ++i)
      if (!m.formats.empty() && starts_with(sdp.lines[i], "a=rtpmap:" + m.formats[0] + " ")) has_rtpmap = true;
    uint32_t pt = 0;
    if (!has_rtpmap) m.clock_rate = (!m.formats.empty() && to_u32(m.formats[0], pt)) ? static_clock_rate(pt, m.type)
                                                                                      : static_clock_rate(255, m.type);
    if (m.rtcp_port == 0) m.rtcp_port = m.port == 0 || m.port == 65535 ? 0 : static_cast<uint16_t>(m.port + 1);
    if (m.rtcp_address.empty()) m.rtcp_address = m.address;
    find_service_formats(m, sdp.lines);
  }
  return sdp;
}

std::string sdp_rewrite(const Sdp& sdp, const SdpRewrite& opts, std::span<const uint16_t> ports,
                        std::span<const bool> mux) {
  std::string out;
  out.reserve(sdp.lines.size() * 40 + 64);
  auto emit = [&out](std::string_view line) {
    out += line;
    out += "\r\n";
  };
  const std::string conn = "c=IN IP4 " + opts.address;
  auto rewrite_line = [&](const std::string& line, bool in_media, bool strip_crypto = false) {
    std::string_view a = line;
    if (line[0] == 'o' && opts.replace_origin) {
      auto w = split_words(a.substr(2));
      if (w.size() == 6) {
        emit("o=" + std::string(w[0]) + " " + std::string(w[1]) + " " + std::string(w[2]) + " IN IP4 " +
             opts.address);
        return;
      }
    }
    if (line[0] == 'c') return emit(conn);
    if (line[0] == 'a') {
      if (in_media && (a == "a=rtcp-mux" || starts_with(a, "a=rtcp:"))) return;
      if (opts.remove_ice && is_ice_attribute(a)) return;
      if (strip_crypto && starts_with(a, "a=crypto:")) return;
    }
    emit(line);
  };
  size_t session_end = sdp.media.empty() ? sdp.lines.size() : sdp.media[0].first_line;
  for (size_t i = 0; i < session_end; ++i) rewrite_line(sdp.lines[i], false);
  for (size_t k = 0; k < sdp.media.size(); ++k) {
    const SdpMedia& m = sdp.media[k];
    uint16_t port = m.port == 0 ? 0 : ports[k];
    const SdpMediaOut* extra = k < opts.media.size() ? &opts.media[k] : nullptr;
    std::string proto = extra && !extra->proto.empty() ? extra->proto
                        : opts.transport_protocol.empty() ? m.proto : opts.transport_protocol;
    std::string mline = "m=" + m.type + " " + std::to_string(port) + " " + proto;
    for (const std::string& f : m.formats) mline += " " + f;
    emit(mline);
    for (size_t i = m.first_line + 1; i < m.end_line; ++i) rewrite_line(sdp.lines[i], true, extra && extra->strip_crypto);
    if (extra)
      for (const std::string& line : extra->add) emit(line);
    // Appended last: RFC 4566 §5 puts a= lines after the section's c=/b=/k= lines.
    if (port != 0) {
      if (mux[k]) emit("a=rtcp-mux");
      else emit("a=rtcp:" + std::to_string(port + 1));
    }
  }
  return out;
}

}  // namespace relais::media
