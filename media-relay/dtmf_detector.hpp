// dtmf_detector.hpp — RFC 4733 receiver: turns the stream of telephone-event packets one side
// sends into one key per event. A sender repeats every event report while the key is held and
// sends the final (end) report three times (§2.5.1.4); all of them share the event's RTP
// timestamp, which is what identifies the event. Also the token bucket that bounds how many
// keys per second reach the controller.
#pragma once

#include <cstdint>

#include "dtmf_event.hpp"

namespace relais::media {

struct DtmfKey {
  char key = 0;
  uint32_t duration_ms = 0;
  uint8_t volume = 0;
};

class DtmfDetector {
 public:
  static constexpr int64_t kMissingEndNs = 2'000'000'000;  // report an event without end after 2 s

  explicit DtmfDetector(uint32_t clock_rate = 8000) : rate_(clock_rate ? clock_rate : 8000) {}
  // One telephone-event packet. Writes up to two keys (a pending event that never ended, then
  // this one if it is an end report) and returns how many.
  int on_packet(uint32_t ssrc, uint32_t timestamp, const Rfc4733Event& ev, int64_t now_ns, DtmfKey out[2]);
  // Reports a pending event whose end never came once kMissingEndNs have passed.
  bool poll(int64_t now_ns, DtmfKey& out);
  // When poll() has something to do; INT64_MAX when nothing is pending.
  int64_t deadline() const;
  void set_clock_rate(uint32_t rate) { rate_ = rate ? rate : 8000; }

 private:
  DtmfKey finish();

  uint32_t rate_;
  bool have_ssrc_ = false;
  uint32_t ssrc_ = 0;
  bool active_ = false;        // an event has started and was not reported yet
  uint32_t ts_ = 0;            // the active event's timestamp
  uint8_t event_ = 0, volume_ = 0;
  uint16_t duration_ = 0;
  int64_t started_ns_ = 0;
  bool have_last_ = false;
  uint32_t last_ts_ = 0;       // timestamp of the newest event seen (reported or active)
};

// At most `rate` tokens per second with bursts of `burst`; dropped() counts refusals.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst) {}
  bool take(int64_t now_ns);
  uint64_t dropped() const { return dropped_; }

 private:
  double rate_, burst_, tokens_;
  int64_t last_ns_ = 0;
  bool started_ = false;
  uint64_t dropped_ = 0;
};

}  // namespace relais::media
