// lua_sbc.cpp — the Lua face of the SBC's ban table: relais.sbc.is_banned, ban and unban.
// None waits, so all work from on_register, on_invite and any other hook.
#include <lua.hpp>

#include <string>

#include "lua_sbc.hpp"
#include "source_guard.hpp"

namespace relais {

namespace {

// Longest ban a script may set: a month, like sbc.ban.seconds.
constexpr lua_Number kMaxBanSeconds = 30 * 86400;

SourceGuard* guard_of(lua_State* L) {
  auto* guard = static_cast<SourceGuard*>(lua_touserdata(L, lua_upvalueindex(1)));
  if (!guard) luaL_error(L, "relais.sbc: not available here (relais --check does not run the SBC)");
  return guard;
}

// The argument checks of every verb: an IPv4 or IPv6 address literal (brackets allowed).
SourceIp check_ip(lua_State* L, int arg) {
  size_t len = 0;
  const char* text = luaL_checklstring(L, arg, &len);
  std::optional<SourceIp> ip = SourceIp::parse(std::string_view(text, len));
  if (!ip) luaL_argerror(L, arg, "not an IP address");
  return *ip;
}

// relais.sbc.is_banned(ip) -> true, seconds_left | false
int sbc_is_banned(lua_State* L) {
  SourceGuard* guard = guard_of(L);
  SourceIp ip = check_ip(L, 1);
  std::optional<double> left = guard->banned(ip, monotonic_seconds());
  lua_pushboolean(L, left.has_value());
  if (!left) return 1;
  lua_pushnumber(L, *left);
  return 2;
}

// relais.sbc.ban(ip [, seconds]) -> true | nil, err
int sbc_ban(lua_State* L) {
  SourceGuard* guard = guard_of(L);
  SourceIp ip = check_ip(L, 1);
  lua_Number seconds = luaL_optnumber(L, 2, guard->ban_seconds());
  if (!(seconds >= 1 && seconds <= kMaxBanSeconds)) luaL_argerror(L, 2, "seconds must be 1..2592000");
  if (!guard->ban(ip, seconds, monotonic_seconds(), "script")) {
    lua_pushnil(L);
    lua_pushstring(L, "source is allow-listed (sbc.allow, loopback or a trunk)");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

// relais.sbc.unban(ip) -> true if a ban was lifted, false if there was none
int sbc_unban(lua_State* L) {
  SourceGuard* guard = guard_of(L);
  SourceIp ip = check_ip(L, 1);
  lua_pushboolean(L, guard->unban(ip, "script"));
  return 1;
}

}  // namespace

void install_sbc_api(lua_State* L, SourceGuard* guard) {
  lua_getglobal(L, "relais");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_newtable(L);
  const std::pair<const char*, lua_CFunction> fns[] = {
      {"is_banned", sbc_is_banned}, {"ban", sbc_ban}, {"unban", sbc_unban}};
  for (const auto& [name, fn] : fns) {
    lua_pushlightuserdata(L, guard);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, name);
  }
  lua_setfield(L, -2, "sbc");
  lua_pop(L, 1);
}

}  // namespace relais
