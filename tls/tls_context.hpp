// tls_context.hpp — the server SSL_CTX of the stream edge, built from the tls config section,
// and replaced whole on reload: connections keep the context they were accepted with (an SSL
// holds a reference to its SSL_CTX), new handshakes get the new one.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "config.hpp"

namespace relais {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// A server context enforcing the configured policy, or null with `error` (OpenSSL's reason and
// the file concerned).
SslCtxPtr make_server_context(const TlsSettings& settings, std::string& error);

// A client context for a trunk: the same version/cipher policy as the server side, the
// operator's certificate verified against `trunk.ca` (or the system CAs), our client
// certificate when configured. Per connection, expect_peer() adds the name check and SNI.
SslCtxPtr make_client_context(const TlsSettings& policy, const TrunkTls& trunk, std::string& error);

// Sets up `ssl` (from a client context) to require `name` in the peer's certificate (a DNS
// name, or an IP address literal) and to send it as SNI when it is a name.
bool expect_peer(SSL* ssl, const std::string& name, bool verify);

// The subject and serial of the certificate a context presents, for log lines.
std::string certificate_summary(SSL_CTX* ctx);

// The most recent OpenSSL error queued on this thread as text (the queue is cleared).
std::string openssl_error_text();

class TlsContext {
 public:
  bool load(const TlsSettings& settings, std::string& error);  // keeps the current one on error
  SSL* new_ssl() const { return ctx_ ? SSL_new(ctx_.get()) : nullptr; }
  SSL_CTX* get() const { return ctx_.get(); }

 private:
  SslCtxPtr ctx_;
};

}  // namespace relais
