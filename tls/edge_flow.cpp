// edge_flow.cpp — one phone connection and its internal connection to Sofia.
#include "edge_flow.hpp"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "log.hpp"
#include "sip_framer.hpp"
#include "stream_edge.hpp"

namespace relais {

namespace {

// A peer that does not read while we keep writing (a phone that stopped, or a flood answered
// faster than it is consumed) would grow the output without bound.
constexpr size_t kMaxPendingOutput = 4u << 20;
// Sofia's own messages are bounded by NTATAG_MAXSIZE; a little headroom for our rewrites.
constexpr size_t kCoreMessageSlack = 4096;
// Rewritten messages of one read are written together, up to this much at a time.
constexpr size_t kBatchBytes = 256u << 10;

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

void set_nodelay(evutil_socket_t fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Detects phones that vanished behind a NAT or a pulled cable in ~2 min instead of hours, so
// their flow (and the binding's route) does not outlive them.
void set_keepalive(evutil_socket_t fd) {
  int one = 1, idle = 60, interval = 10, count = 6;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

}  // namespace

EdgeFlow::EdgeFlow(StreamEdge& edge, uint64_t id, FlowAddressing addressing)
    : edge_(edge), id_(id), addr_(std::move(addressing)), opened_ms_(now_ms()) {}

EdgeFlow::~EdgeFlow() { close("shutdown"); }

bool EdgeFlow::start(evutil_socket_t fd, SslPtr ssl, std::string& error) {
  tls_ = ssl != nullptr;
  evutil_make_socket_nonblocking(fd);
  set_nodelay(fd);
  set_keepalive(fd);
  int options = BEV_OPT_CLOSE_ON_FREE;
  if (tls_) {
    // On success libevent owns the SSL (freed with the bufferevent); on failure we still do.
    phone_.reset(bufferevent_openssl_socket_new(edge_.base(), fd, ssl.get(), BUFFEREVENT_SSL_ACCEPTING, options));
    if (phone_) {
      ssl.release();
      // Phones often just drop the connection; without this every close is an "error".
      bufferevent_openssl_set_allow_dirty_shutdown(phone_.get(), 1);
    }
  } else {
    phone_.reset(bufferevent_socket_new(edge_.base(), fd, options));
    handshaken_ = true;
  }
  if (!phone_) {
    evutil_closesocket(fd);
    error = "cannot create bufferevent";
    closed_ = true;
    return false;
  }
  bufferevent_setcb(phone_.get(), on_phone_read, on_phone_write, on_phone_event, this);
  bufferevent_enable(phone_.get(), EV_READ | EV_WRITE);
  timer_.reset(evtimer_new(edge_.base(), on_timer, this));
  timeval tv = edge_.handshake_timeout();
  if (timer_) evtimer_add(timer_.get(), &tv);
  if (!timer_ || !connect_core(error)) {
    closed_ = true;
    core_.reset();
    phone_.reset();
    timer_.reset();
    return false;
  }
  return true;
}

bool EdgeFlow::start_outbound(const std::string& host, int port, SslPtr ssl, evdns_base* dns, std::string& error) {
  outbound_ = true;
  tls_ = ssl != nullptr;
  core_ready_ = false;
  pending_ssl_ = std::move(ssl);
  addr_.transport = tls_ ? "TLS" : "TCP";
  addr_.source = (tls_ ? "tls:" : "tcp:") + host + ":" + std::to_string(port);
  phone_.reset(bufferevent_socket_new(edge_.base(), -1, BEV_OPT_CLOSE_ON_FREE));
  timer_.reset(evtimer_new(edge_.base(), on_timer, this));
  if (!phone_ || !timer_ || !connect_core(error)) {
    if (error.empty()) error = "cannot create bufferevent";
    closed_ = true;
    core_.reset();
    phone_.reset();
    timer_.reset();
    pending_ssl_.reset();
    return false;
  }
  // Sofia answers a CRLFCRLF ping with a CRLF pong (TPTAG_PONG2PING): once it has, it knows the
  // internal connection and reuses it for requests routed to this flow.
  bufferevent_write(core_.get(), "\r\n\r\n", 4);
  bufferevent_setcb(phone_.get(), on_phone_read, on_phone_write, on_phone_event, this);
  bufferevent_enable(phone_.get(), EV_READ | EV_WRITE);
  timeval tv = edge_.handshake_timeout();
  evtimer_add(timer_.get(), &tv);
  // May report a failure through on_phone_event before returning; the edge holds the flow.
  if (bufferevent_socket_connect_hostname(phone_.get(), dns, AF_UNSPEC, host.c_str(), port) != 0 && !closed_)
    close("cannot start connecting");
  return true;
}

void EdgeFlow::outbound_connected() {
  if (pending_ssl_) {
    // TCP is up: hand the socket to an OpenSSL bufferevent for the client handshake. setfd(-1)
    // detaches it so freeing the plain bufferevent does not close it.
    evutil_socket_t fd = bufferevent_getfd(phone_.get());
    set_nodelay(fd);
    set_keepalive(fd);
    bufferevent_setfd(phone_.get(), -1);
    phone_.reset();
    phone_.reset(bufferevent_openssl_socket_new(edge_.base(), fd, pending_ssl_.get(), BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE));
    if (!phone_) {
      evutil_closesocket(fd);
      pending_ssl_.reset();
      return close("cannot start TLS");
    }
    pending_ssl_.release();  // owned by the bufferevent now
    bufferevent_openssl_set_allow_dirty_shutdown(phone_.get(), 1);
    bufferevent_setcb(phone_.get(), on_phone_read, on_phone_write, on_phone_event, this);
    bufferevent_enable(phone_.get(), EV_READ | EV_WRITE);
    return;  // CONNECTED again when the handshake (and the certificate check) succeeded
  }
  if (!tls_) {
    set_nodelay(bufferevent_getfd(phone_.get()));
    set_keepalive(bufferevent_getfd(phone_.get()));
  }
  handshaken_ = true;
  outbound_addressing();
  if (edge_.log_limit().allow()) {
    SSL* ssl = tls_ ? bufferevent_openssl_get_ssl(phone_.get()) : nullptr;
    log_info("edge.connected").kv("flow", addr_.token).kv("peer", addr_.source).kv("local", addr_.public_sent_by)
        .kv("version", ssl ? SSL_get_version(ssl) : "tcp").kv("cipher", ssl ? SSL_get_cipher_name(ssl) : "");
  }
  maybe_ready();
}

// Our end of the connection is what the peer sees: the sent-by of our requests' Via.
void EdgeFlow::outbound_addressing() {
  evutil_socket_t fd = bufferevent_getfd(phone_.get());
  sockaddr_storage peer{}, local{};
  socklen_t plen = sizeof peer, llen = sizeof local;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) == 0) {
    std::string text = socket_address_text(reinterpret_cast<sockaddr*>(&peer));
    size_t colon = text.rfind(':');
    addr_.peer_ip = text.substr(0, colon);
    if (addr_.peer_ip.size() > 2 && addr_.peer_ip.front() == '[') addr_.peer_ip = addr_.peer_ip.substr(1, addr_.peer_ip.size() - 2);
    addr_.peer_port = atoi(text.c_str() + colon + 1);
    addr_.source = (tls_ ? "tls:" : "tcp:") + text;
  }
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) == 0)
    addr_.public_sent_by = socket_address_text(reinterpret_cast<sockaddr*>(&local));
}

