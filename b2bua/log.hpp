// log.hpp — one line per event, key=value, to stderr: `<ts> level=info event=register.ok k=v ...`.
#pragma once

#include <string>
#include <string_view>

namespace relais {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

void set_log_level(LogLevel level);
bool parse_log_level(std::string_view text, LogLevel& out);
bool log_enabled(LogLevel level);

// Builds one line; values are quoted when they contain spaces, quotes or control bytes so a
// hostile User-Agent cannot forge extra keys or lines.
class LogLine {
 public:
  // `force`: written whatever the configured level (start, stop, reload: operators and
  // scripts wait for these lines even with log_level = "warn").
  LogLine(LogLevel level, std::string_view event, bool force = false);
  ~LogLine();  // writes the line
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  LogLine& kv(std::string_view key, std::string_view value);
  LogLine& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value ? value : "")); }
  LogLine& kv(std::string_view key, const std::string& value) { return kv(key, std::string_view(value)); }
  LogLine& kv(std::string_view key, long long value);
  LogLine& kv(std::string_view key, int value) { return kv(key, static_cast<long long>(value)); }
  LogLine& kv(std::string_view key, unsigned value) { return kv(key, static_cast<long long>(value)); }
  LogLine& kv(std::string_view key, long value) { return kv(key, static_cast<long long>(value)); }
  LogLine& kv(std::string_view key, unsigned long value) { return kv(key, static_cast<long long>(value)); }

 private:
  bool enabled_;
  std::string text_;
};

// Lets at most `per_second` lines through, so hostile traffic cannot turn the log into the
// bottleneck; the drop count is reported with the next line that gets through.
class LogRateLimit {
 public:
  explicit LogRateLimit(unsigned per_second) : per_second_(per_second) {}
  bool allow();
  unsigned long dropped() const { return dropped_; }

 private:
  unsigned per_second_;
  long window_ = 0;
  unsigned used_ = 0;
  unsigned long dropped_ = 0;
};

inline LogLine log_notice(std::string_view event) { return LogLine(LogLevel::info, event, true); }
inline LogLine log_debug(std::string_view event) { return LogLine(LogLevel::debug, event); }
inline LogLine log_info(std::string_view event) { return LogLine(LogLevel::info, event); }
inline LogLine log_warn(std::string_view event) { return LogLine(LogLevel::warn, event); }
inline LogLine log_error(std::string_view event) { return LogLine(LogLevel::error, event); }

}  // namespace relais
