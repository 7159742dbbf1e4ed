// config_test.cpp — config loading, --set overrides and error messages.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "config.hpp"

using namespace relais;

namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / ("relais-config-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  std::ofstream(path) << text;
  return path.string();
}

std::string source_dir() {
  const char* env = getenv("RELAIS_SOURCE_DIR");
  return env ? env : ".";
}

}  // namespace

TEST_CASE("the shipped office example loads") {
  Config cfg;
  std::string error;
  REQUIRE_MESSAGE(load_config(source_dir() + "/examples/office/relais.lua", {}, cfg, error), error);
  CHECK(cfg.domain == "office.example");
  CHECK(cfg.users.count("100") == 1);
  CHECK(cfg.store.backend == "sqlite");
  CHECK(cfg.script_path.find("examples/office/dialplan.lua") != std::string::npos);
}

TEST_CASE("--set overrides nested values, converts numbers and splits lists") {
  std::string path = write_temp("a.lua", "return { domain = 'x.example', registrar = { min_expires = 60 } }");
  Config cfg;
  std::string error;
  REQUIRE_MESSAGE(load_config(path,
                              {"sip.listen=udp:127.0.0.1:5080,tcp:[::1]:5081", "registrar.min_expires=10",
                               "store.backend=redis", "store.redis_port=7000", "users.300.password=pw"},
                              cfg, error),
                  error);
  REQUIRE(cfg.listen.size() == 2);
  CHECK(cfg.listen[0].to_string() == "udp:127.0.0.1:5080");
  CHECK(cfg.listen[1].host == "::1");
  CHECK(cfg.listen[1].sip_url() == "sip:[::1]:5081;transport=tcp");
  CHECK(cfg.registrar.min_expires == 10);
  CHECK(cfg.store.backend == "redis");
  CHECK(cfg.store.redis_port == 7000);
  CHECK(cfg.users.at("300").password == "pw");
  CHECK(cfg.auth.realm == "x.example");
  // MD5 alone unless configured: real phones break when offered SHA-256 (docs/decisions.md).
  CHECK(cfg.auth.algorithms == std::vector<DigestAlgorithm>{DigestAlgorithm::md5});
}

TEST_CASE("a user may carry its own challenge algorithms") {
  std::string path = write_temp("u.lua", "return { users = { ['101'] = { password = 'p', algorithms = { 'SHA-256', 'MD5' } } } }");
  Config cfg;
  std::string error;
  REQUIRE_MESSAGE(load_config(path, {}, cfg, error), error);
  CHECK(cfg.users.at("101").algorithms == std::vector<DigestAlgorithm>{DigestAlgorithm::sha256, DigestAlgorithm::md5});
  CHECK_FALSE(load_config(write_temp("u2.lua", "return { users = { ['1'] = { password = 'p', algorithms = { 'X' } } } }"), {}, cfg, error));
  CHECK(error.find("users.1.algorithms") != std::string::npos);
}

TEST_CASE("a Lua syntax error is reported as file:line") {
  std::string path = write_temp("syntax.lua", "return {\n  domain = 'x'\n  oops oops\n}\n");
  Config cfg;
  std::string error;
  CHECK_FALSE(load_config(path, {}, cfg, error));
  CHECK(error.find("syntax.lua:3:") != std::string::npos);
}

TEST_CASE("bad values are reported with their key") {
  Config cfg;
  std::string error;
  CHECK_FALSE(load_config(write_temp("b1.lua", "return { sip = { listen = 'sctp:1.2.3.4:5' } }"), {}, cfg, error));
  CHECK(error.find("sip.listen") != std::string::npos);
  CHECK_FALSE(load_config(write_temp("b2.lua", "return { registrar = { min_expires = 'soon' } }"), {}, cfg, error));
  CHECK(error.find("registrar.min_expires: expected an integer") != std::string::npos);
  CHECK_FALSE(load_config(write_temp("b3.lua", "return { auth = { algorithms = {'SHA-1'} } }"), {}, cfg, error));
  CHECK(error.find("auth.algorithms") != std::string::npos);
  CHECK_FALSE(load_config(write_temp("b4.lua", "return { users = { ['100'] = { name = 'x' } } }"), {}, cfg, error));
  CHECK(error.find("users.100.password") != std::string::npos);
  CHECK_FALSE(load_config(write_temp("b5.lua", "return 42"), {}, cfg, error));
  CHECK(error.find("must return a table") != std::string::npos);
  CHECK_FALSE(load_config(write_temp("b6.lua", "return {}"), {"nokeyvalue"}, cfg, error));
  CHECK(error.find("expected key=value") != std::string::npos);
}

TEST_CASE("listen addresses parse IPv4, bracketed IPv6 and reject junk") {
  ListenAddress a;
  CHECK(parse_listen_address("udp:0.0.0.0:5060", a));
  CHECK(parse_listen_address("tcp:[::]:5061", a));
  CHECK(a.host == "::");
  CHECK_FALSE(parse_listen_address("udp:::1:5060", a));
  CHECK_FALSE(parse_listen_address("udp:1.2.3.4:0", a));
  CHECK_FALSE(parse_listen_address("udp:1.2.3.4:99999", a));
  CHECK_FALSE(parse_listen_address("udp:1.2.3.4", a));
  CHECK_FALSE(parse_listen_address("1.2.3.4:5060", a));
}
