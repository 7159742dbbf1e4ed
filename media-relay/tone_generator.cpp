// tone_generator.cpp — each frame starts from the exact phase of its absolute sample index and
// continues with the two-term sine recurrence s[n] = 2cos(w)s[n-1] - s[n-2] (one multiply per
// sample instead of a sin() call), so a tone playing for an hour never drifts in phase or level.
#include "tone_generator.hpp"

#include <algorithm>
#include <cmath>

namespace relais::media {

namespace {
constexpr double kPi = 3.14159265358979323846;
constexpr double kRate = 8000.0;
}  // namespace

double dbm0_to_peak(double dbm0) { return 22220.0 * std::pow(10.0, dbm0 / 20.0); }

bool named_tone(std::string_view name, ToneSpec& out) {
  // Levels as the North American network plays them (ringback/busy quieter than dial tone).
  if (name == "ringback") out = ToneSpec{440, 480, -16, 2000, 4000};
  else if (name == "busy") out = ToneSpec{480, 620, -16, 500, 500};
  else if (name == "beep") out = ToneSpec{1000, 0, -10, 400, 200};
  else if (name == "dial") out = ToneSpec{350, 440, -13, 1000, 0};
  else return false;
  return true;
}

bool dtmf_tone(char key, int level_dbm0, int duration_ms, ToneSpec& out) {
  static constexpr char kKeys[] = "123A456B789C*0#D";
  static constexpr double kRow[] = {697, 770, 852, 941};
  static constexpr double kCol[] = {1209, 1336, 1477, 1633};
  const char* at = std::find(kKeys, kKeys + 16, key);
  if (at == kKeys + 16) return false;
  auto i = static_cast<size_t>(at - kKeys);
  out = ToneSpec{kRow[i / 4], kCol[i % 4], -static_cast<double>(level_dbm0), duration_ms, 0};
  return true;
}

int64_t tone_samples(const ToneSpec& spec, int64_t bursts) {
  int64_t on = static_cast<int64_t>(spec.on_ms) * 8, off = static_cast<int64_t>(spec.off_ms) * 8;
  if (bursts <= 0) return 0;
  return bursts * (on + off) - off;
}

ToneGenerator::ToneGenerator(const ToneSpec& spec, int64_t total_samples)
    : spec_(spec), total_(total_samples),
      on_samples_(std::max<int64_t>(1, static_cast<int64_t>(spec.on_ms) * 8)),
      cycle_samples_(std::max<int64_t>(1, static_cast<int64_t>(spec.on_ms + spec.off_ms) * 8)),
      w1_(2 * kPi * spec.f1 / kRate), w2_(2 * kPi * spec.f2 / kRate),
      a1_(spec.f1 > 0 ? dbm0_to_peak(spec.level_dbm0) : 0), a2_(spec.f2 > 0 ? dbm0_to_peak(spec.level_dbm0) : 0) {}

size_t ToneGenerator::read(int16_t* out, size_t n) {
  size_t real = 0;
  // sin(w·pos) as a recurrence seeded with the two samples before pos.
  auto seed = [this](double w, double& s1, double& s2) {
    s1 = std::sin(w * static_cast<double>(pos_ - 1));
    s2 = std::sin(w * static_cast<double>(pos_ - 2));
  };
  double p1, q1, p2, q2;
  seed(w1_, p1, q1);
  seed(w2_, p2, q2);
  const double c1 = 2 * std::cos(w1_), c2 = 2 * std::cos(w2_);
  for (size_t i = 0; i < n; ++i, ++pos_) {
    double s1 = c1 * p1 - q1, s2 = c2 * p2 - q2;
    q1 = p1;
    p1 = s1;
    q2 = p2;
    p2 = s2;
    if (total_ >= 0 && pos_ >= total_) {
      out[i] = 0;
      continue;
    }
    ++real;
    bool on = spec_.off_ms == 0 || pos_ % cycle_samples_ < on_samples_;
    double v = on ? a1_ * s1 + a2_ * s2 : 0.0;
    out[i] = static_cast<int16_t>(std::lround(std::clamp(v, -32768.0, 32767.0)));
  }
  return real;
}

}  // namespace relais::media
