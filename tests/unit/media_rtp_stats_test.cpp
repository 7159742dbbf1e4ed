// media_rtp_stats_test.cpp — RFC 3550 receive statistics: loss from sequence numbers across a
// wrap, duplicates, restarts, and interarrival jitter.
#include <doctest/doctest.h>

#include "rtp_stats.hpp"

using namespace relais::media;

TEST_CASE("a gap in sequence numbers counts as loss, also across the 16-bit wrap") {
  RtpReceiveState s;
  uint16_t seq = 65530;
  for (int i = 0; i < 20; ++i, ++seq) {
    if (i == 7 || i == 8) continue;  // two lost right after the wrap
    s.update(seq, 160u * static_cast<uint32_t>(i), 1, 160u * static_cast<uint32_t>(i));
  }
  CHECK(s.expected() == 20);
  CHECK(s.received() == 18);
  CHECK(s.lost() == 2);
}

TEST_CASE("constant spacing has no jitter; alternating delay converges to it") {
  RtpReceiveState steady;
  for (uint32_t i = 0; i < 100; ++i) steady.update(static_cast<uint16_t>(i), i * 160, 7, 1000 + i * 160);
  CHECK(steady.jitter() == 0);
  RtpReceiveState wobbly;
  for (uint32_t i = 0; i < 500; ++i)
    wobbly.update(static_cast<uint16_t>(i), i * 160, 7, 1000 + i * 160 + (i % 2 ? 40 : 0));
  CHECK(wobbly.jitter() >= 38);
  CHECK(wobbly.jitter() <= 40);
}

TEST_CASE("a new SSRC or a huge jump restarts the count; duplicates do not raise loss") {
  RtpReceiveState s;
  for (uint16_t i = 0; i < 10; ++i) s.update(i, i * 160u, 1, i * 160u);
  s.update(5, 800, 1, 2000);  // late duplicate
  CHECK(s.lost() == -1);      // RFC 3550 A.3: duplicates make the cumulative loss negative
  s.update(30000, 0, 1, 3000);
  CHECK(s.expected() == 1);
  s.update(100, 0, 2, 4000);
  CHECK(s.expected() == 1);
  CHECK(s.received() == 1);
}

TEST_CASE("RTCP is told from RTP by the second byte as RFC 5761 says") {
  CHECK(is_rtcp_byte(200));
  CHECK(is_rtcp_byte(201));
  CHECK_FALSE(is_rtcp_byte(0));
  CHECK_FALSE(is_rtcp_byte(8 | 0x80));  // PCMA with the marker bit
  const uint8_t v2[] = {0x80, 0};
  const uint8_t v0[] = {0x00, 0};
  CHECK(is_rtp_version2(v2, 2));
  CHECK_FALSE(is_rtp_version2(v0, 2));
  CHECK_FALSE(is_rtp_version2(v2, 0));
}
