// media_dtmf_test.cpp — RFC 4733 payloads both ways, and the receiver's rule: one key per event
// (identified by its RTP timestamp) however often its reports and end reports repeat; an event
// whose end is lost is still reported; the notification rate is bounded. In-band keys (spandsp)
// from generated dual tones.
#include <doctest/doctest.h>

#include <algorithm>

#include <vector>

#include "dtmf_detector.hpp"
#include "dtmf_event.hpp"
#include "g711.hpp"
#include "inband_dtmf.hpp"
#include "tone_generator.hpp"

using namespace relais::media;

namespace {
constexpr int64_t kMs = 1'000'000;

Rfc4733Event ev(uint8_t event, bool end, uint16_t duration, uint8_t volume = 10) {
  Rfc4733Event e;
  e.event = event;
  e.end = end;
  e.duration = duration;
  e.volume = volume;
  return e;
}

// A key as a phone sends it: updates every 20 ms, then the end report three times.
int send_key(DtmfDetector& d, uint32_t ts, uint8_t event, int64_t& now, DtmfKey* got, uint32_t ssrc = 7) {
  int n = 0;
  DtmfKey out[2];
  for (int k = 1; k <= 5; ++k, now += 20 * kMs)
    for (int i = 0, c = d.on_packet(ssrc, ts, ev(event, false, static_cast<uint16_t>(160 * k)), now, out); i < c; ++i)
      got[n++] = out[i];
  for (int r = 0; r < 3; ++r)
    for (int i = 0, c = d.on_packet(ssrc, ts, ev(event, true, 960), now, out); i < c; ++i) got[n++] = out[i];
  return n;
}
}  // namespace

TEST_CASE("an RFC 4733 event report parses and writes back byte for byte") {
  const uint8_t wire[4] = {0x0b, 0x8a, 0x03, 0x20};  // '#', end, volume 10, duration 800
  Rfc4733Event e;
  REQUIRE(rfc4733_parse(wire, 4, e));
  CHECK(e.event == 11);
  CHECK(e.end);
  CHECK(e.volume == 10);
  CHECK(e.duration == 800);
  uint8_t out[4];
  rfc4733_write(e, out);
  CHECK(std::equal(out, out + 4, wire));
  const uint8_t reserved[4] = {0x05, 0x4a, 0x00, 0xa0};  // R bit set: ignored
  REQUIRE(rfc4733_parse(reserved, 4, e));
  CHECK_FALSE(e.end);
  CHECK(e.volume == 10);
  CHECK_FALSE(rfc4733_parse(wire, 3, e));
}

TEST_CASE("DTMF keys map to event codes 0-15 and back") {
  CHECK(dtmf_key_event('0') == 0);
  CHECK(dtmf_key_event('9') == 9);
  CHECK(dtmf_key_event('*') == 10);
  CHECK(dtmf_key_event('#') == 11);
  CHECK(dtmf_key_event('A') == 12);
  CHECK(dtmf_key_event('d') == 15);
  CHECK(dtmf_key_event('x') == -1);
  CHECK(dtmf_event_key(11) == '#');
  CHECK(dtmf_event_key(16) == '\0');  // flash is not DTMF
}

TEST_CASE("a key with its three end reports gives one key, on the first end report") {
  DtmfDetector d;
  int64_t now = 0;
  DtmfKey got[8];
  CHECK(send_key(d, 1000, 5, now, got) == 1);
  CHECK(got[0].key == '5');
  CHECK(got[0].duration_ms == 120);
  CHECK(got[0].volume == 10);
  DtmfKey out[2];
  CHECK(d.on_packet(7, 1000, ev(5, true, 960), now, out) == 0);  // a fourth, late end report
  CHECK(d.deadline() == INT64_MAX);
}

TEST_CASE("the same key pressed twice is two keys (two timestamps); a repeated event is one") {
  DtmfDetector d;
  int64_t now = 0;
  DtmfKey got[8];
  CHECK(send_key(d, 1000, 1, now, got) == 1);
  CHECK(send_key(d, 3000, 1, now, got) == 1);
  CHECK(send_key(d, 3000, 1, now, got) == 0);  // the whole event again (retransmitted)
  CHECK(send_key(d, 1000, 1, now, got) == 0);  // an older event late
}

