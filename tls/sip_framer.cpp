// sip_framer.cpp — stream framing of SIP messages.
#include "sip_framer.hpp"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string_view>

namespace relais {

namespace {

// A request line carries a URI; phones send a few hundred bytes. Bounding it lets junk be
// refused after 8 KiB instead of after a whole max-size header section.
constexpr size_t kMaxStartLine = 8192;
// Headers of real requests take a few KiB (a long Via stack, a big Authorization); more is an
// attack on the parser or on memory. Bodies (SDP, PIDF) may use the rest of max_size.
constexpr size_t kMaxHeaderSection = 32768;

bool is_token_char(unsigned char c) {
  return std::isalnum(c) || strchr("-.!%*_+`'~", c) != nullptr;
}

// Content-Length and its compact form "l" (RFC 3261 §7.3.3); returns -1 when absent, -2 when
// malformed or two headers disagree.
long long content_length(std::string_view head) {
  long long found = -1;
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t start = pos + 2;
    size_t end = head.find("\r\n", start);
    std::string_view line = head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    pos = end;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    bool is_cl = (name.size() == 14 && strncasecmp(name.data(), "content-length", 14) == 0) ||
                 (name.size() == 1 && (name[0] == 'l' || name[0] == 'L'));
    if (!is_cl) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    // Ten digits already exceed any max_message_size; more would overflow.
    if (value.empty() || value.size() > 10) return -2;
    long long v = 0;
    for (char c : value) {
      if (c < '0' || c > '9') return -2;
      v = v * 10 + (c - '0');
    }
    if (found >= 0 && found != v) return -2;
    found = v;
  }
  return found;
}

Frame error(int status, const char* reason) {
  Frame f;
  f.kind = Frame::Kind::error;
  f.status = status;
  f.reason = reason;
  return f;
}

}  // namespace

bool plausible_start_line(const char* line, size_t len) {
  std::string_view s(line, len);
  if (s.size() >= 12 && s.substr(0, 8) == "SIP/2.0 ") {
    return std::isdigit(static_cast<unsigned char>(s[8])) && std::isdigit(static_cast<unsigned char>(s[9])) &&
           std::isdigit(static_cast<unsigned char>(s[10]));
  }
  size_t sp1 = s.find(' ');
  if (sp1 == 0 || sp1 == std::string_view::npos) return false;
  for (size_t i = 0; i < sp1; ++i)
    if (!is_token_char(static_cast<unsigned char>(s[i]))) return false;
  size_t sp2 = s.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return false;
  if (s.substr(sp2 + 1) != "SIP/2.0") return false;
  for (size_t i = sp1 + 1; i < sp2; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c <= ' ' || c >= 0x7f) return false;  // RFC 3986: no raw controls, spaces or 8-bit
  }
  return true;
}

Frame next_frame(const char* data, size_t len, size_t max_size) {
  Frame f;
  if (len >= 2 && data[0] == '\r' && data[1] == '\n') {
    if (len >= 4 && data[2] == '\r' && data[3] == '\n') {
      f.kind = Frame::Kind::ping;
      f.length = 4;
      return f;
    }
    // "\r\n\r" may still become a ping; a lone "\r\n" (or one before a message) is stray.
    if (len == 3 && data[2] == '\r') return f;
    f.kind = Frame::Kind::skip;
    f.length = 2;
    return f;
  }
  if (len == 1 && data[0] == '\r') return f;
  std::string_view s(data, len);
  size_t line_end = s.find("\r\n");
  if (line_end == std::string_view::npos) {
    if (len > kMaxStartLine) return error(400, "Start Line Too Long");
    // Junk need not fill the whole buffer to be refused: no SIP start line holds a NUL or
    // another control character.
    for (size_t i = 0; i < len; ++i)
      if (static_cast<unsigned char>(data[i]) < 0x20 && data[i] != '\r') return error(400, "Bad Start Line");
    return f;
  }
  if (line_end > kMaxStartLine || !plausible_start_line(data, line_end)) return error(400, "Bad Start Line");
  size_t max_head = std::min(max_size, kMaxHeaderSection);
  size_t head_end = s.find("\r\n\r\n", line_end);
  if (head_end == std::string_view::npos) {
    if (len >= max_head) return error(400, "Header Section Too Large");
    return f;
  }
  size_t header_length = head_end + 4;
  if (header_length > max_head) return error(400, "Header Section Too Large");
  long long body = content_length(s.substr(0, head_end + 2));
  if (body == -2) return error(400, "Bad Content-Length");
  // RFC 3261 §18.3 makes Content-Length mandatory on streams; a missing one means no body,
  // which is how Sofia reads it too.
  if (body < 0) body = 0;
  if (header_length + static_cast<unsigned long long>(body) > max_size) return error(413, "Message Too Large");
  f.header_length = header_length;
  f.length = header_length + static_cast<size_t>(body);
  if (len < f.length) return Frame{};
  f.kind = Frame::Kind::message;
  return f;
}

}  // namespace relais
