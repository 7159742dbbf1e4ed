// media_player.cpp — frames and their RTP headers. RFC 4733 keys: the event keeps the RTP
// timestamp of its first frame while the duration grows by 160 per 20 ms; the final report
// goes out three times (§2.5.1.4), each with its own sequence number. The audio timestamp
// keeps advancing meanwhile, so audio after the key continues on wall-clock time. In-band keys
// are the dual tone followed by 60 ms of silence, so two equal keys stay two.
#include "media_player.hpp"

#include <algorithm>
#include <climits>
#include <random>

#include "dtmf_event.hpp"
#include "g711.hpp"
#include "rtp_packet.hpp"

namespace relais::media {

namespace {

uint32_t random32() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return static_cast<uint32_t>(rng());
}

constexpr int kInbandGapMs = 60;

}  // namespace

PcmPlaylist::PcmPlaylist(std::vector<PcmBuffer> files, int64_t repeat) : files_(std::move(files)), repeat_(repeat) {}

size_t PcmPlaylist::read(int16_t* out, size_t n) {
  size_t got = 0;
  // Bounded: every pass either copies samples or moves to the next file, and a round of
  // empty files ends the playlist.
  size_t empty_files = 0;
  while (got < n) {
    if (repeat_ > 0 && round_ >= repeat_) break;
    if (files_.empty() || empty_files > files_.size()) break;
    const std::vector<int16_t>& f = *files_[file_];
    size_t take = std::min(n - got, f.size() - std::min(pos_, f.size()));
    std::copy_n(f.data() + pos_, take, out + got);
    got += take;
    pos_ += take;
    empty_files = take ? 0 : empty_files + 1;
    if (pos_ >= f.size()) {
      pos_ = 0;
      if (++file_ == files_.size()) {
        file_ = 0;
        ++round_;
      }
    }
  }
  std::fill(out + got, out + n, int16_t{0});
  return got;
}

void MediaOutput::start_stream(int64_t now_ns) {
  if (streaming_) return;
  streaming_ = true;
  ssrc_ = random32();
  seq_ = static_cast<uint16_t>(random32());
  ts_ = random32();
  marker_ = true;
  start_ns_ = now_ns;
  frame_ = 0;
}

void MediaOutput::play(std::unique_ptr<AudioSource> source, uint64_t play_id, const OutputCodec& codec, int64_t now_ns) {
  // A new prompt is a new talkspurt: new stream identity unless a key is being sent on it.
  if (!dtmf_ && dtmf_queue_.empty()) streaming_ = false;
  codec_ = codec;
  prompt_ = std::move(source);
  play_id_ = play_id;
  start_stream(now_ns);
  marker_ = true;
}

void MediaOutput::stop_prompt() {
  prompt_.reset();
  play_id_ = 0;
  if (!active()) streaming_ = false;
}

bool MediaOutput::queue_dtmf(char key, int duration_ms, int volume, const OutputCodec& codec, int64_t now_ns) {
  if (dtmf_key_event(key) < 0 || dtmf_queue_.size() >= kMaxDtmfQueue) return false;
  if (!prompt_ && !dtmf_) codec_ = codec;
  dtmf_queue_.push_back(Key{key, duration_ms, volume});
  start_stream(now_ns);
  return true;
}

int64_t MediaOutput::next_due() const {
  return active() && streaming_ ? start_ns_ + frame_ * kFrameNs : INT64_MAX;
}

void MediaOutput::send_audio(const int16_t* pcm, FrameSink& sink) {
  uint8_t pkt[kMaxPacket];
  rtp_write(pkt, codec_.pt, marker_, seq_++, ts_, ssrc_);
  marker_ = false;
  g711_encode(codec_.alaw, pcm, pkt + 12, kFrameSamples);
  sink.packet(pkt, sizeof pkt);
}

bool MediaOutput::dtmf_frame(FrameSink& sink) {
  if (!dtmf_) {
    if (dtmf_queue_.empty()) return false;
    dtmf_.emplace();
    dtmf_->key = dtmf_queue_.front();
    dtmf_queue_.pop_front();
    dtmf_->event_ts = ts_;
    dtmf_->total_frames = std::max(1, (dtmf_->key.duration_ms + 19) / 20);
    if (codec_.te_pt < 0) {
      ToneSpec spec;
      dtmf_tone(dtmf_->key.key, dtmf_->key.volume, dtmf_->key.duration_ms, spec);
      dtmf_->total_frames = (dtmf_->key.duration_ms + kInbandGapMs + 19) / 20;
      dtmf_->inband = std::make_unique<ToneGenerator>(spec, int64_t{dtmf_->key.duration_ms} * 8);
    }
  }
  ActiveDtmf& d = *dtmf_;
  if (d.inband) {
    if (d.frames >= d.total_frames) {
      dtmf_.reset();
      return false;
    }
    int16_t pcm[kFrameSamples];
    d.inband->read(pcm, kFrameSamples);
    send_audio(pcm, sink);
    ++d.frames;
    return true;
  }
  if (d.end_sent >= 3) {
    dtmf_.reset();
    marker_ = true;  // audio after a key starts a new talkspurt
    return false;
  }
  Rfc4733Event ev;
  ev.event = static_cast<uint8_t>(dtmf_key_event(d.key.key));
  ev.volume = static_cast<uint8_t>(std::clamp(d.key.volume, 0, 63));
  int frames = std::min(d.frames + 1, d.total_frames);
  ev.duration = static_cast<uint16_t>(std::min(frames * 160, 65535));
  ev.end = d.frames + 1 >= d.total_frames;
  uint8_t pkt[12 + 4];
  // RFC 4733 §2.5.1.1: the marker bit is set on the first packet of an event.
  rtp_write(pkt, static_cast<uint8_t>(codec_.te_pt), d.frames == 0, seq_++, d.event_ts, ssrc_);
  rfc4733_write(ev, pkt + 12);
  sink.packet(pkt, sizeof pkt);
  if (ev.end) ++d.end_sent;
  else ++d.frames;
  return true;
}

uint64_t MediaOutput::tick(int64_t now_ns, FrameSink& sink) {
  uint64_t done = 0;
  if (!streaming_) return 0;
  int64_t late = (now_ns - (start_ns_ + frame_ * kFrameNs)) / kFrameNs;
  if (late > kMaxLateFrames) {
    // The worker stalled: skip the missed frames (the timestamp still covers the time that
    // passed) rather than bursting them out.
    frame_ += late;
    ts_ += static_cast<uint32_t>(late * static_cast<int64_t>(kFrameSamples));
  }
  while (active() && start_ns_ + frame_ * kFrameNs <= now_ns) {
    bool sent = false;
    if (dtmf_ || !dtmf_queue_.empty()) sent = dtmf_frame(sink);
    if (!sent && !dtmf_ && !dtmf_queue_.empty()) continue;  // the next queued key starts now
    if (!sent && prompt_) {
      int16_t pcm[kFrameSamples];
      if (prompt_->read(pcm, kFrameSamples) > 0) {
        send_audio(pcm, sink);
        sent = true;
      } else {
        done = play_id_;
        prompt_.reset();
        play_id_ = 0;
      }
    }
    if (!sent) continue;  // nothing this frame: re-check what is left
    ++frame_;
    ts_ += kFrameSamples;
  }
  if (!active()) streaming_ = false;
  return done;
}

}  // namespace relais::media
