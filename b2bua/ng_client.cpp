// ng_client.cpp — UDP, cookies, retries, and the relay's notifications.
#include "ng_client.hpp"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "log.hpp"

namespace relais {

namespace {
// A health ping every few seconds turns a dead relay into one log line (and back), instead of
// one error per call.
constexpr timeval kPingInterval{5, 0};
}  // namespace

NgClient::NgClient(event_base* base, MediaSettings settings) : base_(base), settings_(std::move(settings)) {
  cookie_prefix_ = std::to_string(getpid()) + "_";
}

NgClient::~NgClient() {
  for (auto& [cookie, p] : pending_)
    if (p.timer) event_free(p.timer);
  // Requests still waiting are completed so no caller waits forever.
  auto pending = std::move(pending_);
  for (auto& [cookie, p] : pending)
    if (p.done) p.done("media relay client stopped", bencode::Value::make_dict());
  if (ping_timer_) event_free(ping_timer_);
  if (read_event_) event_free(read_event_);
  if (fd_ >= 0) close(fd_);
}

bool NgClient::start(std::string& error) {
  size_t colon = settings_.ng.rfind(':');
  if (colon == std::string::npos) {
    error = "media.ng: expected HOST:PORT, got '" + settings_.ng + "'";
    return false;
  }
  std::string host = settings_.ng.substr(0, colon), port = settings_.ng.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
    error = "media.ng: cannot resolve " + settings_.ng;
    return false;
  }
  fd_ = socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  // A connected UDP socket: only the relay's datagrams reach us, and a relay that restarts on
  // the same address is simply talked to again.
  bool ok = fd_ >= 0 && connect(fd_, res->ai_addr, res->ai_addrlen) == 0;
  freeaddrinfo(res);
  if (!ok) {
    error = "media.ng: cannot open a socket to " + settings_.ng;
    return false;
  }
  read_event_ = event_new(base_, fd_, EV_READ | EV_PERSIST, on_readable, this);
  event_add(read_event_, nullptr);
  ping_timer_ = event_new(base_, -1, EV_PERSIST, on_ping, this);
  event_add(ping_timer_, &kPingInterval);
  on_ping(-1, 0, this);
  return true;
}

void NgClient::request(bencode::Value request, Reply done) {
  std::string cookie = cookie_prefix_ + std::to_string(next_cookie_++);
  Pending& p = pending_[cookie];
  p.datagram = cookie + " " + bencode::encode(request);
  p.attempts_left = settings_.attempts;
  p.done = std::move(done);
  p.client = this;
  p.cookie = cookie;
  p.timer = evtimer_new(base_, on_retry, &p);
  on_retry(-1, 0, &p);
}

void NgClient::on_retry(int, short, void* arg) {
  auto* p = static_cast<Pending*>(arg);
  NgClient* self = p->client;
  if (p->attempts_left-- <= 0) {
    self->set_up(false, "no answer");
    return self->complete(p->cookie, "media relay timeout", bencode::Value::make_dict());
  }
  // ECONNREFUSED from an earlier datagram just means the relay was down: try anyway.
  if (send(self->fd_, p->datagram.data(), p->datagram.size(), 0) < 0 && errno != ECONNREFUSED)
    log_warn("media.send_failed").kv("error", strerror(errno));
  timeval tv{self->settings_.timeout_ms / 1000, (self->settings_.timeout_ms % 1000) * 1000};
  evtimer_add(p->timer, &tv);
}

void NgClient::on_readable(int fd, short, void* arg) {
  auto* self = static_cast<NgClient*>(arg);
  char buf[65536];
  for (int i = 0; i < 64; ++i) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) return;  // EAGAIN, or ECONNREFUSED while the relay is down
    self->received(buf, static_cast<size_t>(n));
  }
}

void NgClient::received(const char* data, size_t len) {
  std::string_view text(data, len);
  size_t space = text.find(' ');
  if (space == std::string_view::npos || space == 0 || space > 64) return;
  std::string cookie(text.substr(0, space));
  std::string error;
  auto value = bencode::parse(text.substr(space + 1), error);
  if (!value || !value->is_dict()) {
    log_warn("media.bad_reply").kv("error", error.empty() ? "not a dictionary" : error);
    return;
  }
  if (const bencode::Value* command = value->find("command")) {
    // A request from the relay: a `timeout` notification for a dead call, or one of
    // relais-media's media events (dtmf, playback-done, silence).
    if (command->is_string() && command->str == "timeout" && timeout_handler_)
      timeout_handler_(value->get_string("call-id"), value->get_string("from-tag"));
    else if (command->is_string() && notification_handler_)
      notification_handler_(command->str, *value);
    bencode::Value ok = bencode::Value::make_dict();
    ok["result"] = bencode::Value::string("ok");
    std::string reply = cookie + " " + bencode::encode(ok);
    ssize_t ignored = send(fd_, reply.data(), reply.size(), 0);
    (void)ignored;
    return;
  }
  set_up(true, "");
  complete(cookie, "", *value);
}

void NgClient::complete(const std::string& cookie, const std::string& error, const bencode::Value& reply) {
  auto it = pending_.find(cookie);
  if (it == pending_.end()) return;  // a late duplicate answer
  Reply done = std::move(it->second.done);
  event_free(it->second.timer);
  pending_.erase(it);
  std::string why = error;
  if (why.empty() && reply.get_string("result") == "error") why = "media relay: " + reply.get_string("error-reason", "error");
  if (done) done(why, reply);
}

void NgClient::on_ping(int, short, void* arg) {
  auto* self = static_cast<NgClient*>(arg);
  bencode::Value ping = bencode::Value::make_dict();
  ping["command"] = bencode::Value::string("ping");
  self->request(ping, [](const std::string&, const bencode::Value&) {});
}

void NgClient::set_up(bool up, const std::string& why) {
  // One line per change of state (and one at start for a relay that never answers).
  if (up == up_ && (ever_answered_ || down_logged_)) return;
  if (up) ever_answered_ = true;
  if (!up) down_logged_ = true;
  up_ = up;
  if (up)
    log_info("media.relay_up").kv("ng", settings_.ng);
  else
    log_error("media.relay_down").kv("ng", settings_.ng).kv("reason", why);
}

}  // namespace relais
