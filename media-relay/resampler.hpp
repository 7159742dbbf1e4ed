// resampler.hpp — sample-rate reduction for prompts: an integer-factor decimator with a
// windowed-sinc low-pass, so a 16 kHz (or 24/32/48 kHz) prompt becomes 8 kHz telephone audio
// without the aliasing plain sample dropping would fold into the 0–4 kHz band.
#pragma once

#include <cstddef>
#include <vector>

namespace relais::media {

// Low-pass at 0.45 × the output rate (3.6 kHz for 8 kHz) and keep every factor-th sample.
// factor 1 returns the input unchanged. Mono float samples in, mono float samples out.
std::vector<float> decimate(const std::vector<float>& in, unsigned factor);

}  // namespace relais::media
