// media_g711_test.cpp — G.711 µ-law/A-law against the values of ITU-T G.711's tables and the
// identity encode(decode(code)) for every code.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>

#include "g711.hpp"

using namespace relais::media;

TEST_CASE("µ-law decodes the table's end points and zero") {
  CHECK(ulaw_to_linear(0xff) == 0);
  CHECK(ulaw_to_linear(0x7f) == 0);         // "negative zero"
  CHECK(ulaw_to_linear(0x80) == 32124);     // largest positive
  CHECK(ulaw_to_linear(0x00) == -32124);
  CHECK(ulaw_to_linear(0xfe) == 8);         // smallest step above zero
  CHECK(ulaw_to_linear(0xef) == 132);       // segment 1 starts
}

TEST_CASE("A-law decodes the table's end points and the smallest steps") {
  CHECK(alaw_to_linear(0xd5) == 8);
  CHECK(alaw_to_linear(0x55) == -8);
  CHECK(alaw_to_linear(0xaa) == 32256);
  CHECK(alaw_to_linear(0x2a) == -32256);
  CHECK(alaw_to_linear(0xd4) == 24);
}

TEST_CASE("encoding picks the codes of known linear values") {
  CHECK(linear_to_ulaw(0) == 0xff);
  CHECK(linear_to_ulaw(32767) == 0x80);
  CHECK(linear_to_ulaw(-32768) == 0x00);
  CHECK(linear_to_ulaw(1000) == 0xce);
  CHECK(linear_to_alaw(0) == 0xd5);
  CHECK(linear_to_alaw(-1) == 0x55);
  CHECK(linear_to_alaw(32767) == 0xaa);
  CHECK(linear_to_alaw(-32768) == 0x2a);
  CHECK(linear_to_alaw(1000) == 0xfa);
}

TEST_CASE("every code survives decode then encode") {
  for (int c = 0; c < 256; ++c) {
    auto code = static_cast<uint8_t>(c);
    if (code != 0x7f) CHECK(linear_to_ulaw(ulaw_to_linear(code)) == code);  // 0x7f and 0xff both mean 0
    CHECK(linear_to_alaw(alaw_to_linear(code)) == code);
  }
}

TEST_CASE("the quantisation error stays within half a step of the code's segment") {
  for (int v = -32768; v <= 32767; v += 3) {
    auto s = static_cast<int16_t>(v);
    uint8_t u = linear_to_ulaw(s), a = linear_to_alaw(s);
    // Steps at 16-bit scale: µ-law 8 << segment, A-law 16 << (segment - 1) (segments 0 and 1
    // share the smallest). The coders drop 2 (µ) or 3 (A) low bits first, which adds < 4 / 8.
    int useg = (static_cast<uint8_t>(~u) >> 4) & 7, aseg = ((a ^ 0x55) >> 4) & 7;
    int ustep = 8 << useg, astep = 16 << std::max(aseg - 1, 0);
    int ulaw_err = std::abs(ulaw_to_linear(u) - v), alaw_err = std::abs(alaw_to_linear(a) - v);
    bool clipped = std::abs(v) > 32124;
    CHECK(ulaw_err <= (clipped ? 32768 - 32124 : ustep / 2 + 4));
    CHECK(alaw_err <= (std::abs(v) > 32256 ? 32768 - 32256 : astep / 2 + 8));
  }
}

TEST_CASE("block encode and decode match the per-sample functions") {
  int16_t in[5] = {0, 100, -100, 20000, -32768};
  uint8_t mu[5], a[5];
  g711_encode(false, in, mu, 5);
  g711_encode(true, in, a, 5);
  int16_t back[5];
  g711_decode(false, mu, back, 5);
  for (int i = 0; i < 5; ++i) {
    CHECK(mu[i] == linear_to_ulaw(in[i]));
    CHECK(a[i] == linear_to_alaw(in[i]));
    CHECK(back[i] == ulaw_to_linear(mu[i]));
  }
}
