// sofia_log.cpp — collects Sofia's printf-style fragments into lines and logs each once.
#include "sofia_log.hpp"

#include <sofia-sip/su_log.h>

#include <cstdarg>
#include <cstdio>
#include <string>

extern "C" {
// Exported by libsofia-sip-ua but declared only in its private headers.
extern su_log_t nta_log[];
extern su_log_t tport_log[];
}

namespace relais {

namespace {

struct SofiaLogSink {
  const char* component;
  std::string pending;  // Sofia writes one message in several calls; a line ends with '\n'
};

SofiaLogSink g_sinks[] = {{"nta", {}}, {"tport", {}}, {"su", {}}};

void sofia_logger(void* stream, const char* fmt, va_list ap) {
  auto* sink = static_cast<SofiaLogSink*>(stream);
  char buf[1024];
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  if (n <= 0) return;
  sink->pending.append(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
  size_t nl;
  while ((nl = sink->pending.find('\n')) != std::string::npos) {
    std::string line = sink->pending.substr(0, nl);
    sink->pending.erase(0, nl + 1);
    if (!line.empty()) log_warn("sofia").kv("component", sink->component).kv("msg", line);
  }
  if (sink->pending.size() > 4096) sink->pending.clear();  // a message that never ends
}

}  // namespace

void route_sofia_logs(LogLevel our_level) {
  unsigned level = our_level == LogLevel::debug ? 3 : 1;
  su_log_t* logs[] = {nta_log, tport_log, su_log_default};
  for (size_t i = 0; i < 3; ++i) {
    su_log_redirect(logs[i], sofia_logger, &g_sinks[i]);
    su_log_set_level(logs[i], level);
  }
}

}  // namespace relais
