// trunk_links.cpp — one kept-up outbound connection per TLS trunk.
#include "trunk_links.hpp"

#include <algorithm>
#include <chrono>

#include "log.hpp"
#include "stream_edge.hpp"

namespace relais {

namespace {
constexpr int kMaxBackoffSeconds = 60;
constexpr double kStableSeconds = 10;  // up this long: a later close is not the peer refusing us

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// Below the 120 s after which Kamailio (and most proxies) close an idle TCP connection.
constexpr timeval kKeepaliveInterval{30, 0};
}  // namespace

TrunkLinks::TrunkLinks(StreamEdge& edge) : edge_(edge) {
  edge_.set_outbound_observer([this](uint64_t id, bool ready, const std::string& reason) { flow_event(id, ready, reason); });
}

TrunkLinks::~TrunkLinks() {
  edge_.set_outbound_observer(nullptr);
  for (auto& [name, link] : links_) close(*link);
}

bool TrunkLinks::build_context(Link& link, const TlsSettings& policy) {
  std::string error;
  SslCtxPtr ctx = make_client_context(policy, link.trunk.tls_options, error);
  if (!ctx) {
    // A bad file at start: the trunk stays down. On a reload: the previous context is kept.
    log_error("trunk.tls_config_failed").kv("trunk", link.trunk.name).kv("error", error)
        .kv("kept", link.ctx ? "previous context" : "none");
    return link.ctx != nullptr;
  }
  if (!link.trunk.tls_options.verify)
    log_warn("trunk.tls_unverified").kv("trunk", link.trunk.name).kv("note", "the operator's certificate is not checked");
  link.ctx = std::move(ctx);
  return true;
}

void TrunkLinks::apply(const std::map<std::string, TrunkConfig>& trunks, const TlsSettings& policy) {
  for (auto it = links_.begin(); it != links_.end();) {
    auto fresh = trunks.find(it->first);
    bool same = fresh != trunks.end() && fresh->second.tls && fresh->second.proxy == it->second->trunk.proxy &&
                fresh->second.tls_options == it->second->trunk.tls_options;
    if (same) {
      it->second->trunk = fresh->second;
      build_context(*it->second, policy);
      ++it;
      continue;
    }
    close(*it->second);
    it = links_.erase(it);
  }
  for (const auto& [name, trunk] : trunks) {
    if (!trunk.tls || links_.count(name)) continue;
    auto link = std::make_unique<Link>();
    link->owner = this;
    link->trunk = trunk;
    link->retry.reset(evtimer_new(edge_.base(), on_retry, link.get()));
    link->keepalive.reset(event_new(edge_.base(), -1, EV_PERSIST, on_keepalive, link.get()));
    Link& ref = *link;
    links_[name] = std::move(link);
    if (build_context(ref, policy)) connect(ref);
  }
}

void TrunkLinks::connect(Link& link) {
  if (link.flow || !link.ctx) return;
  SslPtr ssl(SSL_new(link.ctx.get()));
  const TrunkTls& t = link.trunk.tls_options;
  const std::string& name = t.server_name.empty() ? link.trunk.host : t.server_name;
  if (!ssl || !expect_peer(ssl.get(), name, t.verify)) {
    log_error("trunk.link_failed").kv("trunk", link.trunk.name).kv("reason", "cannot set up TLS: " + openssl_error_text());
    return schedule_retry(link);
  }
  std::string error;
  uint64_t id = edge_.connect_out(link.trunk.host, link.trunk.port, std::move(ssl), error);
  if (!id) {
    log_error("trunk.link_failed").kv("trunk", link.trunk.name).kv("reason", error);
    return schedule_retry(link);
  }
  // It may already have failed (an unresolvable name, say) and been reported unmatched.
  if (!edge_.flow(id)) return schedule_retry(link);
  link.flow = id;
  log_info("trunk.link_connecting").kv("trunk", link.trunk.name).kv("peer", link.trunk.host + ":" + std::to_string(link.trunk.port))
      .kv("server_name", name).kv("flow", edge_.flow(id)->addressing().token);
}

void TrunkLinks::flow_event(uint64_t id, bool ready, const std::string& reason) {
  auto it = std::find_if(links_.begin(), links_.end(), [id](const auto& entry) { return entry.second->flow == id; });
  if (it == links_.end()) return;
  Link& link = *it->second;
  if (ready) {
    link.up = true;
    link.up_since = now_seconds();
    event_add(link.keepalive.get(), &kKeepaliveInterval);
    EdgeFlow* flow = edge_.flow(id);
    log_notice("trunk.link_up").kv("trunk", link.trunk.name).kv("peer", flow ? flow->addressing().source : "")
        .kv("local", flow ? flow->addressing().public_sent_by : "");
    if (on_up_) on_up_(link.trunk.name);
    return;
  }
  bool was_up = link.up;
  link.up = false;
  link.flow = 0;
  event_del(link.keepalive.get());
  log_warn(was_up ? "trunk.link_down" : "trunk.link_failed").kv("trunk", link.trunk.name).kv("reason", reason);
  // A link that was up a while and then closed (the operator's idle timeout, a restart) is
  // reopened at once; one that never came up, or was closed right after its handshake (with
  // TLS 1.3 a server refuses our client certificate only then), waits longer each time, so a
  // refusing peer is not hammered.
  if (was_up && now_seconds() - link.up_since >= kStableSeconds) link.backoff = 1;
  schedule_retry(link);
}

void TrunkLinks::schedule_retry(Link& link) {
  timeval tv{link.backoff, 0};
  evtimer_add(link.retry.get(), &tv);
  link.backoff = std::min(link.backoff * 2, kMaxBackoffSeconds);
}

void TrunkLinks::on_retry(evutil_socket_t, short, void* arg) {
  auto* link = static_cast<Link*>(arg);
  link->owner->connect(*link);
}

void TrunkLinks::on_keepalive(evutil_socket_t, short, void* arg) {
  auto* link = static_cast<Link*>(arg);
  if (EdgeFlow* flow = link->owner->edge_.flow(link->flow)) flow->send_ping();
}

void TrunkLinks::close(Link& link) {
  if (link.retry) evtimer_del(link.retry.get());
  if (link.keepalive) event_del(link.keepalive.get());
  uint64_t id = link.flow;
  link.flow = 0;  // its close report must not find the link any more
  link.up = false;
  if (EdgeFlow* flow = edge_.flow(id)) flow->close("trunk removed");
}

TrunkLinks::State TrunkLinks::lookup(const std::string& trunk, std::string& route, std::string& local) const {
  auto it = links_.find(trunk);
  if (it == links_.end()) return State::not_tls;
  const Link& link = *it->second;
  EdgeFlow* flow = link.up ? edge_.flow(link.flow) : nullptr;
  if (!flow || !flow->ready()) return State::down;
  route = flow->route();
  local = flow->addressing().public_sent_by;
  return State::up;
}

}  // namespace relais
