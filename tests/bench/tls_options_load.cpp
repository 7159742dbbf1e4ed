// tls_options_load.cpp — OPTIONS round trips over TLS or TCP connections as fast as the server
// answers: `conns` connections, each keeping `window` requests in flight, one thread, poll().
// Built by tls_options.py into its temp dir (not part of the CMake build).
//
//   tls_options_load HOST PORT tls|tcp CONNS WINDOW WARMUP_S MEASURE_S
//
// Prints "start" after the warm-up (the script samples the server's CPU then), and at the end
// "end RESPONSES SECONDS" for the measured window, "errors N" for anything but 200.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;
  std::string out;   // bytes not written yet
  std::string tail;  // the end of what was read, for a "\r\n\r\n" split across reads
  long sent = 0;
};

std::string request(const char* host, int port, int conn, long n, bool tls) {
  char buf[512];
  snprintf(buf, sizeof buf,
           "OPTIONS sip:%s:%d SIP/2.0\r\nVia: SIP/2.0/%s 127.0.0.1:9;branch=z9hG4bK-%d-%ld;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:bench@bench.example>;tag=b%d\r\nTo: <sip:%s:%d>\r\n"
           "Call-ID: bench-%d-%ld\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
           host, port, tls ? "TLS" : "TCP", conn, n, conn, host, port, conn, n);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: %s HOST PORT tls|tcp CONNS WINDOW WARMUP_S MEASURE_S\n", argv[0]);
    return 2;
  }
  const char* host = argv[1];
  int port = atoi(argv[2]);
  bool tls = strcmp(argv[3], "tls") == 0;
  int nconns = atoi(argv[4]), window = atoi(argv[5]);
  double warmup = atof(argv[6]), measure = atof(argv[7]);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);  // speed, not trust, is measured here
  std::vector<Conn> conns(nconns);
  for (int i = 0; i < nconns; ++i) {
    Conn& c = conns[i];
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      perror("connect");
      return 1;
    }
    if (tls) {
      c.ssl = SSL_new(ctx);
      SSL_set_fd(c.ssl, c.fd);
      if (SSL_connect(c.ssl) != 1) {
        fprintf(stderr, "handshake failed\n");
        ERR_print_errors_fp(stderr);
        return 1;
      }
    }
    fcntl(c.fd, F_SETFL, O_NONBLOCK);
    for (int k = 0; k < window; ++k) c.out += request(host, port, i, c.sent++, tls);
  }
  long responses = 0, errors = 0, measured_from = -1;
  double start = now(), t_measure = 0;
  bool measuring = false;
  std::vector<pollfd> pfds(nconns);
  char buf[65536];
  while (true) {
    double t = now();
    if (!measuring && t - start >= warmup) {
      measuring = true;
      measured_from = responses;
      t_measure = t;
      printf("start\n");
      fflush(stdout);
    }
    if (measuring && t - t_measure >= measure) break;
    for (int i = 0; i < nconns; ++i) {
      pfds[i].fd = conns[i].fd;
      pfds[i].events = POLLIN | (conns[i].out.empty() ? 0 : POLLOUT);
      pfds[i].revents = 0;
    }
    if (poll(pfds.data(), pfds.size(), 100) < 0) break;
    for (int i = 0; i < nconns; ++i) {
      Conn& c = conns[i];
      if (!c.out.empty()) {
        int n = tls ? SSL_write(c.ssl, c.out.data(), static_cast<int>(c.out.size()))
                    : static_cast<int>(write(c.fd, c.out.data(), c.out.size()));
        if (n > 0) c.out.erase(0, n);
      }
      while (true) {
        int n = tls ? SSL_read(c.ssl, buf, sizeof buf) : static_cast<int>(read(c.fd, buf, sizeof buf));
        if (n <= 0) {
          if (n == 0 && !tls) {
            fprintf(stderr, "server closed\n");
            return 1;
          }
          break;
        }
        std::string data = c.tail + std::string(buf, n);
        // Every answer to our OPTIONS has an empty body: one "\r\n\r\n" = one response.
        size_t pos = 0, found;
        while ((found = data.find("\r\n\r\n", pos)) != std::string::npos) {
          size_t line = data.rfind("SIP/2.0 ", found);
          if (line == std::string::npos || data.compare(line, 12, "SIP/2.0 200 ") != 0) ++errors;
          ++responses;
          c.out += request(host, port, i, c.sent++, tls);
          pos = found + 4;
        }
        c.tail = data.substr(pos);
        if (c.tail.size() > 4096) c.tail.erase(0, c.tail.size() - 4096);
      }
    }
  }
  printf("end %ld %.3f\nerrors %ld\n", responses - measured_from, now() - t_measure, errors);
  return 0;
}
