// source_guard_test.cpp — the SBC's per-source admission: token buckets, bans and their expiry,
// failed-authentication windows, bounded tables, allow/deny lists, scanner User-Agents, the
// concurrent-call limits, the sbc config section and the relais.sbc Lua binding.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include <lua.hpp>

#include "call_limits.hpp"
#include "config.hpp"
#include "lua_sbc.hpp"
#include "lua_state.hpp"
#include "source_guard.hpp"

using namespace relais;

namespace {

using A = SourceGuard::Admission;

SourceIp ip(const char* text) {
  auto parsed = SourceIp::parse(text);
  REQUIRE(parsed);
  return *parsed;
}

Cidr cidr(const char* text) {
  auto parsed = Cidr::parse(text);
  REQUIRE(parsed);
  return *parsed;
}

// Defaults as shipped, but loopback not exempt: the tests use 127.0.0.x like the attack test.
Config config() {
  Config cfg;
  cfg.sbc.exempt_loopback = false;
  return cfg;
}

// Admits `n` requests at time `now`; returns how many passed.
int passes(SourceGuard& guard, const SourceIp& source, int n, double now, const char* agent = "") {
  int ok = 0;
  for (int i = 0; i < n; ++i) ok += guard.admit(source, agent, now) == A::pass;
  return ok;
}

}  // namespace

TEST_CASE("source addresses parse to one 16-byte form for IPv4, mapped IPv4 and IPv6") {
  CHECK(ip("192.0.2.7").to_string() == "192.0.2.7");
  CHECK(ip("::ffff:192.0.2.7") == ip("192.0.2.7"));
  CHECK(ip("[2001:db8::1]").to_string() == "2001:db8::1");
  CHECK(ip("127.0.0.2").loopback());
  CHECK(ip("::1").loopback());
  CHECK_FALSE(ip("192.0.2.7").loopback());
  CHECK_FALSE(SourceIp::parse("not-an-ip"));
  CHECK_FALSE(SourceIp::parse(""));
  CHECK_FALSE(SourceIp::parse("1.2.3.4.5"));
}

TEST_CASE("a source gets its burst at once, then the configured rate") {
  Config cfg = config();
  cfg.sbc.requests_per_second = 10;
  cfg.sbc.burst = 20;
  SourceGuard guard(cfg);
  SourceIp a = ip("198.51.100.1");
  CHECK(passes(guard, a, 50, 100.0) == 20);
  // Half a second refills 5 tokens.
  CHECK(passes(guard, a, 50, 100.5) == 5);
  // Another source has its own bucket.
  CHECK(passes(guard, ip("198.51.100.2"), 5, 100.5) == 5);
  CHECK(guard.counters().rate_limited == 30 + 45);
  // A long pause refills up to the burst, no more.
  CHECK(passes(guard, a, 50, 1000.0) == 20);
}

TEST_CASE("a rate of zero turns the limit off") {
  Config cfg = config();
  cfg.sbc.requests_per_second = 0;
  SourceGuard guard(cfg);
  CHECK(passes(guard, ip("198.51.100.1"), 10000, 1.0) == 10000);
  CHECK(guard.counters().sources == 0);
}

TEST_CASE("failed authentications within the window ban, and the ban expires") {
  Config cfg = config();
  cfg.sbc.ban_failed_auth = 5;
  cfg.sbc.ban_window = 60;
  cfg.sbc.ban_seconds = 600;
  SourceGuard guard(cfg);
  SourceIp a = ip("203.0.113.9");
  for (int i = 0; i < 4; ++i) CHECK_FALSE(guard.auth_failed(a, 10.0 + i));
  CHECK(guard.admit(a, "", 14.0) == A::pass);
  CHECK(guard.auth_failed(a, 14.5));  // the fifth
  CHECK(guard.admit(a, "", 15.0) == A::banned);
  REQUIRE(guard.banned(a, 15.0));
  CHECK(*guard.banned(a, 15.0) == doctest::Approx(599.5));
  CHECK(guard.counters().bans == 1);
  CHECK(guard.counters().active_bans == 1);
  guard.expire(600.0);
  CHECK(guard.counters().active_bans == 1);  // not yet
  guard.expire(614.6);
  CHECK(guard.counters().active_bans == 0);
  CHECK(guard.counters().unbans == 1);
  CHECK(guard.admit(a, "", 615.0) == A::pass);
}

