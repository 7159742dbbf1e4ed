// trunk_links.hpp — relais's own connections to operators reached over TLS. Sofia's tport
// could not verify an operator's certificate against a chosen CA, present a client
// certificate or follow our version/cipher policy (SOFIA-NOTES.md), so the stream edge opens
// these connections itself, as outbound flows (edge_flow.hpp), and Sofia reaches the operator
// through the flow's internal connection like it reaches a registered TLS phone.
//
// One link per TLS trunk, opened at start and kept up: reconnected after a close with a
// backoff (1 s doubling to 60 s), kept alive with RFC 5626 CRLF pings. A link whose handshake
// or certificate check fails is never used; calls to its trunk fail with 503 meanwhile.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "config.hpp"
#include "edge_flow.hpp"
#include "tls_context.hpp"

namespace relais {

class StreamEdge;

class TrunkLinks {
 public:
  explicit TrunkLinks(StreamEdge& edge);
  ~TrunkLinks();
  TrunkLinks(const TrunkLinks&) = delete;
  TrunkLinks& operator=(const TrunkLinks&) = delete;

  // Opens a link per TLS trunk. On a reload: links of removed trunks, or whose proxy or TLS
  // options changed, are closed and reopened; a link whose trunk is unchanged stays up, but
  // its client context is rebuilt from the files, so renewed certificates are used by the
  // next handshake. `policy`: the tls section (versions, ciphers).
  void apply(const std::map<std::string, TrunkConfig>& trunks, const TlsSettings& policy);

  enum class State { not_tls, up, down };
  // For a TLS trunk that is up: `route` (Sofia's next hop, the flow's internal address) and
  // `local` (our end of the connection, "ip:port", for a Contact the operator can reach us at
  // over this connection).
  State lookup(const std::string& trunk, std::string& route, std::string& local) const;

  // Called when a link (re)connects, e.g. to register at once rather than at the next retry.
  void on_up(std::function<void(const std::string& trunk)> callback) { on_up_ = std::move(callback); }

 private:
  struct Link {
    TrunkLinks* owner = nullptr;
    TrunkConfig trunk;
    SslCtxPtr ctx;
    uint64_t flow = 0;  // the outbound flow, 0 while none
    bool up = false;
    int backoff = 1;    // seconds before the next attempt after a failure
    double up_since = 0;  // steady clock, seconds, when it last came up
    EventPtr retry;
    EventPtr keepalive;
  };
  static void on_retry(evutil_socket_t, short, void* arg);
  static void on_keepalive(evutil_socket_t, short, void* arg);
  bool build_context(Link& link, const TlsSettings& policy);
  void connect(Link& link);
  void flow_event(uint64_t id, bool ready, const std::string& reason);
  void schedule_retry(Link& link);
  void close(Link& link);

  StreamEdge& edge_;
  std::map<std::string, std::unique_ptr<Link>> links_;
  std::function<void(const std::string&)> on_up_;
};

}  // namespace relais
