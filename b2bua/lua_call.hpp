// lua_call.hpp — helpers shared by the files that bind call verbs (lua_call.cpp, lua_media.cpp).
#pragma once

#include <lua.hpp>

#include "call_engine.hpp"

namespace relais {

namespace luacall {

// The engine from the closure's upvalue; raises under `relais --check`, where calls never run.
CallEngine* engine_of(lua_State* L);
// The context of the call whose table is argument 1; raises if that call has ended.
CallEngine::Context& call_arg(lua_State* L, CallEngine* engine);
// The same, or null once the call has ended (for questions like call:ready()).
CallEngine::Context* call_arg_if_live(lua_State* L, CallEngine* engine);
void require_own_coroutine(lua_State* L, const CallEngine::Context& ctx, const char* verb);
// t[name] = fn with the engine as upvalue; t at the top of the stack.
void set_closure(lua_State* L, const char* name, lua_CFunction fn, CallEngine* engine);

}  // namespace luacall

// Adds answer/play/tone/record/wait_digit/... to the call methods table at the top of the stack.
void install_media_verbs(lua_State* L, CallEngine* engine);

}  // namespace relais
