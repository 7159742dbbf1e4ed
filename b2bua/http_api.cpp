// http_api.cpp — health, metrics and registration queries over HTTP.
#include "http_api.hpp"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <ctime>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "event_loop.hpp"
#include "log.hpp"

namespace relais {

namespace {

void reply(evhttp_request* req, int code, const char* reason, const std::string& body, const char* type) {
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
  evbuffer* out = evbuffer_new();
  evbuffer_add(out, body.data(), body.size());
  evhttp_send_reply(req, code, reason, out);
  evbuffer_free(out);
}

}  // namespace

HttpApi::~HttpApi() {
  if (http_) evhttp_free(http_);
}

bool HttpApi::start(const std::string& listen, std::string& error) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    error = "http.listen: expected HOST:PORT, got '" + listen + "'";
    return false;
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = atoi(listen.c_str() + colon + 1);
  http_ = evhttp_new(loop_.base());
  if (!http_ || port <= 0 || evhttp_bind_socket(http_, host.c_str(), static_cast<uint16_t>(port)) != 0) {
    error = "http.listen: cannot listen on " + listen;
    return false;
  }
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
  evhttp_set_max_headers_size(http_, 8192);
  evhttp_set_max_body_size(http_, 0);
  evhttp_set_timeout(http_, 10);
  evhttp_set_gencb(http_, on_request, this);
  return true;
}

void HttpApi::on_request(evhttp_request* req, void* arg) { static_cast<HttpApi*>(arg)->handle(req); }

void HttpApi::handle(evhttp_request* req) {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* path = uri ? evhttp_uri_get_path(uri) : nullptr;
  std::string p = path ? path : "";
  bool post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
  if (p == "/v1/reload") {
    if (!post) return reply(req, 405, "Method Not Allowed", "use POST\n", "text/plain");
    std::string error = reload_ ? reload_() : "reload not available";
    nlohmann::json body = error.empty() ? nlohmann::json{{"ok", true}} : nlohmann::json{{"ok", false}, {"error", error}};
    return reply(req, error.empty() ? 200 : 500, error.empty() ? "OK" : "Reload Failed",
                 body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json");
  }
  if (post) return reply(req, 405, "Method Not Allowed", "use GET\n", "text/plain");
  if (p == "/health") return reply(req, 200, "OK", "ok\n", "text/plain");
  if (p == "/metrics") return reply(req, 200, "OK", metrics_(), "text/plain; version=0.0.4");
  if (p == "/v1/registrations") {
    evkeyvalq query;
    const char* q = evhttp_uri_get_query(uri);
    std::string aor;
    if (q && evhttp_parse_query_str(q, &query) == 0) {
      if (const char* v = evhttp_find_header(&query, "aor")) aor = v;
      evhttp_clear_headers(&query);
    }
    if (aor.empty() || aor.size() > 512) return reply(req, 400, "Bad Request", "{\"error\":\"aor parameter required\"}\n", "application/json");
    return registrations(req, aor);
  }
  reply(req, 404, "Not Found", "not found\n", "text/plain");
}

void HttpApi::registrations(evhttp_request* req, const std::string& aor) {
  int64_t now = static_cast<int64_t>(time(nullptr));
  // The request object stays valid until we reply; libevent frees it if the client goes away
  // only after a reply, so an async store answer is safe here.
  store_.lookup(aor, now, [req, aor, now](const std::string& error, std::vector<Binding> bindings) {
    if (!error.empty()) {
      nlohmann::json e = {{"error", error}};
      return reply(req, 503, "Service Unavailable", e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json");
    }
    nlohmann::json list = nlohmann::json::array();
    for (const Binding& b : bindings) {
      list.push_back({{"contact", b.contact},         {"expires", b.expires_at - now}, {"received", b.received},
                      {"user_agent", b.user_agent},   {"node", b.node},                {"call_id", b.call_id},
                      {"cseq", b.cseq},               {"q", b.q_milli < 0 ? 1.0 : b.q_milli / 1000.0},
                      {"instance", b.instance},       {"attrs", b.attrs}});
    }
    nlohmann::json body = {{"aor", aor}, {"bindings", list}};
    // User-Agent and contacts come from the network and may not be UTF-8.
    reply(req, 200, "OK", body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json");
  });
}

}  // namespace relais
