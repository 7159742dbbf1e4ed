// call_limits.hpp — concurrent-call limits of the SBC: calls an authenticated user places and
// calls from and to each trunk (sbc.max_calls_per_user / _per_trunk, or a user's or trunk's
// own max_calls). CallEngine counts a call when it starts and releases it when it ends.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "config.hpp"

namespace relais {

struct CallLimitCounters {
  uint64_t user_refused = 0;
  uint64_t trunk_refused = 0;
};

class CallLimits {
 public:
  explicit CallLimits(const Config& cfg) { configure(cfg); }
  void configure(const Config& cfg);  // SIGHUP: calls already counted stay counted

  // Counts one more call for `user` ("" = not an authenticated caller); false = over its limit
  // (nothing counted).
  bool claim_user(const std::string& user);
  bool claim_trunk(const std::string& trunk);
  void release_user(const std::string& user);
  void release_trunk(const std::string& trunk);

  int user_calls(const std::string& user) const;
  int trunk_calls(const std::string& trunk) const;
  const CallLimitCounters& counters() const { return counters_; }

 private:
  int user_limit(const std::string& user) const;
  int trunk_limit(const std::string& trunk) const;
  static bool claim(std::map<std::string, int>& active, const std::string& key, int limit);
  static void release(std::map<std::string, int>& active, const std::string& key);

  int per_user_ = 0, per_trunk_ = 0;      // 0 = unlimited
  std::map<std::string, int> user_max_;   // users and trunks with their own max_calls
  std::map<std::string, int> trunk_max_;
  // Only keys with calls up: bounded by the calls in progress, not by who ever called.
  std::map<std::string, int> user_active_;
  std::map<std::string, int> trunk_active_;
  CallLimitCounters counters_;
};

}  // namespace relais
