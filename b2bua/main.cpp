// main.cpp — the relais process: command line, start-up, signals, orderly shutdown.
#include <event2/event.h>
#include <getopt.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "authenticator.hpp"
#include "call_engine.hpp"
#include "call_memory.hpp"
#include "config.hpp"
#include "event_loop.hpp"
#include "http_api.hpp"
#include "metrics.hpp"
#include "location_store.hpp"
#include "kv_store.hpp"
#include "log.hpp"
#include "lua_sbc.hpp"
#include "mail_sender.hpp"
#include "mwi_service.hpp"
#include "nat_keepalive.hpp"
#include "registrar.hpp"
#include "script_engine.hpp"
#include "server_header.hpp"
#include "sip_stack.hpp"
#include "source_guard.hpp"
#include "sofia_log.hpp"
#include "stream_edge.hpp"
#include "trunk_links.hpp"
#include "trunk_registration.hpp"

using namespace relais;

// jemalloc settings (ignored when relais runs on glibc's malloc): freed pages go back to the
// kernel within a second, by jemalloc's own purge thread, instead of waiting for the next burst
// of allocations — a quiet server holding many calls otherwise keeps its setup-burst high-water
// RSS (measured: 23 -> 20 KiB RSS per held call at 3,000 calls).
extern "C" const char* malloc_conf;
const char* malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

