// sip_framer_test.cpp — framing SIP messages out of a TCP/TLS byte stream.
#include <doctest/doctest.h>

#include <string>

#include "sip_framer.hpp"

using relais::Frame;
using relais::next_frame;

namespace {

const std::string kOptions =
    "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bK1\r\n"
    "Call-ID: a\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody";

Frame frame(const std::string& s, size_t max = 65536) { return next_frame(s.data(), s.size(), max); }

}  // namespace

TEST_CASE("a complete message is framed by its Content-Length, a second one is left for later") {
  Frame f = frame(kOptions + kOptions);
  REQUIRE(f.kind == Frame::Kind::message);
  CHECK(f.length == kOptions.size());
  CHECK(f.header_length == kOptions.size() - 4);
}

TEST_CASE("every prefix of a message waits for more bytes") {
  for (size_t n = 1; n < kOptions.size(); ++n) {
    CAPTURE(n);
    CHECK(frame(kOptions.substr(0, n)).kind == Frame::Kind::need_more);
  }
}

TEST_CASE("a CRLFCRLF keepalive is a ping and a lone CRLF is skipped") {
  CHECK(frame("\r\n\r\n").kind == Frame::Kind::ping);
  CHECK(frame("\r\n\r").kind == Frame::Kind::need_more);
  Frame skip = frame("\r\n" + kOptions);
  CHECK(skip.kind == Frame::Kind::skip);
  CHECK(skip.length == 2);
}

TEST_CASE("the compact form l frames the body too") {
  std::string m = "MESSAGE sip:a@b SIP/2.0\r\nv: SIP/2.0/TCP h;branch=z9hG4bK2\r\nl: 3\r\n\r\nabc";
  Frame f = frame(m);
  REQUIRE(f.kind == Frame::Kind::message);
  CHECK(f.length == m.size());
}

TEST_CASE("bad or lying Content-Length values are refused, not waited for") {
  auto with = [](const std::string& cl) {
    return "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nContent-Length: " + cl + "\r\n\r\n";
  };
  CHECK(frame(with("-1")).status == 400);
  CHECK(frame(with("ten")).status == 400);
  CHECK(frame(with("99999999999999999999")).status == 400);
  CHECK(frame(with("99999999")).status == 413);
  CHECK(frame("OPTIONS sip:x SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab").status == 400);
}

TEST_CASE("junk is refused from its first bytes, oversized headers before they end") {
  CHECK(frame(std::string("\x16\x03\x01\x02\x00", 5)).kind == Frame::Kind::error);  // TLS on a TCP port
  CHECK(frame("GET / HTTP/1.1\r\nHost: x\r\n\r\n").status == 400);
  CHECK(frame("OPTIONS sip:x SIP/2.0\r\nX: " + std::string(40000, 'a')).status == 400);
  CHECK(frame(std::string(9000, 'A')).status == 400);
  CHECK(frame("OPTIONS sip:x SIP/2.0\r\nX: " + std::string(3000, 'a'), 2048).kind == Frame::Kind::error);
}

TEST_CASE("responses are framed like requests") {
  std::string r = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h\r\nContent-Length: 0\r\n\r\n";
  Frame f = frame(r);
  REQUIRE(f.kind == Frame::Kind::message);
  CHECK(f.length == r.size());
}
