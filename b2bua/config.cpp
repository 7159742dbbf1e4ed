// config.cpp — reading the config table out of Lua into typed settings, with clear errors.
#include "config.hpp"

#include <sofia-sip/url.h>
#include <strings.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "lua_state.hpp"
#include "srtp_policy.hpp"

namespace relais {

namespace {

struct ConfigError {
  std::string message;
};

// Reads fields of the table on top of the stack; every error names the dotted key.
class TableReader {
 public:
  TableReader(lua_State* L, std::string prefix) : L_(L), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw ConfigError{prefix_ + key + ": " + why};
  }

  // Pushes field `key`; returns false (and pushes nothing) when it is nil.
  bool push(const char* key) const {
    lua_getfield(L_, -1, key);
    if (lua_isnil(L_, -1)) {
      lua_pop(L_, 1);
      return false;
    }
    return true;
  }

  void string(const char* key, std::string& out) const {
    if (!push(key)) return;
    if (lua_type(L_, -1) != LUA_TSTRING && lua_type(L_, -1) != LUA_TNUMBER) fail(key, "expected a string");
    out = lua_tostring(L_, -1);
    lua_pop(L_, 1);
  }

  void integer(const char* key, int& out, int lo, int hi) const {
    if (!push(key)) return;
    bool ok = false;
    if (lua_type(L_, -1) == LUA_TNUMBER) {
      double v = lua_tonumber(L_, -1);
      ok = v == static_cast<int>(v);
      out = static_cast<int>(v);
    } else if (lua_type(L_, -1) == LUA_TSTRING) {
      char* end = nullptr;
      const char* s = lua_tostring(L_, -1);
      long v = strtol(s, &end, 10);
      ok = *s && !*end;
      out = static_cast<int>(v);
    }
    lua_pop(L_, 1);
    if (!ok) fail(key, "expected an integer");
    if (out < lo || out > hi) fail(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }

  void boolean(const char* key, bool& out) const {
    if (!push(key)) return;
    if (lua_isboolean(L_, -1)) {
      out = lua_toboolean(L_, -1);
    } else if (lua_type(L_, -1) == LUA_TSTRING && (std::string(lua_tostring(L_, -1)) == "true" || std::string(lua_tostring(L_, -1)) == "false")) {
      out = std::string(lua_tostring(L_, -1)) == "true";
    } else {
      lua_pop(L_, 1);
      fail(key, "expected true or false");
    }
    lua_pop(L_, 1);
  }

  // A list given as a Lua array or as one comma-separated string (the --set form).
  void list(const char* key, std::vector<std::string>& out) const {
    if (!push(key)) return;
    out.clear();
    if (lua_type(L_, -1) == LUA_TSTRING) {
      std::string all = lua_tostring(L_, -1);
      size_t start = 0;
      while (start <= all.size()) {
        size_t comma = all.find(',', start);
        if (comma == std::string::npos) comma = all.size();
        std::string item = all.substr(start, comma - start);
        if (!item.empty()) out.push_back(item);
        start = comma + 1;
      }
    } else if (lua_istable(L_, -1)) {
      for (int i = 1;; ++i) {
        lua_rawgeti(L_, -1, i);
        if (lua_isnil(L_, -1)) {
          lua_pop(L_, 1);
          break;
        }
        if (lua_type(L_, -1) != LUA_TSTRING) fail(key, "list items must be strings");
        out.push_back(lua_tostring(L_, -1));
        lua_pop(L_, 1);
      }
    } else {
      fail(key, "expected a list or a comma-separated string");
    }
    lua_pop(L_, 1);
  }

  // Enters a sub-table; returns false if absent. Pair with leave().
  bool enter(const char* key) const {
    if (!push(key)) return false;
    if (!lua_istable(L_, -1)) fail(key, "expected a table");
    return true;
  }
  void leave() const { lua_pop(L_, 1); }
  lua_State* state() const { return L_; }

 private:
  lua_State* L_;
  std::string prefix_;
};

// "a.b.c=value": creates intermediate tables, converts numbers and booleans.
void apply_override(lua_State* L, const std::string& assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw ConfigError{"--set " + assignment + ": expected key=value"};
  std::string key = assignment.substr(0, eq);
  std::string value = assignment.substr(eq + 1);
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (parts.back().empty()) throw ConfigError{"--set " + assignment + ": empty key component"};
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  lua_pushvalue(L, -1);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    lua_getfield(L, -1, parts[i].c_str());
    if (!lua_istable(L, -1)) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, -3, parts[i].c_str());
    }
    lua_remove(L, -2);
  }
  char* end = nullptr;
  double number = strtod(value.c_str(), &end);
  if (value == "true" || value == "false")
    lua_pushboolean(L, value == "true");
  else if (!value.empty() && *end == '\0' && value.find_first_not_of("0123456789.-+") == std::string::npos)
    lua_pushnumber(L, number);
  else
    lua_pushstring(L, value.c_str());
  lua_setfield(L, -2, parts.back().c_str());
  lua_pop(L, 1);
}

