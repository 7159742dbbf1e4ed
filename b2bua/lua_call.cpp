// lua_call.cpp — the Lua face of a call: the `call` table given to on_invite, its verbs, and
// the waiting helpers registrar.lookup and relais.sleep. Verbs that wait check their
// arguments, start the operation, and yield; CallEngine resumes the coroutine on the event.
#include <sofia-sip/msg_header.h>
#include <sofia-sip/msg_mclass.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_parser.h>

#include <lua.hpp>

#include "kv_store.hpp"
#include "lua_call.hpp"
#include "mail_sender.hpp"
#include "log.hpp"
#include "srtp_policy.hpp"

namespace relais {

namespace luacall {

CallEngine* engine_of(lua_State* L) {
  auto* engine = static_cast<CallEngine*>(lua_touserdata(L, lua_upvalueindex(1)));
  if (!engine) luaL_error(L, "not available here (relais --check does not run calls)");
  return engine;
}

// The context of the call whose table is argument 1; raises if that call has ended.
CallEngine::Context* call_arg_if_live(lua_State* L, CallEngine* engine) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "__id");
  auto id = static_cast<uint64_t>(lua_tonumber(L, -1));
  lua_pop(L, 1);
  return engine->context_of(id);
}

CallEngine::Context& call_arg(lua_State* L, CallEngine* engine) {
  CallEngine::Context* ctx = call_arg_if_live(L, engine);
  if (!ctx) luaL_error(L, "this call has ended");
  return *ctx;
}

// Waiting verbs only make sense in the call's own coroutine.
void require_own_coroutine(lua_State* L, const CallEngine::Context& ctx, const char* verb) {
  if (L != ctx.co) luaL_error(L, "%s: must be called from the call's own on_invite coroutine", verb);
}

void set_closure(lua_State* L, const char* name, lua_CFunction fn, CallEngine* engine) {
  lua_pushlightuserdata(L, engine);
  lua_pushcclosure(L, fn, 1);
  lua_setfield(L, -2, name);
}

}  // namespace luacall

namespace {

using namespace luacall;
constexpr const char* kCallMeta = "relais.call";

void set_str(lua_State* L, const char* key, const char* value) {
  if (!value) return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, key);
}

void push_address(lua_State* L, const url_t* url, const char* display) {
  // Sized for what it holds: a held call keeps three of these (a 4-slot hash costs 48 bytes
  // more than a 2-slot one).
  lua_createtable(L, 0, display ? 3 : 2);
  if (url) {
    set_str(L, "user", url->url_user ? url->url_user : "");
    set_str(L, "host", url->url_host ? url->url_host : "");
  }
  if (display) set_str(L, "display", display);
}

void push_result(lua_State* co, const DialResult& r) {
  lua_createtable(co, 0, 5);
  lua_pushboolean(co, r.answered);
  lua_setfield(co, -2, "answered");
  lua_pushinteger(co, r.code);
  lua_setfield(co, -2, "code");
  set_str(co, "reason", r.reason.c_str());
  set_str(co, "target", r.target.c_str());
  if (!r.ended_by.empty()) set_str(co, "ended_by", r.ended_by.c_str());
}

// Targets: "100", "sip:x@h", { "a", "b" } (parallel), { serial = { "a", {"b","c"} } }.
void read_targets(lua_State* L, int index, std::vector<std::vector<std::string>>& stages) {
  if (lua_type(L, index) == LUA_TSTRING) {
    stages.push_back({lua_tostring(L, index)});
    return;
  }
  luaL_checktype(L, index, LUA_TTABLE);
  lua_getfield(L, index, "serial");
  if (lua_istable(L, -1)) {
    int serial = lua_gettop(L);
    for (int i = 1;; ++i) {
      lua_rawgeti(L, serial, i);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        break;
      }
      std::vector<std::vector<std::string>> one;
      read_targets(L, lua_gettop(L), one);
      std::vector<std::string> merged;
      for (auto& s : one)
        for (auto& t : s) merged.push_back(t);
      stages.push_back(merged);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  std::vector<std::string> parallel;
  for (int i = 1;; ++i) {
    lua_rawgeti(L, index, i);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      break;
    }
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "dial: targets must be strings");
    parallel.push_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  stages.push_back(parallel);
}