namespace {

void print_help() {
  printf(
      "relais %s — SIP back-to-back user agent and session border controller\n"
      "\n"
      "Usage:\n"
      "  relais --config FILE [--set key=value]...   run\n"
      "  relais --check FILE [--set key=value]...    validate config and scripts, then exit\n"
      "  relais --config FILE --add-user USER:PASSWORD   provision a user in the store\n"
      "  relais --version | --help\n"
      "\n"
      "Options:\n"
      "  -c, --config FILE     Lua file returning the configuration table\n"
      "  -k, --check FILE      load FILE and its script; print file:line: message on error\n"
      "  -s, --set KEY=VALUE   override a config value, e.g. --set sip.listen=udp:127.0.0.1:5080\n"
      "                        (dotted keys; numbers and true/false converted; lists comma-separated)\n"
      "  -u, --add-user U:P    store user U with password P (as HA1 hashes for the realm)\n"
      "  -V, --version         print the version\n"
      "  -h, --help            this text\n"
      "\n"
      "Signals: SIGTERM/SIGINT stop cleanly (store flushed); SIGHUP reloads users, the script and\n"
      "TLS certificates.\n"
      "Docs: docs/quickstart.md, docs/configuration.md, docs/lua-api.md, docs/operations.md\n",
      RELAIS_VERSION);
}

// Loads config + script the way the running process would, without opening sockets.
int check(const std::string& path, const std::vector<std::string>& overrides) {
  Config cfg;
  std::string error;
  if (!load_config(path, overrides, cfg, error)) {
    fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  if (!cfg.script_path.empty()) {
    ScriptEngine script;
    script.set_lua_path(cfg.lua_path);
    script.set_api_installer([](lua_State* L) {
      CallEngine::install_api(L, nullptr);
      install_mwi_api(L, nullptr);
      install_sbc_api(L, nullptr);
    });
    if (!script.load(cfg.script_path, error)) {
      fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
  }
  printf("%s: ok\n", path.c_str());
  return 0;
}

// Provisions a user in the store (HA1s only, never the password) and exits.
int add_user(const std::string& path, const std::vector<std::string>& overrides, const std::string& spec) {
  size_t colon = spec.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size()) {
    fprintf(stderr, "relais: --add-user expects USER:PASSWORD\n");
    return 2;
  }
  Config cfg;
  std::string error;
  if (!load_config(path, overrides, cfg, error)) {
    fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  EventLoop loop;
  std::unique_ptr<LocationStore> store;
  if (!loop.init(error) || !(store = open_location_store(cfg.store, loop.base(), error))) {
    fprintf(stderr, "relais: %s\n", error.c_str());
    return 1;
  }
  std::string user = spec.substr(0, colon), password = spec.substr(colon + 1);
  UserRecord record{user, cfg.auth.realm, digest_ha1(DigestAlgorithm::md5, user, cfg.auth.realm, password),
                    digest_ha1(DigestAlgorithm::sha256, user, cfg.auth.realm, password)};
  // A Redis store may still be connecting: retry for a few seconds before giving up.
  for (int attempt = 0; attempt < 50; ++attempt) {
    bool done = false;
    error.clear();
    store->put_user(record, [&](const std::string& e) {
      error = e;
      done = true;
    });
    timeval tick{0, 100000};
    for (int i = 0; i < 50 && !done; ++i) {
      event_base_loopexit(loop.base(), &tick);
      event_base_dispatch(loop.base());
    }
    if (done && error.empty()) {
      store->flush();
      printf("user %s added to the %s store (realm %s)\n", user.c_str(), store->backend_name(), cfg.auth.realm.c_str());
      return 0;
    }
    event_base_loopexit(loop.base(), &tick);
    event_base_dispatch(loop.base());
  }
  fprintf(stderr, "relais: cannot add user: %s\n", error.empty() ? "store did not answer" : error.c_str());
  return 1;
}

// More descriptors than the default 1024: every TCP phone holds one.
void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int run(const std::string& path, const std::vector<std::string>& overrides) {
  init_call_memory();  // before any call: its long-lived state goes to its own arena
  Config cfg;
  std::string error;
  if (!load_config(path, overrides, cfg, error)) {
    fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  set_log_level(cfg.log_level);
  route_sofia_logs(cfg.log_level);
  raise_fd_limit();

  EventLoop loop;
  if (!loop.init(error)) {
    log_error("startup.failed").kv("error", error);
    return 1;
  }
  std::unique_ptr<LocationStore> store = open_location_store(cfg.store, loop.base(), error);
  if (!store) {
    log_error("startup.failed").kv("error", error);
    return 1;
  }
  ScriptEngine script;
  set_server_header(cfg.sbc.server_header);
  SourceGuard guard(cfg);  // outlives the stack, which asks it about every request
  auto stack = std::make_unique<SipStack>(loop);
  stack->set_source_guard(&guard);
  Authenticator auth(cfg, *store);
  auth.set_failure_hook([&guard](const std::string& ip, const std::string&, const std::string&) {
    if (std::optional<SourceIp> source = SourceIp::parse(ip)) guard.auth_failed(*source, monotonic_seconds());
  });
  Registrar registrar(cfg, *stack, *store, auth, script);
  auto keepalive = std::make_unique<NatKeepalive>(loop, *stack, cfg.domain, cfg.registrar.nat_keepalive);
  registrar.set_keepalive(keepalive.get());
  auto calls = std::make_unique<CallEngine>(cfg, loop, *stack, *store, auth, script);
  std::unique_ptr<KvStore> kv = KvStore::open(cfg.kv_path, error);
  if (!kv) {
    log_error("startup.failed").kv("error", error);
    return 1;
  }
  calls->set_kv(kv.get());
  std::unique_ptr<MailSender> mail;
  if (!cfg.mail.smtp_url.empty()) {
    mail = std::make_unique<MailSender>(cfg.mail);
    calls->set_mail(mail.get());
  }
  script.set_lua_path(cfg.lua_path);
  auto mwi = std::make_unique<MwiService>(cfg, loop, *stack, *store, auth, cfg.mwi);
  // MWI counts live in the key-value store so a SUBSCRIBE after a restart gets the truth.
  mwi->set_persistence(
      [&kv](const std::string& user) -> std::optional<std::pair<int, int>> {
        auto v = kv->get("mwi/" + user);
        int fresh = 0, old = 0;
        if (!v || sscanf(v->c_str(), "%d %d", &fresh, &old) != 2) return std::nullopt;
        return std::make_pair(fresh, old);
      },
      [&kv](const std::string& user, int fresh, int old) {
        std::string error;
        if (!kv->set("mwi/" + user, std::to_string(fresh) + " " + std::to_string(old), error))
          log_error("mwi.persist_failed").kv("user", user).kv("error", error);
      });
  script.set_api_installer([&calls, &mwi, &guard](lua_State* L) {
    CallEngine::install_api(L, calls.get());
    install_mwi_api(L, mwi.get());
    install_sbc_api(L, &guard);
  });
  if (!cfg.script_path.empty() && !script.load(cfg.script_path, error)) {
    log_error("startup.failed").kv("error", error);
    return 1;
  }
  stack->on_method("REGISTER", [&](const SipRequestPtr& r) { registrar.handle(r); });
  stack->on_method("INVITE", [&](const SipRequestPtr& r) { calls->handle_invite(r); });
  stack->on_method("SUBSCRIBE", [&](const SipRequestPtr& r) { mwi->handle_subscribe(r); });
  if (!stack->start(cfg, error)) {
    log_error("startup.failed").kv("error", error);
    return 1;
  }
  // TCP and TLS phones reach Sofia through the edge (tls/), over its internal TCP listener.
  std::unique_ptr<StreamEdge> edge;
  if (stack->internal_tcp_port()) {
    edge = std::make_unique<StreamEdge>(loop.base(), cfg, stack->internal_tcp_port());
    if (!edge->start(error)) {
      log_error("startup.failed").kv("error", error);
      return 1;
    }
    stack->set_flow_lookup([&edge](const std::string& token, std::string& route) {
      switch (edge ? edge->find_flow(token, route) : StreamEdge::FlowState::foreign) {
        case StreamEdge::FlowState::alive: return SipStack::FlowTarget::routed;
        case StreamEdge::FlowState::closed: return SipStack::FlowTarget::gone;
        case StreamEdge::FlowState::foreign: break;
      }
      return SipStack::FlowTarget::none;
    });
  }

  if (!calls->start_media(error)) {
    log_error("startup.failed").kv("error", error);
    return 1;
  }
  TrunkRegistrations trunks(*calls);
  // Operators reached over TLS: relais's own verified connections (tls/trunk_links.hpp).
  std::unique_ptr<TrunkLinks> trunk_links;
  if (edge) {
    trunk_links = std::make_unique<TrunkLinks>(*edge);
    trunk_links->on_up([&trunks](const std::string& name) { trunks.link_up(name); });
    stack->set_trunk_link_lookup([&trunk_links](const std::string& name, std::string& route, std::string& local) {
      switch (trunk_links ? trunk_links->lookup(name, route, local) : TrunkLinks::State::not_tls) {
        case TrunkLinks::State::up: return SipStack::FlowTarget::routed;
        case TrunkLinks::State::down: return SipStack::FlowTarget::gone;
        case TrunkLinks::State::not_tls: break;
      }
      return SipStack::FlowTarget::none;
    });
    trunk_links->apply(cfg.trunks, cfg.tls);
  }
  trunks.apply(cfg.trunks);

  // SIGHUP and POST /v1/reload. A failed reload keeps everything running as it was; calls in
  // progress finish in the script generation they started in.
  auto reload = [&]() -> std::string {
    Config fresh;
    std::string why;
    if (!load_config(path, overrides, fresh, why) || (!fresh.script_path.empty() && !script.load(fresh.script_path, why))) {
      log_error("reload.failed").kv("error", why);
      return why;
    }
    set_log_level(fresh.log_level);
    // New handshakes get the new certificate; live connections keep theirs. A bad file keeps
    // the previous context (and the rest of the reload goes ahead).
    std::string tls_error;
    if (edge && !edge->reload(fresh.tls, tls_error))
      log_error("tls.reload_failed").kv("error", tls_error).kv("kept", "previous certificate");
    auth.set_users(fresh);
    guard.configure(fresh);
    set_server_header(fresh.sbc.server_header);
    registrar.set_config(fresh);
    keepalive->set_interval(fresh.registrar.nat_keepalive);
    calls->set_config(fresh);
    mwi->set_config(fresh);
    if (trunk_links) trunk_links->apply(fresh.trunks, fresh.tls);
    trunks.apply(fresh.trunks);
    log_notice("reload").kv("users", fresh.users.size()).kv("script", fresh.script_path)
        .kv("generation", script.current() ? static_cast<long long>(script.current()->generation()) : 0LL)
        .kv("active_calls", static_cast<long long>(calls->counters().active));
    return {};
  };

  int64_t started = static_cast<int64_t>(time(nullptr));
  std::unique_ptr<HttpApi> http;
  if (!cfg.http_listen.empty()) {
    http = std::make_unique<HttpApi>(loop, *store, [&] {
      MetricsSnapshot m;
      m.registrar = registrar.counters();
      m.sip = stack->counters();
      m.calls = calls->counters();
      m.sbc = guard.counters();
      m.call_limits = calls->limits().counters();
      if (edge) m.edge = edge->counters();
      m.mwi = mwi->counters();
      if (mail) m.mail = mail->stats();
      m.keepalive = keepalive->counters();
      m.store_backend = store->backend_name();
      m.node_id = cfg.node_id;
      m.uptime_seconds = static_cast<int64_t>(time(nullptr)) - started;
      return render_metrics(m);
    }, reload);
    if (!http->start(cfg.http_listen, error)) {
      log_error("startup.failed").kv("error", error);
      return 1;
    }
  }

  auto stop = [&](const char* why) {
    log_notice("shutdown").kv("signal", why);
    loop.stop();
  };
  loop.on_signal(SIGTERM, [&] { stop("TERM"); });
  loop.on_signal(SIGINT, [&] { stop("INT"); });
  loop.on_signal(SIGHUP, [&] { reload(); });
  signal(SIGPIPE, SIG_IGN);

  std::string listen;
  for (const ListenAddress& a : stack->listening()) listen += (listen.empty() ? "" : ",") + a.to_string();
  log_notice("ready").kv("version", RELAIS_VERSION).kv("node", cfg.node_id).kv("listen", listen)
      .kv("store", store->backend_name()).kv("domain", cfg.domain).kv("users", cfg.users.size())
      .kv("http", cfg.http_listen);
  loop.run();

  // Order matters: the store completes pending lookups (their requests get answered) while the
  // registrar and the SIP agent still exist; then the agent goes.
  http.reset();
  trunks.apply({});
  stack->set_trunk_link_lookup(nullptr);
  trunk_links.reset();
  calls.reset();  // hangs up calls still up; their BYEs leave before the agent goes
  store->flush();
  store.reset();
  mwi.reset();  // final NOTIFYs leave while the agent still exists
  registrar.set_keepalive(nullptr);
  keepalive.reset();  // its leg belongs to the agent
  stack->set_flow_lookup(nullptr);
  edge.reset();
  stack.reset();
  const RegistrarCounters& c = registrar.counters();
  log_notice("stopped").kv("register_ok", c.ok).kv("challenged", c.challenged).kv("auth_failed", c.auth_failed);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  static const option options[] = {
      {"config", required_argument, nullptr, 'c'}, {"check", required_argument, nullptr, 'k'},
      {"set", required_argument, nullptr, 's'},    {"version", no_argument, nullptr, 'V'},
      {"help", no_argument, nullptr, 'h'},         {"add-user", required_argument, nullptr, 'u'},
      {nullptr, 0, nullptr, 0}};
  std::string config_path, check_path, new_user;
  std::vector<std::string> overrides;
  int opt;
  while ((opt = getopt_long(argc, argv, "c:k:s:u:Vh", options, nullptr)) != -1) {
    switch (opt) {
      case 'c': config_path = optarg; break;
      case 'k': check_path = optarg; break;
      case 's': overrides.emplace_back(optarg); break;
      case 'u': new_user = optarg; break;
      case 'V': printf("relais %s\n", RELAIS_VERSION); return 0;
      case 'h': print_help(); return 0;
      default: fprintf(stderr, "Try 'relais --help'.\n"); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "relais: unexpected argument '%s'. Try 'relais --help'.\n", argv[optind]);
    return 2;
  }
  if (!check_path.empty()) return check(check_path, overrides);
  if (config_path.empty()) {
    fprintf(stderr, "relais: --config FILE is required. Try 'relais --help'.\n");
    return 2;
  }
  if (!new_user.empty()) return add_user(config_path, overrides, new_user);
  return run(config_path, overrides);
}