std::string default_node_id() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0 || !host[0]) return "relais";
  return host;
}

std::vector<DigestAlgorithm> read_algorithms(const TableReader& table) {
  std::vector<std::string> names;
  table.list("algorithms", names);
  std::vector<DigestAlgorithm> out;
  for (const std::string& name : names) {
    auto alg = parse_digest_algorithm(name);
    if (!alg || name.empty()) table.fail("algorithms", "unknown algorithm '" + name + "' (SHA-256 or MD5)");
    out.push_back(*alg);
  }
  return out;
}

std::vector<Cidr> read_cidrs(const TableReader& table, const char* key) {
  std::vector<std::string> items;
  table.list(key, items);
  std::vector<Cidr> out;
  for (const std::string& item : items) {
    auto cidr = Cidr::parse(item);
    if (!cidr) table.fail(key, "bad address or range '" + item + "'");
    out.push_back(*cidr);
  }
  return out;
}

// The proxy's host, port and transport; over TLS the optional `tls` table (TrunkTls).
void read_trunk_transport(TableReader& entry, TrunkConfig& trunk) {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  url_t* url = url_make(home, trunk.proxy.c_str());
  char transport[16] = "";
  if (url && url->url_params) url_param(url->url_params, "transport", transport, sizeof transport);
  bool ok = url && url->url_host && *url->url_host;
  trunk.tls = url && (url->url_type == url_sips || strcasecmp(transport, "tls") == 0);
  if (ok) {
    trunk.host = url->url_host;
    if (trunk.host.size() > 2 && trunk.host.front() == '[') trunk.host = trunk.host.substr(1, trunk.host.size() - 2);
    trunk.port = url->url_port && *url->url_port ? atoi(url->url_port) : trunk.tls ? 5061 : 5060;
  }
  su_home_deinit(home);
  if (!ok || trunk.port <= 0 || trunk.port > 65535) entry.fail("proxy", "cannot read host and port of '" + trunk.proxy + "'");
  if (!entry.enter("tls")) return;
  if (!trunk.tls) entry.fail("tls", "only for a proxy reached over TLS (sips: or ;transport=tls)");
  TableReader t(entry.state(), "trunks." + trunk.name + ".tls.");
  t.string("ca", trunk.tls_options.ca);
  t.string("certificate", trunk.tls_options.certificate);
  t.string("private_key", trunk.tls_options.private_key);
  t.string("server_name", trunk.tls_options.server_name);
  t.boolean("verify", trunk.tls_options.verify);
  if (trunk.tls_options.certificate.empty() != trunk.tls_options.private_key.empty())
    t.fail(trunk.tls_options.certificate.empty() ? "certificate" : "private_key", "certificate and private_key go together");
  entry.leave();
}

