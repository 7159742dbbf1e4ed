// lua_state.hpp — RAII ownership of a lua_State and small helpers shared by config and hooks.
#pragma once

#include <lua.hpp>

#include <memory>
#include <string>

namespace relais {

struct LuaStateCloser {
  void operator()(lua_State* L) const { lua_close(L); }
};
using LuaStatePtr = std::unique_ptr<lua_State, LuaStateCloser>;

// A fresh state with the standard libraries opened.
LuaStatePtr new_lua_state();

// Restores the stack height on scope exit, so an early return cannot leak stack slots.
class LuaStackGuard {
 public:
  explicit LuaStackGuard(lua_State* L) : L_(L), top_(lua_gettop(L)) {}
  ~LuaStackGuard() { lua_settop(L_, top_); }
  LuaStackGuard(const LuaStackGuard&) = delete;
  LuaStackGuard& operator=(const LuaStackGuard&) = delete;

 private:
  lua_State* L_;
  int top_;
};

// Message handler for lua_pcall: appends a traceback to the error text.
int lua_traceback_handler(lua_State* L);

// The error message on top of the stack as a string (non-string errors are described).
std::string lua_error_text(lua_State* L, int index = -1);

}  // namespace relais
