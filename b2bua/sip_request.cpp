// sip_request.cpp — answering and releasing a server transaction.
#include "sip_request.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/tport.h>
#include <sys/socket.h>

#include "log.hpp"
#include "server_header.hpp"

#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

namespace relais {

namespace {
// nta keeps the reason-phrase pointer in the response it may retransmit later, so phrases
// must live for the process. Phrases come from our code and the operator's script, so the set
// stays small; past a bound we fall back to Sofia's standard phrase.
const char* stable_phrase(const char* phrase) {
  static std::set<std::string> phrases;
  // Phrases relayed from the far end are network input: only short ones are kept.
  if (!phrase || strlen(phrase) > 64) return nullptr;
  auto it = phrases.find(phrase);
  if (it != phrases.end()) return it->c_str();
  if (phrases.size() >= 1024) return nullptr;
  return phrases.insert(phrase).first->c_str();
}

// "a.b.c.d" without inet_ntop (which formats through sprintf): every request's source.
void ipv4_text(const in_addr& addr, std::string& out) {
  const auto* b = reinterpret_cast<const unsigned char*>(&addr.s_addr);
  char text[16];
  char* p = text;
  for (int i = 0; i < 4; ++i) {
    unsigned v = b[i];
    if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
    if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
    *p++ = static_cast<char>('0' + v % 10);
    if (i < 3) *p++ = '.';
  }
  out.assign(text, static_cast<size_t>(p - text));
}

bool same_address(const sockaddr* a, const sockaddr* b) {
  if (a->sa_family != b->sa_family) return false;
  if (a->sa_family == AF_INET) {
    auto* x = reinterpret_cast<const sockaddr_in*>(a);
    auto* y = reinterpret_cast<const sockaddr_in*>(b);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    auto* x = reinterpret_cast<const sockaddr_in6*>(a);
    auto* y = reinterpret_cast<const sockaddr_in6*>(b);
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return false;
}

// The datagram socket bound to `address`, or -1. Sofia has no call that returns a transport's
// descriptor, so we look for it among ours once per transport (as event_loop.cpp does for
// Sofia's epoll descriptor).
int find_udp_socket(const sockaddr* address) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int own = dirfd(dir), found = -1;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    int fd = atoi(entry->d_name);
    if (fd == own) continue;
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_DGRAM) continue;
    sockaddr_storage bound{};
    len = sizeof bound;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) continue;
    if (same_address(reinterpret_cast<const sockaddr*>(&bound), address)) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

struct UdpSocket {
  const tport_t* tport;
  sockaddr_storage address;
  int fd;
};
std::vector<UdpSocket>& udp_sockets() {
  static std::vector<UdpSocket> sockets;
  return sockets;
}

// The descriptor of a UDP transport, found once; -1 when it cannot be found (then nta sends).
// An entry is only trusted while the transport still has the address it was found for.
int udp_socket_of(const tport_t* tp) {
  const su_addrinfo_t* ai = tport_get_address(tp);
  if (!ai || !ai->ai_addr || ai->ai_addrlen > sizeof(sockaddr_storage)) return -1;
  auto& sockets = udp_sockets();
  for (const UdpSocket& s : sockets)
    if (s.tport == tp && same_address(reinterpret_cast<const sockaddr*>(&s.address), ai->ai_addr)) return s.fd;
  std::erase_if(sockets, [tp](const UdpSocket& s) { return s.tport == tp; });
  UdpSocket entry{tp, {}, find_udp_socket(ai->ai_addr)};
  memcpy(&entry.address, ai->ai_addr, ai->ai_addrlen);
  sockets.push_back(entry);
  return entry.fd;
}

void forget_udp_socket(int fd) {
  std::erase_if(udp_sockets(), [fd](const UdpSocket& s) { return s.fd == fd; });
}

// Appends one header as Sofia encodes it ("Name: value\r\n").
void append_header(std::string& out, const msg_header_t* h) {
  size_t at = out.size();
  size_t room = 256;
  for (;;) {
    out.resize(at + room);
    issize_t n = msg_header_e(out.data() + at, static_cast<isize_t>(room), h, 0);
    if (n < 0) {
      out.resize(at);
      return;
    }
    if (static_cast<size_t>(n) < room) {
      out.resize(at + static_cast<size_t>(n));
      return;
    }
    room = static_cast<size_t>(n) + 1;
  }
}

void append_unsigned(std::string& out, uint32_t v) {
  char buf[12];
  char* end = buf + sizeof buf;
  char* p = end;
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  out.append(p, static_cast<size_t>(end - p));
}

// A To tag for a response we send without a transaction (nta_agent_newtag does the same job
// for nta's stateless replies): a per-process random prefix and a counter.
void append_to_tag(std::string& out) {
  static uint64_t seed = [] {
    uint64_t v = 0;
    RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v);
    return v;
  }();
  static uint64_t counter = 0;
  uint64_t x = seed + 0x9e3779b97f4a7c15ULL * ++counter;  // splitmix64
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  static const char digits[] = "0123456789abcdef";
  out += ";tag=";
  for (int i = 0; i < 16; ++i) out += digits[(x >> (60 - 4 * i)) & 0xf];
}

