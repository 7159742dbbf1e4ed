// authenticator.cpp — Digest verification with config and store users.
#include "authenticator.hpp"

#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/url.h>
#include <strings.h>

#include <algorithm>
#include <memory>

#include "digest_auth.hpp"

namespace relais {

namespace {

// The realm parameter unquoted, or empty.
std::string realm_of(const msg_auth_t* au) {
  std::vector<std::string_view> params;
  for (const msg_param_t* p = au->au_params; p && *p; ++p) {
    std::string_view param(*p);
    if (param.size() > 6 && strncasecmp(param.data(), "realm=", 6) == 0) {
      std::string_view v = param.substr(6);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return std::string(v);
    }
  }
  return {};
}

// RFC 3261 §22.4: the digest-uri must be the Request-URI (compared as URIs, not strings).
bool uri_matches_request(const std::string& digest_uri, const sip_t* sip) {
  // Usually the client copied the Request-URI as it sent it: equal text needs no parse.
  char text[512];
  issize_t n = url_e(text, sizeof text, sip->sip_request->rq_url);
  if (n > 0 && static_cast<size_t>(n) < sizeof text && digest_uri == std::string_view(text, static_cast<size_t>(n)))
    return true;
  su_home_t home[1] = {SU_HOME_INIT(home)};
  url_t* url = url_make(home, digest_uri.c_str());
  bool same = url && url_cmp_all(url, sip->sip_request->rq_url) == 0;
  su_home_deinit(home);
  return same;
}

}  // namespace

Authenticator::Authenticator(const Config& cfg, LocationStore& store)
    : store_(store), realm_(cfg.auth.realm), algorithms_(cfg.auth.algorithms),
      nonces_(cfg.auth.secret, cfg.auth.nonce_ttl) {
  set_users(cfg);
}

void Authenticator::set_users(const Config& cfg) {
  users_.clear();
  for (const auto& [name, user] : cfg.users) {
    Hashes h;
    h.md5 = !user.ha1_md5.empty() ? user.ha1_md5 : user.password.empty() ? "" : digest_ha1(DigestAlgorithm::md5, name, realm_, user.password);
    h.sha256 = !user.ha1_sha256.empty() ? user.ha1_sha256 : user.password.empty() ? "" : digest_ha1(DigestAlgorithm::sha256, name, realm_, user.password);
    h.algorithms = user.algorithms;
    users_[name] = std::move(h);
  }
}

const std::vector<DigestAlgorithm>& Authenticator::algorithms_for(const std::string& user) const {
  auto it = users_.find(user);
  return it != users_.end() && !it->second.algorithms.empty() ? it->second.algorithms : algorithms_;
}

std::vector<std::string> Authenticator::challenges(int64_t now, bool stale, const std::string& user) const {
  std::vector<std::string> out;
  std::string nonce = nonces_.issue(now);
  for (DigestAlgorithm alg : algorithms_for(user)) {
    std::string h = "Digest realm=\"" + realm_ + "\", nonce=\"" + nonce + "\", algorithm=" + digest_algorithm_name(alg) +
                    ", qop=\"auth\"";
    if (stale) h += ", stale=true";
    out.push_back(std::move(h));
  }
  return out;
}

void Authenticator::append_challenges(std::string& out, int64_t now, bool stale, const std::string& user) const {
  char nonce[NonceIssuer::kLength];
  nonces_.issue(now, nonce);
  for (DigestAlgorithm alg : algorithms_for(user)) {
    out += "WWW-Authenticate: Digest realm=\"";
    out += realm_;
    out += "\", nonce=\"";
    out.append(nonce, sizeof nonce);
    out += "\", algorithm=";
    out += digest_algorithm_name(alg);
    out += ", qop=\"auth\"";
    if (stale) out += ", stale=true";
    out += "\r\n";
  }
}

void Authenticator::verify(const sip_t* sip, int64_t now, bool proxy, Done done) {
  const msg_auth_t* au = proxy ? sip->sip_proxy_authorization : sip->sip_authorization;
  while (au && realm_of(au) != realm_) au = au->au_next;
  if (!au) return done({Verdict::challenge, "no credentials for our realm", ""});

  std::vector<std::string_view> params;
  for (const msg_param_t* p = au->au_params; p && *p; ++p) params.emplace_back(*p);
  auto creds = std::make_shared<DigestCredentials>();
  std::string bad = parse_digest_params(au->au_scheme ? au->au_scheme : "", params, *creds);
  if (!bad.empty()) return done({Verdict::bad_request, bad, creds->username});

  auto alg = parse_digest_algorithm(creds->algorithm);
  auto local = users_.find(creds->username);  // one lookup serves the algorithms and the HA1s
  const std::vector<DigestAlgorithm>& offered =
      local != users_.end() && !local->second.algorithms.empty() ? local->second.algorithms : algorithms_;
  if (std::find(offered.begin(), offered.end(), *alg) == offered.end())
    return done({Verdict::challenge, "algorithm not offered", creds->username});
  switch (nonces_.check(creds->nonce, now)) {
    case NonceIssuer::Check::invalid:
      return done({Verdict::challenge, "unknown nonce", creds->username});
    case NonceIssuer::Check::stale:
      return done({Verdict::stale, "stale nonce", creds->username});
    case NonceIssuer::Check::valid:
      break;
  }
  if (!uri_matches_request(creds->uri, sip)) return done({Verdict::bad_request, "Digest URI Does Not Match Request-URI", creds->username});

  if (local != users_.end()) return check_response(sip, *creds, local->second, now, done);

  // Not a config user: ask the store. `sip` stays valid because the caller keeps its
  // SipRequest alive until `done` runs.
  store_.find_user(creds->username, realm_, [this, sip, creds, now, done](const std::string& error, std::optional<UserRecord> user) {
    if (!error.empty()) return done({Verdict::unavailable, error, creds->username});
    if (!user) return done({Verdict::forbidden, "unknown user", creds->username});
    check_response(sip, *creds, Hashes{user->ha1_md5, user->ha1_sha256}, now, done);
  });
}

void Authenticator::check_response(const sip_t* sip, const DigestCredentials& creds, const Hashes& hashes,
                                   int64_t now, const Done& done) {
  DigestAlgorithm alg = *parse_digest_algorithm(creds.algorithm);
  const std::string& ha1 = alg == DigestAlgorithm::md5 ? hashes.md5 : hashes.sha256;
  if (ha1.empty()) return done({Verdict::forbidden, "no credentials for this algorithm", creds.username});
  std::string expected = digest_response(alg, ha1, creds.nonce, creds.nc, creds.cnonce, creds.qop,
                                         sip->sip_request->rq_method_name, creds.uri);
  if (!digest_equal(expected, creds.response)) return done({Verdict::forbidden, "wrong password", creds.username});
  if (!creds.qop.empty()) {
    uint32_t nc = static_cast<uint32_t>(strtoul(creds.nc.c_str(), nullptr, 16));
    if (!counts_.accept(creds.nonce, nc, now, nonces_.ttl())) return done({Verdict::challenge, "nonce count replayed", creds.username});
  }
  done({Verdict::ok, "", creds.username});
}

}  // namespace relais
