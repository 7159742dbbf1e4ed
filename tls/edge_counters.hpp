// edge_counters.hpp — what the stream edge counts, for /metrics.
#pragma once

#include <cstddef>
#include <cstdint>

namespace relais {

struct EdgeCounters {
  uint64_t accepted_tcp = 0;       // connections accepted on TCP listeners
  uint64_t accepted_tls = 0;       // connections accepted on TLS listeners (before the handshake)
  uint64_t refused = 0;            // connections closed at accept: max_connections reached
  uint64_t handshakes_failed = 0;  // TLS handshakes that failed or timed out
  uint64_t framing_errors = 0;     // connections closed for unframeable or oversized input
  uint64_t messages_in = 0;        // messages relayed from phones to the SIP core
  uint64_t messages_out = 0;       // messages relayed from the SIP core to phones
  uint64_t keepalives = 0;         // RFC 5626 CRLF pings answered
  size_t open = 0;                 // connections open now (gauge)
};

}  // namespace relais
