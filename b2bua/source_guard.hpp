// source_guard.hpp — per-source admission of the SBC: allow/deny address lists, a ban table with
// expiry, scanner User-Agents and a token bucket per source address, asked once for every
// out-of-dialog request before any transaction or handler work; failed authentications feed
// it and ban. Pure bookkeeping with the time passed in (no Sofia, no clock), so it is tested
// alone.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cidr.hpp"
#include "config.hpp"
#include "log.hpp"

struct sockaddr;

namespace relais {

// An IPv4 or IPv6 address as 16 bytes (IPv4 as ::ffff:a.b.c.d), the key of every table here.
struct SourceIp {
  std::array<uint8_t, 16> bytes{};
  static std::optional<SourceIp> parse(std::string_view text);
  static std::optional<SourceIp> from_sockaddr(const sockaddr* sa);
  std::string to_string() const;
  bool loopback() const;
  auto operator<=>(const SourceIp&) const = default;
};

struct SourceIpHash {
  size_t operator()(const SourceIp& ip) const;
};

struct SourceGuardCounters {
  uint64_t denied = 0;         // dropped: deny list
  uint64_t banned_drops = 0;   // dropped: banned source
  uint64_t scanners = 0;       // dropped: scanner User-Agent
  uint64_t rate_limited = 0;   // over the source's rate (dropped or 503)
  uint64_t auth_failures = 0;  // failed authentications reported
  uint64_t bans = 0;           // bans made (failures, scanners, script)
  uint64_t unbans = 0;         // bans lifted (expiry or script)
  uint64_t sources_evicted = 0;  // tracked sources pushed out by the max_sources bound
  uint64_t bans_evicted = 0;     // bans pushed out by the max_bans bound
  uint64_t sources = 0;        // gauge: sources tracked now
  uint64_t active_bans = 0;    // gauge: bans in force now
};

class SourceGuard {
 public:
  enum class Admission { pass, trusted, denied, banned, scanner, rate_limited };

  explicit SourceGuard(const Config& cfg) { configure(cfg); }
  // SIGHUP: new lists and limits; tracked sources and bans stay.
  void configure(const Config& cfg);

  // One request from `ip`; `now` in seconds on a monotonic clock.
  Admission admit(const SourceIp& ip, std::string_view user_agent, double now);
  // A failed authentication from `ip` (wrong password, unknown user...). True when it banned.
  bool auth_failed(const SourceIp& ip, double now);

  // False (and nothing changes) for a trusted source: bans would not apply to it.
  bool ban(const SourceIp& ip, double seconds, double now, std::string_view reason);
  bool unban(const SourceIp& ip, std::string_view reason = "script");
  // Seconds left of a ban in force, or nullopt.
  std::optional<double> banned(const SourceIp& ip, double now) const;
  bool trusted(const SourceIp& ip) const;
  bool scanner_agent(std::string_view user_agent) const;

  // Lifts expired bans (one log line each) and forgets sources whose state has decayed to that
  // of a new source. Run about once a second.
  void expire(double now);

  SourceGuardCounters counters() const;
  const std::string& rate_action() const { return rate_action_; }
  double ban_seconds() const { return ban_seconds_; }

 private:
  struct Source {
    SourceIp ip;
    double tokens = 0;
    double last = 0;           // last request or failure
    double window_start = 0;   // of the failed-authentication window
    uint32_t failures = 0;
  };
  using SourceList = std::list<Source>;

  Source& touch(const SourceIp& ip, double now);
  void drop_log(const SourceIp& ip, const char* why, std::string_view user_agent);

  // Settings
  double rate_ = 0;
  double burst_ = 0;
  std::string rate_action_;
  uint32_t ban_failures_ = 0;
  double ban_window_ = 0;
  double ban_seconds_ = 0;
  bool ban_scanners_ = false;
  std::vector<Cidr> allow_, deny_;
  bool exempt_loopback_ = true;
  std::vector<std::string> scanners_;  // lower case
  size_t max_sources_ = 0;
  size_t max_bans_ = 0;

  // Sources, most recently seen first: the back is evicted when the table is full, so a flood
  // from spoofed addresses costs bounded memory.
  SourceList lru_;
  std::unordered_map<SourceIp, SourceList::iterator, SourceIpHash> sources_;
  // Bans by address and by expiry (the earliest is lifted first and evicted first when full).
  std::unordered_map<SourceIp, double, SourceIpHash> bans_;
  std::set<std::pair<double, SourceIp>> ban_expiry_;

  SourceGuardCounters counters_;
  LogRateLimit drop_log_{10};
  // One line per ban and unban, but a scanner flood from spoofed addresses bans one address per
  // packet: past this many lines a second the rest are counted, not written.
  LogRateLimit ban_log_{50};
};

// Seconds on CLOCK_MONOTONIC, the clock SourceGuard's callers use.
double monotonic_seconds();

}  // namespace relais
