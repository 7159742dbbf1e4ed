// ng_control.cpp — ng datagram framing, the retransmission cache, and the control loop.
#include "ng_control.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "media_log.hpp"
#include "media_services.hpp"

namespace relais::media {

namespace {

bool cookie_ok(std::string_view c) {
  if (c.empty() || c.size() > NgControl::kMaxCookie) return false;
  for (char ch : c)
    if (static_cast<unsigned char>(ch) <= 0x20 || static_cast<unsigned char>(ch) >= 0x7f) return false;
  return true;
}

std::string sample(std::string_view data) {
  std::string out;
  for (size_t i = 0; i < data.size() && i < 48; ++i) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
  }
  return out;
}

}  // namespace

void NgControl::expire_cache(int64_t now_ns) {
  while (!order_.empty() && (order_.front().first <= now_ns || cache_bytes_ > kCacheMaxBytes)) {
    auto it = cache_.find(order_.front().second);
    if (it != cache_.end() && it->second.expires_ns == order_.front().first) {
      cache_bytes_ -= it->second.reply.size() + it->first.size();
      cache_.erase(it);
    }
    order_.pop_front();
  }
}

void NgControl::remember(std::string key, const std::string& reply, int64_t now_ns) {
  int64_t expires = now_ns + kCacheTtlNs;
  auto [it, inserted] = cache_.try_emplace(key, Cached{reply, expires});
  if (!inserted) {
    cache_bytes_ -= it->second.reply.size() + it->first.size();
    it->second = Cached{reply, expires};
  }
  cache_bytes_ += reply.size() + key.size();
  order_.emplace_back(expires, std::move(key));
  expire_cache(now_ns);
}

std::string NgControl::handle(std::string_view datagram, const sockaddr_in& from, int64_t now_ns) {
  expire_cache(now_ns);
  size_t space = datagram.find(' ');
  std::string_view cookie = datagram.substr(0, space);
  if (space == std::string_view::npos || !cookie_ok(cookie)) {
    // Nothing to address a reply to: drop, with one rate-limited line for the operator.
    if (now_ns - last_junk_log_ns_ >= 1'000'000'000) {
      Log(LogLevel::warn, "ng.junk").kv("peer", format_addr(from)).kv("bytes", datagram.size())
          .kv("sample", sample(datagram)).kv("suppressed", static_cast<unsigned long>(junk_suppressed_));
      last_junk_log_ns_ = now_ns;
      junk_suppressed_ = 0;
    } else {
      ++junk_suppressed_;
    }
    return "";
  }
  std::string key = std::string(cookie) + '|' + format_addr(from);
  if (auto it = cache_.find(key); it != cache_.end()) {
    Log(LogLevel::debug, "ng.retransmission").kv("peer", format_addr(from)).kv("cookie", cookie);
    return it->second.reply;
  }
  std::string error;
  auto request = bencode::parse(datagram.substr(space + 1), error);
  bencode::Value reply;
  if (!request) {
    reply = bencode::Value::make_dict();
    reply["result"] = bencode::Value::string("error");
    reply["error-reason"] = bencode::Value::string("malformed bencode: " + error);
    Log(LogLevel::info, "ng.malformed").kv("peer", format_addr(from)).kv("reason", error);
  } else if (request->is_dict() && !request->find("command") && request->find("result")) {
    return "";  // a controller acknowledging our timeout notification
  } else {
    if (log_enabled(LogLevel::debug)) {
      const bencode::Value* cmd = request->find("command");
      Log(LogLevel::debug, "ng.request").kv("command", cmd && cmd->is_string() ? cmd->str : "")
          .kv("call-id", request->get_string("call-id")).kv("peer", format_addr(from)).kv("cookie", cookie);
    }
    reply = commands_.execute(*request, from, now_ns);
  }
  std::string out = std::string(cookie) + ' ' + bencode::encode(reply);
  if (out.size() > 65000) {
    // Larger than one UDP datagram can carry: say so instead of sending nothing.
    bencode::Value err = bencode::Value::make_dict();
    err["result"] = bencode::Value::string("error");
    err["error-reason"] = bencode::Value::string("reply too large");
    out = std::string(cookie) + ' ' + bencode::encode(err);
  }
  remember(std::move(key), out, now_ns);
  return out;
}

