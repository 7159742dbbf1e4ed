// tls_context.cpp — building the edge's SSL_CTX with OpenSSL 3.
#include "tls_context.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace relais {

std::string openssl_error_text() {
  unsigned long code = 0, last = 0;
  while ((code = ERR_get_error()) != 0) last = code;
  if (!last) return "unknown error";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  return buf;
}

namespace {

// A context with the tls section's policy, for either side: versions, ciphers, options.
SslCtxPtr policy_context(const SSL_METHOD* method, const TlsSettings& s, std::string& error) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(method));
  auto fail = [&](const std::string& what) {
    error = what + ": " + openssl_error_text();
    return SslCtxPtr();
  };
  if (!ctx) return fail("SSL_CTX_new");
  // Policy, not OpenSSL's defaults: Debian's Sofia could not express any of this
  // (SOFIA-NOTES.md, "TLS in Debian's Sofia").
  int min = s.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (!SSL_CTX_set_min_proto_version(ctx.get(), min)) return fail("tls.min_version");
  if (!SSL_CTX_set_cipher_list(ctx.get(), s.ciphers.c_str())) return fail("tls.ciphers '" + s.ciphers + "'");
  if (!s.ciphersuites.empty() && !SSL_CTX_set_ciphersuites(ctx.get(), s.ciphersuites.c_str()))
    return fail("tls.ciphersuites '" + s.ciphersuites + "'");
  // IGNORE_UNEXPECTED_EOF: OpenSSL 3 reports a peer closing without close_notify as an error;
  // phones do that all the time (SOFIA-NOTES.md). No renegotiation: a client-initiated one is a
  // cheap CPU attack and SIP never needs it.
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);  // idle phones keep no 34 KiB buffers
  return ctx;
}

}  // namespace

SslCtxPtr make_server_context(const TlsSettings& s, std::string& error) {
  SslCtxPtr ctx = policy_context(TLS_server_method(), s, error);
  if (!ctx) return ctx;
  auto fail = [&](const std::string& what) {
    error = what + ": " + openssl_error_text();
    return SslCtxPtr();
  };
  SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), s.certificate.c_str()) != 1)
    return fail("tls.certificate " + s.certificate);
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), s.private_key.c_str(), SSL_FILETYPE_PEM) != 1)
    return fail("tls.private_key " + s.private_key);
  if (SSL_CTX_check_private_key(ctx.get()) != 1) return fail("tls.private_key does not match tls.certificate");
  if (!s.ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), s.ca.c_str(), nullptr) != 1) return fail("tls.ca " + s.ca);
    if (s.verify_clients) {
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca.c_str());
      if (names) SSL_CTX_set_client_CA_list(ctx.get(), names);
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
  }
  // Resumed sessions of verified clients need a context id (else the resumption fails).
  static const unsigned char kSessionId[] = "relais-edge";
  SSL_CTX_set_session_id_context(ctx.get(), kSessionId, sizeof kSessionId - 1);
  return ctx;
}

SslCtxPtr make_client_context(const TlsSettings& policy, const TrunkTls& trunk, std::string& error) {
  SslCtxPtr ctx = policy_context(TLS_client_method(), policy, error);
  if (!ctx) return ctx;
  auto fail = [&](const std::string& what) {
    error = what + ": " + openssl_error_text();
    return SslCtxPtr();
  };
  if (!trunk.certificate.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), trunk.certificate.c_str()) != 1)
      return fail("certificate " + trunk.certificate);
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), trunk.private_key.c_str(), SSL_FILETYPE_PEM) != 1)
      return fail("private_key " + trunk.private_key);
    if (SSL_CTX_check_private_key(ctx.get()) != 1) return fail("private_key does not match certificate");
  }
  if (!trunk.ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), trunk.ca.c_str(), nullptr) != 1) return fail("ca " + trunk.ca);
  } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    return fail("system CA store");
  }
  SSL_CTX_set_verify(ctx.get(), trunk.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return ctx;
}

bool expect_peer(SSL* ssl, const std::string& name, bool verify) {
  unsigned char ip[16];
  bool literal = inet_pton(AF_INET, name.c_str(), ip) == 1 || inet_pton(AF_INET6, name.c_str(), ip) == 1;
  // RFC 6066: SNI carries host names only, never address literals.
  if (!literal && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) return false;
  if (!verify) return true;
  if (literal) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return SSL_set1_host(ssl, name.c_str()) == 1;
}

std::string certificate_summary(SSL_CTX* ctx) {
  X509* cert = ctx ? SSL_CTX_get0_certificate(ctx) : nullptr;
  if (!cert) return "none";
  char subject[256] = "";
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
  std::string out = subject;
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(bn)) {
      out += " serial=" + std::string(hex);
      OPENSSL_free(hex);
    }
    BN_free(bn);
  }
  return out;
}

bool TlsContext::load(const TlsSettings& settings, std::string& error) {
  SslCtxPtr fresh = make_server_context(settings, error);
  if (!fresh) return false;
  ctx_ = std::move(fresh);  // SSL_CTX_free only drops our reference; live SSLs keep theirs
  return true;
}

}  // namespace relais