TEST_CASE("an event whose end never comes is reported when the next one starts or after 2 s") {
  DtmfDetector d;
  DtmfKey out[2];
  CHECK(d.on_packet(7, 100, ev(2, false, 160), 0, out) == 0);
  CHECK(d.on_packet(7, 100, ev(2, false, 320), 20 * kMs, out) == 0);
  // Next key begins: the pending one is reported, then this one on its end.
  REQUIRE(d.on_packet(7, 900, ev(3, false, 160), 200 * kMs, out) == 1);
  CHECK(out[0].key == '2');
  CHECK(out[0].duration_ms == 40);
  CHECK(d.deadline() == 200 * kMs + DtmfDetector::kMissingEndNs);
  DtmfKey k;
  CHECK_FALSE(d.poll(2000 * kMs, k));
  REQUIRE(d.poll(2200 * kMs, k));
  CHECK(k.key == '3');
  CHECK_FALSE(d.poll(5000 * kMs, k));
  CHECK(d.on_packet(7, 900, ev(3, true, 800), 5000 * kMs, out) == 0);  // its late end: already reported
}

TEST_CASE("a one-packet key (only an end report arrived) is reported; non-DTMF events are not") {
  DtmfDetector d;
  DtmfKey out[2];
  REQUIRE(d.on_packet(7, 500, ev(12, true, 800), 0, out) == 1);
  CHECK(out[0].key == 'A');
  CHECK(d.on_packet(7, 1500, ev(16, true, 800), 0, out) == 0);  // flash
}

TEST_CASE("a new SSRC starts a new timestamp space") {
  DtmfDetector d;
  DtmfKey out[2];
  REQUIRE(d.on_packet(1, 5000, ev(4, true, 800), 0, out) == 1);
  // Another source whose timestamps happen to be lower is still a new key.
  REQUIRE(d.on_packet(2, 100, ev(4, true, 800), 0, out) == 1);
}

TEST_CASE("timestamps compare across the 32-bit wrap") {
  DtmfDetector d;
  DtmfKey out[2];
  REQUIRE(d.on_packet(7, 0xfffffe00u, ev(6, true, 800), 0, out) == 1);
  REQUIRE(d.on_packet(7, 0x00000100u, ev(7, true, 800), 0, out) == 1);  // after the wrap: newer
  CHECK(d.on_packet(7, 0xfffffe00u, ev(6, true, 800), 0, out) == 0);  // before it: old
}

TEST_CASE("the token bucket lets a burst through, then the rate") {
  TokenBucket b(20, 20);
  int passed = 0;
  for (int i = 0; i < 100; ++i) passed += b.take(0);
  CHECK(passed == 20);
  CHECK(b.dropped() == 80);
  CHECK(b.take(50 * kMs));  // 1 token per 50 ms
  CHECK_FALSE(b.take(60 * kMs));
  passed = 0;
  for (int i = 0; i < 100; ++i) passed += b.take(10'000 * kMs);
  CHECK(passed == 20);  // refilled to the burst, no more
}

TEST_CASE("in-band keys in G.711 audio are detected once each, on release, with their length") {
  InbandDtmf rx;
  REQUIRE(rx.ok());
  std::vector<int16_t> audio;
  auto append = [&](char key, int ms) {
    ToneSpec t;
    REQUIRE(dtmf_tone(key, 10, ms, t));
    ToneGenerator g(t, ms * 8);
    std::vector<int16_t> s(static_cast<size_t>(ms * 8));
    g.read(s.data(), s.size());
    audio.insert(audio.end(), s.begin(), s.end());
    audio.insert(audio.end(), 800, int16_t{0});  // 100 ms pause
  };
  append('4', 100);
  append('#', 200);
  append('4', 60);
  std::vector<DtmfKey> keys;
  for (size_t i = 0; i + 160 <= audio.size(); i += 160) {
    // Through G.711 as it would arrive.
    int16_t frame[160];
    for (size_t k = 0; k < 160; ++k) frame[k] = ulaw_to_linear(linear_to_ulaw(audio[i + k]));
    DtmfKey out[InbandDtmf::kMaxKeys];
    int n = rx.feed(frame, 160, out);
    keys.insert(keys.end(), out, out + n);
  }
  REQUIRE(keys.size() == 3);
  CHECK(keys[0].key == '4');
  CHECK(keys[1].key == '#');
  CHECK(keys[2].key == '4');
  CHECK(keys[0].duration_ms == doctest::Approx(100).epsilon(0.3));
  CHECK(keys[1].duration_ms == doctest::Approx(200).epsilon(0.2));
  CHECK(keys[1].volume > 0);
  CHECK(keys[1].volume < 20);
}

TEST_CASE("speech-like tones and silence give no in-band key") {
  InbandDtmf rx;
  ToneSpec t{440, 480, -10, 1000, 0};
  ToneGenerator g(t, -1);
  int16_t frame[160];
  int keys = 0;
  for (int i = 0; i < 100; ++i) {
    g.read(frame, 160);
    DtmfKey out[InbandDtmf::kMaxKeys];
    keys += rx.feed(frame, 160, out);
  }
  CHECK(keys == 0);
}
