// tone_generator.hpp — sine tones at 8 kHz: one or two frequencies at a level in dBm0 with an
// on/off cadence. Used for the call-progress tones of `play media` (ringback, busy, beep, dial)
// and for in-band DTMF when a side has no telephone-event payload type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace relais::media {

struct ToneSpec {
  double f1 = 0, f2 = 0;    // Hz; f2 = 0 for a single tone
  double level_dbm0 = -13;  // per frequency
  int on_ms = 0;            // length of one burst
  int off_ms = 0;           // pause after a burst; 0 = the tone is continuous
};

// ringback 440+480 Hz 2 s on / 4 s off, busy 480+620 Hz 0.5 / 0.5 s, beep 1000 Hz 400 ms
// (200 ms apart when repeated), dial 350+440 Hz continuous (one "burst" = 1 s).
bool named_tone(std::string_view name, ToneSpec& out);
// The row+column pair of a DTMF key (0-9 * # A-D) at -level_dbm0 per frequency.
bool dtmf_tone(char key, int level_dbm0, int duration_ms, ToneSpec& out);
// Samples of `bursts` bursts: the pause after the last one is left out, so one ringback is
// 2 s of tone and two beeps are beep-pause-beep.
int64_t tone_samples(const ToneSpec& spec, int64_t bursts);
// Peak amplitude (16-bit linear) of a sine at level dBm0 in G.711 (0 dBm0 is 3.17 dB below
// the µ-law maximum, ITU-T G.711 table 5).
double dbm0_to_peak(double dbm0);

class ToneGenerator {
 public:
  // total_samples < 0: endless (until stopped).
  ToneGenerator(const ToneSpec& spec, int64_t total_samples);
  // Writes n samples (zeros after the end); returns how many were inside the tone's length.
  size_t read(int16_t* out, size_t n);
  bool done() const { return total_ >= 0 && pos_ >= total_; }

 private:
  ToneSpec spec_;
  int64_t total_;
  int64_t pos_ = 0;
  int64_t on_samples_, cycle_samples_;
  double w1_, w2_, a1_, a2_;
};

}  // namespace relais::media