void read_trunks(lua_State* L, TableReader& top, Config& cfg) {
  if (!top.enter("trunks")) return;
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    lua_pushvalue(L, -2);
    std::string name = lua_tostring(L, -1) ? lua_tostring(L, -1) : "";
    lua_pop(L, 1);
    if (name.empty() || !lua_istable(L, -1)) throw ConfigError{"trunks: each entry must be name = { proxy = ... }"};
    TrunkConfig trunk;
    trunk.name = name;
    TableReader entry(L, "trunks." + name + ".");
    entry.string("proxy", trunk.proxy);
    if (trunk.proxy.rfind("sip:", 0) != 0 && trunk.proxy.rfind("sips:", 0) != 0)
      entry.fail("proxy", "expected a sip: URI such as sip:192.0.2.1:5060");
    entry.string("domain", trunk.domain);
    if (trunk.domain.empty()) {
      std::string host = trunk.proxy.substr(trunk.proxy.find(':') + 1);
      host = host.substr(host.find('@') == std::string::npos ? 0 : host.find('@') + 1);
      trunk.domain = host.substr(0, host[0] == '[' ? host.find(']') + 1 : host.find_first_of(":;"));
    }
    entry.string("username", trunk.username);
    entry.string("password", trunk.password);
    entry.boolean("register", trunk.register_);
    entry.integer("expires", trunk.expires, 30, 86400);
    entry.string("srtp", trunk.srtp);
    if (!trunk.srtp.empty() && !srtp_policy_from(trunk.srtp)) entry.fail("srtp", "expected never, optional or mandatory");
    if (trunk.register_ && trunk.username.empty()) entry.fail("username", "required when register = true");
    entry.integer("max_calls", trunk.max_calls, 0, 1000000);
    trunk.addresses = read_cidrs(entry, "addresses");
    read_trunk_transport(entry, trunk);
    cfg.trunks[name] = std::move(trunk);
    lua_pop(L, 1);
  }
  top.leave();
}

void read_users(lua_State* L, TableReader& top, Config& cfg) {
  if (!top.enter("users")) return;
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    // Keys may be numbers (users = { [100] = {...} }); read a copy so lua_next is not confused.
    lua_pushvalue(L, -2);
    std::string name = lua_tostring(L, -1) ? lua_tostring(L, -1) : "";
    lua_pop(L, 1);
    if (name.empty() || !lua_istable(L, -1)) throw ConfigError{"users: each entry must be name = { password = ... }"};
    UserConfig user;
    user.name = name;
    TableReader entry(L, "users." + name + ".");
    entry.string("password", user.password);
    entry.string("ha1_md5", user.ha1_md5);
    entry.string("ha1_sha256", user.ha1_sha256);
    entry.string("name", user.display);
    user.algorithms = read_algorithms(entry);
    entry.string("srtp", user.srtp);
    if (!user.srtp.empty() && !srtp_policy_from(user.srtp)) entry.fail("srtp", "expected never, optional or mandatory");
    entry.integer("max_calls", user.max_calls, 0, 1000000);
    if (user.password.empty() && user.ha1_md5.empty() && user.ha1_sha256.empty())
      entry.fail("password", "missing (give password or ha1_md5/ha1_sha256)");
    cfg.users[name] = std::move(user);
    lua_pop(L, 1);
  }
  top.leave();
}

bool supported_tls_version(const std::string& v) { return v == "1.2" || v == "1.3"; }

// Paths stay as written: like store.path, they are relative to relais's working directory.
void read_tls(TableReader& top, TlsSettings& tls) {
  if (!top.enter("tls")) return;
  TableReader t(top.state(), "tls.");
  std::vector<std::string> listen;
  t.list("listen", listen);
  for (const std::string& item : listen) {
    ListenAddress address;
    if (!parse_listen_address(item, address) || address.proto != "tls")
      t.fail("listen", "bad address '" + item + "' (expected tls:HOST:PORT)");
    tls.listen.push_back(address);
  }
  t.string("certificate", tls.certificate);
  t.string("private_key", tls.private_key);
  t.string("ca", tls.ca);
  t.string("min_version", tls.min_version);
  if (!supported_tls_version(tls.min_version)) t.fail("min_version", "expected \"1.2\" or \"1.3\" (older TLS is never offered)");
  t.string("ciphers", tls.ciphers);
  if (tls.ciphers.empty()) t.fail("ciphers", "must not be empty");
  t.string("ciphersuites", tls.ciphersuites);
  t.boolean("verify_clients", tls.verify_clients);
  t.integer("max_connections", tls.max_connections, 1, 1000000);
  t.integer("handshake_timeout", tls.handshake_timeout, 1, 300);
  if (!tls.listen.empty() && tls.certificate.empty()) t.fail("certificate", "required when tls.listen is set");
  if (!tls.listen.empty() && tls.private_key.empty()) t.fail("private_key", "required when tls.listen is set");
  if (tls.verify_clients && tls.ca.empty()) t.fail("ca", "required when verify_clients = true");
  top.leave();
}

