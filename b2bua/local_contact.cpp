// local_contact.cpp — choosing our Contact toward a peer.
#include "local_contact.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace relais {

namespace {

std::string unbracket(const std::string& host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

}  // namespace

std::string local_address_toward(const std::string& peer_text) {
  std::string peer = unbracket(peer_text);
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, peer.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(5060);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, peer.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(5060);
    len = sizeof *v6;
  } else {
    return {};
  }
  int fd = socket(ss.ss_family, SOCK_DGRAM, 0);
  if (fd < 0) return {};
  std::string out;
  sockaddr_storage local{};
  socklen_t local_len = sizeof local;
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) == 0) {
    char text[INET6_ADDRSTRLEN] = {0};
    if (local.ss_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr, text, sizeof text);
    else
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&local)->sin_addr, text, sizeof text);
    out = text;
  }
  close(fd);
  return out;
}

std::string local_contact(const std::vector<ListenAddress>& listening, const std::string& transport,
                          const std::string& peer_host, const std::string& user) {
  std::string peer = unbracket(peer_host);
  bool v6 = peer.find(':') != std::string::npos;
  const ListenAddress* pick = nullptr;
  for (const ListenAddress& a : listening) {
    if (a.proto == transport && a.ipv6() == v6) {
      pick = &a;
      break;
    }
  }
  if (!pick && !listening.empty()) pick = &listening.front();
  if (!pick) return {};
  std::string host = pick->host;
  if (host == "0.0.0.0" || host == "::") {
    // A wildcard address in a Contact is unroutable (RFC 3261 §8.1.1.8 wants a reachable URI).
    host = local_address_toward(peer);
    if (host.empty()) host = pick->ipv6() ? "::1" : "127.0.0.1";
  }
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::string contact = "<sip:" + user + "@" + host + ":" + std::to_string(pick->port);
  if (pick->proto != "udp") contact += ";transport=" + pick->proto;
  return contact + ">";
}

}  // namespace relais
