// call_engine_media.cpp — the engine's side of media services: answering a call locally,
// finding prompt files, and running a script's on_dtmf hook.
#include <lua.hpp>

#include <filesystem>

#include "call_engine.hpp"
#include "log.hpp"

namespace relais {

namespace {

// Prompt names are words, never paths: "../../etc/passwd" must not become a file to play.
bool valid_prompt_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

bool is_file(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

}  // namespace

void CallEngine::answer_locally(uint64_t id) {
  Context* ctx = context_of(id);
  if (!ctx) return;
  ctx->call->answer_locally([this, id](const std::string& error) {
    Context* ctx = context_of(id);
    if (!ctx) return;
    if (error.empty() && !ctx->media && ng_) {
      ctx->media = std::make_unique<CallMedia>(base(), *ng_, ctx->call->call_id(), ctx->call->caller_tag());
      ++counters_.answered_locally;
    }
    if (!error.empty()) log_warn("call.answer_failed").kv("call", id).kv("call_id", ctx->call->call_id()).kv("error", error);
    resume_later(id, [error](lua_State* co) {
      if (error.empty()) {
        lua_pushboolean(co, 1);
        return 1;
      }
      lua_pushnil(co);
      lua_pushstring(co, error.c_str());
      return 2;
    });
  });
}

std::string CallEngine::resolve_prompt(const std::string& name, const std::string& language) const {
  namespace fs = std::filesystem;
  if (name.find('/') != std::string::npos || (name.size() > 4 && name.compare(name.size() - 4, 4, ".wav") == 0)) {
    // A file the script names itself (a recorded greeting, a message): relais-media may run
    // in another directory, so it gets an absolute path.
    std::error_code ec;
    fs::path p = fs::absolute(name, ec);
    return !ec && is_file(p) ? p.lexically_normal().string() : std::string();
  }
  if (!valid_prompt_name(name)) return {};
  std::string lang = language.empty() ? cfg_.prompts.language : language;
  if (!valid_prompt_name(lang)) return {};
  std::error_code ec;
  fs::path dir = fs::absolute(cfg_.prompts.dir, ec);
  for (const fs::path& candidate : {dir / "custom" / lang / (name + ".wav"), dir / lang / (name + ".wav")})
    if (is_file(candidate)) return candidate.lexically_normal().string();
  return {};
}

bool CallEngine::digit_hook(uint64_t id, const std::string& digit) {
  Context* ctx = context_of(id);
  if (!ctx || !ctx->script || ctx->dtmf_hook_ref == -2 || ctx->running) return false;
  lua_State* L = ctx->script->lua();
  int top = lua_gettop(L);
  lua_pushcfunction(L, lua_traceback_handler);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->dtmf_hook_ref);
  lua_pushstring(L, digit.c_str());
  arm_instruction_limit(L);
  int rc = lua_pcall(L, 1, 1, top + 1);
  disarm_instruction_limit(L);
  bool interrupt = false;
  if (rc != 0) {
    ++counters_.script_errors;
    log_error("script.error").kv("hook", "on_dtmf").kv("call", id).kv("error", lua_error_text(L));
  } else {
    interrupt = lua_toboolean(L, -1) != 0;
  }
  lua_settop(L, top);
  return interrupt;
}

}  // namespace relais
