// g711.hpp — ITU-T G.711 µ-law and A-law companding between 16-bit linear PCM and 8-bit codes,
// the only codecs the media services produce and decode (prompts, tones, recordings).
#pragma once

#include <cstddef>
#include <cstdint>

namespace relais::media {

uint8_t linear_to_ulaw(int16_t sample);
uint8_t linear_to_alaw(int16_t sample);
int16_t ulaw_to_linear(uint8_t code);
int16_t alaw_to_linear(uint8_t code);

// n samples ↔ n codes.
void g711_encode(bool alaw, const int16_t* in, uint8_t* out, size_t n);
void g711_decode(bool alaw, const uint8_t* in, int16_t* out, size_t n);

// RFC 3551 static payload types.
constexpr uint8_t kPtPcmu = 0;
constexpr uint8_t kPtPcma = 8;

}  // namespace relais::media
