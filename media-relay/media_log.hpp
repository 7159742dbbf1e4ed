// media_log.hpp — relais-media's event log: one key=value line per event on stderr, in the same
// shape as relais (`<iso-ts> level=info event=call.offer call-id=...`).
#pragma once

#include <string>
#include <string_view>

namespace relais::media {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

void set_log_level(LogLevel level);
bool parse_log_level(std::string_view text, LogLevel& out);
bool log_enabled(LogLevel level);

// Builds one line and writes it with a single write() in the destructor, so lines from the
// control thread and the workers never interleave. Values from the network are quoted and
// clipped so a hostile call-id cannot forge keys or lines.
class Log {
 public:
  Log(LogLevel level, std::string_view event);
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  Log& kv(std::string_view key, std::string_view value);
  Log& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value ? value : "")); }
  Log& kv(std::string_view key, const std::string& value) { return kv(key, std::string_view(value)); }
  Log& kv(std::string_view key, long long value);
  Log& kv(std::string_view key, int value) { return kv(key, static_cast<long long>(value)); }
  Log& kv(std::string_view key, unsigned value) { return kv(key, static_cast<long long>(value)); }
  Log& kv(std::string_view key, long value) { return kv(key, static_cast<long long>(value)); }
  Log& kv(std::string_view key, unsigned long value) { return kv(key, static_cast<long long>(value)); }

 private:
  bool enabled_;
  std::string text_;
};

}  // namespace relais::media