void read_sbc(TableReader& top, SbcSettings& sbc) {
  if (!top.enter("sbc")) return;
  lua_State* L = top.state();
  TableReader t(L, "sbc.");
  if (t.enter("rate")) {
    TableReader rate(L, "sbc.rate.");
    rate.integer("requests_per_second", sbc.requests_per_second, 0, 1000000);
    rate.integer("burst", sbc.burst, 1, 10000000);
    rate.string("action", sbc.rate_action);
    if (sbc.rate_action != "drop" && sbc.rate_action != "503") rate.fail("action", "expected \"drop\" or \"503\"");
    t.leave();
  }
  if (t.enter("ban")) {
    TableReader ban(L, "sbc.ban.");
    ban.integer("failed_auth", sbc.ban_failed_auth, 0, 1000);
    ban.integer("window", sbc.ban_window, 1, 86400);
    ban.integer("seconds", sbc.ban_seconds, 1, 30 * 86400);
    ban.boolean("scanners", sbc.ban_scanners);
    t.leave();
  }
  sbc.allow = read_cidrs(t, "allow");
  sbc.deny = read_cidrs(t, "deny");
  t.boolean("exempt_loopback", sbc.exempt_loopback);
  t.boolean("trust_trunks", sbc.trust_trunks);
  t.list("scanner_user_agents", sbc.scanner_user_agents);
  for (const std::string& ua : sbc.scanner_user_agents)
    if (ua.empty() || ua.size() > 128) t.fail("scanner_user_agents", "patterns must be 1..128 characters");
  t.integer("max_sources", sbc.max_sources, 16, 10000000);
  t.integer("max_bans", sbc.max_bans, 16, 10000000);
  t.integer("max_calls_per_user", sbc.max_calls_per_user, 0, 1000000);
  t.integer("max_calls_per_trunk", sbc.max_calls_per_trunk, 0, 1000000);
  t.string("server_header", sbc.server_header);
  if (sbc.server_header.size() > 128 || sbc.server_header.find_first_of("\r\n") != std::string::npos)
    t.fail("server_header", "expected one short line");
  top.leave();
}

