// metrics.hpp — Prometheus text exposition of relais's counters.
#pragma once

#include <cstdint>
#include <string>

#include "call_engine.hpp"
#include "call_limits.hpp"
#include "edge_counters.hpp"
#include "mail_sender.hpp"
#include "mwi_service.hpp"
#include "nat_keepalive.hpp"
#include "registrar.hpp"
#include "sip_stack.hpp"
#include "source_guard.hpp"

namespace relais {

struct MetricsSnapshot {
  RegistrarCounters registrar;
  SipCounters sip;
  CallCounters calls;
  SourceGuardCounters sbc;
  CallLimitCounters call_limits;
  EdgeCounters edge;  // the TCP/TLS edge (tls/); zero when it does not run
  MwiCounters mwi;
  MailStats mail;     // zero when mail is not configured
  NatKeepaliveCounters keepalive;
  std::string store_backend;
  std::string node_id;
  int64_t uptime_seconds = 0;
};

std::string render_metrics(const MetricsSnapshot& m);

// Bytes the process has allocated and not freed (jemalloc stats.allocated, or glibc mallinfo2).
size_t heap_in_use_bytes();
size_t heap_resident_bytes();

}  // namespace relais