void EdgeFlow::maybe_ready() {
  if (announced_ || !ready()) return;
  announced_ = true;
  if (timer_) evtimer_del(timer_.get());
  edge_.outbound_ready(id_);
}

void EdgeFlow::send_ping() {
  if (ready()) send(phone_.get(), "\r\n\r\n", "peer not reading");
}

bool EdgeFlow::connect_core(std::string& error) {
  core_.reset(bufferevent_socket_new(edge_.base(), -1, BEV_OPT_CLOSE_ON_FREE));
  sockaddr_in core{};
  core.sin_family = AF_INET;
  core.sin_port = htons(static_cast<uint16_t>(edge_.core_port()));
  core.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!core_ || bufferevent_socket_connect(core_.get(), reinterpret_cast<sockaddr*>(&core), sizeof core) != 0) {
    error = "cannot connect to the SIP core";
    return false;
  }
  evutil_socket_t fd = bufferevent_getfd(core_.get());
  set_nodelay(fd);
  sockaddr_in local{};
  socklen_t len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0 || local.sin_port == 0) {
    error = "cannot read the internal connection's port";
    return false;
  }
  std::string hostport = "127.0.0.1:" + std::to_string(ntohs(local.sin_port));
  route_ = "sip:" + hostport + ";transport=tcp";
  addr_.record_route = "<sip:" + hostport + ";transport=tcp;lr;rls-flow=" + addr_.token + ">";
  bufferevent_setcb(core_.get(), on_core_read, nullptr, on_core_event, this);
  bufferevent_enable(core_.get(), EV_READ | EV_WRITE);
  return true;
}