std::string NgControl::timeout_notification(const ExpiredCall& call) {
  bencode::Value v = bencode::Value::make_dict();
  v["command"] = bencode::Value::string("timeout");
  v["call-id"] = bencode::Value::string(call.call_id);
  v["from-tag"] = bencode::Value::string(call.from_tag);
  if (!call.to_tag.empty()) v["to-tag"] = bencode::Value::string(call.to_tag);
  return "relais-media-timeout-" + std::to_string(getpid()) + "-" + std::to_string(++notify_seq_) + " " +
         bencode::encode(v);
}

std::string NgControl::notification(const bencode::Value& v) {
  return "relais-media-" + v.get_string("command") + "-" + std::to_string(getpid()) + "-" +
         std::to_string(++notify_seq_) + " " + bencode::encode(v);
}

NgServer::NgServer(Fd socket, NgControl& control, SessionManager& sessions, int64_t timeout_ns, MediaServices* media,
                   int media_events_fd)
    : socket_(std::move(socket)), control_(control), sessions_(sessions), timeout_ns_(timeout_ns), media_(media),
      media_fd_(media_events_fd), buf_(65536, '\0') {
  if (media_)
    media_->set_notifier([this](const sockaddr_in& to, const bencode::Value& v) {
      send_to(to, control_.notification(v));
    });
}

NgServer::~NgServer() {
  if (media_) media_->set_notifier(nullptr);
}

void NgServer::send_to(const sockaddr_in& to, const std::string& datagram) {
  ::sendto(socket_.get(), datagram.data(), datagram.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to),
           sizeof to);
}

void NgServer::run(int signal_fd) {
  int64_t next_sweep = monotonic_ns() + 250'000'000;
  for (;;) {
    pollfd fds[3] = {{socket_.get(), POLLIN, 0}, {signal_fd, POLLIN, 0}, {media_fd_, POLLIN, 0}};
    // Rounded up: a truncated timeout would poll(0) in a busy loop for the last millisecond
    // before every sweep, on the core a worker may share.
    int64_t wait_ms = (next_sweep - monotonic_ns() + 999'999) / 1'000'000;
    int n = ::poll(fds, media_ && media_fd_ >= 0 ? 3 : 2,
                   static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(wait_ms, 1000))));
    if (n < 0 && errno != EINTR) {
      Log(LogLevel::error, "ng.poll_failed").kv("errno", errno);
      return;
    }
    if (n > 0 && (fds[1].revents & POLLIN)) {
      signalfd_siginfo si{};
      ssize_t r = ::read(signal_fd, &si, sizeof si);
      Log(LogLevel::info, "shutdown").kv("signal", r == sizeof si ? static_cast<int>(si.ssi_signo) : 0);
      return;
    }
    if (n > 0 && (fds[2].revents & POLLIN)) media_->process_events();
    if (n > 0 && (fds[0].revents & POLLIN)) receive();
    int64_t now = monotonic_ns();
    if (now >= next_sweep) {
      sweep(now);
      next_sweep = now + 250'000'000;
    }
  }
}

void NgServer::receive() {
  // Bounded per wake-up so the sweep and signals are not starved by a flood.
  for (int i = 0; i < 256; ++i) {
    sockaddr_in from{};
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(socket_.get(), buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_TRUNC,
                           reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return;
    if (len != sizeof from || from.sin_family != AF_INET) continue;
    if (static_cast<size_t>(n) > buf_.size()) {
      Log(LogLevel::warn, "ng.oversized").kv("peer", format_addr(from)).kv("bytes", static_cast<long>(n));
      continue;
    }
    std::string reply = control_.handle(std::string_view(buf_.data(), static_cast<size_t>(n)), from, monotonic_ns());
    if (reply.empty()) continue;
    ::sendto(socket_.get(), reply.data(), reply.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), len);
  }
}

void NgServer::sweep(int64_t now_ns) {
  for (const ExpiredCall& e : sessions_.expire(now_ns, timeout_ns_)) {
    std::string note = control_.timeout_notification(e);
    Log(LogLevel::info, "call.timeout").kv("call-id", e.call_id).kv("from-tag", e.from_tag)
        .kv("idle-s", static_cast<long long>(e.idle_ns / 1'000'000'000)).kv("controller", format_addr(e.controller));
    if (e.controller.sin_port != 0) send_to(e.controller, note);
  }
}

}  // namespace relais::media
