// tls_config_test.cpp — the tls section of the config and the TLS context it builds.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config.hpp"
#include "tls_context.hpp"

using namespace relais;

namespace {

std::string write_config(const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / ("relais-tls-config-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / "relais.lua";
  std::ofstream(path) << text;
  return path.string();
}

std::string load_error(const std::string& text, Config* out = nullptr) {
  Config cfg;
  std::string error;
  if (load_config(write_config(text), {}, cfg, error) && out) *out = cfg;
  return error;
}

}  // namespace

TEST_CASE("a tls section is read with its defaults") {
  Config cfg;
  CHECK(load_error("return { tls = { listen = { 'tls:[::]:5061', 'tls:0.0.0.0:5061' }, certificate = 'c.pem', "
                   "private_key = 'k.pem' } }", &cfg) == "");
  REQUIRE(cfg.tls.listen.size() == 2);
  CHECK(cfg.tls.listen[0].host == "::");
  CHECK(cfg.tls.listen[0].proto == "tls");
  CHECK(cfg.tls.min_version == "1.2");
  CHECK(cfg.tls.ciphers == "ECDHE+AESGCM:ECDHE+CHACHA20");
  CHECK(cfg.tls.max_connections == 10000);
  CHECK(cfg.tls.handshake_timeout == 10);
  CHECK_FALSE(cfg.tls.verify_clients);
}

TEST_CASE("tls settings that would weaken or break the edge are refused at load") {
  CHECK(load_error("return { tls = { listen = { 'tls:0.0.0.0:5061' } } }").find("tls.certificate") != std::string::npos);
  CHECK(load_error("return { tls = { listen = { 'tcp:0.0.0.0:5061' }, certificate = 'c', private_key = 'k' } }")
            .find("tls.listen") != std::string::npos);
  CHECK(load_error("return { tls = { min_version = '1.1' } }").find("tls.min_version") != std::string::npos);
  CHECK(load_error("return { tls = { verify_clients = true } }").find("tls.ca") != std::string::npos);
  CHECK(load_error("return { tls = { max_connections = 0 } }").find("tls.max_connections") != std::string::npos);
  CHECK(load_error("return { sip = { listen = { 'tls:0.0.0.0:5061' } } }").find("sip.listen") != std::string::npos);
}

TEST_CASE("a TLS context is not built from missing files or a cipher list OpenSSL refuses") {
  TlsSettings s;
  s.certificate = "/nonexistent/server.pem";
  s.private_key = "/nonexistent/server.key";
  std::string error;
  CHECK_FALSE(make_server_context(s, error));
  CHECK(error.find("tls.certificate /nonexistent/server.pem") != std::string::npos);
  s.ciphers = "NOT-A-CIPHER";
  CHECK_FALSE(make_server_context(s, error));
  CHECK(error.find("tls.ciphers") != std::string::npos);
  TlsContext ctx;
  CHECK_FALSE(ctx.load(s, error));
  CHECK(ctx.get() == nullptr);
}
