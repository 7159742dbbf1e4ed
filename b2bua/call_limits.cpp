// call_limits.cpp — counting concurrent calls per user and per trunk.
#include "call_limits.hpp"

namespace relais {

void CallLimits::configure(const Config& cfg) {
  per_user_ = cfg.sbc.max_calls_per_user;
  per_trunk_ = cfg.sbc.max_calls_per_trunk;
  user_max_.clear();
  trunk_max_.clear();
  for (const auto& [name, user] : cfg.users)
    if (user.max_calls >= 0) user_max_[name] = user.max_calls;
  for (const auto& [name, trunk] : cfg.trunks)
    if (trunk.max_calls >= 0) trunk_max_[name] = trunk.max_calls;
}

int CallLimits::user_limit(const std::string& user) const {
  auto it = user_max_.find(user);
  return it != user_max_.end() ? it->second : per_user_;
}

int CallLimits::trunk_limit(const std::string& trunk) const {
  auto it = trunk_max_.find(trunk);
  return it != trunk_max_.end() ? it->second : per_trunk_;
}

bool CallLimits::claim(std::map<std::string, int>& active, const std::string& key, int limit) {
  if (key.empty()) return true;
  auto it = active.find(key);
  int now = it == active.end() ? 0 : it->second;
  if (limit > 0 && now >= limit) return false;
  active[key] = now + 1;
  return true;
}

void CallLimits::release(std::map<std::string, int>& active, const std::string& key) {
  auto it = active.find(key);
  if (it == active.end()) return;
  if (--it->second <= 0) active.erase(it);
}

bool CallLimits::claim_user(const std::string& user) {
  if (claim(user_active_, user, user_limit(user))) return true;
  ++counters_.user_refused;
  return false;
}

bool CallLimits::claim_trunk(const std::string& trunk) {
  if (claim(trunk_active_, trunk, trunk_limit(trunk))) return true;
  ++counters_.trunk_refused;
  return false;
}

void CallLimits::release_user(const std::string& user) { release(user_active_, user); }
void CallLimits::release_trunk(const std::string& trunk) { release(trunk_active_, trunk); }

int CallLimits::user_calls(const std::string& user) const {
  auto it = user_active_.find(user);
  return it == user_active_.end() ? 0 : it->second;
}

int CallLimits::trunk_calls(const std::string& trunk) const {
  auto it = trunk_active_.find(trunk);
  return it == trunk_active_.end() ? 0 : it->second;
}

}  // namespace relais