void read_config(lua_State* L, Config& cfg) {
  TableReader top(L, "");
  cfg.node_id = default_node_id();
  top.string("node_id", cfg.node_id);
  std::string level;
  top.string("log_level", level);
  if (!level.empty() && !parse_log_level(level, cfg.log_level)) top.fail("log_level", "expected debug, info, warn or error");
  top.string("domain", cfg.domain);
  top.string("lua_path", cfg.lua_path);
  if (cfg.domain.empty()) top.fail("domain", "must not be empty");
  top.list("aliases", cfg.aliases);

  if (top.enter("sip")) {
    TableReader sip(L, "sip.");
    std::vector<std::string> listen;
    sip.list("listen", listen);
    for (const std::string& item : listen) {
      ListenAddress address;
      if (!parse_listen_address(item, address) || address.proto == "tls")
        sip.fail("listen", "bad address '" + item + "' (expected udp:HOST:PORT or tcp:HOST:PORT; TLS goes in tls.listen)");
      cfg.listen.push_back(address);
    }
    int max_size = static_cast<int>(cfg.max_message_size);
    sip.integer("max_message_size", max_size, 1024, 1 << 20);
    cfg.max_message_size = static_cast<size_t>(max_size);
    top.leave();
  }
  if (cfg.listen.empty()) cfg.listen = {{"udp", "0.0.0.0", 5060}, {"tcp", "0.0.0.0", 5060}};
  read_tls(top, cfg.tls);

  if (top.enter("registrar")) {
    TableReader reg(L, "registrar.");
    reg.integer("min_expires", cfg.registrar.min_expires, 1, 86400);
    reg.integer("nat_keepalive", cfg.registrar.nat_keepalive, 0, 3600);
    reg.integer("max_expires", cfg.registrar.max_expires, 1, 7 * 86400);
    reg.integer("default_expires", cfg.registrar.default_expires, 1, 7 * 86400);
    reg.integer("max_contacts", cfg.registrar.max_contacts, 1, 1000);
    if (cfg.registrar.min_expires > cfg.registrar.max_expires) reg.fail("min_expires", "must not exceed max_expires");
    top.leave();
  }

  cfg.auth.realm = cfg.domain;
  if (top.enter("auth")) {
    TableReader auth(L, "auth.");
    auth.string("realm", cfg.auth.realm);
    std::vector<DigestAlgorithm> algorithms = read_algorithms(auth);
    if (!algorithms.empty()) cfg.auth.algorithms = algorithms;
    auth.integer("nonce_ttl", cfg.auth.nonce_ttl, 1, 86400);
    auth.string("secret", cfg.auth.secret);
    top.leave();
  }

  if (top.enter("store")) {
    TableReader store(L, "store.");
    store.string("backend", cfg.store.backend);
    if (cfg.store.backend != "sqlite" && cfg.store.backend != "redis") store.fail("backend", "expected sqlite or redis");
    store.string("path", cfg.store.sqlite_path);
    store.string("redis_host", cfg.store.redis_host);
    store.integer("redis_port", cfg.store.redis_port, 1, 65535);
    store.string("redis_password", cfg.store.redis_password);
    store.integer("redis_db", cfg.store.redis_db, 0, 1024);
    store.string("prefix", cfg.store.redis_prefix);
    store.integer("flush_ms", cfg.store.sqlite_flush_ms, 1, 60000);
    store.string("kv_path", cfg.kv_path);
    top.leave();
  }

  if (top.enter("calls")) {
    TableReader calls(L, "calls.");
    calls.boolean("authenticate", cfg.calls.authenticate);
    calls.string("unknown_sources", cfg.calls.unknown_sources);
    if (cfg.calls.unknown_sources != "reject" && cfg.calls.unknown_sources != "allow")
      calls.fail("unknown_sources", "expected reject or allow");
    calls.integer("no_answer_timeout", cfg.calls.no_answer_timeout, 1, 3600);
    top.leave();
  }

  if (top.enter("media")) {
    TableReader media(L, "media.");
    media.string("mode", cfg.media.mode);
    if (cfg.media.mode != "relay" && cfg.media.mode != "passthrough") media.fail("mode", "expected relay or passthrough");
    media.string("ng", cfg.media.ng);
    media.integer("timeout_ms", cfg.media.timeout_ms, 50, 10000);
    media.integer("attempts", cfg.media.attempts, 1, 10);
    media.string("srtp", cfg.media.srtp);
    if (!srtp_policy_from(cfg.media.srtp)) media.fail("srtp", "expected never, optional or mandatory");
    top.leave();
  }

  if (top.enter("mwi")) {
    TableReader mwi(L, "mwi.");
    mwi.boolean("authenticate", cfg.mwi.authenticate);
    mwi.integer("default_expires", cfg.mwi.default_expires, 1, 86400 * 7);
    mwi.integer("min_expires", cfg.mwi.min_expires, 1, 86400);
    mwi.integer("max_expires", cfg.mwi.max_expires, 1, 86400 * 7);
    if (cfg.mwi.min_expires > cfg.mwi.max_expires) mwi.fail("min_expires", "must not exceed max_expires");
    mwi.boolean("unsolicited", cfg.mwi.unsolicited);
    mwi.boolean("any_mailbox", cfg.mwi.any_mailbox);
    top.leave();
  }

  if (top.enter("prompts")) {
    TableReader prompts(L, "prompts.");
    prompts.string("dir", cfg.prompts.dir);
    prompts.string("language", cfg.prompts.language);
    if (cfg.prompts.language.empty() || cfg.prompts.language.size() > 16 ||
        cfg.prompts.language.find_first_of("/.") != std::string::npos)
      prompts.fail("language", "expected a language code such as en or fr");
    top.leave();
  }

  if (top.enter("mail")) {
    TableReader mail(L, "mail.");
    mail.string("smtp", cfg.mail.smtp_url);
    if (!cfg.mail.smtp_url.empty() && cfg.mail.smtp_url.rfind("smtp://", 0) != 0 && cfg.mail.smtp_url.rfind("smtps://", 0) != 0)
      mail.fail("smtp", "expected smtp://host:port or smtps://host:port");
    mail.string("from", cfg.mail.from);
    mail.string("username", cfg.mail.username);
    mail.string("password", cfg.mail.password);
    mail.boolean("starttls", cfg.mail.starttls);
    mail.integer("timeout", cfg.mail.timeout_seconds, 1, 600);
    top.leave();
  }

  if (top.enter("http")) {
    TableReader http(L, "http.");
    http.string("listen", cfg.http_listen);
    top.leave();
  }

  read_sbc(top, cfg.sbc);
  read_users(L, top, cfg);
  read_trunks(L, top, cfg);

  std::string script;
  top.string("script", script);
  if (!script.empty()) {
    std::filesystem::path p(script);
    if (p.is_relative()) p = std::filesystem::path(cfg.dir) / p;
    cfg.script_path = p.lexically_normal().string();
  }
}

}  // namespace

