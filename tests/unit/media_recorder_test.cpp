// media_recorder_test.cpp — recorded samples land where their RTP timestamps put them: a lost
// packet leaves silence of its length, reordering and duplicates change nothing, a broken
// timestamp cannot insert hours of silence, two directions mix in time, and silence after
// speech is detected once.
#include <doctest/doctest.h>

#include <vector>

#include "recorder.hpp"

using namespace relais::media;

namespace {
constexpr int64_t kMs = 1'000'000;

std::vector<int16_t> frame(int16_t value, size_t n = 160) { return std::vector<int16_t>(n, value); }

void add(Recorder& r, int side, uint32_t ts, int16_t value, int64_t now, uint32_t ssrc = 1) {
  auto f = frame(value);
  r.add(side, ssrc, ts, f.data(), f.size(), now);
}

std::vector<int16_t> all(Recorder& r) {
  std::vector<int16_t> out;
  r.take_all(out);
  return out;
}
}  // namespace

TEST_CASE("a lost packet becomes 20 ms of silence and the length is what was sent") {
  Recorder r(1, 1'000'000, 0);
  for (int k = 0; k < 10; ++k)
    if (k != 4) add(r, 0, 1000 + 160 * k, static_cast<int16_t>(100 + k), k * 20 * kMs);
  auto out = all(r);
  REQUIRE(out.size() == 1600);
  CHECK(out[0] == 100);
  CHECK(out[4 * 160] == 0);
  CHECK(out[4 * 160 + 159] == 0);
  CHECK(out[5 * 160] == 105);
  CHECK(out[1599] == 109);
}

TEST_CASE("reordered and duplicated packets land in their place once") {
  Recorder r(1, 1'000'000, 0);
  add(r, 0, 0, 1, 0);
  add(r, 0, 320, 3, 40 * kMs);
  add(r, 0, 160, 2, 45 * kMs);   // late, within the jitter window
  add(r, 0, 320, 3, 46 * kMs);   // duplicate: overwrites, does not add
  auto out = all(r);
  REQUIRE(out.size() == 480);
  CHECK(out[0] == 1);
  CHECK(out[160] == 2);
  CHECK(out[320] == 3);
}

TEST_CASE("silence suppression: a gap in time is a gap in the recording") {
  Recorder r(1, 1'000'000, 0);
  add(r, 0, 0, 7, 0);
  add(r, 0, 8000 * 2, 9, 2000 * kMs);  // the sender paused 2 s (DTX) and says so in its timestamps
  auto out = all(r);
  REQUIRE(out.size() == 16160);
  CHECK(out[160] == 0);
  CHECK(out[16000] == 9);
}

TEST_CASE("a timestamp jump that disagrees with the clock re-anchors instead of inserting silence") {
  Recorder r(1, 1'000'000'000, 0);
  add(r, 0, 0, 1, 0);
  add(r, 0, 0x40000000, 2, 20 * kMs);  // hours ahead by timestamp, 20 ms by the clock
  auto out = all(r);
  CHECK(out.size() == 320);
  CHECK(out[160] == 2);
}

TEST_CASE("blocks are handed out once older than the jitter window, and nothing is lost") {
  Recorder r(1, 1'000'000, 0);
  std::vector<int16_t> got;
  int blocks = 0;
  for (int k = 0; k < 150; ++k) {  // 3 s
    add(r, 0, static_cast<uint32_t>(160 * k), static_cast<int16_t>(k), k * 20 * kMs);
    if (r.take_ready(got)) ++blocks;
  }
  CHECK(blocks >= 3);
  CHECK(got.size() <= static_cast<size_t>(150 * 160 - Recorder::kWindow));
  r.take_all(got);
  REQUIRE(got.size() == 150 * 160);
  for (int k = 0; k < 150; ++k) CHECK(got[static_cast<size_t>(k) * 160] == k);
}

TEST_CASE("two directions are mixed on one timeline whatever their timestamp bases") {
  Recorder r(3, 1'000'000, 0);
  add(r, 0, 5000, 1000, 0, 11);
  add(r, 1, 900000, 300, 0, 22);             // same moment, unrelated timestamp base
  add(r, 0, 5160, 1000, 20 * kMs, 11);
  add(r, 1, 900160, 30000, 20 * kMs, 22);    // saturates rather than wraps
  add(r, 1, 900160, 30000, 20 * kMs, 22);
  auto f = frame(32000);
  r.add(0, 11, 5160, f.data(), f.size(), 20 * kMs);
  auto out = all(r);
  REQUIRE(out.size() == 320);
  CHECK(out[0] == 1300);
  CHECK(out[200] == 32767);
}

TEST_CASE("only the selected side is recorded, and the length is bounded") {
  Recorder r(2, 400, 0);
  add(r, 0, 0, 5, 0);
  add(r, 1, 0, 6, 0);
  add(r, 1, 160, 6, 20 * kMs);
  add(r, 1, 320, 6, 40 * kMs);
  auto out = all(r);
  REQUIRE(out.size() == 400);
  CHECK(out[0] == 6);
}

TEST_CASE("silence after half a second of sound is reported once, silence alone never") {
  Recorder quiet(1, 1'000'000, 300);
  for (int k = 0; k < 100; ++k) add(quiet, 0, 160 * k, 0, k * 20 * kMs);
  CHECK(quiet.silence_deadline() == INT64_MAX);
  CHECK_FALSE(quiet.silence_detected(5000 * kMs));

  Recorder r(1, 1'000'000, 300);
  int k = 0;
  for (; k < 30; ++k) add(r, 0, 160 * k, 3000, k * 20 * kMs);  // 600 ms of sound
  int64_t last_sound = (k - 1) * 20 * kMs;
  CHECK(r.silence_deadline() == last_sound + 300 * kMs);
  for (; k < 40; ++k) add(r, 0, 160 * k, 20, k * 20 * kMs);  // 200 ms of near silence
  CHECK_FALSE(r.silence_detected(k * 20 * kMs));
  CHECK(r.silence_detected(last_sound + 300 * kMs));
  CHECK_FALSE(r.silence_detected(last_sound + 900 * kMs));
  CHECK(r.silence_deadline() == INT64_MAX);
}
