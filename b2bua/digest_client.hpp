// digest_client.hpp — answering a Digest challenge as a client (trunk REGISTER and INVITE).
#pragma once

#include <sofia-sip/msg_types.h>

#include <cstdint>
#include <string>

namespace relais {

struct DigestAnswer {
  std::string header;  // value for Authorization / Proxy-Authorization; empty on failure
  std::string error;   // why we cannot answer (unsupported algorithm, no nonce)
};

// Builds credentials for the first challenge in `challenges` we can answer (MD5 or SHA-256,
// qop=auth or none). `nc` counts uses of the same nonce (RFC 7616 §3.4).
DigestAnswer answer_digest_challenge(const msg_auth_t* challenges, const std::string& method, const std::string& uri,
                                     const std::string& user, const std::string& password, uint32_t nc);

}  // namespace relais
