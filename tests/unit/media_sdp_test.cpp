// media_sdp_test.cpp — SDP reading and the relay's rewrite (c=, m= ports, a=rtcp, rtcp-mux,
// ICE removal, several streams), compared with the expected body with ports filled in.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "sdp.hpp"

using namespace relais::media;

namespace {

const char* kTwoStreams =
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 10.0.0.5\r\n"
    "s=-\r\n"
    "c=IN IP4 10.0.0.5\r\n"
    "t=0 0\r\n"
    "a=ice-lite\r\n"
    "m=audio 49170 RTP/AVP 8 101\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=rtcp:49171\r\n"
    "a=ice-ufrag:F7gI\r\n"
    "a=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n"
    "a=candidate:1 1 UDP 2130706431 10.0.0.5 49170 typ host\r\n"
    "a=sendrecv\r\n"
    "m=video 51372 RTP/AVP 96\r\n"
    "c=IN IP4 10.0.0.6\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=rtcp-mux\r\n";

// The expected output with PORT_n placeholders for the relay ports.
std::string fill(std::string text, const std::vector<uint16_t>& ports) {
  for (size_t i = 0; i < ports.size(); ++i) {
    for (int rtcp = 1; rtcp >= 0; --rtcp) {
      std::string key = "PORT_" + std::to_string(i) + (rtcp ? "+1" : "");
      for (size_t at; (at = text.find(key)) != std::string::npos;)
        text.replace(at, key.size(), std::to_string(ports[i] + rtcp));
    }
  }
  return text;
}

}  // namespace

TEST_CASE("each m= section's address, ports, mux and clock rate are read") {
  std::string error;
  auto sdp = sdp_parse(kTwoStreams, error);
  REQUIRE_MESSAGE(sdp, error);
  REQUIRE(sdp->media.size() == 2);
  CHECK(sdp->media[0].type == "audio");
  CHECK(sdp->media[0].port == 49170);
  CHECK(sdp->media[0].address == "10.0.0.5");
  CHECK(sdp->media[0].rtcp_port == 49171);
  CHECK_FALSE(sdp->media[0].rtcp_mux);
  CHECK(sdp->media[0].clock_rate == 8000);
  CHECK(sdp->media[1].address == "10.0.0.6");
  CHECK(sdp->media[1].rtcp_mux);
  CHECK(sdp->media[1].clock_rate == 90000);
  CHECK(sdp->media[1].rtcp_port == 51373);
}

TEST_CASE("the rewrite points every stream at the relay and removes ICE") {
  std::string error;
  auto sdp = sdp_parse(kTwoStreams, error);
  REQUIRE(sdp);
  SdpRewrite opts;
  opts.address = "192.0.2.1";
  opts.replace_origin = true;
  opts.remove_ice = true;
  std::vector<uint16_t> ports = {30000, 30010};
  bool mux[] = {false, true};
  std::string out = sdp_rewrite(*sdp, opts, ports, mux);
  std::string want = fill(
      "v=0\r\n"
      "o=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\n"
      "s=-\r\n"
      "c=IN IP4 192.0.2.1\r\n"
      "t=0 0\r\n"
      "m=audio PORT_0 RTP/AVP 8 101\r\n"
      "a=rtpmap:8 PCMA/8000\r\n"
      "a=rtpmap:101 telephone-event/8000\r\n"
      "a=sendrecv\r\n"
      "a=rtcp:PORT_0+1\r\n"
      "m=video PORT_1 RTP/AVP 96\r\n"
      "c=IN IP4 192.0.2.1\r\n"
      "a=rtpmap:96 H264/90000\r\n"
      "a=rtcp-mux\r\n",
      ports);
  CHECK(out == want);
  // The result is itself valid SDP that reads back the relay's address and ports.
  auto again = sdp_parse(out, error);
  REQUIRE(again);
  CHECK(again->media[0].address == "192.0.2.1");
  CHECK(again->media[0].port == 30000);
  CHECK(again->media[0].rtcp_port == 30001);
  CHECK(again->media[1].port == 30010);
}

TEST_CASE("without replace-origin and ICE removal those lines stay, proto can be forced") {
  std::string error;
  auto sdp = sdp_parse(kTwoStreams, error);
  REQUIRE(sdp);
  SdpRewrite opts;
  opts.address = "192.0.2.1";
  opts.transport_protocol = "RTP/AVPF";
  std::vector<uint16_t> ports = {40000, 40002};
  bool mux[] = {false, false};
  std::string out = sdp_rewrite(*sdp, opts, ports, mux);
  CHECK(out.find("o=alice 2890844526 2890844526 IN IP4 10.0.0.5\r\n") != std::string::npos);
  CHECK(out.find("a=candidate:1 1 UDP") != std::string::npos);
  CHECK(out.find("m=audio 40000 RTP/AVPF 8 101\r\n") != std::string::npos);
  CHECK(out.find("a=rtcp:40003\r\n") != std::string::npos);
  CHECK(out.find("a=rtcp-mux") == std::string::npos);
  CHECK(out.find("10.0.0.6") == std::string::npos);
}

TEST_CASE("a disabled stream keeps port 0 and gets no a=rtcp") {
  std::string error;
  auto sdp = sdp_parse("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\n"
                       "m=audio 4000 RTP/AVP 0\nm=video 0 RTP/AVP 31\n", error);
  REQUIRE_MESSAGE(sdp, error);
  SdpRewrite opts;
  opts.address = "127.0.0.1";
  std::vector<uint16_t> ports = {30000, 30004};
  bool mux[] = {false, false};
  std::string out = sdp_rewrite(*sdp, opts, ports, mux);
  CHECK(out.find("m=video 0 RTP/AVP 31\r\n") != std::string::npos);
  CHECK(out.find("a=rtcp:30005") == std::string::npos);
  CHECK(out.find("a=rtcp:30001") != std::string::npos);
  CHECK(sdp->media[1].clock_rate == 90000);  // static payload type 31 (H.261)
}

TEST_CASE("SDP the relay cannot read is refused with a reason") {
  const char* bad[] = {
      "",
      "hello world",
      "v=0\r\nm=audio 1 RTP/AVP 0\r\n",                              // no c= anywhere
      "v=0\r\nc=IN IP6 ::1\r\nm=audio 1000 RTP/AVP 0\r\n",          // IPv6 not relayed
      "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n",     // port out of range
      "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio\r\n",
      "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1000 RTP/AVP 0\r\na=rtcp:x\r\n",
      "v=0\r\nX=bad\r\n",
  };
  for (const char* text : bad) {
    std::string error;
    CAPTURE(text);
    CHECK_FALSE(sdp_parse(text, error));
    CHECK_FALSE(error.empty());
  }
  std::string error;
  CHECK_FALSE(sdp_parse(std::string(70000, 'a'), error));
  std::string many = "v=0\r\nc=IN IP4 1.2.3.4\r\n";
  for (int i = 0; i < 40; ++i) many += "m=audio 1000 RTP/AVP 0\r\n";
  CHECK_FALSE(sdp_parse(many, error));
}
