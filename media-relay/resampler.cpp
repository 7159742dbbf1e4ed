// resampler.cpp — FIR decimation. The filter is designed once per call (a prompt is decoded
// once and cached): a sinc cut at 0.45/factor of the input rate, shaped by a Blackman window
// (stop-band below -70 dB, enough for 8-bit G.711 output). 32 taps per output-rate
// period keep the transition band narrow (~300 Hz) at a cost that only matters at load time.
#include "resampler.hpp"

#include <cmath>

namespace relais::media {

namespace {

std::vector<float> design_lowpass(unsigned factor) {
  const double pi = 3.14159265358979323846;
  const size_t taps = 32 * factor + 1;  // odd: symmetric around a centre tap, linear phase
  const double cutoff = 0.45 / factor;  // cycles per input sample
  const double mid = (taps - 1) / 2.0;
  std::vector<float> h(taps);
  double sum = 0;
  for (size_t i = 0; i < taps; ++i) {
    double x = static_cast<double>(i) - mid;
    double sinc = x == 0 ? 2 * cutoff : std::sin(2 * pi * cutoff * x) / (pi * x);
    double w = 0.42 - 0.5 * std::cos(2 * pi * i / (taps - 1)) + 0.08 * std::cos(4 * pi * i / (taps - 1));
    h[i] = static_cast<float>(sinc * w);
    sum += sinc * w;
  }
  for (float& v : h) v = static_cast<float>(v / sum);  // unity gain at DC
  return h;
}

}  // namespace

std::vector<float> decimate(const std::vector<float>& in, unsigned factor) {
  if (factor <= 1) return in;
  const std::vector<float> h = design_lowpass(factor);
  const long half = static_cast<long>(h.size() / 2);
  const long n = static_cast<long>(in.size());
  std::vector<float> out;
  out.reserve(in.size() / factor + 1);
  // Output sample k is centred on input sample k × factor; samples outside the input are 0.
  for (long centre = 0; centre < n; centre += factor) {
    double acc = 0;
    long first = centre - half;
    if (first >= 0 && first + static_cast<long>(h.size()) <= n) {
      const float* x = in.data() + first;
      float facc = 0;  // interior: no bounds checks, vectorisable
      for (size_t t = 0; t < h.size(); ++t) facc += h[t] * x[t];
      acc = facc;
    } else {
      for (size_t t = 0; t < h.size(); ++t) {
        long idx = first + static_cast<long>(t);
        if (idx >= 0 && idx < n) acc += static_cast<double>(h[t]) * in[static_cast<size_t>(idx)];
      }
    }
    out.push_back(static_cast<float>(acc));
  }
  return out;
}

}  // namespace relais::media
