// log.cpp — key=value event lines on stderr.
#include "log.hpp"

#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace relais {

namespace {
// Read by the SQLite writer and relais-media's workers while SIGHUP may change it.
std::atomic<LogLevel> g_level{LogLevel::info};
constexpr const char* kLevelNames[] = {"debug", "info", "warn", "error"};
constexpr size_t kMaxValue = 256;  // a value from the network is clipped; the line stays readable
}  // namespace

void set_log_level(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
bool log_enabled(LogLevel level) { return level >= g_level.load(std::memory_order_relaxed); }

bool parse_log_level(std::string_view text, LogLevel& out) {
  for (int i = 0; i < 4; ++i) {
    if (text == kLevelNames[i]) {
      out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

LogLine::LogLine(LogLevel level, std::string_view event, bool force) : enabled_(force || log_enabled(level)) {
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

LogLine::~LogLine() {
  if (!enabled_) return;
  text_ += '\n';
  // One write() per line so lines from a crash handler or a child never interleave mid-line.
  ssize_t ignored = write(STDERR_FILENO, text_.data(), text_.size());
  (void)ignored;
}

LogLine& LogLine::kv(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  text_ += ' ';
  text_ += key;
  text_ += '=';
  bool needs_quotes = value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      needs_quotes = true;
      break;
    }
  }
  if (!needs_quotes) {
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
    } else if (u < 0x20 || u == 0x7f) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\x%02x", u);
      text_ += esc;
    } else {
      text_ += c;
    }
  }
  text_ += '"';
  return *this;
}

bool LogRateLimit::allow() {
  long now = static_cast<long>(time(nullptr));
  if (now != window_) {
    if (dropped_ > 0) log_warn("log.suppressed").kv("lines", dropped_);
    window_ = now;
    used_ = 0;
    dropped_ = 0;
  }
  if (used_ >= per_second_) {
    ++dropped_;
    return false;
  }
  ++used_;
  return true;
}

LogLine& LogLine::kv(std::string_view key, long long value) {
  if (!enabled_) return *this;
  text_ += ' ';
  text_ += key;
  text_ += '=';
  text_ += std::to_string(value);
  return *this;
}

}  // namespace relais
