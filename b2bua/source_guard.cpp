// source_guard.cpp — the SBC's per-source tables: token buckets, failure windows and bans.
#include "source_guard.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>

namespace relais {

namespace {

constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_v4(const SourceIp& ip) { return memcmp(ip.bytes.data(), kMapped, 12) == 0; }

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

}  // namespace

double monotonic_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::optional<SourceIp> SourceIp::parse(std::string_view text) {
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
  memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  SourceIp ip;
  if (inet_pton(AF_INET, buf, ip.bytes.data() + 12) == 1) {
    memcpy(ip.bytes.data(), kMapped, 12);
    return ip;
  }
  if (inet_pton(AF_INET6, buf, ip.bytes.data()) == 1) return ip;
  return std::nullopt;
}

std::optional<SourceIp> SourceIp::from_sockaddr(const sockaddr* sa) {
  SourceIp ip;
  if (sa && sa->sa_family == AF_INET) {
    memcpy(ip.bytes.data(), kMapped, 12);
    memcpy(ip.bytes.data() + 12, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    return ip;
  }
  if (sa && sa->sa_family == AF_INET6) {
    memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
    return ip;
  }
  return std::nullopt;
}

std::string SourceIp::to_string() const {
  char text[INET6_ADDRSTRLEN] = {0};
  if (is_v4(*this))
    inet_ntop(AF_INET, bytes.data() + 12, text, sizeof text);
  else
    inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  return text;
}

bool SourceIp::loopback() const {
  if (is_v4(*this)) return bytes[12] == 127;
  static const std::array<uint8_t, 16> one{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return bytes == one;
}

size_t SourceIpHash::operator()(const SourceIp& ip) const {
  // FNV-1a over the 16 bytes: cheap, and spoofed sources cannot pick collisions they would
  // need in bulk to matter, because the table is bounded anyway.
  uint64_t h = 1469598103934665603ULL;
  for (uint8_t b : ip.bytes) h = (h ^ b) * 1099511628211ULL;
  return static_cast<size_t>(h);
}

void SourceGuard::configure(const Config& cfg) {
  const SbcSettings& s = cfg.sbc;
  rate_ = s.requests_per_second;
  burst_ = std::max(1, s.burst);
  rate_action_ = s.rate_action;
  ban_failures_ = static_cast<uint32_t>(std::max(0, s.ban_failed_auth));
  ban_window_ = s.ban_window;
  ban_seconds_ = s.ban_seconds;
  ban_scanners_ = s.ban_scanners;
  allow_ = s.allow;
  // An operator's trunk sends whatever its customers dial: its addresses are never limited.
  if (s.trust_trunks)
    for (const auto& [name, trunk] : cfg.trunks) allow_.insert(allow_.end(), trunk.addresses.begin(), trunk.addresses.end());
  deny_ = s.deny;
  exempt_loopback_ = s.exempt_loopback;
  scanners_.clear();
  for (const std::string& pattern : s.scanner_user_agents) {
    std::string p = pattern;
    std::transform(p.begin(), p.end(), p.begin(), lower);
    scanners_.push_back(std::move(p));
  }
  max_sources_ = static_cast<size_t>(std::max(1, s.max_sources));
  max_bans_ = static_cast<size_t>(std::max(1, s.max_bans));
  while (sources_.size() > max_sources_) {
    sources_.erase(lru_.back().ip);
    lru_.pop_back();
  }
  while (bans_.size() > max_bans_) {
    bans_.erase(ban_expiry_.begin()->second);
    ban_expiry_.erase(ban_expiry_.begin());
  }
}

bool SourceGuard::trusted(const SourceIp& ip) const {
  if (exempt_loopback_ && ip.loopback()) return true;
  for (const Cidr& c : allow_)
    if (c.contains(ip.bytes)) return true;
  return false;
}

bool SourceGuard::scanner_agent(std::string_view user_agent) const {
  for (const std::string& p : scanners_) {
    auto hit = std::search(user_agent.begin(), user_agent.end(), p.begin(), p.end(),
                           [](char a, char b) { return lower(a) == b; });
    if (hit != user_agent.end()) return true;
  }
  return false;
}

void SourceGuard::drop_log(const SourceIp& ip, const char* why, std::string_view user_agent) {
  if (!drop_log_.allow()) return;
  LogLine line(LogLevel::info, "sbc.drop");
  line.kv("src", ip.to_string()).kv("reason", why);
  if (!user_agent.empty()) line.kv("user_agent", user_agent.substr(0, 64));
}

SourceGuard::Admission SourceGuard::admit(const SourceIp& ip, std::string_view user_agent, double now) {
  if (trusted(ip)) return Admission::trusted;
  for (const Cidr& c : deny_) {
    if (c.contains(ip.bytes)) {
      ++counters_.denied;
      drop_log(ip, "denied", user_agent);
      return Admission::denied;
    }
  }
  if (!bans_.empty()) {
    auto ban = bans_.find(ip);
    if (ban != bans_.end()) {
      if (ban->second > now) {
        ++counters_.banned_drops;
        drop_log(ip, "banned", user_agent);
        return Admission::banned;
      }
      expire(now);  // this one is due; lift it (and any other) with its log line
    }
  }
  if (!user_agent.empty() && scanner_agent(user_agent)) {
    ++counters_.scanners;
    drop_log(ip, "scanner", user_agent);
    if (ban_scanners_) ban(ip, ban_seconds_, now, "scanner");
    return Admission::scanner;
  }
  if (rate_ <= 0) return Admission::pass;
  Source& s = touch(ip, now);
  s.tokens = std::min(burst_, s.tokens + (now - s.last) * rate_);
  s.last = now;
  if (s.tokens < 1) {
    ++counters_.rate_limited;
    drop_log(ip, "rate", user_agent);
    return Admission::rate_limited;
  }
  s.tokens -= 1;
  return Admission::pass;
}

SourceGuard::Source& SourceGuard::touch(const SourceIp& ip, double now) {
  auto it = sources_.find(ip);
  if (it != sources_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return *it->second;
  }
  if (sources_.size() >= max_sources_) {
    ++counters_.sources_evicted;
    sources_.erase(lru_.back().ip);
    lru_.pop_back();
  }
  // A new source starts with a full bucket and a clean failure window.
  lru_.push_front(Source{ip, burst_, now, now, 0});
  sources_.emplace(ip, lru_.begin());
  return lru_.front();
}

bool SourceGuard::auth_failed(const SourceIp& ip, double now) {
  if (trusted(ip)) return false;
  ++counters_.auth_failures;
  if (ban_failures_ == 0) return false;
  Source& s = touch(ip, now);
  if (now - s.window_start > ban_window_) {
    s.window_start = now;
    s.failures = 0;
  }
  s.last = std::max(s.last, now);
  if (++s.failures < ban_failures_) return false;
  s.failures = 0;
  return ban(ip, ban_seconds_, now, "failed_auth");
}

bool SourceGuard::ban(const SourceIp& ip, double seconds, double now, std::string_view reason) {
  if (trusted(ip)) return false;
  double until = now + seconds;
  auto it = bans_.find(ip);
  if (it != bans_.end()) {
    ban_expiry_.erase({it->second, ip});
    it->second = until;
  } else {
    if (bans_.size() >= max_bans_) {
      ++counters_.bans_evicted;
      bans_.erase(ban_expiry_.begin()->second);
      ban_expiry_.erase(ban_expiry_.begin());
    }
    bans_.emplace(ip, until);
  }
  ban_expiry_.insert({until, ip});
  ++counters_.bans;
  if (ban_log_.allow()) log_warn("sbc.ban").kv("src", ip.to_string()).kv("reason", reason).kv("seconds", static_cast<long long>(seconds));
  return true;
}

bool SourceGuard::unban(const SourceIp& ip, std::string_view reason) {
  auto it = bans_.find(ip);
  if (it == bans_.end()) return false;
  ban_expiry_.erase({it->second, ip});
  bans_.erase(it);
  ++counters_.unbans;
  if (ban_log_.allow()) log_notice("sbc.unban").kv("src", ip.to_string()).kv("reason", reason);
  return true;
}

std::optional<double> SourceGuard::banned(const SourceIp& ip, double now) const {
  auto it = bans_.find(ip);
  if (it == bans_.end() || it->second <= now) return std::nullopt;
  return it->second - now;
}

void SourceGuard::expire(double now) {
  while (!ban_expiry_.empty() && ban_expiry_.begin()->first <= now) {
    SourceIp ip = ban_expiry_.begin()->second;
    unban(ip, "expired");
  }
  // A source idle long enough has a full bucket and no failure in its window again: nothing
  // to remember. The oldest are at the back.
  double horizon = std::max(rate_ > 0 ? burst_ / rate_ : 0.0, ban_window_);
  while (!lru_.empty() && now - lru_.back().last > horizon) {
    sources_.erase(lru_.back().ip);
    lru_.pop_back();
  }
}

SourceGuardCounters SourceGuard::counters() const {
  SourceGuardCounters c = counters_;
  c.sources = sources_.size();
  c.active_bans = bans_.size();
  return c;
}

}  // namespace relais
