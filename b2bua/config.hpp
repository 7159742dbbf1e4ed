// config.hpp — relais configuration: a Lua file returning a table, plus --set overrides.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "digest_auth.hpp"
#include "location_store.hpp"
#include "ng_client.hpp"
#include "log.hpp"
#include "mail_sender.hpp"

namespace relais {

struct ListenAddress {
  std::string proto;  // "udp" | "tcp" | "tls" (tcp and tls are served by the stream edge, tls/)
  std::string host;   // IPv4, IPv6 (without brackets) or a name
  int port = 5060;
  bool ipv6() const { return host.find(':') != std::string::npos; }
  std::string to_string() const;  // "udp:[::1]:5060"
  std::string sip_url() const;    // "sip:[::1]:5060;transport=udp"
  bool operator==(const ListenAddress&) const = default;
};

// The stream edge (tls/) terminates every TCP and TLS connection in front of Sofia. TLS
// listeners and handshake policy live here; plain TCP listeners stay in sip.listen.
// max_connections and handshake_timeout cover TCP and TLS connections together.
struct TlsSettings {
  std::vector<ListenAddress> listen;  // proto "tls"
  std::string certificate;            // PEM chain, leaf first
  std::string private_key;            // PEM
  std::string ca;                     // PEM bundle: verifies clients when verify_clients is on
  std::string min_version = "1.2";    // "1.2" | "1.3"; older versions are never offered
  std::string ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20";  // TLS 1.2 cipher list (OpenSSL syntax)
  std::string ciphersuites;           // TLS 1.3 suites; empty = OpenSSL's defaults
  bool verify_clients = false;        // require a client certificate chaining to `ca`
  int max_connections = 10000;        // TCP + TLS connections at once; more are refused
  int handshake_timeout = 10;         // seconds for the handshake and for any partial message
  bool operator==(const TlsSettings&) const = default;
};

struct RegistrarSettings {
  int min_expires = 60;
  int max_expires = 3600;
  int default_expires = 3600;
  int max_contacts = 10;
  int nat_keepalive = 25;  // seconds between OPTIONS pings to NATed UDP phones; 0 = off
};

struct AuthSettings {
  std::string realm;  // defaults to the domain
  // MD5 alone by default: sipp 3.6.1 and baresip 1.0.0 (and many deployed phones) fail as soon
  // as any challenge is SHA-256, even with an MD5 one beside it (measured, docs/decisions.md).
  std::vector<DigestAlgorithm> algorithms{DigestAlgorithm::md5};
  int nonce_ttl = 300;
  std::string secret;
};

struct CallSettings {
  bool authenticate = true;                  // 407-challenge INVITEs whose From is a local user
  std::string unknown_sources = "reject";    // INVITEs from neither a user nor a trunk: reject|allow
  int no_answer_timeout = 30;                // default dial timeout, seconds
};

// Media services: where prompts live and which language a call starts in.
struct PromptSettings {
  std::string dir = "var/prompts";  // <dir>/<lang>/<name>.wav; <dir>/custom/<lang>/ wins
  std::string language = "en";
};

// Message waiting indication (config `mwi`): SUBSCRIBE to message-summary and NOTIFYs.
struct MwiSettings {
  bool authenticate = true;    // 407-challenge SUBSCRIBEs like INVITEs from local users
  int default_expires = 3600;  // when the SUBSCRIBE has no Expires
  int min_expires = 60;        // shorter requests get 423 with Min-Expires
  int max_expires = 86400;     // longer ones are shortened
  bool unsolicited = true;     // NOTIFY registered contacts of mailboxes nobody subscribed to
  bool any_mailbox = false;    // a subscriber may watch mailboxes other than its own
  size_t max_subscriptions = 10000;  // all mailboxes together; 503 beyond
  size_t max_per_mailbox = 16;       // phones (and watchers) of one mailbox; 503 beyond
};

// An operator trunk: where to send, how to authenticate, and which sources are the operator.
// A trunk reached over TLS (its proxy is sips: or ;transport=tls): the stream edge keeps one
// connection to it, verifying the operator's certificate (tls/trunk_links.hpp). Version and
// cipher policy come from the tls section, as for phones.
struct TrunkTls {
  std::string ca;           // PEM bundle the operator's certificate must chain to; "" = system CAs
  std::string certificate;  // our client certificate (PEM chain), when the operator asks for one
  std::string private_key;
  std::string server_name;  // name checked in its certificate and sent as SNI; "" = the proxy host
  bool verify = true;       // false only for a lab: anyone on the path could then answer
  bool operator==(const TrunkTls&) const = default;
};

struct TrunkConfig {
  std::string name;
  std::string proxy;         // next hop URI for REGISTER and INVITE, e.g. "sip:192.0.2.1:5060"
  std::string domain;        // registrar domain and From host; default: the proxy's host
  std::string username;
  std::string password;
  bool register_ = false;    // send outbound REGISTERs
  int expires = 300;
  std::string srtp;          // "never" | "optional" | "mandatory"; "" = media.srtp (srtp_policy.hpp)
  std::vector<Cidr> addresses;  // INVITEs from these sources are calls from this trunk
  int max_calls = -1;           // concurrent calls from + to this trunk; -1 = sbc.max_calls_per_trunk
  bool tls = false;             // proxy is sips: or ;transport=tls
  std::string host;             // the proxy's host and port (5061 by default over TLS)
  int port = 5060;
  TrunkTls tls_options;
  bool operator==(const TrunkConfig& o) const {
    return name == o.name && proxy == o.proxy && domain == o.domain && username == o.username &&
           password == o.password && register_ == o.register_ && expires == o.expires && tls_options == o.tls_options;
  }
};

// SBC protections (source_guard.hpp, call_limits.hpp): what reaches the handlers at all, when a
// source gets banned, how many calls a user or trunk may hold.
struct SbcSettings {
  int requests_per_second = 50;      // per source address; 0 = no rate limit
  int burst = 100;                   // requests a source may send at once before the rate applies
  std::string rate_action = "drop";  // "drop" | "503" (stateless 503 with Retry-After)
  int ban_failed_auth = 5;           // failed authentications within ban_window that ban; 0 = never
  int ban_window = 60;               // seconds
  int ban_seconds = 600;             // how long a ban lasts
  bool ban_scanners = true;          // a scanner User-Agent also bans its source
  std::vector<Cidr> allow;           // never limited, banned or dropped (wins over deny)
  std::vector<Cidr> deny;            // dropped silently
  bool exempt_loopback = true;       // 127.0.0.0/8 and ::1 count as allowed
  bool trust_trunks = true;          // trunks' addresses count as allowed
  std::vector<std::string> scanner_user_agents{"friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent",
                                               "sundayddr", "iWar", "sip-scan", "sipscan", "SIVuS", "pplsip"};
  int max_sources = 100000;          // sources tracked at once (rate + failures); oldest evicted
  int max_bans = 100000;             // bans at once; the one expiring first is evicted
  int max_calls_per_user = 10;       // concurrent calls an authenticated user places; 0 = unlimited
  int max_calls_per_trunk = 100;     // concurrent calls from + to one trunk; 0 = unlimited
  std::string server_header = "relais";  // Server header of our responses; "" = none
};

struct UserConfig {
  std::string name;      // extension / username
  std::string display;   // human name, informational
  std::string password;  // plain; or the pre-hashed forms below
  std::string ha1_md5;
  std::string ha1_sha256;
  std::vector<DigestAlgorithm> algorithms;  // challenges for this user; empty = auth.algorithms
  std::string srtp;      // "never" | "optional" | "mandatory"; "" = media.srtp (srtp_policy.hpp)
  int max_calls = -1;    // concurrent calls this user places; -1 = sbc.max_calls_per_user
};

struct Config {
  std::string path;  // the config file as given
  std::string dir;   // its directory: relative script paths resolve against it
  std::string node_id;
  LogLevel log_level = LogLevel::info;
  std::string domain = "localhost";
  std::vector<std::string> aliases;  // other host names that mean `domain`
  std::vector<ListenAddress> listen;
  size_t max_message_size = 65536;
  TlsSettings tls;
  RegistrarSettings registrar;
  AuthSettings auth;
  StoreSettings store;
  CallSettings calls;
  MediaSettings media;
  PromptSettings prompts;
  MwiSettings mwi;
  SbcSettings sbc;
  MailSettings mail;  // mail.smtp empty = no e-mail (relais.mail.send reports it)
  std::string kv_path = "var/relais-kv.db";  // voicemail metadata, PINs, MWI counts (store.kv_path)
  std::string lua_path;  // extra package.path entries (";"-separated patterns) for require()
  std::map<std::string, TrunkConfig> trunks;
  std::map<std::string, UserConfig> users;
  std::string script_path;  // resolved; empty when no script
  std::string http_listen;  // "HOST:PORT" for /health, /metrics, /v1/registrations; empty = off
};

// Loads and validates `path`, applying `overrides` ("a.b.c=value") on the returned table before
// reading it. On error returns false with `error` as "file:line: message" (Lua syntax errors) or
// "file: key: message" (bad values).
bool load_config(const std::string& path, const std::vector<std::string>& overrides, Config& out,
                 std::string& error);

bool parse_listen_address(const std::string& text, ListenAddress& out);

}  // namespace relais
