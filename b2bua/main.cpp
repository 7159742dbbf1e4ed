// main.cpp — the relais process: command line, start-up, signals, orderly shutdown.
#include <getopt.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "authenticator.hpp"
#include "config.hpp"
#include "event_loop.hpp"
#include "location_store.hpp"
#include "log.hpp"
#include "registrar.hpp"
#include "script_engine.hpp"
#include "sip_stack.hpp"
#include "sofia_log.hpp"

using namespace relais;

namespace {

void print_help() {
  printf(
      "relais %s — SIP back-to-back user agent and session border controller\n"
      "\n"
      "Usage:\n"
      "  relais --config FILE [--set key=value]...   run\n"
      "  relais --check FILE [--set key=value]...    validate config and scripts, then exit\n"
      "  relais --version | --help\n"
      "\n"
      "Options:\n"
      "  -c, --config FILE     Lua file returning the configuration table\n"
      "  -k, --check FILE      load FILE and its script; print file:line: message on error\n"
      "  -s, --set KEY=VALUE   override a config value, e.g. --set sip.listen=udp:127.0.0.1:5080\n"
      "                        (dotted keys; numbers and true/false converted; lists comma-separated)\n"
      "  -V, --version         print the version\n"
      "  -h, --help            this text\n"
      "\n"
      "Signals: SIGTERM/SIGINT stop cleanly (store flushed); SIGHUP reloads users and the script.\n"
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
    if (!script.load(cfg.script_path, error)) {
      fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
  }
  printf("%s: ok\n", path.c_str());
  return 0;
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
  if (!cfg.script_path.empty() && !script.load(cfg.script_path, error)) {
    log_error("startup.failed").kv("error", error);
    return 1;
  }
  auto stack = std::make_unique<SipStack>(loop);
  Authenticator auth(cfg, *store);
  Registrar registrar(cfg, *stack, *store, auth, script);
  stack->on_method("REGISTER", [&](const SipRequestPtr& r) { registrar.handle(r); });
  if (!stack->start(cfg, error)) {
    log_error("startup.failed").kv("error", error);
    return 1;
  }

  auto stop = [&](const char* why) {
    log_info("shutdown").kv("signal", why);
    loop.stop();
  };
  loop.on_signal(SIGTERM, [&] { stop("TERM"); });
  loop.on_signal(SIGINT, [&] { stop("INT"); });
  loop.on_signal(SIGHUP, [&] {
    // A failed reload keeps everything that is running as it was.
    Config fresh;
    std::string why;
    if (!load_config(path, overrides, fresh, why)) {
      log_error("reload.failed").kv("error", why);
      return;
    }
    if (!fresh.script_path.empty() && !script.load(fresh.script_path, why)) {
      log_error("reload.failed").kv("error", why);
      return;
    }
    set_log_level(fresh.log_level);
    auth.set_users(fresh);
    registrar.set_config(fresh);
    log_info("reload").kv("users", fresh.users.size()).kv("script", fresh.script_path);
  });
  signal(SIGPIPE, SIG_IGN);

  std::string listen;
  for (const ListenAddress& a : stack->listening()) listen += (listen.empty() ? "" : ",") + a.to_string();
  log_info("ready").kv("version", RELAIS_VERSION).kv("node", cfg.node_id).kv("listen", listen)
      .kv("store", store->backend_name()).kv("domain", cfg.domain).kv("users", cfg.users.size());
  loop.run();

  // Order matters: the store completes pending lookups (their requests get answered) while the
  // registrar and the SIP agent still exist; then the agent goes.
  store->flush();
  store.reset();
  stack.reset();
  const RegistrarCounters& c = registrar.counters();
  log_info("stopped").kv("register_ok", c.ok).kv("challenged", c.challenged).kv("auth_failed", c.auth_failed);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  static const option options[] = {
      {"config", required_argument, nullptr, 'c'}, {"check", required_argument, nullptr, 'k'},
      {"set", required_argument, nullptr, 's'},    {"version", no_argument, nullptr, 'V'},
      {"help", no_argument, nullptr, 'h'},         {nullptr, 0, nullptr, 0}};
  std::string config_path, check_path;
  std::vector<std::string> overrides;
  int opt;
  while ((opt = getopt_long(argc, argv, "c:k:s:Vh", options, nullptr)) != -1) {
    switch (opt) {
      case 'c': config_path = optarg; break;
      case 'k': check_path = optarg; break;
      case 's': overrides.emplace_back(optarg); break;
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
  return run(config_path, overrides);
}