void EdgeFlow::close(const char* reason) {
  if (closed_) return;
  closed_ = true;
  bool handshake_failed = tls_ && !handshaken_;
  if (edge_.log_limit().allow()) {
    (handshake_failed ? log_info("edge.handshake_failed") : log_info("edge.close"))
        .kv("flow", addr_.token).kv("transport", addr_.transport).kv("peer", addr_.source).kv("reason", reason)
        .kv("messages_in", messages_in_).kv("messages_out", messages_out_)
        .kv("ms", static_cast<long long>(now_ms() - opened_ms_));
  }
  if (handshake_failed) ++edge_.stats().handshakes_failed;
  // Freeing a bufferevent inside its own callback is safe: libevent holds a reference while
  // it runs the callback.
  phone_.reset();
  core_.reset();
  timer_.reset();
  pending_ssl_.reset();
  edge_.flow_closed(id_, reason);
}

void EdgeFlow::on_phone_read(bufferevent*, void* arg) { static_cast<EdgeFlow*>(arg)->from_phone(); }

void EdgeFlow::on_phone_write(bufferevent* bev, void* arg) {
  auto* self = static_cast<EdgeFlow*>(arg);
  if (self->draining_ && evbuffer_get_length(bufferevent_get_output(bev)) == 0) self->close(self->draining_reason_);
}

std::string EdgeFlow::phone_error(short what) const {
  if (what & BEV_EVENT_EOF) return "peer closed";
  if (tls_ && phone_) {
    if (unsigned long e = bufferevent_get_openssl_error(phone_.get())) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      std::string out = buf;
      // Which check refused the peer's certificate (unknown CA, wrong name, expired...).
      SSL* ssl = bufferevent_openssl_get_ssl(phone_.get());
      long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
      if (verify != X509_V_OK) out += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
      return out;
    }
  }
  if (outbound_ && (what & BEV_EVENT_ERROR) && phone_ && bufferevent_socket_get_dns_error(phone_.get()))
    return std::string("cannot resolve: ") + evutil_gai_strerror(bufferevent_socket_get_dns_error(phone_.get()));
  int err = EVUTIL_SOCKET_ERROR();
  return err ? evutil_socket_error_to_string(err) : "connection error";
}

void EdgeFlow::on_phone_event(bufferevent*, short what, void* arg) {
  auto* self = static_cast<EdgeFlow*>(arg);
  if (what & BEV_EVENT_CONNECTED) {
    if (self->outbound_) return self->outbound_connected();
    // The TLS handshake completed.
    self->handshaken_ = true;
    if (log_enabled(LogLevel::debug)) {
      SSL* ssl = bufferevent_openssl_get_ssl(self->phone_.get());
      log_debug("edge.handshake").kv("flow", self->addr_.token).kv("peer", self->addr_.source)
          .kv("version", ssl ? SSL_get_version(ssl) : "").kv("cipher", ssl ? SSL_get_cipher_name(ssl) : "");
    }
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    std::string why = self->phone_error(what);
    self->close(why.c_str());
  }
}

void EdgeFlow::on_core_read(bufferevent*, void* arg) { static_cast<EdgeFlow*>(arg)->from_core(); }

