// prompt_cache.cpp — a stat() per play validates the entry; decoding happens on the control
// thread (a 16 kHz minute takes a few ms to low-pass), once per file version.
#include "prompt_cache.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "wav_file.hpp"

namespace relais::media {

PcmBuffer PromptCache::get(const std::string& path, std::string& error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    error = strerror(errno);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    error = "not a regular file";
    return nullptr;
  }
  if (st.st_size > kMaxFileBytes) {
    error = "file too large";
    return nullptr;
  }
  int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  auto it = entries_.find(path);
  if (it != entries_.end() && it->second.mtime_ns == mtime && it->second.size == st.st_size) {
    it->second.last_use = ++clock_;
    return it->second.pcm;
  }
  auto pcm = std::make_shared<std::vector<int16_t>>();
  if (!wav_load(path, *pcm, error)) return nullptr;
  ++loads_;
  if (it != entries_.end()) {
    bytes_ -= it->second.pcm->size() * sizeof(int16_t);
    entries_.erase(it);
  }
  Entry e;
  e.mtime_ns = mtime;
  e.size = st.st_size;
  e.pcm = pcm;
  e.last_use = ++clock_;
  bytes_ += pcm->size() * sizeof(int16_t);
  entries_.emplace(path, std::move(e));
  evict();
  return pcm;
}

void PromptCache::evict() {
  // Linear scan: the cache holds prompts (tens to hundreds), and this runs only on a load.
  while (bytes_ > kMaxBytes && entries_.size() > 1) {
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    bytes_ -= oldest->second.pcm->size() * sizeof(int16_t);
    entries_.erase(oldest);
  }
}

}  // namespace relais::media
