// script_engine_test.cpp — loading scripts, the on_register hook, errors, runaway scripts, and
// every Lua example in docs/lua-api.md.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "lua_sbc.hpp"
#include "script_engine.hpp"
#include "source_guard.hpp"

using namespace relais;

namespace {

std::string write_script(const std::string& name, const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / ("relais-script-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  std::ofstream(path) << text;
  return path.string();
}

RegisterHookRequest sample(const std::string& user = "100", const std::string& ip = "10.0.0.5") {
  RegisterHookRequest r;
  r.user = user;
  r.domain = "office.example";
  r.aor = user + "@office.example";
  r.source_ip = ip;
  r.source_port = 5062;
  r.transport = "udp";
  r.user_agent = "test-phone";
  r.contacts = {"sip:" + user + "@" + ip + ":5062"};
  return r;
}

}  // namespace

TEST_CASE("a script without on_register lets every registration through") {
  ScriptEngine engine;
  std::string error;
  REQUIRE(engine.load(write_script("empty.lua", "-- nothing\n"), error));
  CHECK_FALSE(engine.has_hook("on_register"));
  HookResult r = engine.on_register(sample());
  CHECK(r.reject_code == 0);
  CHECK(r.error.empty());
}

TEST_CASE("on_register sees the request and can reject or annotate") {
  ScriptEngine engine;
  std::string error;
  REQUIRE(engine.load(write_script("hook.lua", R"(
    function on_register(req)
      if req.source_ip == "203.0.113.9" then return req:reject(403, "Go Away") end
      if req.transport ~= "udp" or req.contacts[1] ~= "sip:100@10.0.0.5:5062" then error("bad request table") end
      req:annotate("site", req.domain)
      req:annotate("port", req.source_port)
    end)"),
                      error));
  HookResult ok = engine.on_register(sample());
  CHECK(ok.error == "");
  CHECK(ok.reject_code == 0);
  CHECK(ok.attrs.at("site") == "office.example");
  CHECK(ok.attrs.at("port") == "5062");
  HookResult no = engine.on_register(sample("100", "203.0.113.9"));
  CHECK(no.reject_code == 403);
  CHECK(no.reject_reason == "Go Away");
}

TEST_CASE("returning a status code rejects like req:reject") {
  ScriptEngine engine;
  std::string error;
  REQUIRE(engine.load(write_script("ret.lua", "function on_register(req) return 480, 'Later' end"), error));
  HookResult r = engine.on_register(sample());
  CHECK(r.reject_code == 480);
  CHECK(r.reject_reason == "Later");
}

TEST_CASE("an error in the hook is reported with a traceback and the engine keeps working") {
  ScriptEngine engine;
  std::string error;
  REQUIRE(engine.load(write_script("boom.lua", "function on_register(req)\n  local x = nil\n  return x.field\nend\n"), error));
  HookResult r = engine.on_register(sample());
  CHECK(r.error.find("boom.lua:3:") != std::string::npos);
  CHECK(r.error.find("stack traceback") != std::string::npos);
  CHECK(engine.on_register(sample()).error.find("boom.lua:3:") != std::string::npos);
}

TEST_CASE("a runaway hook is stopped by the instruction limit") {
  ScriptEngine engine;
  std::string error;
  REQUIRE(engine.load(write_script("loop.lua", "function on_register(req) while true do end end"), error));
  HookResult r = engine.on_register(sample());
  CHECK(r.error.find("instruction limit") != std::string::npos);
}

TEST_CASE("a script that fails to load leaves the previous one in place") {
  ScriptEngine engine;
  std::string error;
  REQUIRE(engine.load(write_script("good.lua", "function on_register(req) return 403, 'Old' end"), error));
  CHECK_FALSE(engine.load(write_script("bad.lua", "function on_register(req)\n  return 1 +\nend\n"), error));
  CHECK(error.find("bad.lua:3:") != std::string::npos);
  CHECK_FALSE(engine.load(write_script("raises.lua", "error('init failed')"), error));
  CHECK(error.find("init failed") != std::string::npos);
  CHECK(engine.on_register(sample()).reject_reason == "Old");
}

TEST_CASE("every Lua example in docs/lua-api.md loads and runs its hook") {
  const char* src = getenv("RELAIS_SOURCE_DIR");
  std::ifstream doc(std::string(src ? src : ".") + "/docs/lua-api.md");
  REQUIRE(doc.good());
  std::stringstream all;
  all << doc.rdbuf();
  std::string text = all.str();
  int examples = 0;
  for (size_t at = text.find("```lua\n"); at != std::string::npos; at = text.find("```lua\n", at)) {
    size_t start = at + 7;
    size_t end = text.find("```", start);
    REQUIRE(end != std::string::npos);
    std::string code = text.substr(start, end - start);
    at = end + 3;
    ++examples;
    ScriptEngine engine;
    // relais.sbc works without the network, so its on_register examples run for real.
    SourceGuard guard{Config{}};
    engine.set_api_installer([&guard](lua_State* L) { install_sbc_api(L, &guard); });
    std::string error;
    INFO("example " << examples << ":\n" << code);
    REQUIRE_MESSAGE(engine.load(write_script("doc" + std::to_string(examples) + ".lua", code), error), error);
    if (engine.has_hook("on_register")) {
      CHECK(engine.on_register(sample("100", "10.0.0.5")).error == "");
      CHECK(engine.on_register(sample("200", "192.0.2.1")).error == "");
    }
  }
  CHECK(examples >= 2);
}
