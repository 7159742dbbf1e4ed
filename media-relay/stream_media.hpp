// stream_media.hpp — the media services of one stream pair, inside the worker that owns the
// pair: what we play to each side (MediaOutput), the RFC 4733 detector of each sending side,
// and the recorder. The worker creates it on the first media command or the first
// telephone-event packet; pairs without either never have one, so plain relaying pays
// nothing but a null check. Events go to the control thread through the MediaEventQueue.
// In-band DTMF detection (spandsp) runs only on pairs a media command was sent to, for a side
// whose SDP has no telephone-event: relayed calls never pay for it.
#pragma once

#include <climits>
#include <cstdint>
#include <memory>

#include "dtmf_detector.hpp"
#include "inband_dtmf.hpp"
#include "media_events.hpp"
#include "media_player.hpp"
#include "media_plane.hpp"
#include "recorder.hpp"

namespace relais::media {

class StreamMedia {
 public:
  static constexpr double kDtmfPerSecond = 20;  // notifications per pair; excess dropped

  StreamMedia(uint64_t pair_id, MediaEventQueue* events, PairStats* stats)
      : id_(pair_id), events_(events), stats_(stats) {}
  ~StreamMedia();  // hands out the last recording block

  void apply(MediaCommand& cmd, int64_t now_ns);
  // A version-2 RTP packet (not RTCP) that `side` sent.
  void on_rtp(int side, const uint8_t* data, size_t len, const PairSpec& spec, int64_t now_ns);
  // While we play to a side, what the other side sends is not forwarded to it.
  bool playing_to(int side) const { return out_[side].active(); }
  int64_t next_due() const;
  // Sends due frames to sinks[side], reports ended playbacks, late DTMF ends and silence.
  void tick(int64_t now_ns, FrameSink* sinks[2]);

 private:
  void finish_recording();
  void report_key(int side, const DtmfKey& key, bool inband, int64_t now_ns);
  void push(MediaEvent ev);

  uint64_t id_;
  MediaEventQueue* events_;
  PairStats* stats_;
  MediaOutput out_[2];
  DtmfDetector dtmf_[2];
  TokenBucket dtmf_limit_{kDtmfPerSecond, kDtmfPerSecond};
  std::unique_ptr<Recorder> recorder_;
  uint64_t recording_id_ = 0;
  bool commanded_ = false;                 // a media command was applied: in-band detection on
  std::unique_ptr<InbandDtmf> inband_[2];  // created on the first G.711 packet of such a side
};

}  // namespace relais::media