std::string ListenAddress::to_string() const {
  return proto + ":" + (ipv6() ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string ListenAddress::sip_url() const {
  return "sip:" + (ipv6() ? "[" + host + "]" : host) + ":" + std::to_string(port) + ";transport=" + proto;
}

bool parse_listen_address(const std::string& text, ListenAddress& out) {
  size_t colon = text.find(':');
  if (colon == std::string::npos) return false;
  out.proto = text.substr(0, colon);
  if (out.proto != "udp" && out.proto != "tcp" && out.proto != "tls") return false;
  std::string rest = text.substr(colon + 1);
  size_t port_colon;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':') return false;
    out.host = rest.substr(1, close - 1);
    port_colon = close + 1;
  } else {
    port_colon = rest.rfind(':');
    if (port_colon == std::string::npos) return false;
    out.host = rest.substr(0, port_colon);
    if (out.host.find(':') != std::string::npos) return false;  // bare IPv6 needs brackets
  }
  if (out.host.empty()) return false;
  std::string port = rest.substr(port_colon + 1);
  char* end = nullptr;
  long value = strtol(port.c_str(), &end, 10);
  if (port.empty() || *end || value < 1 || value > 65535) return false;
  out.port = static_cast<int>(value);
  return true;
}

bool load_config(const std::string& path, const std::vector<std::string>& overrides, Config& out,
                 std::string& error) {
  LuaStatePtr state = new_lua_state();
  lua_State* L = state.get();
  if (!L) {
    error = path + ": cannot create Lua state";
    return false;
  }
  if (luaL_loadfile(L, path.c_str()) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
    error = lua_error_text(L);  // already "file:line: message"
    return false;
  }
  if (!lua_istable(L, -1)) {
    error = path + ": the config file must return a table";
    return false;
  }
  Config cfg;
  cfg.path = path;
  cfg.dir = std::filesystem::path(path).parent_path().string();
  if (cfg.dir.empty()) cfg.dir = ".";
  try {
    for (const std::string& o : overrides) apply_override(L, o);
    read_config(L, cfg);
  } catch (const ConfigError& e) {
    error = path + ": " + e.message;
    return false;
  }
  out = std::move(cfg);
  return true;
}

}  // namespace relais