TEST_CASE("a ban past its time is lifted by the next request even before the sweep") {
  Config cfg = config();
  cfg.sbc.ban_seconds = 10;
  SourceGuard guard(cfg);
  SourceIp a = ip("203.0.113.9");
  REQUIRE(guard.ban(a, 10, 0.0, "test"));
  CHECK(guard.admit(a, "", 9.9) == A::banned);
  CHECK(guard.admit(a, "", 10.1) == A::pass);
  CHECK(guard.counters().unbans == 1);
}

TEST_CASE("failures spread wider than the window never ban") {
  Config cfg = config();
  cfg.sbc.ban_failed_auth = 3;
  cfg.sbc.ban_window = 60;
  SourceGuard guard(cfg);
  SourceIp a = ip("203.0.113.9");
  for (int i = 0; i < 20; ++i) CHECK_FALSE(guard.auth_failed(a, i * 31.0));
  CHECK(guard.counters().bans == 0);
  CHECK(guard.counters().auth_failures == 20);
}

TEST_CASE("allow-listed, loopback and trunk sources are never limited or banned") {
  Config cfg = config();
  cfg.sbc.requests_per_second = 1;
  cfg.sbc.burst = 1;
  cfg.sbc.ban_failed_auth = 1;
  cfg.sbc.allow = {cidr("192.0.2.0/24")};
  cfg.sbc.deny = {cidr("0.0.0.0/0")};  // allow wins: "deny everyone but ..."
  TrunkConfig trunk;
  trunk.addresses = {cidr("198.51.100.200")};
  cfg.trunks["op"] = trunk;
  SourceGuard guard(cfg);
  CHECK(passes(guard, ip("192.0.2.77"), 1, 1.0) == 0);  // trusted, not "pass"
  CHECK(guard.admit(ip("192.0.2.77"), "", 1.0) == A::trusted);
  CHECK(guard.admit(ip("198.51.100.200"), "", 1.0) == A::trusted);
  CHECK(guard.admit(ip("198.51.100.201"), "", 1.0) == A::denied);
  CHECK(guard.admit(ip("2001:db8::5"), "", 1.0) == A::pass);  // an IPv4 deny says nothing about IPv6
  CHECK_FALSE(guard.auth_failed(ip("192.0.2.77"), 1.0));
  CHECK_FALSE(guard.ban(ip("192.0.2.77"), 60, 1.0, "test"));
  CHECK(guard.admit(ip("127.0.0.1"), "", 1.0) == A::denied);  // loopback exemption is off here

  cfg.sbc.exempt_loopback = true;
  cfg.sbc.trust_trunks = false;
  guard.configure(cfg);
  CHECK(guard.admit(ip("127.0.0.1"), "", 1.0) == A::trusted);
  CHECK(guard.admit(ip("::1"), "", 1.0) == A::trusted);
  CHECK(guard.admit(ip("198.51.100.200"), "", 1.0) == A::denied);
}

TEST_CASE("IPv6 deny ranges match IPv6 sources") {
  Config cfg = config();
  cfg.sbc.deny = {cidr("2001:db8::/32")};
  SourceGuard guard(cfg);
  CHECK(guard.admit(ip("2001:db8:1::9"), "", 1.0) == A::denied);
  CHECK(guard.admit(ip("2001:db9::9"), "", 1.0) == A::pass);
  CHECK(guard.counters().denied == 1);
}

