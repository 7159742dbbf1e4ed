// sip_rewrite_test.cpp — the edge's header edits between a phone's connection and Sofia.
#include <doctest/doctest.h>

#include <string>

#include "sip_rewrite.hpp"

using relais::FlowAddressing;

namespace {

FlowAddressing flow() {
  FlowAddressing f;
  f.transport = "TLS";
  f.peer_ip = "203.0.113.5";
  f.peer_port = 40000;
  f.source = "tls:203.0.113.5:40000";
  f.token = "7.0badcafe";
  f.record_route = "<sip:127.0.0.1:50001;transport=tcp;lr;rls-flow=7.0badcafe>";
  f.core_sent_by = "127.0.0.1:45000";
  f.public_sent_by = "192.0.2.1:5061";
  return f;
}

size_t head_length(const std::string& m) { return m.find("\r\n\r\n") + 4; }

std::string to_core(const std::string& m) {
  std::string out, why;
  REQUIRE(relais::rewrite_toward_core(m, head_length(m), flow(), out, why));
  return out;
}

std::string to_phone(const std::string& m) {
  std::string out, why;
  REQUIRE(relais::rewrite_toward_phone(m, head_length(m), flow(), out, why));
  return out;
}

}  // namespace

TEST_CASE("a phone's INVITE reaches Sofia over TCP with its flow, its source and a Record-Route") {
  std::string invite =
      "INVITE sip:102@example.com SIP/2.0\r\n"
      "Via: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bKa;rport;rls-flow=forged\r\n"
      "Record-Route: <sip:proxy.example.com;lr>\r\n"
      "From: <sip:101@example.com>;tag=1\r\nContent-Length: 3\r\n\r\nv=0";
  std::string out = to_core(invite);
  CHECK(out.find("Via: SIP/2.0/TCP 10.0.0.5:5061;branch=z9hG4bKa;rport;rls-src=\"tls:203.0.113.5:40000\";"
                 "rls-flow=7.0badcafe\r\n") != std::string::npos);
  CHECK(out.find("forged") == std::string::npos);
  // Ours on top: the edge is the hop nearest to Sofia.
  CHECK(out.find("Record-Route: " + flow().record_route + "\r\nRecord-Route: <sip:proxy") != std::string::npos);
  CHECK(out.substr(out.size() - 7) == "\r\n\r\nv=0");
}

TEST_CASE("REGISTER gets no Record-Route; a Via list in one header keeps its other entries") {
  std::string reg = "REGISTER sip:example.com SIP/2.0\r\nv: SIP/2.0/TLS a:1;branch=z9hG4bKb, SIP/2.0/UDP b:2;branch=x\r\n"
                    "Content-Length: 0\r\n\r\n";
  std::string out = to_core(reg);
  CHECK(out.find("Record-Route") == std::string::npos);
  CHECK(out.find("v: SIP/2.0/TCP a:1;branch=z9hG4bKb;") != std::string::npos);
  CHECK(out.find("v: SIP/2.0/UDP b:2;branch=x\r\n") != std::string::npos);
}

TEST_CASE("Sofia's answer goes back with the phone's transport and real address") {
  std::string ok = "SIP/2.0 200 OK\r\n"
                   "Via: SIP/2.0/TCP 10.0.0.5:5061;branch=z9hG4bKa;rport=50001;rls-src=\"tls:203.0.113.5:40000\";"
                   "rls-flow=7.0badcafe;received=127.0.0.1\r\n"
                   "Record-Route: <sip:127.0.0.1:50001;transport=tcp;lr;rls-flow=7.0badcafe>, <sip:proxy;lr>\r\n"
                   "Content-Length: 0\r\n\r\n";
  std::string out = to_phone(ok);
  CHECK(out.find("Via: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bKa;received=203.0.113.5;rport=40000\r\n") !=
        std::string::npos);
  CHECK(out.find("Record-Route: <sip:proxy;lr>\r\n") != std::string::npos);
  CHECK(out.find("rls-") == std::string::npos);
}

TEST_CASE("Sofia's request to a phone loses the edge's Route and shows the public address") {
  std::string bye = "BYE sip:101@10.0.0.5:5061;transport=tls SIP/2.0\r\n"
                    "Via: SIP/2.0/TCP 127.0.0.1:45000;branch=z9hG4bKc;rport\r\n"
                    "Route: <sip:127.0.0.1:50001;transport=tcp;lr;rls-flow=7.0badcafe>\r\n"
                    "Content-Length: 0\r\n\r\n";
  std::string out = to_phone(bye);
  CHECK(out.find("Route") == std::string::npos);
  CHECK(out.find("Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKc;rport\r\n") != std::string::npos);
}

TEST_CASE("the phone's answer to Sofia restores Sofia's Via and records the flow's route") {
  std::string ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKc;rport\r\n"
                   "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
  std::string out = to_core(ok);
  CHECK(out.find("Via: SIP/2.0/TCP 127.0.0.1:45000;branch=z9hG4bKc;rport\r\n") != std::string::npos);
  CHECK(out.find("Record-Route: " + flow().record_route) != std::string::npos);
  std::string bye_ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKd\r\nCSeq: 2 BYE\r\n\r\n";
  CHECK(to_core(bye_ok).find("Record-Route") == std::string::npos);
}

TEST_CASE("a message without a usable Via is refused") {
  std::string out, why;
  std::string none = "OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\n\r\n";
  CHECK_FALSE(relais::rewrite_toward_core(none, head_length(none), flow(), out, why));
  CHECK(why == "no Via");
  std::string bad = "OPTIONS sip:x SIP/2.0\r\nVia: HTTP/1.1 x\r\n\r\n";
  CHECK_FALSE(relais::rewrite_toward_core(bad, head_length(bad), flow(), out, why));
}

TEST_CASE("the edge's own error answer copies the transaction headers and adds a To tag") {
  std::string head = "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TLS a;branch=z9hG4bKe\r\nFrom: <sip:a@b>;tag=9\r\n"
                     "To: <sip:x>\r\nCall-ID: c1\r\nCSeq: 4 OPTIONS\r\nX-Big: aaaa";
  std::string r = relais::local_response(head, 413, "Message Too Large");
  CHECK(r.rfind("SIP/2.0 413 Message Too Large\r\n", 0) == 0);
  CHECK(r.find("To: <sip:x>;tag=") != std::string::npos);
  CHECK(r.find("X-Big") == std::string::npos);
  CHECK(relais::local_response("garbage\r\n\r\n", 400, "Bad").empty());
  CHECK(relais::local_response("SIP/2.0 200 OK\r\nVia: x\r\n\r\n", 400, "Bad").empty());
}
