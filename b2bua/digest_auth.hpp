// digest_auth.hpp — HTTP Digest computations for SIP (RFC 2617, RFC 7616, RFC 8760): hashes,
// HA1, the expected response, and parsing of Authorization credentials.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace relais {

enum class DigestAlgorithm { md5, sha256 };

// "MD5" / "SHA-256" (case-insensitive, as RFC 7616 §3.3 tokens). "-sess" variants are not
// offered by us, so they are rejected like any unknown algorithm.
std::optional<DigestAlgorithm> parse_digest_algorithm(std::string_view token);
const char* digest_algorithm_name(DigestAlgorithm alg);

// Lower-case hex of H(data).
std::string digest_hash_hex(DigestAlgorithm alg, std::string_view data);

// HA1 = H(username ":" realm ":" password)
std::string digest_ha1(DigestAlgorithm alg, std::string_view user, std::string_view realm,
                       std::string_view password);

// The response a client must send. With qop "auth" (RFC 7616 §3.4.1):
//   H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" H(method ":" uri)); without qop (RFC 2069):
//   H(HA1 ":" nonce ":" H(method ":" uri)).
std::string digest_response(DigestAlgorithm alg, std::string_view ha1, std::string_view nonce,
                            std::string_view nc, std::string_view cnonce, std::string_view qop,
                            std::string_view method, std::string_view uri);

// Credentials from one Authorization header, unquoted. The parser is Sofia's (msg_auth_t
// params); this struct is what the registrar checks.
struct DigestCredentials {
  std::string scheme;     // must be "Digest"
  std::string username;
  std::string realm;
  std::string nonce;
  std::string uri;
  std::string response;
  std::string algorithm;  // empty means MD5 (RFC 7616 §3.4)
  std::string cnonce;
  std::string opaque;
  std::string qop;
  std::string nc;
};

// Fills `out` from "name=value" parameter strings (Sofia's au_params). Returns an empty string
// on success or the reason the credentials are malformed (for a 400 reason phrase).
std::string parse_digest_params(std::string_view scheme, const std::vector<std::string_view>& params,
                                DigestCredentials& out);

// Constant-time comparison of two hex digests.
bool digest_equal(std::string_view a, std::string_view b);

}  // namespace relais