void EdgeFlow::on_core_event(bufferevent*, short what, void* arg) {
  auto* self = static_cast<EdgeFlow*>(arg);
  if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) return;
  const char* reason = what & BEV_EVENT_EOF ? "core closed" : "core connection error";
  // Sofia closes a stream after answering a message it could not parse: that 400 is still in
  // the phone's output and must reach it before the phone's connection goes too.
  self->core_.reset();
  self->drain_then_close(reason);
}

void EdgeFlow::drain_then_close(const char* reason) {
  if (closed_) return;
  if (!phone_ || !handshaken_ || evbuffer_get_length(bufferevent_get_output(phone_.get())) == 0) return close(reason);
  draining_ = true;
  draining_reason_ = reason;
  bufferevent_disable(phone_.get(), EV_READ);
  // A peer that never reads what is left is closed by the timer all the same.
  if (timer_ && !evtimer_pending(timer_.get(), nullptr)) {
    timeval tv = edge_.handshake_timeout();
    evtimer_add(timer_.get(), &tv);
  }
}

void EdgeFlow::on_timer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<EdgeFlow*>(arg);
  if (self->outbound_ && !self->announced_) return self->close(self->handshaken_ ? "core not answering" : "connect timeout");
  self->close(self->handshaken_ ? "incomplete message timeout" : "handshake timeout");
}

bool EdgeFlow::send(bufferevent* to, const std::string& data, const char* peer) {
  evbuffer* out = bufferevent_get_output(to);
  size_t pending = evbuffer_get_length(out);
  if (pending + data.size() > kMaxPendingOutput) {
    close(peer);
    return false;
  }
  size_t done = 0;
  // A plain socket with nothing queued is written at once: a socket bufferevent would only arm
  // its write event and write on the next loop turn, two epoll_ctl calls and a wake-up per
  // message (measured: the internal hop cost ~2x more CPU that way, docs/decisions.md).
  // A failure is left to the bufferevent, which reports it as an event.
  if (pending == 0 && (to == core_.get() || !tls_)) {
    ssize_t n = ::send(bufferevent_getfd(to), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) done = static_cast<size_t>(n);
  }
  if (done < data.size()) bufferevent_write(to, data.data() + done, data.size() - done);
  return true;
}

void EdgeFlow::refuse(const char* head, size_t len, int status, const char* reason) {
  ++edge_.stats().framing_errors;
  if (edge_.log_limit().allow()) {
    // A few printable bytes tell an operator what arrived (scanner, wrong protocol, TLS on TCP).
    std::string sample;
    for (size_t i = 0; i < len && sample.size() < 48; ++i)
      sample += head[i] >= 0x20 && head[i] < 0x7f ? head[i] : '.';
    log_info("edge.bad_input").kv("flow", addr_.token).kv("peer", addr_.source).kv("status", status)
        .kv("reason", reason).kv("sample", sample);
  }
  std::string answer = local_response(std::string_view(head, len), status, reason);
  // RFC 3261 §18.3: after a framing error the stream cannot be trusted; answer, then close.
  if (!answer.empty() && evbuffer_get_length(bufferevent_get_output(phone_.get())) < kMaxPendingOutput)
    bufferevent_write(phone_.get(), answer.data(), answer.size());
  drain_then_close(reason);
}

void EdgeFlow::update_timer() {
  if (closed_ || !timer_) return;
  size_t pending = evbuffer_get_length(bufferevent_get_input(phone_.get()));
  // An outbound flow owes no first message: the peer may just answer our pings.
  if (handshaken_ && pending == 0 && (messages_in_ > 0 || outbound_)) {
    evtimer_del(timer_.get());
  } else if (!evtimer_pending(timer_.get(), nullptr)) {
    timeval tv = edge_.handshake_timeout();
    evtimer_add(timer_.get(), &tv);
  }
}

bool EdgeFlow::flush(bufferevent* to, std::string& batch, const char* peer) {
  if (closed_ || !to || batch.empty()) return !closed_;
  bool ok = send(to, batch, peer);
  batch.clear();
  return ok;
}

