// lua_library_test.cpp — the shipped Lua library's pure parts: how numbers are composed into
// prompt names in English and French (relais.call), and that relais.ivr / relais.voicemail load.
#include <doctest/doctest.h>

#include <lua.hpp>
#include <string>

#include "lua_state.hpp"

namespace {

relais::LuaStatePtr library_state() {
  relais::LuaStatePtr state = relais::new_lua_state();
  lua_State* L = state.get();
  std::string setup = "relais = { call_methods = {}, log = function() end }\n"
                      "package.path = '" + std::string(RELAIS_SCRIPTS_DIR) + "/?.lua'\n"
                      "methods = require('relais.call')\n";
  REQUIRE_MESSAGE(luaL_dostring(L, setup.c_str()) == 0, lua_tostring(L, -1));
  return state;
}

std::string prompts(lua_State* L, int n, const char* lang) {
  std::string code = "return table.concat(methods.number_prompts(" + std::to_string(n) + ", '" + lang + "'), ' ')";
  REQUIRE_MESSAGE(luaL_dostring(L, code.c_str()) == 0, lua_tostring(L, -1));
  std::string out = lua_tostring(L, -1);
  lua_pop(L, 1);
  return out;
}

}  // namespace

TEST_CASE("say_number composes English numbers from 0..99, hundred and thousand") {
  auto state = library_state();
  lua_State* L = state.get();
  CHECK(prompts(L, 0, "en") == "0");
  CHECK(prompts(L, 42, "en") == "42");
  CHECK(prompts(L, 100, "en") == "1 hundred");
  CHECK(prompts(L, 305, "en") == "3 hundred 5");
  CHECK(prompts(L, 2024, "en") == "2 thousand 24");
  CHECK(prompts(L, 12345, "en") == "12 thousand 3 hundred 45");
  CHECK(prompts(L, -7, "en") == "minus 7");
  CHECK(prompts(L, 1234567, "en") == "1 2 3 4 5 6 7");  // past a million: digits
}

TEST_CASE("say_number follows French rules: cent/cents, mille without un") {
  auto state = library_state();
  lua_State* L = state.get();
  CHECK(prompts(L, 71, "fr") == "71");
  CHECK(prompts(L, 100, "fr") == "hundred");              // cent
  CHECK(prompts(L, 200, "fr") == "2 hundreds");           // deux cents
  CHECK(prompts(L, 203, "fr") == "2 hundred 3");          // deux cent trois
  CHECK(prompts(L, 1000, "fr") == "thousand");            // mille
  CHECK(prompts(L, 2000, "fr") == "2 thousand");          // deux mille
  CHECK(prompts(L, 200000, "fr") == "2 hundred thousand");  // deux cent mille
  CHECK(prompts(L, 1980, "fr") == "thousand 9 hundred 80");  // mille neuf cent quatre-vingts
}

TEST_CASE("relais.ivr and relais.voicemail load, and voicemail refuses unknown boxes") {
  auto state = library_state();
  lua_State* L = state.get();
  const char* code =
      "local ivr = require('relais.ivr')\n"
      "assert(type(ivr.run) == 'function')\n"
      "local vm = require('relais.voicemail').new{ dir = '/tmp/none', boxes = { ['101'] = { pin = '1' } } }\n"
      "assert(vm:box('101') and not vm:box('999'))\n"
      "local m, err = vm:deposit({}, '999')\n"
      "assert(m == nil and err == 'no such mailbox')\n";
  CHECK_MESSAGE(luaL_dostring(L, code) == 0, lua_tostring(L, -1));
}