TEST_CASE("scanner User-Agents match anywhere, in any case, and ban their source") {
  Config cfg = config();
  SourceGuard guard(cfg);
  CHECK(guard.scanner_agent("friendly-scanner"));
  CHECK(guard.scanner_agent("Mozilla SIPVicious 0.3"));
  CHECK(guard.scanner_agent("VaxSIPUserAgent/3.1"));
  CHECK_FALSE(guard.scanner_agent("Yealink SIP-T46U 66.86.0.15"));
  CHECK_FALSE(guard.scanner_agent("baresip v1.0.0 (x86_64/linux)"));
  CHECK_FALSE(guard.scanner_agent(""));
  SourceIp a = ip("203.0.113.50");
  CHECK(guard.admit(a, "friendly-scanner", 1.0) == A::scanner);
  CHECK(guard.admit(a, "Yealink SIP-T46U", 2.0) == A::banned);  // a new User-Agent does not help
  CHECK(guard.counters().scanners == 1);
  CHECK(guard.counters().bans == 1);

  cfg.sbc.ban_scanners = false;
  cfg.sbc.scanner_user_agents = {"evil-agent"};
  guard.configure(cfg);
  SourceIp b = ip("203.0.113.51");
  CHECK(guard.admit(b, "EVIL-AGENT 1.0", 3.0) == A::scanner);
  CHECK(guard.admit(b, "friendly-scanner", 3.0) == A::pass);  // no longer in the list
  CHECK(guard.admit(b, "phone", 3.0) == A::pass);
}

TEST_CASE("the source table stays bounded under a flood from spoofed addresses") {
  Config cfg = config();
  cfg.sbc.max_sources = 1000;
  cfg.sbc.requests_per_second = 1;
  cfg.sbc.burst = 1;
  SourceGuard guard(cfg);
  for (uint32_t i = 0; i < 100000; ++i) {
    std::string text = "10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
    guard.admit(ip(text.c_str()), "", 5.0);
  }
  CHECK(guard.counters().sources == 1000);
  CHECK(guard.counters().sources_evicted == 99000);
  // The most recent sources are the ones kept: the last one is still limited.
  CHECK(guard.admit(ip("10.1.134.159"), "", 5.0) == A::rate_limited);
  // Idle sources are forgotten once their state is that of a new source.
  guard.expire(5.0 + 61);
  CHECK(guard.counters().sources == 0);
}

TEST_CASE("the ban table stays bounded: the ban expiring first is evicted") {
  Config cfg = config();
  cfg.sbc.max_bans = 16;
  SourceGuard guard(cfg);
  for (int i = 0; i < 40; ++i) guard.ban(ip(("203.0.113." + std::to_string(i)).c_str()), 100 + i, 0.0, "test");
  CHECK(guard.counters().active_bans == 16);
  CHECK(guard.counters().bans_evicted == 24);
  CHECK_FALSE(guard.banned(ip("203.0.113.0"), 1.0));
  CHECK(guard.banned(ip("203.0.113.39"), 1.0));
}

TEST_CASE("a script's ban and unban take effect at once") {
  Config cfg = config();
  SourceGuard guard(cfg);
  SourceIp a = ip("2001:db8::66");
  CHECK(guard.ban(a, 30, 0.0, "script"));
  CHECK(guard.admit(a, "", 1.0) == A::banned);
  CHECK(guard.unban(a));
  CHECK_FALSE(guard.unban(a));
  CHECK(guard.admit(a, "", 1.0) == A::pass);
}

TEST_CASE("concurrent-call limits count per user and per trunk and release") {
  Config cfg;
  cfg.sbc.max_calls_per_user = 2;
  cfg.sbc.max_calls_per_trunk = 0;  // unlimited
  cfg.users["100"].max_calls = 1;
  cfg.trunks["op"].max_calls = 1;
  CallLimits limits(cfg);
  CHECK(limits.claim_user("100"));
  CHECK_FALSE(limits.claim_user("100"));
  CHECK(limits.claim_user("101"));
  CHECK(limits.claim_user("101"));
  CHECK_FALSE(limits.claim_user("101"));
  CHECK(limits.claim_user(""));  // unauthenticated callers are not counted per user
  CHECK(limits.claim_user(""));
  CHECK(limits.claim_trunk("op"));
  CHECK_FALSE(limits.claim_trunk("op"));
  for (int i = 0; i < 500; ++i) CHECK(limits.claim_trunk("other"));
  limits.release_user("100");
  CHECK(limits.user_calls("100") == 0);
  CHECK(limits.claim_user("100"));
  limits.release_trunk("op");
  limits.release_trunk("op");  // one release too many does not go negative
  CHECK(limits.trunk_calls("op") == 0);
  CHECK(limits.counters().user_refused == 2);
  CHECK(limits.counters().trunk_refused == 1);
}

