// stream_media.cpp — per-pair media services on the worker thread.
#include "stream_media.hpp"

#include <algorithm>

#include "g711.hpp"
#include "media_log.hpp"
#include "packet_io.hpp"
#include "rtp_packet.hpp"

namespace relais::media {

namespace {

constexpr size_t kPacketSamples = kPacketBufSize;  // one G.711 byte per sample

template <typename T>
inline void bump(std::atomic<T>& a) {
  a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// The law of a G.711 packet: static types, or a dynamic type either side mapped to PCMU/PCMA.
bool g711_law(uint8_t pt, const PairSpec& spec, int side, bool& alaw) {
  if (pt == kPtPcmu || pt == kPtPcma) {
    alaw = pt == kPtPcma;
    return true;
  }
  for (int s : {side, 1 - side}) {
    if (spec.side[s].g711_pt == pt) {
      alaw = spec.side[s].g711_alaw;
      return true;
    }
  }
  return false;
}

}  // namespace

StreamMedia::~StreamMedia() { finish_recording(); }

void StreamMedia::push(MediaEvent ev) {
  if (!events_) return;
  ev.pair_id = id_;
  events_->push(std::move(ev));
}

void StreamMedia::finish_recording() {
  if (!recorder_) return;
  MediaEvent ev;
  ev.kind = MediaEvent::Kind::record_block;
  ev.ref = recording_id_;
  ev.final = true;
  recorder_->take_all(ev.samples);
  recorder_.reset();
  push(std::move(ev));
}

void StreamMedia::apply(MediaCommand& cmd, int64_t now_ns) {
  int side = cmd.side & 1;
  commanded_ = true;
  switch (cmd.kind) {
    case MediaCommand::Kind::play: {
      std::unique_ptr<AudioSource> src;
      if (cmd.tone) src = std::make_unique<ToneSource>(cmd.tone_spec, cmd.tone_samples);
      else src = std::make_unique<PcmPlaylist>(std::move(cmd.files), cmd.repeat);
      out_[side].play(std::move(src), cmd.ref, cmd.codec, now_ns);
      break;
    }
    case MediaCommand::Kind::stop_play:
      out_[side].stop_prompt();
      break;
    case MediaCommand::Kind::dtmf:
      if (!out_[side].queue_dtmf(cmd.key, cmd.duration_ms, cmd.volume, cmd.codec, now_ns))
        Log(LogLevel::warn, "media.dtmf_queue_full").kv("pair", static_cast<unsigned long>(id_)).kv("side", side);
      break;
    case MediaCommand::Kind::record_start:
      finish_recording();  // a new recording replaces the old one, which is finalised
      recorder_ = std::make_unique<Recorder>(cmd.record_sides, cmd.max_samples, cmd.silence_ms);
      recording_id_ = cmd.ref;
      break;
    case MediaCommand::Kind::record_stop:
      if (recorder_ && recording_id_ == cmd.ref) {
        finish_recording();
      } else {
        // The control thread waits for the final block of this id: always send one.
        MediaEvent ev;
        ev.kind = MediaEvent::Kind::record_block;
        ev.ref = cmd.ref;
        ev.final = true;
        push(std::move(ev));
      }
      break;
  }
}

void StreamMedia::report_key(int side, const DtmfKey& key, bool inband, int64_t now_ns) {
  if (stats_) bump(stats_->side[side].dtmf_keys);
  if (!dtmf_limit_.take(now_ns)) {
    if (stats_) bump(stats_->side[side].dtmf_dropped);
    return;
  }
  MediaEvent ev;
  ev.kind = MediaEvent::Kind::dtmf;
  ev.side = side;
  ev.key = key;
  ev.inband = inband;
  push(std::move(ev));
}

void StreamMedia::on_rtp(int side, const uint8_t* data, size_t len, const PairSpec& spec, int64_t now_ns) {
  RtpHeader h;
  if (!rtp_parse(data, len, h)) return;
  DtmfKey key;
  if (dtmf_[side].poll(now_ns, key)) report_key(side, key, false, now_ns);
  // The sender's own telephone-event type, or the receiver's (RFC 3264 §5.1: an answerer
  // sends with the offer's numbering).
  const SideSpec& own = spec.side[side];
  const SideSpec& peer = spec.side[1 - side];
  if ((own.te_pt >= 0 && h.pt == own.te_pt) || (peer.te_pt >= 0 && h.pt == peer.te_pt)) {
    Rfc4733Event ev;
    if (!rfc4733_parse(data + h.payload_offset, h.payload_len, ev)) return;
    dtmf_[side].set_clock_rate(h.pt == own.te_pt ? own.te_rate : peer.te_rate);
    DtmfKey keys[2];
    int n = dtmf_[side].on_packet(h.ssrc, h.timestamp, ev, now_ns, keys);
    for (int i = 0; i < n; ++i) report_key(side, keys[i], false, now_ns);
    return;
  }
  bool record = recorder_ && recorder_->records(side);
  bool inband = commanded_ && own.te_pt < 0;  // this side cannot send RFC 4733: listen to its audio
  if (!record && !inband) return;
  bool alaw = false;
  if (!g711_law(h.pt, spec, side, alaw) || h.payload_len == 0) return;  // other codecs, comfort noise
  int16_t pcm[kPacketSamples];
  size_t n = std::min(h.payload_len, kPacketSamples);
  g711_decode(alaw, data + h.payload_offset, pcm, n);
  if (inband) {
    if (!inband_[side]) inband_[side] = std::make_unique<InbandDtmf>();
    DtmfKey keys[InbandDtmf::kMaxKeys];
    int count = inband_[side]->feed(pcm, n, keys);
    for (int i = 0; i < count; ++i) report_key(side, keys[i], true, now_ns);
  }
  if (!record) return;
  recorder_->add(side, h.ssrc, h.timestamp, pcm, n, now_ns);
  MediaEvent ev;
  if (recorder_->take_ready(ev.samples)) {
    ev.kind = MediaEvent::Kind::record_block;
    ev.ref = recording_id_;
    push(std::move(ev));
  }
}

int64_t StreamMedia::next_due() const {
  int64_t due = std::min({out_[0].next_due(), out_[1].next_due(), dtmf_[0].deadline(), dtmf_[1].deadline()});
  if (recorder_) due = std::min(due, recorder_->silence_deadline());
  return due;
}

void StreamMedia::tick(int64_t now_ns, FrameSink* sinks[2]) {
  for (int side = 0; side < 2; ++side) {
    if (uint64_t done = out_[side].tick(now_ns, *sinks[side])) {
      MediaEvent ev;
      ev.kind = MediaEvent::Kind::playback_done;
      ev.side = side;
      ev.ref = done;
      push(std::move(ev));
    }
    DtmfKey key;
    if (dtmf_[side].poll(now_ns, key)) report_key(side, key, false, now_ns);
  }
  if (recorder_ && recorder_->silence_detected(now_ns)) {
    MediaEvent ev;
    ev.kind = MediaEvent::Kind::silence;
    ev.ref = recording_id_;
    push(std::move(ev));
  }
}

}  // namespace relais::media
