// stream_edge.cpp — listeners, the flow table and certificate reload.
#include "stream_edge.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <sys/socket.h>

#include <cinttypes>
#include <cstdio>

namespace relais {

std::string socket_address_text(const sockaddr* sa) {
  char ip[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    port = ntohs(in6->sin6_port);
  } else if (sa->sa_family == AF_INET) {
    auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof ip);
    port = ntohs(in4->sin_port);
  }
  std::string host = ip;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + std::to_string(port);
}

StreamEdge::StreamEdge(event_base* base, const Config& cfg, int core_port)
    : base_(base),
      core_port_(core_port),
      tls_listen_(cfg.tls.listen),
      max_message_size_(cfg.max_message_size),
      handshake_timeout_(cfg.tls.handshake_timeout),
      max_connections_(static_cast<size_t>(cfg.tls.max_connections)),
      tls_settings_(cfg.tls) {
  for (const ListenAddress& a : cfg.listen)
    if (a.proto == "tcp") tcp_.push_back(a);
  // Not a secret, only distinct per process: a flow token stored in a binding before a restart
  // (or by another node sharing Redis) must not name a flow of this process.
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&generation_), sizeof generation_) != 1)
    generation_ = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(this) ^ static_cast<uintptr_t>(time(nullptr)));
}

StreamEdge::~StreamEdge() {
  listeners_.clear();
  // Moved out first: each close() reports back through flow_closed(), which must not find it.
  auto flows = std::move(flows_);
  flows_.clear();
  for (auto& [id, flow] : flows) flow->close("shutdown");
  flows.clear();
  closed_.clear();
  dns_.reset();  // after the flows: a connecting one may still hold a DNS request
}

bool StreamEdge::start(std::string& error) {
  if (!tls_listen_.empty()) {
    if (!tls_.load(tls_settings_, error)) return false;
    log_notice("tls.loaded").kv("certificate", certificate_summary(tls_.get())).kv("min_version", tls_settings_.min_version)
        .kv("ciphers", tls_settings_.ciphers);
  }
  reaper_.reset(event_new(base_, -1, 0, on_reap, this));
  resume_.reset(evtimer_new(base_, on_resume, this));
  if (!reaper_ || !resume_) {
    error = "cannot create edge events";
    return false;
  }
  for (const ListenAddress& a : tcp_)
    if (!listen(a, error)) return false;
  for (const ListenAddress& a : tls_listen_)
    if (!listen(a, error)) return false;
  return true;
}

bool StreamEdge::listen(const ListenAddress& address, std::string& error) {
  error = "cannot listen on " + address.to_string() + " (address in use or not local?)";
  evutil_addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = EVUTIL_AI_PASSIVE;
  evutil_addrinfo* found = nullptr;
  std::string port = std::to_string(address.port);
  if (evutil_getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found) != 0 || !found) return false;
  auto entry = std::make_unique<Listener>();
  entry->edge = this;
  entry->address = address;
  entry->listener.reset(evconnlistener_new_bind(base_, on_accept, entry.get(),
                                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                                1024, found->ai_addr, static_cast<int>(found->ai_addrlen)));
  evutil_freeaddrinfo(found);
  if (!entry->listener) return false;
  evconnlistener_set_error_cb(entry->listener.get(), on_accept_error);
  listeners_.push_back(std::move(entry));
  error.clear();
  return true;
}

bool StreamEdge::reload(const TlsSettings& settings, std::string& error) {
  if (settings.listen != tls_listen_) log_warn("tls.listen_changed").kv("note", "listen addresses change at restart only");
  if (tls_listen_.empty()) return true;
  if (!tls_.load(settings, error)) return false;
  tls_settings_ = settings;
  log_notice("tls.reloaded").kv("certificate", certificate_summary(tls_.get())).kv("open_connections", flows_.size());
  return true;
}

std::string StreamEdge::token_of(uint64_t id) const {
  char buf[48];
  snprintf(buf, sizeof buf, "%" PRIx64 ".%08" PRIx32, id, generation_);
  return buf;
}

StreamEdge::FlowState StreamEdge::find_flow(const std::string& token, std::string& route) const {
  uint64_t id = 0;
  uint32_t generation = 0;
  int used = 0;
  if (sscanf(token.c_str(), "%" SCNx64 ".%8" SCNx32 "%n", &id, &generation, &used) != 2 ||
      static_cast<size_t>(used) != token.size() || generation != generation_)
    return FlowState::foreign;
  auto it = flows_.find(id);
  if (it == flows_.end() || !it->second->usable()) return FlowState::closed;
  route = it->second->route();
  return FlowState::alive;
}

EdgeCounters StreamEdge::counters() const {
  EdgeCounters c = stats_;
  c.open = flows_.size();
  return c;
}

void StreamEdge::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* peer, int, void* arg) {
  auto* entry = static_cast<Listener*>(arg);
  entry->edge->accept(*entry, fd, peer);
}