void EdgeFlow::from_phone() {
  evbuffer* in = bufferevent_get_input(phone_.get());
  size_t max = edge_.max_message_size();
  // Messages of one read leave in one write: pipelined requests cost one syscall, not one each.
  to_core_.clear();
  auto refuse_after_flush = [&](const char* data, size_t len, int status, const char* reason) {
    flush(core_.get(), to_core_, "core not reading");
    if (!closed_) refuse(data, len, status, reason);
  };
  while (!closed_ && !draining_) {
    size_t len = evbuffer_get_length(in);
    if (len == 0) break;
    // Never linearise more than one message can hold: the framer sees at most max + 4 bytes.
    size_t window = std::min(len, max + 4);
    const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ev_ssize_t>(window)));
    Frame f = next_frame(data, window, max);
    switch (f.kind) {
      case Frame::Kind::need_more:
        if (window == max + 4) return refuse_after_flush(data, window, 413, "Message Too Large");
        flush(core_.get(), to_core_, "core not reading");
        update_timer();
        return;
      case Frame::Kind::skip:
        evbuffer_drain(in, f.length);
        continue;
      case Frame::Kind::ping:
        // RFC 5626 §3.5.1: a CRLFCRLF ping gets a CRLF pong, here, not from Sofia.
        evbuffer_drain(in, f.length);
        ++edge_.stats().keepalives;
        if (!send(phone_.get(), "\r\n", "peer not reading")) return;
        continue;
      case Frame::Kind::error:
        return refuse_after_flush(data, window, f.status, f.reason);
      case Frame::Kind::message: {
        std::string why;
        if (!rewrite_toward_core(std::string_view(data, f.length), f.header_length, addr_, scratch_, why))
          return refuse_after_flush(data, f.header_length, 400, why == "no Via" ? "Missing Via" : "Bad Via");
        evbuffer_drain(in, f.length);
        ++messages_in_;
        ++edge_.stats().messages_in;
        to_core_ += scratch_;
        if (to_core_.size() >= kBatchBytes && !flush(core_.get(), to_core_, "core not reading")) return;
        continue;
      }
    }
  }
  if (!draining_) flush(core_.get(), to_core_, "core not reading");
  update_timer();
}

void EdgeFlow::from_core() {
  if (!core_) return;
  evbuffer* in = bufferevent_get_input(core_.get());
  size_t max = edge_.max_message_size() + kCoreMessageSlack;
  to_phone_.clear();
  while (!closed_ && core_) {
    size_t len = evbuffer_get_length(in);
    if (len == 0) break;
    size_t window = std::min(len, max + 4);
    const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ev_ssize_t>(window)));
    Frame f = next_frame(data, window, max);
    if (f.kind == Frame::Kind::need_more) {
      if (window == max + 4) return close("core message too large");
      break;
    }
    if ((f.kind == Frame::Kind::skip || f.kind == Frame::Kind::ping) && !core_ready_) {
      // Sofia's pong to the ping start_outbound sent: it has the internal connection.
      evbuffer_drain(in, f.length);
      core_ready_ = true;
      maybe_ready();
      continue;
    }
    if (f.kind == Frame::Kind::skip || f.kind == Frame::Kind::ping) {
      // Sofia's CRLF pong to a ping we never send, or its own keepalive: the phone may need
      // it to keep a NAT binding open, so pass it on.
      if (!draining_) to_phone_.append(data, f.length);
      evbuffer_drain(in, f.length);
      continue;
    }
    if (f.kind == Frame::Kind::error) return close("unframeable message from the core");
    std::string why;
    if (!rewrite_toward_phone(std::string_view(data, f.length), f.header_length, addr_, scratch_, why)) {
      if (edge_.log_limit().allow()) log_warn("edge.core_message_dropped").kv("flow", addr_.token).kv("reason", why);
      evbuffer_drain(in, f.length);
      continue;
    }
    evbuffer_drain(in, f.length);
    ++messages_out_;
    ++edge_.stats().messages_out;
    if (draining_) continue;  // the phone's stream is being closed after an error answer
    to_phone_ += scratch_;
    if (to_phone_.size() >= kBatchBytes && !flush(phone_.get(), to_phone_, "peer not reading")) return;
  }
  if (!draining_) flush(phone_.get(), to_phone_, "peer not reading");
}

}  // namespace relais
