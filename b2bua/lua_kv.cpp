// lua_kv.cpp — relais.kv: the durable key-value store for scripts (voicemail metadata, PINs).
//   relais.kv.get(key) -> value | nil
//   relais.kv.set(key, value) -> true | nil, error
//   relais.kv.delete(key) -> true | nil, error
//   relais.kv.scan(prefix [, limit]) -> { {key, value}, ... } in key order
#include <lua.hpp>

#include "kv_store.hpp"

namespace relais {

namespace {

KvStore* kv_of(lua_State* L) {
  auto* kv = static_cast<KvStore*>(lua_touserdata(L, lua_upvalueindex(1)));
  if (!kv) luaL_error(L, "relais.kv is not available here (relais --check does not open the store)");
  return kv;
}

std::string checked_string(lua_State* L, int index) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, index, &len);
  return std::string(s, len);
}

int kv_get(lua_State* L) {
  auto value = kv_of(L)->get(checked_string(L, 1));
  if (!value) {
    lua_pushnil(L);
  } else {
    lua_pushlstring(L, value->data(), value->size());
  }
  return 1;
}

int result(lua_State* L, bool ok, const std::string& error) {
  if (ok) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, error.c_str());
  return 2;
}

int kv_set(lua_State* L) {
  KvStore* kv = kv_of(L);
  std::string key = checked_string(L, 1), value = checked_string(L, 2), error;
  bool ok = kv->set(key, value, error);
  return result(L, ok, error);
}

int kv_delete(lua_State* L) {
  KvStore* kv = kv_of(L);
  std::string error;
  bool ok = kv->remove(checked_string(L, 1), error);
  return result(L, ok, error);
}

int kv_scan(lua_State* L) {
  KvStore* kv = kv_of(L);
  std::string prefix = checked_string(L, 1);
  lua_Integer limit = luaL_optinteger(L, 2, 1000);
  if (limit < 1 || limit > 100000) return luaL_error(L, "relais.kv.scan: limit must be 1..100000");
  auto rows = kv->scan(prefix, static_cast<size_t>(limit));
  lua_createtable(L, static_cast<int>(rows.size()), 0);
  for (size_t i = 0; i < rows.size(); ++i) {
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, rows[i].first.data(), rows[i].first.size());
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, rows[i].second.data(), rows[i].second.size());
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  return 1;
}

}  // namespace

void install_kv_api(lua_State* L, KvStore* kv) {
  lua_getglobal(L, "relais");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_newtable(L);
  const std::pair<const char*, lua_CFunction> fns[] = {{"get", kv_get}, {"set", kv_set}, {"delete", kv_delete}, {"scan", kv_scan}};
  for (const auto& [name, fn] : fns) {
    lua_pushlightuserdata(L, kv);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, name);
  }
  lua_setfield(L, -2, "kv");
  lua_pop(L, 1);
}

}  // namespace relais