void StreamEdge::accept(Listener& listener, evutil_socket_t fd, const sockaddr* peer) {
  bool tls = listener.address.proto == "tls";
  std::string peer_text = socket_address_text(peer);
  if (flows_.size() >= max_connections_) {
    ++stats_.refused;
    if (log_limit_.allow())
      log_warn("edge.refused").kv("transport", listener.address.proto).kv("peer", peer_text).kv("reason", "max_connections")
          .kv("open", flows_.size());
    evutil_closesocket(fd);
    return;
  }
  ++(tls ? stats_.accepted_tls : stats_.accepted_tcp);
  FlowAddressing a;
  a.transport = tls ? "TLS" : "TCP";
  size_t colon = peer_text.rfind(':');
  a.peer_ip = peer_text.substr(0, colon);
  if (a.peer_ip.size() > 2 && a.peer_ip.front() == '[') a.peer_ip = a.peer_ip.substr(1, a.peer_ip.size() - 2);
  a.peer_port = atoi(peer_text.c_str() + colon + 1);
  a.source = listener.address.proto + ":" + peer_text;
  uint64_t id = next_id_++;
  a.token = token_of(id);
  a.core_sent_by = "127.0.0.1:" + std::to_string(core_port_);
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  a.public_sent_by = getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0
                         ? socket_address_text(reinterpret_cast<sockaddr*>(&local))
                         : listener.address.host + ":" + std::to_string(listener.address.port);
  SslPtr ssl;
  if (tls) {
    ssl.reset(tls_.new_ssl());
    if (!ssl) {
      if (log_limit_.allow()) log_error("edge.refused").kv("peer", peer_text).kv("reason", openssl_error_text());
      evutil_closesocket(fd);
      return;
    }
  }
  auto flow = std::make_unique<EdgeFlow>(*this, id, std::move(a));
  std::string error;
  if (!flow->start(fd, std::move(ssl), error)) {
    if (log_limit_.allow()) log_error("edge.refused").kv("peer", peer_text).kv("reason", error);
    return;
  }
  if (log_limit_.allow())
    log_info("edge.open").kv("flow", flow->addressing().token).kv("transport", listener.address.proto).kv("peer", peer_text)
        .kv("local", flow->addressing().public_sent_by).kv("core", flow->route());
  flows_.emplace(id, std::move(flow));
}

void StreamEdge::flow_closed(uint64_t id, const char* reason) {
  auto it = flows_.find(id);
  if (it == flows_.end()) return;
  bool outbound = it->second->outbound();
  closed_.push_back(std::move(it->second));
  flows_.erase(it);
  if (reaper_) event_active(reaper_.get(), EV_TIMEOUT, 0);
  if (outbound && outbound_observer_) outbound_observer_(id, false, reason);
}

void StreamEdge::outbound_ready(uint64_t id) {
  if (outbound_observer_) outbound_observer_(id, true, "");
}

EdgeFlow* StreamEdge::flow(uint64_t id) const {
  auto it = flows_.find(id);
  return it == flows_.end() || it->second->closed() ? nullptr : it->second.get();
}

uint64_t StreamEdge::connect_out(const std::string& host, int port, SslPtr ssl, std::string& error) {
  if (!dns_) {
    // Async resolution on our loop; without a resolver config, libevent falls back to the
    // system's blocking getaddrinfo (null base), which is fine for address literals.
    dns_.reset(evdns_base_new(base_, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE));
  }
  uint64_t id = next_id_++;
  FlowAddressing a;
  a.token = token_of(id);
  a.core_sent_by = "127.0.0.1:" + std::to_string(core_port_);
  a.peer_ip = host;
  a.peer_port = port;
  auto owned = std::make_unique<EdgeFlow>(*this, id, std::move(a));
  EdgeFlow* flow = owned.get();
  flows_.emplace(id, std::move(owned));
  if (!flow->start_outbound(host, port, std::move(ssl), dns_.get(), error)) {
    flows_.erase(id);
    return 0;
  }
  return id;
}

void StreamEdge::on_reap(evutil_socket_t, short, void* arg) { static_cast<StreamEdge*>(arg)->closed_.clear(); }

void StreamEdge::on_accept_error(evconnlistener*, void* arg) {
  StreamEdge* self = static_cast<Listener*>(arg)->edge;
  int err = EVUTIL_SOCKET_ERROR();
  if (self->log_limit_.allow()) log_error("edge.accept_failed").kv("error", evutil_socket_error_to_string(err));
  // Out of descriptors: the listening socket stays readable and would spin the loop; pause
  // accepting for a second instead.
  for (auto& l : self->listeners_) evconnlistener_disable(l->listener.get());
  timeval second{1, 0};
  evtimer_add(self->resume_.get(), &second);
}

void StreamEdge::on_resume(evutil_socket_t, short, void* arg) {
  for (auto& l : static_cast<StreamEdge*>(arg)->listeners_) evconnlistener_enable(l->listener.get());
}

}  // namespace relais
