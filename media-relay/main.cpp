// main.cpp — relais-media: parse options, block the shutdown signals (so only the control
// thread's signalfd sees them), start the workers, bind the ng socket, run the control loop.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "media_events.hpp"
#include "media_log.hpp"
#include "media_services.hpp"
#include "ng_commands.hpp"
#include "ng_control.hpp"
#include "options.hpp"
#include "relay_engine.hpp"
#include "session.hpp"
#include "udp_socket.hpp"
#include "xdp_program.hpp"

#ifndef RELAIS_MEDIA_VERSION
#define RELAIS_MEDIA_VERSION "0.1.0"
#endif

using namespace relais::media;

int main(int argc, char** argv) {
  Options opts;
  std::string error;
  if (!parse_options(std::vector<std::string>(argv + 1, argv + argc), opts, error)) {
    fprintf(stderr, "relais-media: %s\n%s", error.c_str(), usage());
    return 2;
  }
  if (opts.help) {
    fputs(usage(), stdout);
    return 0;
  }
  if (opts.version) {
    printf("relais-media %s\n", RELAIS_MEDIA_VERSION);
    return 0;
  }
  set_log_level(opts.log_level);
  if (opts.workers == 0) opts.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  // Blocked before any thread starts so workers inherit the mask and never take the signal.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  Fd sigfd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd) {
    Log(LogLevel::error, "startup.failed").kv("reason", "signalfd");
    return 1;
  }

  sockaddr_in ng_addr{};
  if (!parse_ipv4_port(opts.ng, ng_addr)) {
    fprintf(stderr, "relais-media: bad --ng %s (IPv4:PORT)\n", opts.ng.c_str());
    return 2;
  }
  std::string ng_ip = opts.ng.substr(0, opts.ng.rfind(':'));
  Fd ng = bind_udp(ng_ip, ntohs(ng_addr.sin_port), error);
  if (!ng) {
    Log(LogLevel::error, "startup.failed").kv("reason", error);
    return 1;
  }
  // --io xdp: the XDP program outlives the workers (their AF_XDP sockets sit in its map).
  std::unique_ptr<XdpProgram> xdp;
  if (opts.worker.io == IoBackend::xdp) {
    std::string interface = opts.xdp_interface.empty() ? interface_of(opts.address) : opts.xdp_interface;
    if (interface.empty()) {
      Log(LogLevel::error, "startup.failed").kv("reason", "--io xdp: no interface holds " + opts.address + " (use --xdp-interface)");
      return 1;
    }
    xdp = XdpProgram::create(interface, opts.address, opts.xdp_mode, error);
    if (!xdp) {
      Log(LogLevel::error, "startup.failed").kv("reason", "--io xdp: " + error);
      return 1;
    }
    opts.worker.xdp = xdp.get();
    Log(LogLevel::info, "xdp.attached").kv("interface", interface).kv("mode", xdp->mode_name())
        .kv("queues", xdp->queues());
  }
  try {
    // Declaration order is shutdown order reversed: the media services finalise recordings
    // while sessions and workers still exist; workers stop before the event queue goes.
    MediaEventQueue events;
    RelayEngine engine(opts.address, opts.port_min, opts.port_max, opts.workers, 256, &events, opts.worker);
    SessionManager sessions(engine, opts.address);
    MediaServices media(sessions, engine, &events);
    NgCommands commands(sessions, &media);
    NgControl control(commands);
    NgServer server(std::move(ng), control, sessions, static_cast<int64_t>(opts.timeout_s) * 1'000'000'000, &media,
                    events.fd());
    Log(LogLevel::info, "ready").kv("ng", opts.ng).kv("address", opts.address)
        .kv("ports", std::to_string(opts.port_min) + "-" + std::to_string(opts.port_max))
        .kv("workers", opts.workers).kv("io", engine.backend_name()).kv("realtime", opts.worker.realtime_priority).kv("timeout", opts.timeout_s).kv("version", RELAIS_MEDIA_VERSION);
    server.run(sigfd.get());
    Log(LogLevel::info, "stopped").kv("calls", static_cast<unsigned long>(sessions.size()));
  } catch (const std::exception& e) {
    Log(LogLevel::error, "startup.failed").kv("reason", e.what());
    return 1;
  }
  return 0;
}
