// kv_store_test.cpp — the durable key-value store behind relais.kv: values survive reopening
// the file, scans are ordered and bounded, limits refuse without changing anything, and the
// Lua binding maps all of it.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <lua.hpp>
#include <string>

#include "kv_store.hpp"
#include "lua_state.hpp"

using relais::KvStore;

namespace {

std::string temp_db(const char* name) {
  auto dir = std::filesystem::temp_directory_path() / ("relais-kv-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  std::filesystem::remove(path);
  std::filesystem::remove(path.string() + "-wal");
  std::filesystem::remove(path.string() + "-shm");
  return path.string();
}

}  // namespace

TEST_CASE("kv store: set, get, overwrite, delete, and everything survives reopening") {
  std::string path = temp_db("basic.db"), error;
  {
    auto kv = KvStore::open(path, error);
    REQUIRE_MESSAGE(kv, error);
    CHECK_FALSE(kv->get("a"));
    REQUIRE(kv->set("vm/101/msg/1", "folder=new", error));
    REQUIRE(kv->set("vm/101/msg/2", "folder=old", error));
    REQUIRE(kv->set("vm/102/msg/1", "x", error));
    REQUIRE(kv->set("vm/101/msg/1", "folder=old", error));  // overwrite
    std::string binary("a\0b\nc", 5);
    REQUIRE(kv->set("bin", binary, error));
    REQUIRE(kv->remove("vm/102/msg/1", error));
    REQUIRE(kv->remove("never-there", error));
    CHECK(kv->size() == 3);
  }
  auto kv = KvStore::open(path, error);
  REQUIRE_MESSAGE(kv, error);
  CHECK(kv->get("vm/101/msg/1").value_or("") == "folder=old");
  CHECK(kv->get("bin").value_or("") == std::string("a\0b\nc", 5));
  CHECK_FALSE(kv->get("vm/102/msg/1"));
  auto rows = kv->scan("vm/101/", 10);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].first == "vm/101/msg/1");
  CHECK(rows[1].first == "vm/101/msg/2");
  CHECK(kv->scan("vm/101/", 1).size() == 1);
  CHECK(kv->scan("vm/103/", 10).empty());
}

TEST_CASE("kv store: oversized keys and values are refused and change nothing") {
  std::string path = temp_db("limits.db"), error;
  auto kv = KvStore::open(path, error);
  REQUIRE(kv);
  CHECK_FALSE(kv->set("", "v", error));
  CHECK_FALSE(kv->set(std::string(KvStore::kMaxKey + 1, 'k'), "v", error));
  CHECK_FALSE(kv->set("k", std::string(KvStore::kMaxValue + 1, 'v'), error));
  CHECK(error.find("value over") != std::string::npos);
  CHECK(kv->size() == 0);
}

TEST_CASE("kv store: an unusable path is an error, not a crash") {
  std::string error;
  CHECK_FALSE(KvStore::open("/proc/relais-no-such-dir/kv.db", error));
  CHECK_FALSE(error.empty());
}

TEST_CASE("relais.kv from Lua: get/set/delete/scan, and a clear error without a store") {
  std::string path = temp_db("lua.db"), error;
  auto kv = KvStore::open(path, error);
  REQUIRE(kv);
  relais::LuaStatePtr state = relais::new_lua_state();
  lua_State* L = state.get();
  lua_newtable(L);
  lua_setglobal(L, "relais");
  relais::install_kv_api(L, kv.get());
  const char* code =
      "assert(relais.kv.set('pin/101', '4321'))\n"
      "assert(relais.kv.set('pin/102', '9'))\n"
      "assert(relais.kv.get('pin/101') == '4321')\n"
      "assert(relais.kv.get('nope') == nil)\n"
      "local rows = relais.kv.scan('pin/')\n"
      "assert(#rows == 2 and rows[1][1] == 'pin/101' and rows[2][2] == '9')\n"
      "assert(relais.kv.delete('pin/102'))\n"
      "local ok, err = relais.kv.set('', 'x')\n"
      "assert(ok == nil and err:find('key'))\n"
      "return #relais.kv.scan('pin/')\n";
  REQUIRE(luaL_dostring(L, code) == 0);
  CHECK(lua_tointeger(L, -1) == 1);
  CHECK(kv->get("pin/101").value_or("") == "4321");

  relais::LuaStatePtr bare = relais::new_lua_state();
  lua_newtable(bare.get());
  lua_setglobal(bare.get(), "relais");
  relais::install_kv_api(bare.get(), nullptr);
  CHECK(luaL_dostring(bare.get(), "relais.kv.get('x')") != 0);
  CHECK(std::string(lua_tostring(bare.get(), -1)).find("not available") != std::string::npos);
}