// The Server header line, encoded again only when it changes (sbc.server_header on reload).
const std::string& server_line() {
  static const sip_server_t* encoded = nullptr;
  static std::string line;
  const sip_server_t* current = server_header();
  if (current != encoded) {
    line.clear();
    if (current) append_header(line, reinterpret_cast<const msg_header_t*>(current));
    encoded = current;
  }
  return line;
}
}  // namespace

SipRequest::SipRequest(nta_incoming_t* irq, const sip_t* sip)
    : irq_(irq), msg_(nta_incoming_getrequest(irq)), sip_(sip) {
  read_source();
}

SipRequest::SipRequest(nta_agent_t* agent, msg_t* msg, const sip_t* sip)
    : agent_(agent), msg_(msg), sip_(sip), in_callback_(false) {
  read_source();
}

void SipRequest::read_source() {
  if (su_addrinfo_t* ai = msg_ ? msg_addrinfo(msg_) : nullptr) {
    source_.transport = ai->ai_protocol == IPPROTO_TCP ? "tcp" : "udp";
    char text[INET6_ADDRSTRLEN] = {0};
    const sockaddr* sa = ai->ai_addr;
    if (sa && sa->sa_family == AF_INET6) {
      auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
      inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
      source_.port = ntohs(in6->sin6_port);
      source_.ip = text;
    } else if (sa && sa->sa_family == AF_INET) {
      auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
      ipv4_text(in4->sin_addr, source_.ip);
      source_.port = ntohs(in4->sin_port);
    }
    if (ai->ai_protocol == IPPROTO_TCP) read_edge_source();
  }
}

// Every TCP message reached Sofia through the stream edge (tls/), on Sofia's only TCP listener
// (127.0.0.1); the phone's real address and flow are in the top Via, where the edge put them
// after removing any a phone had sent itself.
void SipRequest::read_edge_source() {
  const sip_via_t* via = sip_ ? sip_->sip_via : nullptr;
  const char* src = via ? msg_params_find(via->v_params, "rls-src") : nullptr;
  const char* flow = via ? msg_params_find(via->v_params, "rls-flow") : nullptr;
  if (!src || !flow) return;
  std::string text = src;
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') text = text.substr(1, text.size() - 2);
  // "tls:203.0.113.5:5061" or "tcp:[2001:db8::1]:5060"
  size_t colon = text.find(':'), last = text.rfind(':');
  if (colon == std::string::npos || last <= colon) return;
  std::string ip = text.substr(colon + 1, last - colon - 1);
  if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  source_.transport = text.substr(0, colon);
  source_.ip = ip;
  source_.port = atoi(text.c_str() + last + 1);
  source_.flow = flow;
}

SipRequest::~SipRequest() {
  if (!answered_) respond(500, "Request Not Handled");
  if (irq_ && !in_callback_) nta_incoming_destroy(irq_);
  if (msg_) msg_destroy(msg_);
}

void SipRequest::release_transaction() {
  if (in_callback_ || !answered_) return;
  if (irq_) nta_incoming_destroy(irq_);  // nta frees it when its timers are done
  irq_ = nullptr;
  if (msg_) msg_destroy(msg_);
  msg_ = nullptr;
  sip_ = nullptr;
}

std::string SipRequest::call_id() const {
  return sip_ && sip_->sip_call_id && sip_->sip_call_id->i_id ? sip_->sip_call_id->i_id : "";
}

const char* SipRequest::method_name() const {
  return sip_ && sip_->sip_request ? sip_->sip_request->rq_method_name : "?";
}

