// digest_auth.cpp — Digest hashing (OpenSSL EVP) and credential checks.
#include "digest_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <strings.h>

#include <cctype>
#include <cstring>

namespace relais {

namespace {

// Limits on what a client may send in one parameter: real values are far shorter (a SHA-256
// response is 64 hex digits); anything longer is an attack or a bug and gets a 400.
constexpr size_t kMaxParam = 512;

std::string hex(const unsigned char* data, unsigned len) {
  static const char digits[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (unsigned i = 0; i < len; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 0xf];
  }
  return out;
}

std::string unquote(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
    std::string out;
    out.reserve(v.size() - 2);
    for (size_t i = 1; i + 1 < v.size(); ++i) {
      if (v[i] == '\\' && i + 2 < v.size()) ++i;  // RFC 3261 quoted-pair
      out += v[i];
    }
    return out;
  }
  return std::string(v);
}

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

std::optional<DigestAlgorithm> parse_digest_algorithm(std::string_view token) {
  if (token.empty() || (token.size() == 3 && strncasecmp(token.data(), "MD5", 3) == 0))
    return DigestAlgorithm::md5;
  if (token.size() == 7 && strncasecmp(token.data(), "SHA-256", 7) == 0) return DigestAlgorithm::sha256;
  return std::nullopt;
}

const char* digest_algorithm_name(DigestAlgorithm alg) {
  return alg == DigestAlgorithm::md5 ? "MD5" : "SHA-256";
}

std::string digest_hash_hex(DigestAlgorithm alg, std::string_view data) {
  // OpenSSL 3 looks the implementation up on every EVP_Digest() call; fetched once and with a
  // reused context, a REGISTER's four hashes cost a fraction (callgrind, docs/decisions.md).
  struct Hasher {
    EVP_MD* md5 = EVP_MD_fetch(nullptr, "MD5", nullptr);
    EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Hasher() {
      EVP_MD_CTX_free(ctx);
      EVP_MD_free(md5);
      EVP_MD_free(sha256);
    }
  };
  thread_local Hasher h;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  const EVP_MD* md = alg == DigestAlgorithm::md5 ? h.md5 : h.sha256;
  if (!md || !h.ctx || EVP_DigestInit_ex2(h.ctx, md, nullptr) != 1 || EVP_DigestUpdate(h.ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(h.ctx, out, &len) != 1)
    return {};
  return hex(out, len);
}

std::string digest_ha1(DigestAlgorithm alg, std::string_view user, std::string_view realm,
                       std::string_view password) {
  std::string a1;
  a1.reserve(user.size() + realm.size() + password.size() + 2);
  a1.append(user).append(":").append(realm).append(":").append(password);
  return digest_hash_hex(alg, a1);
}

std::string digest_response(DigestAlgorithm alg, std::string_view ha1, std::string_view nonce,
                            std::string_view nc, std::string_view cnonce, std::string_view qop,
                            std::string_view method, std::string_view uri) {
  std::string a2;
  a2.append(method).append(":").append(uri);
  std::string ha2 = digest_hash_hex(alg, a2);
  std::string kd;
  kd.append(ha1).append(":").append(nonce).append(":");
  if (!qop.empty()) kd.append(nc).append(":").append(cnonce).append(":").append(qop).append(":");
  kd.append(ha2);
  return digest_hash_hex(alg, kd);
}

std::string parse_digest_params(std::string_view scheme, const std::vector<std::string_view>& params,
                                DigestCredentials& out) {
  if (scheme.size() != 6 || strncasecmp(scheme.data(), "Digest", 6) != 0) return "Unsupported authorization scheme";
  out.scheme = "Digest";
  struct Field {
    const char* name;
    std::string* value;
  } fields[] = {{"username", &out.username}, {"realm", &out.realm},   {"nonce", &out.nonce},
                {"uri", &out.uri},           {"response", &out.response}, {"algorithm", &out.algorithm},
                {"cnonce", &out.cnonce},     {"opaque", &out.opaque}, {"qop", &out.qop},
                {"nc", &out.nc}};
  for (std::string_view p : params) {
    size_t eq = p.find('=');
    if (eq == std::string_view::npos) continue;  // a bare token (e.g. "userhash") is ignored
    std::string_view name = p.substr(0, eq);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    std::string_view value = p.substr(eq + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (value.size() > kMaxParam) return "Authorization parameter too long";
    for (Field& f : fields) {
      if (name.size() == strlen(f.name) && strncasecmp(name.data(), f.name, name.size()) == 0) {
        if (!f.value->empty()) return "Duplicate authorization parameter";
        *f.value = unquote(value);
      }
    }
  }
  if (out.username.empty()) return "Missing username in credentials";
  if (out.nonce.empty()) return "Missing nonce in credentials";
  if (out.uri.empty()) return "Missing uri in credentials";
  if (out.response.empty()) return "Missing response in credentials";
  if (!is_hex(out.response)) return "Malformed response in credentials";
  if (!parse_digest_algorithm(out.algorithm)) return "Unsupported digest algorithm";
  if (!out.qop.empty()) {
    if (strcasecmp(out.qop.c_str(), "auth") != 0) return "Unsupported qop";
    if (out.cnonce.empty()) return "Missing cnonce in credentials";
    if (out.nc.size() != 8 || !is_hex(out.nc)) return "Malformed nc in credentials";
  }
  return {};
}

bool digest_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  // Clients may send upper-case hex; we compute lower-case.
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(std::tolower(static_cast<unsigned char>(a[i])) ^
                                       std::tolower(static_cast<unsigned char>(b[i])));
  return diff == 0;
}

}  // namespace relais
