// http_api.hpp — the operator's HTTP endpoint on the event loop (libevent evhttp):
//   GET /health                      200 "ok" while the loop runs
//   GET /metrics                     Prometheus text exposition
//   GET /v1/registrations?aor=A      the AoR's current bindings as JSON
//   POST /v1/reload                  what SIGHUP does; 200 or 500 with the error
// Bind it to loopback or a management network: it has no authentication.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "location_store.hpp"

struct evhttp;
struct evhttp_request;

namespace relais {

class EventLoop;

class HttpApi {
 public:
  // Current counter values, gathered when /metrics is scraped.
  using MetricsSource = std::function<std::string()>;

  // Reloads config and script; returns an empty string or the error (file:line: message).
  using Reload = std::function<std::string()>;

  HttpApi(EventLoop& loop, LocationStore& store, MetricsSource metrics, Reload reload)
      : loop_(loop), store_(store), metrics_(std::move(metrics)), reload_(std::move(reload)) {}
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  // `listen` is "HOST:PORT" ("[::1]:8089" for IPv6).
  bool start(const std::string& listen, std::string& error);

 private:
  static void on_request(evhttp_request* req, void* arg);
  void handle(evhttp_request* req);
  void registrations(evhttp_request* req, const std::string& aor);

  EventLoop& loop_;
  LocationStore& store_;
  MetricsSource metrics_;
  Reload reload_;
  evhttp* http_ = nullptr;
};

}  // namespace relais