TEST_CASE("the sbc config section is read with its defaults and checked") {
  auto dir = std::filesystem::temp_directory_path() / ("relais-sbc-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "sbc.lua").string();
  std::ofstream(path) << "return { sbc = { rate = { requests_per_second = 5, burst = 7, action = '503' },\n"
                         "  ban = { failed_auth = 3, window = 30, seconds = 90, scanners = false },\n"
                         "  allow = { '192.0.2.0/24' }, deny = { '2001:db8::/32', '198.51.100.9' },\n"
                         "  exempt_loopback = false, max_calls_per_user = 1, server_header = '' },\n"
                         "  users = { ['100'] = { password = 'x', max_calls = 3 } } }\n";
  Config cfg;
  std::string error;
  REQUIRE_MESSAGE(load_config(path, {}, cfg, error), error);
  CHECK(cfg.sbc.requests_per_second == 5);
  CHECK(cfg.sbc.burst == 7);
  CHECK(cfg.sbc.rate_action == "503");
  CHECK(cfg.sbc.ban_failed_auth == 3);
  CHECK(cfg.sbc.ban_seconds == 90);
  CHECK_FALSE(cfg.sbc.ban_scanners);
  CHECK(cfg.sbc.allow.size() == 1);
  CHECK(cfg.sbc.deny.size() == 2);
  CHECK_FALSE(cfg.sbc.exempt_loopback);
  CHECK(cfg.sbc.max_calls_per_user == 1);
  CHECK(cfg.sbc.max_calls_per_trunk == 100);
  CHECK(cfg.sbc.server_header.empty());
  CHECK(cfg.users["100"].max_calls == 3);
  CHECK(cfg.sbc.scanner_user_agents.size() > 5);

  Config defaults;
  REQUIRE(load_config(path, {"sbc=x"}, defaults, error) == false);
  CHECK(error.find("sbc: expected a table") != std::string::npos);
  REQUIRE_FALSE(load_config(path, {"sbc.rate.action=reject"}, defaults, error));
  CHECK(error.find("sbc.rate.action") != std::string::npos);
  REQUIRE_FALSE(load_config(path, {"sbc.deny=10.0.0.0/33"}, defaults, error));
  CHECK(error.find("sbc.deny: bad address or range '10.0.0.0/33'") != std::string::npos);
}

TEST_CASE("relais.sbc bans, answers and unbans from Lua, and raises without a guard") {
  Config cfg = config();
  SourceGuard guard(cfg);
  LuaStatePtr state = new_lua_state();
  lua_State* L = state.get();
  lua_newtable(L);
  lua_setglobal(L, "relais");
  install_sbc_api(L, &guard);
  const char* script =
      "assert(relais.sbc.is_banned('203.0.113.7') == false)\n"
      "assert(relais.sbc.ban('203.0.113.7', 120) == true)\n"
      "local banned, left = relais.sbc.is_banned('203.0.113.7')\n"
      "assert(banned == true and left > 100 and left <= 120)\n"
      "assert(relais.sbc.unban('203.0.113.7') == true)\n"
      "assert(relais.sbc.unban('203.0.113.7') == false)\n"
      "assert(not pcall(relais.sbc.ban, 'nonsense'))\n"
      "assert(not pcall(relais.sbc.ban, '203.0.113.7', -1))\n"
      "assert(relais.sbc.ban('2001:db8::1') == true)\n";
  REQUIRE_MESSAGE(luaL_dostring(L, script) == 0, lua_tostring(L, -1));
  CHECK(guard.counters().bans == 2);
  CHECK(guard.banned(ip("2001:db8::1"), monotonic_seconds()));

  LuaStatePtr check_state = new_lua_state();
  lua_State* C = check_state.get();
  lua_newtable(C);
  lua_setglobal(C, "relais");
  install_sbc_api(C, nullptr);
  REQUIRE(luaL_dostring(C, "return relais.sbc.is_banned('192.0.2.1')") != 0);
  CHECK(std::string(lua_tostring(C, -1)).find("not available here") != std::string::npos);
}
