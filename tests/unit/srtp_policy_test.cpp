// srtp_policy_test.cpp — SRTP policy per user/trunk/default from the config, what an SDP body
// uses, when a caller's offer is refused (488) and the transport asked for on the callee's leg.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config.hpp"
#include "srtp_policy.hpp"

using namespace relais;

namespace {

const char* kPlain = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const char* kSrtp =
    "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n";

Config load(const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / ("relais-srtp-policy-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "c.lua").string();
  std::ofstream(path) << text;
  Config cfg;
  std::string error;
  REQUIRE_MESSAGE(load_config(path, {}, cfg, error), error);
  return cfg;
}

}  // namespace

TEST_CASE("an SDP body is SRTP only when every active RTP stream is SAVP with a=crypto") {
  CHECK(sdp_security(kPlain) == SdpSecurity::plain);
  CHECK(sdp_security(kSrtp) == SdpSecurity::srtp);
  CHECK(sdp_security("v=0\r\nm=audio 4000 RTP/SAVP 0\r\n") == SdpSecurity::plain);  // SAVP without a key
  CHECK(sdp_security(std::string(kSrtp) + "m=video 5000 RTP/AVP 96\r\n") == SdpSecurity::plain);
  CHECK(sdp_security(std::string(kSrtp) + "m=video 0 RTP/AVP 96\r\n") == SdpSecurity::srtp);  // disabled
  CHECK(sdp_security("v=0\r\nm=image 4000 udptl t38\r\n") == SdpSecurity::none);
  CHECK(sdp_security("") == SdpSecurity::none);
  CHECK(sdp_security("m=") == SdpSecurity::none);
  CHECK(sdp_profile(kSrtp) == "RTP/SAVP");
  CHECK(sdp_profile(kPlain) == "RTP/AVP");
}

TEST_CASE("policies come from the user, the trunk, then media.srtp") {
  Config cfg = load(
      "return { domain = 'example.org', media = { srtp = 'never' },"
      " users = { ['101'] = { password = 'p', srtp = 'mandatory' }, ['102'] = { password = 'p' } },"
      " trunks = { op = { proxy = 'sip:192.0.2.1', srtp = 'optional' } } }");
  CHECK(caller_srtp_policy(cfg, "101", "") == SrtpPolicy::mandatory);
  CHECK(caller_srtp_policy(cfg, "102", "") == SrtpPolicy::never);
  CHECK(caller_srtp_policy(cfg, "", "op") == SrtpPolicy::optional);
  CHECK(caller_srtp_policy(cfg, "", "") == SrtpPolicy::never);
  CHECK(target_srtp_policy(cfg, "101") == SrtpPolicy::mandatory);
  CHECK(target_srtp_policy(cfg, "101@example.org") == SrtpPolicy::mandatory);
  CHECK(target_srtp_policy(cfg, "101@elsewhere.net") == SrtpPolicy::never);
  CHECK(target_srtp_policy(cfg, "trunk:op/5550100") == SrtpPolicy::optional);
  CHECK(target_srtp_policy(cfg, "sip:101@192.0.2.7") == SrtpPolicy::never);
  CHECK(srtp_transport_for(SrtpPolicy::mandatory) == "RTP/SAVP");
  CHECK(srtp_transport_for(SrtpPolicy::never) == "RTP/AVP");
  CHECK(srtp_transport_for(SrtpPolicy::optional) == "");
}

TEST_CASE("a bad srtp value in the config is an error naming its key") {
  auto dir = std::filesystem::temp_directory_path() / ("relais-srtp-policy-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  for (const char* text : {"return { media = { srtp = 'always' } }",
                           "return { users = { a = { password = 'p', srtp = 'yes' } } }",
                           "return { trunks = { t = { proxy = 'sip:192.0.2.1', srtp = 'sometimes' } } }"}) {
    auto path = (dir / "bad.lua").string();
    std::ofstream(path) << text;
    Config cfg;
    std::string error;
    CHECK_FALSE(load_config(path, {}, cfg, error));
    CHECK_MESSAGE(error.find("srtp") != std::string::npos, error);
  }
}
