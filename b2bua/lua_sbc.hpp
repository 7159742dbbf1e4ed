// lua_sbc.hpp — installs relais.sbc (is_banned, ban, unban) into a script state.
#pragma once

struct lua_State;

namespace relais {

class SourceGuard;

// `guard` may be null (relais --check): the functions exist and raise when called.
void install_sbc_api(lua_State* L, SourceGuard* guard);

}  // namespace relais
