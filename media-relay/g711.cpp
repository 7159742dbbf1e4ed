// g711.cpp — G.711 by its definition: a sign bit, a 3-bit segment (the position of the
// magnitude's leading one) and a 4-bit mantissa below it. Decoding returns the middle of the
// quantisation interval, so encode(decode(c)) == c for every code. Decoding goes through
// 256-entry tables (it runs per received sample when recording); encoding computes the segment
// with one bit scan. The rounding at segment edges matches the widely used reference coder
// (compared for all 65536 inputs against Python's audioop while writing this).
#include "g711.hpp"

#include <array>

namespace relais::media {

namespace {

// Index of the highest set bit (v > 0).
inline int top_bit(unsigned v) { return 31 - __builtin_clz(v); }

// µ-law (G.711 table 2a) works on 14-bit magnitudes offset by the bias 33 (132 at 16-bit
// scale), which makes every segment start at a power of two.
constexpr int kUlawBias = 0x84;
constexpr int kUlawBias14 = kUlawBias >> 2;
constexpr int kUlawClip14 = 8158;  // + bias = 8191, the top of segment 7

int16_t ulaw_decode_one(uint8_t code) {
  unsigned u = static_cast<uint8_t>(~code);
  int segment = (u >> 4) & 7;
  int mantissa = u & 0x0f;
  int magnitude = (((mantissa << 3) + kUlawBias) << segment) - kUlawBias;
  return static_cast<int16_t>((u & 0x80) ? -magnitude : magnitude);
}

// A-law (G.711 table 1a) works on 13-bit magnitudes; segment 0 and 1 share one step size.
// Even bits are inverted on the wire (the 0x55 mask) to keep the line busy with ones.
int16_t alaw_decode_one(uint8_t code) {
  unsigned a = code ^ 0x55u;
  int segment = (a >> 4) & 7;
  int mantissa = a & 0x0f;
  int magnitude;  // at 16-bit scale: 13-bit value << 3
  if (segment == 0) magnitude = (mantissa << 4) + 8;
  else magnitude = ((mantissa << 4) + 0x108) << (segment - 1);
  return static_cast<int16_t>((a & 0x80) ? magnitude : -magnitude);
}

template <int16_t (*F)(uint8_t)>
std::array<int16_t, 256> make_table() {
  std::array<int16_t, 256> t{};
  for (int i = 0; i < 256; ++i) t[static_cast<size_t>(i)] = F(static_cast<uint8_t>(i));
  return t;
}

const std::array<int16_t, 256> kUlawTable = make_table<ulaw_decode_one>();
const std::array<int16_t, 256> kAlawTable = make_table<alaw_decode_one>();

}  // namespace

uint8_t linear_to_ulaw(int16_t sample) {
  // G.711 encodes 14-bit samples: drop the two low bits first (an arithmetic shift, i.e.
  // rounding towards -inf as the 14-bit converter would), then take the magnitude.
  int v = sample >> 2;
  unsigned sign = 0;
  if (v < 0) {
    v = -v;
    sign = 0x80;
  }
  if (v > kUlawClip14) v = kUlawClip14;
  v += kUlawBias14;                        // 33 .. 8192: bit 5 or higher is set
  int segment = top_bit(static_cast<unsigned>(v)) - 5;
  unsigned mantissa = (static_cast<unsigned>(v) >> (segment + 1)) & 0x0f;
  return static_cast<uint8_t>(~(sign | (static_cast<unsigned>(segment) << 4) | mantissa));
}

uint8_t linear_to_alaw(int16_t sample) {
  int v = sample;
  unsigned mask = 0xd5;  // sign bit set = positive, after the even-bit inversion
  if (v < 0) {
    v = -v - 1;          // one's complement: -1 .. -32768 map onto 0 .. 32767
    mask = 0x55;
  }
  unsigned m13 = static_cast<unsigned>(v) >> 3;
  unsigned code;
  if (m13 < 32) {
    code = m13 >> 1;
  } else {
    unsigned segment = static_cast<unsigned>(top_bit(m13)) - 4;  // 1 .. 7
    code = (segment << 4) | ((m13 >> segment) & 0x0f);
  }
  return static_cast<uint8_t>(code ^ mask);
}

int16_t ulaw_to_linear(uint8_t code) { return kUlawTable[code]; }
int16_t alaw_to_linear(uint8_t code) { return kAlawTable[code]; }

void g711_encode(bool alaw, const int16_t* in, uint8_t* out, size_t n) {
  if (alaw) {
    for (size_t i = 0; i < n; ++i) out[i] = linear_to_alaw(in[i]);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = linear_to_ulaw(in[i]);
  }
}

void g711_decode(bool alaw, const uint8_t* in, int16_t* out, size_t n) {
  const int16_t* table = alaw ? kAlawTable.data() : kUlawTable.data();
  for (size_t i = 0; i < n; ++i) out[i] = table[in[i]];
}

}  // namespace relais::media
