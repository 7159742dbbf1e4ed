// relaisctl.cpp — the operator's command line for a running relais, over its HTTP endpoint
// (http.listen in the config): reload, health, metrics, registrations.
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

void usage() {
  printf(
      "relaisctl — control a running relais through its HTTP endpoint\n"
      "\n"
      "Usage: relaisctl [--http HOST:PORT] COMMAND\n"
      "  reload               reload config and script (like SIGHUP); fails with the file:line error\n"
      "  health               prints ok when relais answers\n"
      "  metrics              Prometheus metrics\n"
      "  registrations AOR    bindings of an address-of-record, e.g. 100@office.example\n"
      "\n"
      "--http defaults to $RELAIS_HTTP or 127.0.0.1:8089 (config key http.listen).\n"
      "Exit status: 0 on success, 1 when relais answered an error, 2 when it could not be reached.\n");
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// One HTTP/1.0 request; returns the status code (0 if unreachable) and fills `body`.
int http(const std::string& endpoint, const char* method, const std::string& path, std::string& body) {
  size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos) return 0;
  std::string host = endpoint.substr(0, colon), port = endpoint.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return 0;
  int fd = socket(res->ai_family, SOCK_STREAM, 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  bool ok = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0;
  freeaddrinfo(res);
  if (!ok) {
    if (fd >= 0) close(fd);
    return 0;
  }
  std::string request = std::string(method) + " " + path + " HTTP/1.0\r\nHost: " + endpoint + "\r\nContent-Length: 0\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return 0;
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 && response.size() < (16u << 20)) response.append(buf, static_cast<size_t>(n));
  close(fd);
  int status = 0;
  if (sscanf(response.c_str(), "HTTP/%*s %d", &status) != 1) return 0;
  size_t split = response.find("\r\n\r\n");
  body = split == std::string::npos ? "" : response.substr(split + 4);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  const char* env = getenv("RELAIS_HTTP");
  std::string endpoint = env ? env : "127.0.0.1:8089";
  int i = 1;
  if (i + 1 < argc && strcmp(argv[i], "--http") == 0) {
    endpoint = argv[i + 1];
    i += 2;
  }
  if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
    usage();
    return i >= argc ? 2 : 0;
  }
  std::string command = argv[i];
  std::string body;
  int status = 0;
  if (command == "reload") {
    status = http(endpoint, "POST", "/v1/reload", body);
  } else if (command == "health") {
    status = http(endpoint, "GET", "/health", body);
  } else if (command == "metrics") {
    status = http(endpoint, "GET", "/metrics", body);
  } else if (command == "registrations" && i + 1 < argc) {
    status = http(endpoint, "GET", "/v1/registrations?aor=" + url_encode(argv[i + 1]), body);
  } else {
    fprintf(stderr, "relaisctl: unknown command '%s'. Try 'relaisctl --help'.\n", command.c_str());
    return 2;
  }
  if (status == 0) {
    fprintf(stderr, "relaisctl: cannot reach relais at %s (is http.listen set?)\n", endpoint.c_str());
    return 2;
  }
  fputs(body.c_str(), status == 200 ? stdout : stderr);
  return status == 200 ? 0 : 1;
}
