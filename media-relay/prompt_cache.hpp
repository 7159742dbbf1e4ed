// prompt_cache.hpp — decoded prompts by path, so the IVR's prompts are read and resampled once:
// an entry is reused while the file's mtime and size are unchanged, and least recently used
// entries are dropped beyond 64 MiB of samples (a playback holds its own reference, so an
// evicted prompt keeps playing). Control thread only.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "media_command.hpp"

namespace relais::media {

class PromptCache {
 public:
  static constexpr size_t kMaxBytes = 64u << 20;
  static constexpr int64_t kMaxFileBytes = 128 << 20;  // refused before decoding

  // The prompt at path as 8 kHz mono PCM; null + error when missing or unreadable.
  PcmBuffer get(const std::string& path, std::string& error);
  size_t bytes() const { return bytes_; }
  size_t entries() const { return entries_.size(); }
  uint64_t loads() const { return loads_; }

 private:
  struct Entry {
    int64_t mtime_ns = 0;
    int64_t size = 0;
    PcmBuffer pcm;
    uint64_t last_use = 0;
  };
  void evict();

  std::unordered_map<std::string, Entry> entries_;
  size_t bytes_ = 0;
  uint64_t clock_ = 0;
  uint64_t loads_ = 0;
};

}  // namespace relais::media
