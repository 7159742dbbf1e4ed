// recorder.cpp — a packet's position is anchor_pos + (timestamp - anchor_ts): the first packet
// of a side anchors its timestamps to the packet's arrival time on the recording's timeline,
// so two directions with unrelated timestamp bases line up as they were heard. Re-anchoring on
// a new SSRC or on a timestamp that disagrees with the arrival time by more than kMaxSkew
// bounds any gap a hostile or broken timestamp could make: silence is only ever inserted for
// time that really passed.
#include "recorder.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

namespace relais::media {

Recorder::Recorder(uint8_t sides, int64_t max_samples, int64_t silence_ms)
    : sides_(sides), max_samples_(max_samples), silence_ns_(silence_ms * 1'000'000) {}

int64_t Recorder::arrival_pos(int64_t now_ns) const {
  return std::max<int64_t>(0, (now_ns - origin_ns_) / (1'000'000'000 / kRate));
}

void Recorder::add(int side, uint32_t ssrc, uint32_t timestamp, const int16_t* pcm, size_t n, int64_t now_ns) {
  if (side < 0 || side > 1 || !records(side) || n == 0) return;
  if (!have_origin_) {
    have_origin_ = true;
    origin_ns_ = now_ns;
  }
  int64_t arrival = arrival_pos(now_ns);
  latest_arrival_ = std::max(latest_arrival_, arrival);
  Side& s = side_[side];
  int64_t pos = s.anchor_pos + static_cast<int32_t>(timestamp - s.anchor_ts);
  if (!s.anchored || ssrc != s.ssrc || std::llabs(pos - arrival) > kMaxSkew) {
    s.anchored = true;
    s.ssrc = ssrc;
    s.anchor_ts = timestamp;
    s.anchor_pos = arrival;
    pos = arrival;
  }

  // Energy for silence detection, over what this side sent.
  int64_t energy = 0;
  for (size_t i = 0; i < n; ++i) energy += int64_t{pcm[i]} * pcm[i];
  if (energy >= int64_t{kSoundRms} * kSoundRms * static_cast<int64_t>(n)) {
    sound_samples_ += static_cast<int64_t>(n);
    last_sound_ns_ = now_ns;
  }

  int64_t first = std::max(pos, flushed_);              // too late: already handed out
  int64_t last = std::min(pos + static_cast<int64_t>(n), max_samples_);
  if (last <= first) return;
  // The skew bound and the window keep this far below kMaxPending; the check keeps memory
  // bounded even if that reasoning breaks.
  if (last - flushed_ > kMaxPending) return;
  size_t need = static_cast<size_t>(last - flushed_);
  if (s.buf.size() < need) s.buf.resize(need, 0);
  std::copy(pcm + (first - pos), pcm + (last - pos), s.buf.begin() + (first - flushed_));
  end_ = std::max(end_, last);
}

void Recorder::emit(int64_t upto, std::vector<int16_t>& out) {
  if (upto <= flushed_) return;
  size_t count = static_cast<size_t>(upto - flushed_);
  size_t base = out.size();
  out.resize(base + count, 0);
  for (Side& s : side_) {
    size_t have = std::min(count, s.buf.size());
    for (size_t i = 0; i < have; ++i)
      out[base + i] = static_cast<int16_t>(std::clamp(int32_t{out[base + i]} + s.buf[i], -32768, 32767));
    s.buf.erase(s.buf.begin(), s.buf.begin() + static_cast<std::ptrdiff_t>(have));
  }
  flushed_ = upto;
}

bool Recorder::take_ready(std::vector<int16_t>& out) {
  // Final: older than the jitter window, and never past the last sample actually received
  // (trailing silence is only recorded when something follows it).
  int64_t upto = std::min(latest_arrival_ - kWindow, end_);
  if (upto - flushed_ < kBlock) return false;
  emit(upto, out);
  return true;
}

void Recorder::take_all(std::vector<int16_t>& out) { emit(end_, out); }

bool Recorder::silence_detected(int64_t now_ns) {
  if (silence_deadline() > now_ns) return false;
  silence_fired_ = true;
  return true;
}

int64_t Recorder::silence_deadline() const {
  if (silence_ns_ <= 0 || silence_fired_ || sound_samples_ < kSoundBeforeSilence) return INT64_MAX;
  return last_sound_ns_ + silence_ns_;
}

}  // namespace relais::media
