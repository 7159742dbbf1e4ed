// media_player.hpp — the RTP stream we send to one side of a call: prompts (files back to back,
// repeated or looped), tones and queued DTMF keys, as 20 ms G.711 frames (or RFC 4733 event
// packets) under our own random SSRC, sequence and timestamp. Frame k is due at
// start + k × 20 ms, an absolute schedule, so late wake-ups never accumulate into drift.
// Worker-thread only; packets go to a FrameSink (the worker's send batch).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>

#include "media_command.hpp"
#include "tone_generator.hpp"

namespace relais::media {

// Audio at 8 kHz: read() writes n samples and returns how many are real (0 = ended).
class AudioSource {
 public:
  virtual ~AudioSource() = default;
  virtual size_t read(int16_t* out, size_t n) = 0;
};

// Files back to back, `repeat` times (0 = forever).
class PcmPlaylist final : public AudioSource {
 public:
  PcmPlaylist(std::vector<PcmBuffer> files, int64_t repeat);
  size_t read(int16_t* out, size_t n) override;

 private:
  std::vector<PcmBuffer> files_;
  int64_t repeat_, round_ = 0;
  size_t file_ = 0, pos_ = 0;
};

class ToneSource final : public AudioSource {
 public:
  ToneSource(const ToneSpec& spec, int64_t samples) : gen_(spec, samples) {}
  size_t read(int16_t* out, size_t n) override { return gen_.done() ? 0 : gen_.read(out, n); }

 private:
  ToneGenerator gen_;
};

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void packet(const uint8_t* data, size_t len) = 0;
};

class MediaOutput {
 public:
  static constexpr int64_t kFrameNs = 20'000'000;
  static constexpr size_t kFrameSamples = 160;
  static constexpr size_t kMaxPacket = 12 + kFrameSamples;
  static constexpr size_t kMaxDtmfQueue = 64;
  static constexpr int kMaxLateFrames = 5;  // further behind: skip ahead instead of bursting

  // Replaces the current prompt (if any); frames start now.
  void play(std::unique_ptr<AudioSource> source, uint64_t play_id, const OutputCodec& codec, int64_t now_ns);
  void stop_prompt();
  // Queues a key; false when the queue is full or the key is not DTMF.
  bool queue_dtmf(char key, int duration_ms, int volume, const OutputCodec& codec, int64_t now_ns);
  bool active() const { return prompt_ || dtmf_.has_value() || !dtmf_queue_.empty(); }
  int64_t next_due() const;
  // Sends every frame due by now_ns. Returns the play id of a prompt that ended by itself.
  uint64_t tick(int64_t now_ns, FrameSink& sink);

 private:
  struct Key {
    char key;
    int duration_ms, volume;
  };
  struct ActiveDtmf {
    Key key;
    uint32_t event_ts = 0;
    int frames = 0, total_frames = 0;
    int end_sent = 0;
    std::unique_ptr<ToneGenerator> inband;  // no telephone-event: the tone itself
  };
  void start_stream(int64_t now_ns);
  bool dtmf_frame(FrameSink& sink);  // false when the key is finished (nothing sent)
  void send_audio(const int16_t* pcm, FrameSink& sink);

  OutputCodec codec_;
  std::unique_ptr<AudioSource> prompt_;
  uint64_t play_id_ = 0;
  std::optional<ActiveDtmf> dtmf_;
  std::deque<Key> dtmf_queue_;
  bool streaming_ = false;
  uint32_t ssrc_ = 0, ts_ = 0;
  uint16_t seq_ = 0;
  bool marker_ = false;
  int64_t start_ns_ = 0;
  int64_t frame_ = 0;  // index of the next frame due
};

}  // namespace relais::media
