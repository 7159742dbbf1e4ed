// script_engine.hpp — the routing script: a Lua state holding the user's hooks. This issue calls
// on_register; the call engine adds coroutines per call on top of the same state.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lua_state.hpp"

namespace relais {

struct RegisterHookRequest {
  std::string user;        // authenticated user
  std::string domain;
  std::string aor;         // user@domain
  std::string source_ip;
  int source_port = 0;
  std::string transport;   // udp | tcp
  std::string user_agent;
  std::string call_id;
  std::vector<std::string> contacts;  // URIs as sent; empty for a query or Contact: *
  int expires = -1;        // Expires header, -1 if absent
};

struct HookResult {
  int reject_code = 0;     // non-zero: answer with this code instead of proceeding
  std::string reject_reason;
  std::map<std::string, std::string> attrs;  // annotations
  std::string error;       // the script raised: logged by the caller, request gets 500
};

// One loaded generation of the script. Calls keep the generation they started in alive
// (shared_ptr), so a SIGHUP reload never changes the code under a running call; the Lua state
// closes when the last call of an old generation ends.
class ScriptState {
 public:
  ScriptState(LuaStatePtr state, std::string path, uint64_t generation)
      : state_(std::move(state)), path_(std::move(path)), generation_(generation) {}

  lua_State* lua() const { return state_.get(); }
  const std::string& path() const { return path_; }
  uint64_t generation() const { return generation_; }
  bool has_hook(const char* name) const;

  HookResult on_register(const RegisterHookRequest& request);

 private:
  LuaStatePtr state_;
  std::string path_;
  uint64_t generation_;
};

using ScriptStatePtr = std::shared_ptr<ScriptState>;

// Sets a count hook that aborts a runaway script; clear it after the Lua code returns/yields.
void arm_instruction_limit(lua_State* L);
void disarm_instruction_limit(lua_State* L);

class ScriptEngine {
 public:
  // Adds the host API (relais.*, registrar.*, call verbs) to every new state before the
  // script's top level runs.
  using ApiInstaller = std::function<void(lua_State*)>;
  void set_api_installer(ApiInstaller installer) { installer_ = std::move(installer); }
  // Extra require() patterns ("dir/?.lua;..."), searched after the script's own directory and
  // before the shipped library (scripts/: relais.ivr, relais.voicemail ...).
  void set_lua_path(std::string patterns) { lua_path_ = std::move(patterns); }

  // Loads `path` into a fresh state and runs its top level. On failure the previous state (if
  // any) stays in place and `error` holds "file:line: message".
  bool load(const std::string& path, std::string& error);
  bool loaded() const { return current_ != nullptr; }
  ScriptStatePtr current() const { return current_; }
  bool has_hook(const char* name) const { return current_ && current_->has_hook(name); }

  HookResult on_register(const RegisterHookRequest& request) {
    return current_ ? current_->on_register(request) : HookResult{};
  }

 private:
  ScriptStatePtr current_;
  ApiInstaller installer_;
  std::string lua_path_;
  uint64_t generations_ = 0;
};

}  // namespace relais
