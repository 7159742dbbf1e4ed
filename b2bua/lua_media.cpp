// lua_media.cpp — the media verbs of a call: answer, play, tone, record, wait_digit, send_dtmf,
// on_dtmf, flush_dtmf, stop_media, ready. Waiting verbs check their arguments, start the
// operation on the call's CallMedia, and yield; the outcome resumes the coroutine.
//
// Results, so scripts read naturally:
//   play/tone -> digit|nil, status ("done"|"digit"|"hangup"|"error"), error text
//   record    -> { path=, seconds=, reason= "digit"|"silence"|"max"|"hangup", digit= } | nil, error
//   wait_digit-> digit | nil, "timeout"|"hangup"
#include <filesystem>

#include "lua_call.hpp"
#include "log.hpp"

namespace relais {

namespace {

using namespace luacall;

// The call's media, or a Lua error telling the script what it forgot.
CallMedia& media_of(lua_State* L, CallEngine::Context& ctx, const char* verb) {
  if (!ctx.media) luaL_error(L, "call:%s: answer the call first (call:answer())", verb);
  return *ctx.media;
}

std::string call_language(lua_State* L, int opts) {
  if (opts && lua_istable(L, opts)) {
    lua_getfield(L, opts, "language");
    if (lua_isstring(L, -1)) {
      std::string lang = lua_tostring(L, -1);
      lua_pop(L, 1);
      return lang;
    }
    lua_pop(L, 1);
  }
  lua_getfield(L, 1, "language");
  std::string lang = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  return lang;
}

bool opt_bool(lua_State* L, int opts, const char* key, bool fallback) {
  if (!opts || !lua_istable(L, opts)) return fallback;
  lua_getfield(L, opts, key);
  bool v = lua_isnil(L, -1) ? fallback : lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  return v;
}

double opt_number(lua_State* L, int opts, const char* key, double fallback, double lo, double hi, const char* verb) {
  if (!opts || !lua_istable(L, opts)) return fallback;
  lua_getfield(L, opts, key);
  double v = fallback;
  if (!lua_isnil(L, -1)) {
    if (!lua_isnumber(L, -1)) luaL_error(L, "call:%s: %s must be a number", verb, key);
    v = lua_tonumber(L, -1);
    if (v < lo || v > hi) luaL_error(L, "call:%s: %s must be %g..%g", verb, key, lo, hi);
  }
  lua_pop(L, 1);
  return v;
}

std::string opt_string(lua_State* L, int opts, const char* key) {
  if (!opts || !lua_istable(L, opts)) return {};
  lua_getfield(L, opts, key);
  std::string v = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  return v;
}

void resume_with_outcome(CallEngine* engine, uint64_t id, const MediaOutcome& o) {
  engine->resume_later(id, [o](lua_State* co) {
    if (o.status == "digit") lua_pushstring(co, o.digit.c_str());
    else lua_pushnil(co);
    lua_pushstring(co, o.status.c_str());
    if (o.status != "error") return 2;
    lua_pushstring(co, o.error.c_str());
    return 3;
  });
}

// call:answer() -> true | nil, error
int call_answer(lua_State* L) {
  CallEngine* engine = engine_of(L);
  CallEngine::Context& ctx = call_arg(L, engine);
  require_own_coroutine(L, ctx, "answer");
  if (ctx.media) {
    lua_pushboolean(L, 1);
    return 1;
  }
  engine->answer_locally(ctx.id);
  return lua_yield(L, 0);
}

// call:play(name | path | { ... }, { interrupt=, repeat_times=, language= })
int call_play(lua_State* L) {
  CallEngine* engine = engine_of(L);
  CallEngine::Context& ctx = call_arg(L, engine);
  require_own_coroutine(L, ctx, "play");
  CallMedia& media = media_of(L, ctx, "play");
  int opts = lua_istable(L, 3) ? 3 : 0;
  std::string lang = call_language(L, opts);
  std::vector<std::string> names;
  if (lua_type(L, 2) == LUA_TSTRING || lua_type(L, 2) == LUA_TNUMBER) {
    names.push_back(lua_tostring(L, 2));
  } else if (lua_istable(L, 2)) {
    for (int i = 1; i <= 200; ++i) {
      lua_rawgeti(L, 2, i);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        break;
      }
      if (!lua_isstring(L, -1)) luaL_error(L, "call:play: item %d is not a string", i);
      names.push_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  } else {
    return luaL_error(L, "call:play: expected a prompt name, a file or a list of them");
  }
  std::vector<std::string> files;
  std::string missing;
  for (const std::string& n : names) {
    std::string f = engine->resolve_prompt(n, lang);
    if (f.empty()) {
      log_warn("media.unknown_prompt").kv("call_id", ctx.call->call_id()).kv("prompt", n).kv("language", lang);
      if (missing.empty()) missing = n;
      continue;
    }
    files.push_back(f);
  }
  if (files.empty()) {
    lua_pushnil(L);
    lua_pushstring(L, "error");
    lua_pushstring(L, ("unknown prompt or missing file '" + missing + "'").c_str());
    return 3;
  }
  bool interrupt = opt_bool(L, opts, "interrupt", false);
  int repeat = static_cast<int>(opt_number(L, opts, "repeat_times", 1, 0, 1000, "play"));
  uint64_t id = ctx.id;
  media.play(std::move(files), interrupt, repeat, [engine, id](const MediaOutcome& o) { resume_with_outcome(engine, id, o); });
  return lua_yield(L, 0);
}

// call:tone("ringback" | "busy" | "beep" | "dial", { duration = seconds, interrupt =, wait = })
int call_tone(lua_State* L) {
  CallEngine* engine = engine_of(L);
  CallEngine::Context& ctx = call_arg(L, engine);
  require_own_coroutine(L, ctx, "tone");
  CallMedia& media = media_of(L, ctx, "tone");
  std::string name = luaL_checkstring(L, 2);
  if (name != "ringback" && name != "busy" && name != "beep" && name != "dial")
    return luaL_error(L, "call:tone: unknown tone '%s' (ringback, busy, beep, dial)", name.c_str());
  int opts = lua_istable(L, 3) ? 3 : 0;
  double seconds = opt_number(L, opts, "duration", 0, 0, 3600, "tone");
  bool interrupt = opt_bool(L, opts, "interrupt", false);
  if (!opt_bool(L, opts, "wait", true)) {
    media.start_tone(name, static_cast<int>(seconds * 1000));
    return 0;
  }
  uint64_t id = ctx.id;
  media.tone(name, static_cast<int>(seconds * 1000), interrupt,
             [engine, id](const MediaOutcome& o) { resume_with_outcome(engine, id, o); });
  return lua_yield(L, 0);
}

void push_recording(lua_State* co, const MediaOutcome& o) {
  lua_createtable(co, 0, 4);
  lua_pushstring(co, o.path.c_str());
  lua_setfield(co, -2, "path");
  lua_pushnumber(co, o.seconds);
  lua_setfield(co, -2, "seconds");
  lua_pushstring(co, o.status.c_str());
  lua_setfield(co, -2, "reason");
  if (!o.digit.empty()) {
    lua_pushstring(co, o.digit.c_str());
    lua_setfield(co, -2, "digit");
  }
}

// call:record{ path=, max_seconds=, silence=, beep= }
int call_record(lua_State* L) {
  CallEngine* engine = engine_of(L);
  CallEngine::Context& ctx = call_arg(L, engine);
  require_own_coroutine(L, ctx, "record");
  CallMedia& media = media_of(L, ctx, "record");
  luaL_checktype(L, 2, LUA_TTABLE);
  std::string path = opt_string(L, 2, "path");
  if (path.empty()) return luaL_error(L, "call:record: path is required");
  int max_seconds = static_cast<int>(opt_number(L, 2, "max_seconds", 120, 1, 3600, "record"));
  int silence = static_cast<int>(opt_number(L, 2, "silence", 0, 0, 60, "record"));
  bool beep = opt_bool(L, 2, "beep", true);
  // relais-media writes the file, possibly from another working directory.
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec).lexically_normal();
  if (!ec && abs.has_parent_path()) std::filesystem::create_directories(abs.parent_path(), ec);
  if (ec) {
    lua_pushnil(L);
    lua_pushstring(L, ("cannot create the directory of " + path + ": " + ec.message()).c_str());
    return 2;
  }
  uint64_t id = ctx.id;
  std::string file = abs.string();
  auto start = [engine, id, file, max_seconds, silence]() {
    CallEngine::Context* c = engine->context_of(id);
    if (!c || !c->media) return;
    c->media->record(file, max_seconds, silence, [engine, id](const MediaOutcome& o) {
      engine->resume_later(id, [o](lua_State* co) {
        if (o.status == "error") {
          std::error_code ignored;
          std::filesystem::remove(o.path, ignored);  // never leave a half-made file behind
          lua_pushnil(co);
          lua_pushstring(co, o.error.c_str());
          return 2;
        }
        push_recording(co, o);
        return 1;
      });
    });
  };
  if (!beep) {
    start();
  } else {
    media.tone("beep", 0, false, [engine, id, start, file](const MediaOutcome& o) {
      if (o.status == "done" || o.status == "error") return start();
      MediaOutcome hung = o;
      hung.path = file;
      engine->resume_later(id, [hung](lua_State* co) {
        lua_pushnil(co);
        lua_pushstring(co, hung.status.c_str());
        return 2;
      });
    });
  }
  return lua_yield(L, 0);
}

// call:wait_digit(timeout_seconds) -> digit | nil, "timeout" | "hangup"
int call_wait_digit(lua_State* L) {
  CallEngine* engine = engine_of(L);
  CallEngine::Context& ctx = call_arg(L, engine);
  require_own_coroutine(L, ctx, "wait_digit");
  CallMedia& media = media_of(L, ctx, "wait_digit");
  double timeout = luaL_optnumber(L, 2, 5);
  if (timeout < 0 || timeout > 3600) return luaL_error(L, "call:wait_digit: timeout must be 0..3600 seconds");
  uint64_t id = ctx.id;
  media.wait_digit(timeout, [engine, id](const MediaOutcome& o) { resume_with_outcome(engine, id, o); });
  return lua_yield(L, 0);
}

int call_send_dtmf(lua_State* L) {
  CallEngine::Context& ctx = call_arg(L, engine_of(L));
  std::string digits = luaL_checkstring(L, 2);
  if (digits.size() > 32 || digits.find_first_not_of("0123456789*#ABCD") != std::string::npos)
    return luaL_error(L, "call:send_dtmf: up to 32 of 0-9 * # A-D");
  media_of(L, ctx, "send_dtmf").send_dtmf(digits);
  return 0;
}

int call_flush_dtmf(lua_State* L) {
  CallEngine::Context& ctx = call_arg(L, engine_of(L));
  if (ctx.media) ctx.media->flush_digits();
  return 0;
}

int call_stop_media(lua_State* L) {
  CallEngine::Context& ctx = call_arg(L, engine_of(L));
  if (ctx.media) ctx.media->stop_playback();
  return 0;
}

// call:on_dtmf(fn | nil): fn(digit) sees every digit first; returning true interrupts the
// waiting verb with that digit.
int call_on_dtmf(lua_State* L) {
  CallEngine* engine = engine_of(L);
  CallEngine::Context& ctx = call_arg(L, engine);
  if (!lua_isnil(L, 2) && !lua_isfunction(L, 2)) return luaL_error(L, "call:on_dtmf: expected a function or nil");
  lua_State* main = ctx.script->lua();
  if (ctx.dtmf_hook_ref != -2) luaL_unref(main, LUA_REGISTRYINDEX, ctx.dtmf_hook_ref);
  ctx.dtmf_hook_ref = -2;
  if (lua_isfunction(L, 2)) {
    lua_pushvalue(L, 2);
    ctx.dtmf_hook_ref = luaL_ref(L, LUA_REGISTRYINDEX);  // one registry for all threads of a state
  }
  CallMedia& media = media_of(L, ctx, "on_dtmf");
  uint64_t id = ctx.id;
  if (ctx.dtmf_hook_ref == -2)
    media.set_digit_hook(nullptr);
  else
    media.set_digit_hook([engine, id](const std::string& d) { return engine->digit_hook(id, d); });
  return 0;
}

// call:ready(): the caller is still there and the call not ended.
int call_ready(lua_State* L) {
  CallEngine::Context* ctx = call_arg_if_live(L, engine_of(L));
  bool ready = ctx && ctx->call && !ctx->call->finished() && !ctx->call->caller_gone() && !(ctx->media && ctx->media->gone());
  lua_pushboolean(L, ready);
  return 1;
}

}  // namespace

void install_media_verbs(lua_State* L, CallEngine* engine) {
  set_closure(L, "answer", call_answer, engine);
  set_closure(L, "play", call_play, engine);
  set_closure(L, "tone", call_tone, engine);
  set_closure(L, "record", call_record, engine);
  set_closure(L, "wait_digit", call_wait_digit, engine);
  set_closure(L, "send_dtmf", call_send_dtmf, engine);
  set_closure(L, "flush_dtmf", call_flush_dtmf, engine);
  set_closure(L, "stop_media", call_stop_media, engine);
  set_closure(L, "on_dtmf", call_on_dtmf, engine);
  set_closure(L, "ready", call_ready, engine);
}

}  // namespace relais
