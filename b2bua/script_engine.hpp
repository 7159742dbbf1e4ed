// script_engine.hpp — the routing script: a Lua state holding the user's hooks. This issue calls
// on_register; the call engine adds coroutines per call on top of the same state.
#pragma once

#include <map>
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

class ScriptEngine {
 public:
  // Loads `path` into a fresh state and runs its top level. On failure the previous state (if
  // any) stays in place and `error` holds "file:line: message".
  bool load(const std::string& path, std::string& error);
  bool loaded() const { return state_ != nullptr; }
  bool has_hook(const char* name) const;

  HookResult on_register(const RegisterHookRequest& request);

 private:
  LuaStatePtr state_;
  std::string path_;
};

}  // namespace relais