int call_dial(lua_State* L) {
  CallEngine* engine = engine_of(L);
  CallEngine::Context& ctx = call_arg(L, engine);
  require_own_coroutine(L, ctx, "dial");
  std::vector<std::vector<std::string>> stages;
  if (!lua_isnil(L, 2)) read_targets(L, 2, stages);
  DialOptions options;
  options.timeout_seconds = engine->config().calls.no_answer_timeout;
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "timeout");
    if (lua_isnumber(L, -1)) options.timeout_seconds = static_cast<int>(lua_tonumber(L, -1));
    lua_pop(L, 1);
    if (options.timeout_seconds < 1 || options.timeout_seconds > 3600) luaL_error(L, "dial: timeout must be 1..3600 seconds");
    lua_getfield(L, 3, "caller_id");
    if (lua_isstring(L, -1)) options.caller_id = lua_tostring(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 3, "srtp");
    if (!lua_isnil(L, -1)) {
      const char* srtp = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : nullptr;
      if (!srtp || !srtp_policy_from(srtp)) luaL_error(L, "dial: srtp must be \"never\", \"optional\" or \"mandatory\"");
      options.srtp = srtp;
    }
    lua_pop(L, 1);
    lua_getfield(L, 3, "headers");
    if (lua_istable(L, -1)) {
      lua_pushnil(L);
      while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) options.headers[lua_tostring(L, -2)] = lua_tostring(L, -1);
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  // The callee's SRTP policy comes from the target as written ("101", "trunk:op/..."): once
  // resolved into contacts the user is no longer known.
  if (options.srtp.empty() && !stages.empty() && !stages[0].empty())
    options.srtp = srtp_policy_name(target_srtp_policy(engine->config(), stages[0][0]));
  uint64_t id = ctx.id;
  auto fail = [engine, id](int code, const char* reason) {
    DialResult r;
    r.code = code;
    r.reason = reason;
    engine->resume_later(id, [r](lua_State* co) {
      push_result(co, r);
      return 1;
    });
  };
  if (ctx.call->caller_gone() || ctx.call->finished()) {
    fail(487, "Caller Gone");
  } else if (stages.empty()) {
    fail(404, "No Targets");
  } else {
    engine->resolve_targets(std::move(stages), [engine, id, options, fail](const std::string& error, DialPlan plan) {
      CallEngine::Context* ctx = engine->context_of(id);
      if (!ctx) return;
      if (!error.empty()) return fail(503, "Store Unavailable");
      if (plan.empty()) return fail(404, "Not Registered");
      bool started = ctx->call->dial(std::move(plan), options, [engine, id](const DialResult& r) {
        engine->resume_later(id, [r](lua_State* co) {
          push_result(co, r);
          return 1;
        });
      });
      if (!started) fail(ctx->call->caller_gone() ? 487 : 500, "Cannot Dial");
    });
  }
  return lua_yield(L, 0);
}

int call_ring(lua_State* L) {
  call_arg(L, engine_of(L)).call->ring();
  return 0;
}

int call_reject(lua_State* L) {
  CallEngine::Context& ctx = call_arg(L, engine_of(L));
  int code = static_cast<int>(luaL_checkinteger(L, 2));
  if (code < 300 || code > 699) return luaL_error(L, "reject: code must be 300..699, got %d", code);
  ctx.call->reject(code, luaL_optstring(L, 3, ""));
  return 0;
}

int call_redirect(lua_State* L) {
  CallEngine::Context& ctx = call_arg(L, engine_of(L));
  ctx.call->redirect(luaL_checkstring(L, 2));
  return 0;
}

int call_hangup(lua_State* L) {
  call_arg(L, engine_of(L)).call->hangup();
  return 0;
}

// call:header(name): the first header of that name on the caller's INVITE, as text.
int call_header(lua_State* L) {
  CallEngine::Context& ctx = call_arg(L, engine_of(L));
  const char* name = luaL_checkstring(L, 2);
  const sip_t* sip = ctx.call->invite()->sip();
  // After the ACK the INVITE message was released; parse its text copy again (rare path).
  std::unique_ptr<msg_t, void (*)(msg_t*)> reparsed(nullptr, msg_destroy);
  if (!sip) {
    const std::string& text = ctx.call->invite_text();
    reparsed.reset(msg_make(sip_default_mclass(), 0, text.data(), static_cast<isize_t>(text.size())));
    sip = reparsed ? sip_object(reparsed.get()) : nullptr;
    if (!sip) {
      lua_pushnil(L);
      return 1;
    }
  }
  isize_t namelen = 0;
  // The parser's lookup expects "Name:" as on the wire.
  std::string probe = std::string(name) + ":";
  msg_href_t const* href = msg_find_hclass(sip_default_mclass(), probe.c_str(), &namelen);
  const msg_header_t* h = nullptr;
  if (href && href->hr_class != sip_unknown_class && href->hr_class != sip_error_class) {
    h = *reinterpret_cast<msg_header_t* const*>(reinterpret_cast<const char*>(sip) + href->hr_offset);
  } else {
    for (const sip_unknown_t* u = sip->sip_unknown; u; u = u->un_next)
      if (u->un_name && strcasecmp(u->un_name, name) == 0) {
        lua_pushstring(L, u->un_value ? u->un_value : "");
        return 1;
      }
  }
  if (!h) {
    lua_pushnil(L);
    return 1;
  }
  char buf[1024];
  issize_t n = msg_header_field_e(buf, sizeof buf, h, 0);
  if (n < 0 || static_cast<size_t>(n) >= sizeof buf) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, buf, static_cast<size_t>(n));
  return 1;
}

