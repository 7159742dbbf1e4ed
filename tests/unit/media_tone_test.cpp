// media_tone_test.cpp — the generated tones have the frequencies, levels and cadences of their
// names: measured on the samples, not taken from the table.
#include <doctest/doctest.h>

#include <vector>

#include "media_audio_test_util.hpp"
#include "tone_generator.hpp"

using namespace relais::media;

namespace {
std::vector<int16_t> render(const ToneSpec& spec, int64_t total, size_t n) {
  ToneGenerator g(spec, total);
  std::vector<int16_t> out(n);
  for (size_t i = 0; i < n; i += 160) g.read(out.data() + i, std::min<size_t>(160, n - i));
  return out;
}
}  // namespace

TEST_CASE("a beep is 400 ms of 1000 Hz, then silence") {
  ToneSpec beep;
  REQUIRE(named_tone("beep", beep));
  int64_t len = tone_samples(beep, 1);
  CHECK(len == 3200);
  auto s = render(beep, len, 4800);
  CHECK(media_test::zero_crossing_hz(s.data(), 3200) == doctest::Approx(1000).epsilon(0.01));
  CHECK(media_test::rms(s.data(), 3200) == doctest::Approx(dbm0_to_peak(-10) / std::sqrt(2)).epsilon(0.01));
  CHECK(media_test::rms(s.data() + 3200, 1600) == 0);
}

TEST_CASE("ringback is 440+480 Hz for 2 s, then 4 s of silence, and repeats") {
  ToneSpec rb;
  REQUIRE(named_tone("ringback", rb));
  CHECK(tone_samples(rb, 2) == (6000 + 2000) * 8);  // the last pause is not played
  auto s = render(rb, -1, 8 * 7000);
  const int16_t* on = s.data();
  CHECK(media_test::goertzel(on, 16000, 440) == doctest::Approx(dbm0_to_peak(-16)).epsilon(0.02));
  CHECK(media_test::goertzel(on, 16000, 480) == doctest::Approx(dbm0_to_peak(-16)).epsilon(0.02));
  CHECK(media_test::goertzel(on, 16000, 620) < 30);
  CHECK(media_test::rms(s.data() + 16000, 32000) == 0);      // 2 s .. 6 s
  CHECK(media_test::rms(s.data() + 48000, 8000) > 1000);     // 6 s: the second ring
}

TEST_CASE("busy is 480+620 Hz at half a second on, half off; dial tone is continuous 350+440 Hz") {
  ToneSpec busy, dial;
  REQUIRE(named_tone("busy", busy));
  REQUIRE(named_tone("dial", dial));
  auto b = render(busy, -1, 16000);
  CHECK(media_test::goertzel(b.data(), 4000, 480) > 1000);
  CHECK(media_test::goertzel(b.data(), 4000, 620) > 1000);
  CHECK(media_test::rms(b.data() + 4000, 4000) == 0);
  CHECK(media_test::rms(b.data() + 8000, 4000) > 1000);
  auto d = render(dial, -1, 80000);  // 10 s, no gap, no drift in level
  CHECK(media_test::goertzel(d.data(), 8000, 350) == doctest::Approx(dbm0_to_peak(-13)).epsilon(0.02));
  CHECK(media_test::goertzel(d.data() + 72000, 8000, 440) == doctest::Approx(dbm0_to_peak(-13)).epsilon(0.02));
  CHECK_FALSE(named_tone("siren", dial));
}

TEST_CASE("DTMF tones pair the keypad's row and column frequencies at the requested level") {
  struct K {
    char key;
    double row, col;
  };
  for (K k : {K{'1', 697, 1209}, K{'5', 770, 1336}, K{'9', 852, 1477}, K{'*', 941, 1209}, K{'#', 941, 1477},
              K{'0', 941, 1336}, K{'D', 941, 1633}}) {
    ToneSpec t;
    REQUIRE(dtmf_tone(k.key, 10, 100, t));
    auto s = render(t, 800, 800);
    CHECK(media_test::goertzel(s.data(), 800, k.row) == doctest::Approx(dbm0_to_peak(-10)).epsilon(0.05));
    CHECK(media_test::goertzel(s.data(), 800, k.col) == doctest::Approx(dbm0_to_peak(-10)).epsilon(0.05));
  }
  ToneSpec t;
  CHECK_FALSE(dtmf_tone('x', 10, 100, t));
}

TEST_CASE("read() reports the real samples and pads the end with silence") {
  ToneSpec beep;
  named_tone("beep", beep);
  ToneGenerator g(beep, 200);
  int16_t buf[160];
  CHECK(g.read(buf, 160) == 160);
  CHECK(g.read(buf, 160) == 40);
  CHECK(buf[100] == 0);
  CHECK(g.done());
}
