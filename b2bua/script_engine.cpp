// script_engine.cpp — loading the routing script and calling its hooks safely.
#include "script_engine.hpp"

#include <filesystem>

#include "log.hpp"

namespace relais {

namespace {

// A hook that runs this many VM instructions is a runaway (an infinite loop in a dialplan):
// it is aborted so one bad script cannot stall every phone. LuaJIT only runs count hooks in
// the interpreter, so the JIT is switched off for the script state (see load()).
constexpr int kInstructionLimit = 10'000'000;

void instruction_limit_hook(lua_State* L, lua_Debug*) { luaL_error(L, "instruction limit exceeded (runaway script?)"); }

int lua_relais_log(lua_State* L) {
  int n = lua_gettop(L);
  std::string text;
  for (int i = 1; i <= n; ++i) {
    if (i > 1) text += ' ';
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, i);
    lua_call(L, 1, 1);
    const char* s = lua_tostring(L, -1);
    text += s ? s : "";
    lua_pop(L, 1);
  }
  log_info("script.log").kv("msg", text);
  return 0;
}

// req:reject(code, reason): records the verdict in the request table.
int lua_req_reject(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int code = static_cast<int>(luaL_checkinteger(L, 2));
  if (code < 300 || code > 699) return luaL_error(L, "reject: code must be 300..699, got %d", code);
  lua_pushinteger(L, code);
  lua_setfield(L, 1, "__reject_code");
  lua_pushstring(L, luaL_optstring(L, 3, ""));
  lua_setfield(L, 1, "__reject_reason");
  return 0;
}

// req:annotate(key, value): a note kept on the stored binding.
int lua_req_annotate(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkstring(L, 2);
  luaL_checkstring(L, 3);
  lua_getfield(L, 1, "__attrs");
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_settable(L, -3);
  return 0;
}

void set_string(lua_State* L, const char* key, const std::string& value) {
  lua_pushlstring(L, value.data(), value.size());
  lua_setfield(L, -2, key);
}

}  // namespace

// require("relais.voicemail") finds the shipped library whether relais runs from the build
// tree or an install; the script's own directory comes first so a site can override a module.
static void set_package_path(lua_State* L, const std::string& script, const std::string& extra) {
  std::string dir = std::filesystem::path(script).parent_path().string();
  std::string path = (dir.empty() ? std::string(".") : dir) + "/?.lua;";
  if (!extra.empty()) path += extra + ";";
  path += std::string(RELAIS_SCRIPTS_DIR) + "/?.lua";
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    lua_pushstring(L, path.c_str());
    lua_setfield(L, -2, "path");
  }
  lua_pop(L, 1);
}

void arm_instruction_limit(lua_State* L) { lua_sethook(L, instruction_limit_hook, LUA_MASKCOUNT, kInstructionLimit); }
void disarm_instruction_limit(lua_State* L) { lua_sethook(L, nullptr, 0, 0); }

bool ScriptEngine::load(const std::string& path, std::string& error) {
  LuaStatePtr fresh = new_lua_state();
  lua_State* L = fresh.get();
  if (!L) {
    error = path + ": cannot create Lua state";
    return false;
  }
  luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
  lua_newtable(L);
  lua_pushcfunction(L, lua_relais_log);
  lua_setfield(L, -2, "log");
  lua_pushstring(L, RELAIS_VERSION);
  lua_setfield(L, -2, "version");
  lua_setglobal(L, "relais");
  set_package_path(L, path, lua_path_);
  if (installer_) installer_(L);

  lua_pushcfunction(L, lua_traceback_handler);
  if (luaL_loadfile(L, path.c_str()) != 0) {
    error = lua_error_text(L);
    return false;
  }
  lua_sethook(L, instruction_limit_hook, LUA_MASKCOUNT, kInstructionLimit);
  int rc = lua_pcall(L, 0, 0, -2);
  lua_sethook(L, nullptr, 0, 0);
  if (rc != 0) {
    error = lua_error_text(L);
    return false;
  }
  lua_settop(L, 0);
  current_ = std::make_shared<ScriptState>(std::move(fresh), path, ++generations_);
  return true;
}

bool ScriptState::has_hook(const char* name) const {
  lua_State* L = state_.get();
  LuaStackGuard guard(L);
  lua_getglobal(L, name);
  return lua_isfunction(L, -1);
}

HookResult ScriptState::on_register(const RegisterHookRequest& r) {
  HookResult result;
  lua_State* L = state_.get();
  LuaStackGuard guard(L);
  lua_pushcfunction(L, lua_traceback_handler);
  int handler = lua_gettop(L);
  lua_createtable(L, 0, 16);
  set_string(L, "user", r.user);
  set_string(L, "domain", r.domain);
  set_string(L, "aor", r.aor);
  set_string(L, "source_ip", r.source_ip);
  lua_pushinteger(L, r.source_port);
  lua_setfield(L, -2, "source_port");
  set_string(L, "transport", r.transport);
  set_string(L, "user_agent", r.user_agent);
  set_string(L, "call_id", r.call_id);
  lua_pushinteger(L, r.expires);
  lua_setfield(L, -2, "expires");
  lua_createtable(L, static_cast<int>(r.contacts.size()), 0);
  for (size_t i = 0; i < r.contacts.size(); ++i) {
    lua_pushlstring(L, r.contacts[i].data(), r.contacts[i].size());
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  lua_setfield(L, -2, "contacts");
  lua_newtable(L);
  lua_setfield(L, -2, "__attrs");
  lua_pushcfunction(L, lua_req_reject);
  lua_setfield(L, -2, "reject");
  lua_pushcfunction(L, lua_req_annotate);
  lua_setfield(L, -2, "annotate");
  int req = lua_gettop(L);

  lua_getglobal(L, "on_register");
  if (!lua_isfunction(L, -1)) return result;
  lua_pushvalue(L, req);
  lua_sethook(L, instruction_limit_hook, LUA_MASKCOUNT, kInstructionLimit);
  int rc = lua_pcall(L, 1, 2, handler);
  lua_sethook(L, nullptr, 0, 0);
  if (rc != 0) {
    result.error = lua_error_text(L);
    return result;
  }
  // `return 403, "reason"` works as well as req:reject(403, "reason").
  if (lua_isnumber(L, -2)) {
    int code = static_cast<int>(lua_tointeger(L, -2));
    if (code >= 300 && code <= 699) {
      result.reject_code = code;
      result.reject_reason = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
    }
  }
  lua_getfield(L, req, "__reject_code");
  if (lua_isnumber(L, -1)) {
    result.reject_code = static_cast<int>(lua_tointeger(L, -1));
    lua_getfield(L, req, "__reject_reason");
    result.reject_reason = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  }
  lua_getfield(L, req, "__attrs");
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER))
      result.attrs[lua_tostring(L, -2)] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  return result;
}

}  // namespace relais