bool SipRequest::respond(int status, const char* phrase, tag_type_t tag, tag_value_t value, ...) {
  if (answered_) return false;
  if (status >= 200) {
    answered_ = true;
    status_ = status;
  }
  ta_list ta;
  ta_start(ta, tag, value);
  if (irq_) {
    nta_incoming_treply(irq_, status, stable_phrase(phrase), SIPTAG_SERVER(server_header()), ta_tags(ta));
  } else if (agent_ && msg_) {
    // nta_msg_treply consumes a reference; ours keeps `sip_` valid until we are destroyed.
    nta_msg_treply(agent_, msg_ref_create(msg_), status, stable_phrase(phrase), SIPTAG_SERVER(server_header()),
                   ta_tags(ta));
  }
  ta_end(ta);
  return true;
}

bool SipRequest::respond_text(int status, const char* phrase, std::string_view extra) {
  if (answered_) return false;
  if (status >= 200 && send_text(status, phrase, extra)) {
    answered_ = true;
    status_ = status;
    return true;
  }
  std::string headers(extra);  // Sofia wants a C string
  return respond(status, phrase, TAG_IF(!headers.empty(), SIPTAG_HEADER_STR(headers.c_str())), TAG_END());
}

// The response nta_msg_treply would build (status line; Via, Record-Route, From, To with a
// tag, Call-ID and CSeq from the request; our headers; Server; Content-Length: 0), written as
// text and sent where nta would send it: the top Via carries rport (NTATAG_SERVER_RPORT(2)),
// so to the source address, from the socket the request arrived on. False when that does not
// apply (not UDP, not during Sofia's delivery, maddr or sigcomp); then nta answers.
bool SipRequest::send_text(int status, const char* phrase, std::string_view extra) {
  if (irq_ || !agent_ || !msg_ || !sip_ || !sip_->sip_request) return false;
  const sip_via_t* via = sip_->sip_via;
  if (!via || !via->v_rport || via->v_maddr || via->v_comp || !sip_->sip_from || !sip_->sip_to ||
      !sip_->sip_call_id || !sip_->sip_cseq)
    return false;
  tport_t* tp = tport_delivered_by(nta_agent_tports(agent_), msg_);
  if (!tp || !tport_is_udp(tp)) return false;
  su_addrinfo_t* ai = msg_addrinfo(msg_);
  if (!ai || !ai->ai_addr || ai->ai_protocol != IPPROTO_UDP) return false;
  int fd = udp_socket_of(tp);
  if (fd < 0) return false;

  if (!phrase || !*phrase) phrase = sip_status_phrase(status);
  if (!phrase) phrase = "";
  for (const char* p = phrase; *p; ++p)  // a phrase from a script goes on the wire as it is
    if (static_cast<unsigned char>(*p) < 0x20 && *p != '\t') return false;
  static std::string out;  // the event-loop thread's; keeps its capacity between responses
  out.clear();
  if (status < 100 || status > 699) return false;
  char code[4] = {static_cast<char>('0' + status / 100), static_cast<char>('0' + status / 10 % 10),
                  static_cast<char>('0' + status % 10), ' '};
  out.append("SIP/2.0 ").append(code, sizeof code).append(phrase).append("\r\n");
  for (const sip_via_t* v = via; v; v = v->v_next) append_header(out, reinterpret_cast<const msg_header_t*>(v));
  for (const sip_record_route_t* r = sip_->sip_record_route; r; r = r->r_next)
    append_header(out, reinterpret_cast<const msg_header_t*>(r));
  append_header(out, reinterpret_cast<const msg_header_t*>(sip_->sip_from));
  append_header(out, reinterpret_cast<const msg_header_t*>(sip_->sip_to));
  if (!sip_->sip_to->a_tag && out.size() >= 2 && out.compare(out.size() - 2, 2, "\r\n") == 0) {
    out.resize(out.size() - 2);
    append_to_tag(out);
    out += "\r\n";
  }
  // Call-ID and CSeq written as their encoders would (sip_call_id_e, sip_cseq_e).
  const char* method = sip_->sip_cseq->cs_method_name;
  if (!sip_->sip_call_id->i_id || !method) return false;
  out.append("Call-ID: ").append(sip_->sip_call_id->i_id).append("\r\nCSeq: ");
  append_unsigned(out, sip_->sip_cseq->cs_seq);
  out.append(" ").append(method).append("\r\n");
  out.append(extra);
  out.append(server_line());
  out.append("Content-Length: 0\r\n\r\n");

  if (sendto(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT, ai->ai_addr, ai->ai_addrlen) < 0) {
    if (errno == EBADF || errno == ENOTSOCK) {  // not Sofia's socket any more: let nta send
      forget_udp_socket(fd);
      return false;
    }
    // Like any lost datagram (e.g. a full socket buffer): the client retransmits.
  }
  return true;
}

}  // namespace relais
