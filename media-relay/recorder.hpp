// recorder.hpp — the worker-side half of a recording: decoded packets are placed on one 8 kHz
// timeline by their RTP timestamps (gaps become silence, a lost packet leaves 20 ms of
// silence, a duplicate overwrites itself), the two directions of a call are mixed, and the
// samples older than a one-second jitter window are handed out in blocks for the control
// thread to write. No file I/O here. Also detects "silence after speech" for the controller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace relais::media {

class Recorder {
 public:
  static constexpr int64_t kRate = 8000;
  static constexpr int64_t kWindow = kRate;          // later packets than 1 s are dropped
  static constexpr int64_t kBlock = kRate / 2;       // hand-off granularity (0.5 s)
  static constexpr int64_t kMaxSkew = 3 * kRate;     // timestamp vs arrival disagreement → re-anchor
  static constexpr int64_t kMaxPending = 8 * kRate;  // hard bound of the per-side buffers
  static constexpr int64_t kSoundBeforeSilence = kRate / 2;  // speech needed before silence counts
  static constexpr int kSoundRms = 300;              // ~ -41 dBm0: quieter frames are silence

  // sides: bit i set = record what side i sends. silence_ms 0 = no silence detection.
  Recorder(uint8_t sides, int64_t max_samples, int64_t silence_ms);

  bool records(int side) const { return (sides_ >> side) & 1; }
  // One packet's decoded samples from `side`, with its RTP SSRC and timestamp.
  void add(int side, uint32_t ssrc, uint32_t timestamp, const int16_t* pcm, size_t n, int64_t now_ns);
  // Appends the samples that can no longer change, once at least a block is ready.
  bool take_ready(std::vector<int16_t>& out);
  // Appends everything up to the last sample received (the recording stops).
  void take_all(std::vector<int16_t>& out);
  // true once: at least kSoundBeforeSilence of sound, then silence_ms without any.
  bool silence_detected(int64_t now_ns);
  int64_t silence_deadline() const;  // INT64_MAX when not armed
  int64_t end() const { return end_; }

 private:
  struct Side {
    bool anchored = false;
    uint32_t ssrc = 0;
    uint32_t anchor_ts = 0;
    int64_t anchor_pos = 0;
    std::vector<int16_t> buf;  // samples [flushed_, flushed_ + buf.size())
  };
  void emit(int64_t upto, std::vector<int16_t>& out);
  int64_t arrival_pos(int64_t now_ns) const;

  uint8_t sides_;
  int64_t max_samples_;
  int64_t silence_ns_;
  Side side_[2];
  bool have_origin_ = false;
  int64_t origin_ns_ = 0;
  int64_t latest_arrival_ = 0;  // arrival position of the newest packet
  int64_t flushed_ = 0;         // samples already handed out
  int64_t end_ = 0;             // one past the last sample written
  int64_t sound_samples_ = 0;
  int64_t last_sound_ns_ = 0;
  bool silence_fired_ = false;
};

}  // namespace relais::media
