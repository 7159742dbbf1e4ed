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

TEST_CASE("a trunk reached over TLS: transport, default port and its tls table") {
  Config cfg;
  CHECK(load_error("return { trunks = { op = { proxy = 'sips:sbc.operator.example', "
                   "tls = { ca = 'op-ca.pem', certificate = 'me.pem', private_key = 'me.key', server_name = 'sbc' } },"
                   " plain = { proxy = 'sip:192.0.2.1' }, tcp = { proxy = 'sip:[2001:db8::1]:5070;transport=tcp' },"
                   " t = { proxy = 'sip:192.0.2.2:5071;transport=TLS' } } }", &cfg) == "");
  const TrunkConfig& op = cfg.trunks.at("op");
  CHECK(op.tls);
  CHECK(op.host == "sbc.operator.example");
  CHECK(op.port == 5061);
  CHECK(op.tls_options.ca == "op-ca.pem");
  CHECK(op.tls_options.certificate == "me.pem");
  CHECK(op.tls_options.server_name == "sbc");
  CHECK(op.tls_options.verify);
  CHECK_FALSE(cfg.trunks.at("plain").tls);
  CHECK(cfg.trunks.at("plain").port == 5060);
  CHECK_FALSE(cfg.trunks.at("tcp").tls);
  CHECK(cfg.trunks.at("tcp").host == "2001:db8::1");
  CHECK(cfg.trunks.at("tcp").port == 5070);
  CHECK(cfg.trunks.at("t").tls);
  CHECK(cfg.trunks.at("t").port == 5071);
}

TEST_CASE("trunk tls settings that cannot work are refused at load") {
  CHECK(load_error("return { trunks = { op = { proxy = 'sip:192.0.2.1', tls = { ca = 'x' } } } }")
            .find("trunks.op.tls") != std::string::npos);
  CHECK(load_error("return { trunks = { op = { proxy = 'sips:192.0.2.1', tls = { certificate = 'me.pem' } } } }")
            .find("trunks.op.tls.private_key") != std::string::npos);
  CHECK(load_error("return { trunks = { op = { proxy = 'sips:192.0.2.1', tls = { verify = 'maybe' } } } }")
            .find("trunks.op.tls.verify") != std::string::npos);
}

TEST_CASE("a trunk's client context refuses missing files and checks the peer's name") {
  TlsSettings policy;
  TrunkTls t;
  std::string error;
  t.ca = "/nonexistent/ca.pem";
  CHECK_FALSE(make_client_context(policy, t, error));
  CHECK(error.find("/nonexistent/ca.pem") != std::string::npos);
  t = {};
  t.certificate = "/nonexistent/me.pem";
  t.private_key = "/nonexistent/me.key";
  CHECK_FALSE(make_client_context(policy, t, error));
  t = {};
  SslCtxPtr ctx = make_client_context(policy, t, error);  // system CAs
  REQUIRE(ctx);
  CHECK(SSL_CTX_get_min_proto_version(ctx.get()) == TLS1_2_VERSION);
  CHECK(SSL_CTX_get_verify_mode(ctx.get()) == SSL_VERIFY_PEER);
  SslPtr ssl(SSL_new(ctx.get()));
  CHECK(expect_peer(ssl.get(), "sbc.operator.example", true));
  CHECK(std::string(SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name)) == "sbc.operator.example");
  SslPtr by_ip(SSL_new(ctx.get()));
  CHECK(expect_peer(by_ip.get(), "192.0.2.1", true));
  CHECK(SSL_get_servername(by_ip.get(), TLSEXT_NAMETYPE_host_name) == nullptr);  // no SNI for an address
}
