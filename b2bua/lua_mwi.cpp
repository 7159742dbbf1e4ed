// lua_mwi.cpp — the Lua face of message waiting indication: relais.mwi.update and
// relais.mwi.counts. Neither waits, so both work from any hook or coroutine.
#include <lua.hpp>

#include <exception>
#include <string>

#include "mwi_service.hpp"

namespace relais {

namespace {

// Counts past this are a script bug, not a mailbox (and would not fit a phone's display).
constexpr lua_Integer kMaxCount = 1000000;

MwiService* mwi_of(lua_State* L) {
  auto* mwi = static_cast<MwiService*>(lua_touserdata(L, lua_upvalueindex(1)));
  if (!mwi) luaL_error(L, "relais.mwi: not available here (relais --check does not run the MWI service)");
  return mwi;
}

// Argument checks of both verbs: a mailbox user ("101") and message counts.
std::string check_mailbox(lua_State* L, int arg) {
  size_t len = 0;
  const char* user = luaL_checklstring(L, arg, &len);
  std::string mailbox(user, len);
  if (!valid_mailbox(mailbox)) luaL_argerror(L, arg, "not a mailbox user (1..64 characters of a SIP user part)");
  return mailbox;
}

int check_count(lua_State* L, int arg) {
  lua_Integer n = luaL_checkinteger(L, arg);
  if (n < 0 || n > kMaxCount) luaL_argerror(L, arg, "message count must be 0..1000000");
  return static_cast<int>(n);
}

// relais.mwi.update(user, new, old) -> true
int mwi_update(lua_State* L) {
  MwiService* mwi = mwi_of(L);
  std::string mailbox = check_mailbox(L, 1);
  int fresh = check_count(L, 2);
  int old = check_count(L, 3);
  // No C++ exception may unwind through the Lua VM: report it after the try block.
  std::string failure;
  try {
    mwi->update(mailbox, fresh, old);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure.empty()) {
    lua_pushnil(L);
    lua_pushstring(L, failure.c_str());
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

// relais.mwi.counts(user) -> new, old
int mwi_counts(lua_State* L) {
  MwiService* mwi = mwi_of(L);
  std::string mailbox = check_mailbox(L, 1);
  MwiCounts c;
  std::string failure;
  try {
    c = mwi->counts(mailbox);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure.empty()) {
    lua_pushnil(L);
    lua_pushstring(L, failure.c_str());
    return 2;
  }
  lua_pushinteger(L, c.new_messages);
  lua_pushinteger(L, c.old_messages);
  return 2;
}

struct Verb {
  const char* name;
  lua_CFunction fn;
  bool yields;
};

constexpr Verb kVerbs[] = {
    {"update", mwi_update, false},
    {"counts", mwi_counts, false},
};

}  // namespace

void install_mwi_api(lua_State* L, MwiService* mwi) {
  lua_getglobal(L, "relais");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "relais");
  }
  lua_createtable(L, 0, static_cast<int>(sizeof kVerbs / sizeof kVerbs[0]));
  for (const Verb& verb : kVerbs) {
    lua_pushlightuserdata(L, mwi);
    lua_pushcclosure(L, verb.fn, 1);
    lua_setfield(L, -2, verb.name);
  }
  lua_setfield(L, -2, "mwi");
  lua_pop(L, 1);
}

}  // namespace relais
