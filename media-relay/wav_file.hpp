// wav_file.hpp — audio files through libsndfile: prompts are loaded as 8 kHz mono 16-bit PCM
// (whatever their rate, channel count and sample format), recordings are written as 8 kHz mono
// 16-bit PCM WAV. The SNDFILE handle is owned by a unique_ptr whose deleter is sf_close.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct sf_private_tag;  // libsndfile's SNDFILE

namespace relais::media {

constexpr uint32_t kMediaRate = 8000;            // every prompt, tone and recording
constexpr int64_t kMaxPromptSeconds = 600;        // longer prompt files are refused

// Loads a prompt: 8 or 16 kHz (any multiple of 8 kHz up to 48 kHz), mono or multi-channel
// (averaged), 16-bit PCM / µ-law / A-law / float WAV — anything libsndfile reads. Rates above
// 8 kHz go through a low-pass decimator. false + error on an unreadable or unsupported file.
bool wav_load(const std::string& path, std::vector<int16_t>& out, std::string& error);

struct SndfileCloser {
  void operator()(sf_private_tag* f) const;
};

// An 8 kHz mono 16-bit PCM WAV being written. libsndfile rewrites the RIFF/data sizes in the
// header when the file is closed, so a closed file is complete even if writes stopped early.
class WavWriter {
 public:
  bool open(const std::string& path, std::string& error);
  bool write(const int16_t* samples, size_t n);
  void close();
  bool is_open() const { return file_ != nullptr; }
  uint64_t samples() const { return samples_; }

 private:
  std::unique_ptr<sf_private_tag, SndfileCloser> file_;
  uint64_t samples_ = 0;
};

}  // namespace relais::media
