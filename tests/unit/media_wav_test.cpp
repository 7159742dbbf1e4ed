// media_wav_test.cpp — prompts load as 8 kHz mono PCM whatever their format (8 kHz PCM, 16 kHz
// with a real low-pass, µ-law, stereo), bad files are refused, and recordings are valid WAVs.
#include <doctest/doctest.h>

#include <sndfile.h>

#include <cmath>
#include <string>
#include <vector>

#include "g711.hpp"
#include "media_audio_test_util.hpp"
#include "prompt_cache.hpp"
#include "resampler.hpp"
#include "wav_file.hpp"

using namespace relais::media;
using media_test::TempDir;

namespace {

// Writes interleaved 16-bit frames with libsndfile in the given format.
void write_wav(const std::string& path, int rate, int channels, int format, const std::vector<int16_t>& frames) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  REQUIRE(f);
  sf_writef_short(f, frames.data(), static_cast<sf_count_t>(frames.size() / static_cast<size_t>(channels)));
  sf_close(f);
}

std::vector<int16_t> sine(double hz, double seconds, int rate, double amplitude) {
  std::vector<int16_t> s(static_cast<size_t>(seconds * rate));
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<int16_t>(std::lround(amplitude * std::sin(2 * M_PI * hz * i / rate)));
  return s;
}

}  // namespace

TEST_CASE("an 8 kHz 16-bit mono WAV loads sample for sample") {
  TempDir dir;
  auto s = sine(440, 0.5, 8000, 10000);
  write_wav(dir.file("a.wav"), 8000, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16, s);
  std::vector<int16_t> out;
  std::string error;
  REQUIRE(wav_load(dir.file("a.wav"), out, error));
  CHECK(out == s);
}

TEST_CASE("a 16 kHz WAV is low-passed to 8 kHz: in-band tones keep their level, 6 kHz does not alias") {
  TempDir dir;
  write_wav(dir.file("in.wav"), 16000, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16, sine(440, 1.0, 16000, 10000));
  // Plain decimation would fold 6 kHz onto 2 kHz at full level.
  write_wav(dir.file("hi.wav"), 16000, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16, sine(6000, 1.0, 16000, 10000));
  std::vector<int16_t> in, hi;
  std::string error;
  REQUIRE(wav_load(dir.file("in.wav"), in, error));
  REQUIRE(wav_load(dir.file("hi.wav"), hi, error));
  CHECK(in.size() == 8000);
  CHECK(media_test::zero_crossing_hz(in.data() + 200, 7600) == doctest::Approx(440).epsilon(0.01));
  CHECK(media_test::goertzel(in.data() + 200, 7600, 440) == doctest::Approx(10000).epsilon(0.03));
  CHECK(media_test::rms(hi.data() + 200, 7600) < 10000 * 0.01);  // ≥ 40 dB down
  CHECK(media_test::goertzel(hi.data() + 200, 7600, 2000) < 50);
}

TEST_CASE("µ-law and A-law WAVs decode like G.711") {
  TempDir dir;
  auto s = sine(1000, 0.2, 8000, 12000);
  write_wav(dir.file("u.wav"), 8000, 1, SF_FORMAT_WAV | SF_FORMAT_ULAW, s);
  write_wav(dir.file("a.wav"), 8000, 1, SF_FORMAT_WAV | SF_FORMAT_ALAW, s);
  std::vector<int16_t> u, a;
  std::string error;
  REQUIRE(wav_load(dir.file("u.wav"), u, error));
  REQUIRE(wav_load(dir.file("a.wav"), a, error));
  REQUIRE(u.size() == s.size());
  REQUIRE(a.size() == s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    // libsndfile's own G.711 tables may round a code's level differently by a step's fraction.
    CHECK(std::abs(u[i] - ulaw_to_linear(linear_to_ulaw(s[i]))) <= 4 + std::abs(s[i]) / 64);
    CHECK(std::abs(a[i] - alaw_to_linear(linear_to_alaw(s[i]))) <= 8 + std::abs(s[i]) / 64);
  }
}

