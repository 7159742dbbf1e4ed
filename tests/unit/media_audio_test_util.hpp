// media_audio_test_util.hpp — small measurements the media unit tests share: a tone's frequency
// from its zero crossings, the power at one frequency (Goertzel), RMS, and a temporary
// directory removed with its files.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace media_test {

inline double zero_crossing_hz(const int16_t* s, size_t n, double rate = 8000) {
  size_t crossings = 0;
  for (size_t i = 1; i < n; ++i)
    if ((s[i - 1] < 0) != (s[i] < 0)) ++crossings;
  return static_cast<double>(crossings) * rate / 2.0 / static_cast<double>(n);
}

inline double rms(const int16_t* s, size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; ++i) e += double(s[i]) * s[i];
  return n ? std::sqrt(e / static_cast<double>(n)) : 0;
}

// Amplitude of the component at `hz` (Goertzel; for a pure sine of amplitude A this is ~A).
inline double goertzel(const int16_t* s, size_t n, double hz, double rate = 8000) {
  double w = 2 * M_PI * hz / rate, c = 2 * std::cos(w), q1 = 0, q2 = 0;
  for (size_t i = 0; i < n; ++i) {
    double q0 = c * q1 - q2 + s[i];
    q2 = q1;
    q1 = q0;
  }
  double power = q1 * q1 + q2 * q2 - c * q1 * q2;
  return 2 * std::sqrt(std::max(0.0, power)) / static_cast<double>(n);
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/relais-media-unit-XXXXXX";
    path = mkdtemp(tmpl) ? tmpl : "/tmp";
  }
  ~TempDir() {
    std::error_code ec;
    if (path != "/tmp") std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

}  // namespace media_test
