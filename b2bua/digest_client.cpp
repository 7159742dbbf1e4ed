// digest_client.cpp — RFC 7616 client side on top of digest_auth.cpp's hashing.
#include "digest_client.hpp"

#include <openssl/rand.h>
#include <sofia-sip/msg_header.h>
#include <strings.h>

#include <cstdio>
#include <string_view>

#include "digest_auth.hpp"

namespace relais {

namespace {

std::string param(const msg_auth_t* au, const char* name) {
  size_t n = strlen(name);
  for (const msg_param_t* p = au->au_params; p && *p; ++p) {
    if (strncasecmp(*p, name, n) == 0 && (*p)[n] == '=') {
      std::string_view v(*p + n + 1);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return std::string(v);
    }
  }
  return {};
}

bool offers_qop_auth(const std::string& qop) {
  size_t start = 0;
  while (start <= qop.size()) {
    size_t comma = qop.find(',', start);
    std::string item = qop.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (strcasecmp(item.c_str(), "auth") == 0) return true;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return false;
}

}  // namespace

DigestAnswer answer_digest_challenge(const msg_auth_t* challenges, const std::string& method, const std::string& uri,
                                     const std::string& user, const std::string& password, uint32_t nc) {
  DigestAnswer out;
  for (const msg_auth_t* au = challenges; au; au = au->au_next) {
    if (!au->au_scheme || strcasecmp(au->au_scheme, "Digest") != 0) continue;
    std::string algorithm = param(au, "algorithm");
    auto alg = parse_digest_algorithm(algorithm);
    if (!alg) {
      out.error = "unsupported algorithm " + algorithm;
      continue;
    }
    std::string realm = param(au, "realm"), nonce = param(au, "nonce"), opaque = param(au, "opaque");
    std::string qop = param(au, "qop");
    if (nonce.empty()) {
      out.error = "challenge without nonce";
      continue;
    }
    bool use_qop = offers_qop_auth(qop);
    if (!qop.empty() && !use_qop) {
      out.error = "unsupported qop " + qop;
      continue;
    }
    char nc_text[9];
    snprintf(nc_text, sizeof nc_text, "%08x", nc);
    unsigned char random[8];
    RAND_bytes(random, sizeof random);
    char cnonce[17];
    for (int i = 0; i < 8; ++i) snprintf(cnonce + 2 * i, 3, "%02x", random[i]);
    std::string ha1 = digest_ha1(*alg, user, realm, password);
    std::string response = digest_response(*alg, ha1, nonce, use_qop ? nc_text : "", use_qop ? cnonce : "",
                                           use_qop ? "auth" : "", method, uri);
    out.header = "Digest username=\"" + user + "\", realm=\"" + realm + "\", nonce=\"" + nonce + "\", uri=\"" + uri +
                 "\", response=\"" + response + "\", algorithm=" + digest_algorithm_name(*alg);
    if (use_qop) out.header += std::string(", qop=auth, nc=") + nc_text + ", cnonce=\"" + cnonce + "\"";
    if (!opaque.empty()) out.header += ", opaque=\"" + opaque + "\"";
    out.error.clear();
    return out;
  }
  if (out.error.empty()) out.error = "no Digest challenge";
  return out;
}

}  // namespace relais