TEST_CASE("a stereo WAV is mixed down to the average of its channels") {
  TempDir dir;
  std::vector<int16_t> frames;
  for (int i = 0; i < 800; ++i) {
    frames.push_back(8000);
    frames.push_back(static_cast<int16_t>(i % 2 ? 2000 : -2000));
  }
  write_wav(dir.file("st.wav"), 8000, 2, SF_FORMAT_WAV | SF_FORMAT_PCM_16, frames);
  std::vector<int16_t> out;
  std::string error;
  REQUIRE(wav_load(dir.file("st.wav"), out, error));
  REQUIRE(out.size() == 800);
  CHECK(out[0] == 3000);
  CHECK(out[1] == 5000);
}

TEST_CASE("missing, non-audio and unsupported-rate files are refused with a reason") {
  TempDir dir;
  std::vector<int16_t> out;
  std::string error;
  CHECK_FALSE(wav_load(dir.file("none.wav"), out, error));
  CHECK_FALSE(error.empty());
  FILE* f = fopen(dir.file("text.wav").c_str(), "w");
  REQUIRE(f);
  fputs("this is not a RIFF file at all, just some text\n", f);
  fclose(f);
  error.clear();
  CHECK_FALSE(wav_load(dir.file("text.wav"), out, error));
  CHECK_FALSE(error.empty());
  write_wav(dir.file("cd.wav"), 44100, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16, sine(440, 0.1, 44100, 1000));
  error.clear();
  CHECK_FALSE(wav_load(dir.file("cd.wav"), out, error));
  CHECK(error.find("sample rate") != std::string::npos);
}

TEST_CASE("the prompt cache decodes a file once and again when it changes") {
  TempDir dir;
  write_wav(dir.file("p.wav"), 8000, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16, sine(440, 0.1, 8000, 1000));
  PromptCache cache;
  std::string error;
  PcmBuffer a = cache.get(dir.file("p.wav"), error);
  PcmBuffer b = cache.get(dir.file("p.wav"), error);
  REQUIRE(a);
  CHECK(a == b);
  CHECK(cache.loads() == 1);
  write_wav(dir.file("p.wav"), 8000, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16, sine(440, 0.2, 8000, 1000));
  PcmBuffer c = cache.get(dir.file("p.wav"), error);
  REQUIRE(c);
  CHECK(c->size() == 1600);
  CHECK(cache.loads() == 2);
  CHECK(a->size() == 800);  // a playback holding the old version keeps it
  CHECK_FALSE(cache.get(dir.file("gone.wav"), error));
  CHECK(cache.get(dir.path, error) == nullptr);  // a directory
}

TEST_CASE("a recording WAV is 8 kHz mono 16-bit with a correct header after close") {
  TempDir dir;
  WavWriter w;
  std::string error;
  REQUIRE(w.open(dir.file("r.wav"), error));
  std::vector<int16_t> s = sine(300, 1.5, 8000, 5000);
  CHECK(w.write(s.data(), 8000));
  CHECK(w.write(s.data() + 8000, s.size() - 8000));
  CHECK(w.samples() == 12000);
  w.close();
  SF_INFO info{};
  SNDFILE* f = sf_open(dir.file("r.wav").c_str(), SFM_READ, &info);
  REQUIRE(f);
  CHECK(info.samplerate == 8000);
  CHECK(info.channels == 1);
  CHECK(info.format == (SF_FORMAT_WAV | SF_FORMAT_PCM_16));
  CHECK(info.frames == 12000);
  sf_close(f);
  CHECK_FALSE(w.open(dir.file("missing/dir/r.wav"), error));
}

TEST_CASE("decimation by 1 is the identity and by 2 halves the length") {
  std::vector<float> x(1000, 0.5f);
  CHECK(decimate(x, 1) == x);
  auto y = decimate(x, 2);
  CHECK(y.size() == 500);
  CHECK(y[250] == doctest::Approx(0.5f).epsilon(0.001));  // unity gain at DC
}