// registrar.lookup(aor_or_user) -> { contact URIs } (yields: the store may be Redis).
int registrar_lookup(lua_State* L) {
  CallEngine* engine = engine_of(L);
  const char* aor = luaL_checkstring(L, 1);
  CallEngine::Context* ctx = engine->context_of_thread(L);
  if (!ctx) return luaL_error(L, "registrar.lookup: must be called from a call's coroutine");
  uint64_t id = ctx->id;
  engine->lookup_contacts(aor, [engine, id](const std::string& error, std::vector<std::string> contacts) {
    engine->resume_later(id, [error, contacts](lua_State* co) {
      if (!error.empty()) {
        lua_pushnil(co);
        lua_pushstring(co, error.c_str());
        return 2;
      }
      lua_createtable(co, static_cast<int>(contacts.size()), 0);
      for (size_t i = 0; i < contacts.size(); ++i) {
        lua_pushstring(co, contacts[i].c_str());
        lua_rawseti(co, -2, static_cast<int>(i + 1));
      }
      return 1;
    });
  });
  return lua_yield(L, 0);
}

// relais.sleep(seconds)
int relais_sleep(lua_State* L) {
  CallEngine* engine = engine_of(L);
  double seconds = luaL_checknumber(L, 1);
  if (seconds < 0 || seconds > 3600) return luaL_error(L, "sleep: seconds must be 0..3600");
  CallEngine::Context* ctx = engine->context_of_thread(L);
  if (!ctx) return luaL_error(L, "relais.sleep: must be called from a call's coroutine");
  engine->sleep(ctx->id, seconds);
  return lua_yield(L, 0);
}

}  // namespace

void CallEngine::install_api(lua_State* L, CallEngine* engine) {
  luaL_newmetatable(L, kCallMeta);
  lua_newtable(L);
  set_closure(L, "dial", call_dial, engine);
  set_closure(L, "ring", call_ring, engine);
  set_closure(L, "reject", call_reject, engine);
  set_closure(L, "redirect", call_redirect, engine);
  set_closure(L, "hangup", call_hangup, engine);
  set_closure(L, "header", call_header, engine);
  install_media_verbs(L, engine);
  // Lua helpers (say_digits, gather ... in scripts/relais/call.lua) add methods to this table.
  lua_getglobal(L, "relais");
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "call_methods");
  }
  lua_pop(L, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  lua_newtable(L);
  set_closure(L, "lookup", registrar_lookup, engine);
  lua_setglobal(L, "registrar");

  lua_getglobal(L, "relais");
  if (lua_istable(L, -1)) set_closure(L, "sleep", relais_sleep, engine);
  lua_pop(L, 1);

  install_kv_api(L, engine ? engine->kv() : nullptr);
  install_mail_api(L, engine ? engine->mail() : nullptr);
  lua_getglobal(L, "relais");
  if (lua_istable(L, -1)) {
    lua_pushstring(L, engine ? engine->config().prompts.language.c_str() : "en");
    lua_setfield(L, -2, "default_language");
  }
  lua_pop(L, 1);

  // The shipped call helpers; a missing or broken library must not stop the script loading.
  lua_getglobal(L, "require");
  lua_pushstring(L, "relais.call");
  if (lua_pcall(L, 1, 0, 0) != 0) {
    log_warn("script.library_missing").kv("module", "relais.call").kv("error", lua_error_text(L));
    lua_pop(L, 1);
  }
}

void CallEngine::push_call_table(lua_State* co, const Context& ctx) {
  const SipRequestPtr& invite = ctx.call->invite();
  const sip_t* sip = invite->sip();
  lua_createtable(co, 0, 16);
  lua_pushnumber(co, static_cast<double>(ctx.id));
  lua_setfield(co, -2, "__id");
  push_address(co, sip->sip_from ? sip->sip_from->a_url : nullptr, sip->sip_from ? sip->sip_from->a_display : nullptr);
  lua_setfield(co, -2, "from");
  push_address(co, sip->sip_to ? sip->sip_to->a_url : nullptr, sip->sip_to ? sip->sip_to->a_display : nullptr);
  lua_setfield(co, -2, "to");
  push_address(co, sip->sip_request->rq_url, nullptr);
  lua_setfield(co, -2, "ruri");
  const char* display = sip->sip_from ? sip->sip_from->a_display : nullptr;
  const char* user = sip->sip_from && sip->sip_from->a_url->url_user ? sip->sip_from->a_url->url_user : "";
  set_str(co, "caller_id", display && *display ? display : user);
  set_str(co, "source_ip", invite->source().ip.c_str());
  lua_pushinteger(co, invite->source().port);
  lua_setfield(co, -2, "source_port");
  set_str(co, "transport", invite->source().transport.c_str());
  set_str(co, "call_id", invite->call_id().c_str());
  if (!ctx.auth_user.empty()) set_str(co, "auth_user", ctx.auth_user.c_str());
  if (!ctx.from_trunk.empty()) set_str(co, "from_trunk", ctx.from_trunk.c_str());
  luaL_getmetatable(co, kCallMeta);
  lua_setmetatable(co, -2);
}

}  // namespace relais
