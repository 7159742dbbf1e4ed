// lua_state.cpp — creating Lua states and reading their errors.
#include "lua_state.hpp"

namespace relais {

LuaStatePtr new_lua_state() {
  LuaStatePtr L(luaL_newstate());
  if (L) luaL_openlibs(L.get());
  return L;
}

int lua_traceback_handler(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (!msg) msg = luaL_typename(L, 1);
  // LuaJIT has no luaL_traceback in its 5.1 API; debug.traceback gives the same text.
  lua_getglobal(L, "debug");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_pushstring(L, msg);
    return 1;
  }
  lua_getfield(L, -1, "traceback");
  lua_pushstring(L, msg);
  lua_pushinteger(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

std::string lua_error_text(lua_State* L, int index) {
  size_t len = 0;
  const char* s = lua_tolstring(L, index, &len);
  if (s) return std::string(s, len);
  return std::string("(error object is a ") + luaL_typename(L, index) + ")";
}

}  // namespace relais
