// media_log.cpp — key=value event lines on stderr.
#include "media_log.hpp"

#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace relais::media {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
constexpr const char* kLevelNames[] = {"debug", "info", "warn", "error"};
constexpr size_t kMaxValue = 200;
}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }
bool log_enabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

bool parse_log_level(std::string_view text, LogLevel& out) {
  for (int i = 0; i < 4; ++i) {
    if (text == kLevelNames[i]) {
      out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

Log::Log(LogLevel level, std::string_view event) : enabled_(log_enabled(level)) {
  if (!enabled_) return;
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm utc{};
  gmtime_r(&tv.tv_sec, &utc);
  char stamp[40];
  size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  snprintf(stamp + n, sizeof stamp - n, ".%03dZ", static_cast<int>(tv.tv_usec / 1000));
  text_.reserve(160);
  text_ += stamp;
  text_ += " level=";
  text_ += kLevelNames[static_cast<int>(level)];
  text_ += " event=";
  text_ += event;
}

Log::~Log() {
  if (!enabled_) return;
  text_ += '\n';
  ssize_t ignored = write(STDERR_FILENO, text_.data(), text_.size());
  (void)ignored;
}

Log& Log::kv(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  text_ += ' ';
  text_ += key;
  text_ += '=';
  bool quote = value.empty();
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '"' || c == '=' || u < 0x20 || u >= 0x7f) {
      quote = true;
      break;
    }
  }
  if (!quote) {
    text_.append(value.substr(0, kMaxValue));
    return *this;
  }
  text_ += '"';
  size_t shown = 0;
  for (char c : value) {
    if (++shown > kMaxValue) {
      text_ += "...";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      text_ += '\\';
      text_ += c;
    } else if (u < 0x20 || u >= 0x7f) {
      char hex[8];
      snprintf(hex, sizeof hex, "\\x%02x", u);
      text_ += hex;
    } else {
      text_ += c;
    }
  }
  text_ += '"';
  return *this;
}

Log& Log::kv(std::string_view key, long long value) { return kv(key, std::string_view(std::to_string(value))); }

}  // namespace relais::media
