// wav_file.cpp — libsndfile reading and writing. Reading goes through float frames so every
// source format (PCM, G.711, float) arrives normalised, is mixed down and decimated once, and
// is rounded to 16 bits last.
#include "wav_file.hpp"

#include <sndfile.h>

#include <algorithm>
#include <cmath>

#include "resampler.hpp"

namespace relais::media {

void SndfileCloser::operator()(sf_private_tag* f) const {
  if (f) sf_close(f);
}

bool wav_load(const std::string& path, std::vector<int16_t>& out, std::string& error) {
  SF_INFO info{};
  std::unique_ptr<SNDFILE, SndfileCloser> f(sf_open(path.c_str(), SFM_READ, &info));
  if (!f) {
    error = sf_strerror(nullptr);
    return false;
  }
  if (info.channels < 1 || info.channels > 8) {
    error = "unsupported channel count " + std::to_string(info.channels);
    return false;
  }
  if (info.samplerate < static_cast<int>(kMediaRate) || info.samplerate > 48000 ||
      info.samplerate % static_cast<int>(kMediaRate) != 0) {
    error = "unsupported sample rate " + std::to_string(info.samplerate) + " (8000, 16000 ... 48000)";
    return false;
  }
  const int64_t max_frames = static_cast<int64_t>(info.samplerate) * kMaxPromptSeconds;
  if (info.frames > max_frames) {
    error = "longer than " + std::to_string(kMaxPromptSeconds) + " s";
    return false;
  }
  std::vector<float> mono;
  mono.reserve(static_cast<size_t>(std::max<sf_count_t>(info.frames, 0)));
  std::vector<float> chunk(4096 * static_cast<size_t>(info.channels));
  // The header's frame count is not trusted: read until EOF, bounded by the same limit.
  while (static_cast<int64_t>(mono.size()) < max_frames) {
    sf_count_t got = sf_readf_float(f.get(), chunk.data(), 4096);
    if (got <= 0) break;
    for (sf_count_t i = 0; i < got; ++i) {
      float sum = 0;
      for (int c = 0; c < info.channels; ++c) sum += chunk[static_cast<size_t>(i * info.channels + c)];
      mono.push_back(sum / static_cast<float>(info.channels));
    }
  }
  if (sf_error(f.get()) != SF_ERR_NO_ERROR) {
    error = sf_strerror(f.get());
    return false;
  }
  std::vector<float> narrow = decimate(mono, static_cast<unsigned>(info.samplerate) / kMediaRate);
  out.resize(narrow.size());
  for (size_t i = 0; i < narrow.size(); ++i)
    out[i] = static_cast<int16_t>(std::lround(std::clamp(narrow[i] * 32768.0f, -32768.0f, 32767.0f)));
  return true;
}

bool WavWriter::open(const std::string& path, std::string& error) {
  SF_INFO info{};
  info.samplerate = static_cast<int>(kMediaRate);
  info.channels = 1;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  file_.reset(sf_open(path.c_str(), SFM_WRITE, &info));
  if (!file_) {
    error = sf_strerror(nullptr);
    return false;
  }
  samples_ = 0;
  return true;
}

bool WavWriter::write(const int16_t* samples, size_t n) {
  if (!file_ || n == 0) return file_ != nullptr;
  sf_count_t done = sf_write_short(file_.get(), samples, static_cast<sf_count_t>(n));
  if (done > 0) samples_ += static_cast<uint64_t>(done);
  return done == static_cast<sf_count_t>(n);
}

void WavWriter::close() { file_.reset(); }

}  // namespace relais::media
