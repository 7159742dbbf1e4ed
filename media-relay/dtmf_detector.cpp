// dtmf_detector.cpp — event timestamps are compared in serial-number arithmetic (RFC 3550
// timestamps wrap), so late retransmissions of an older event are recognised as old and do not
// start a phantom key.
#include "dtmf_detector.hpp"

#include <algorithm>
#include <climits>

namespace relais::media {

namespace {
// a is after b in 32-bit serial arithmetic.
bool ts_after(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }
}  // namespace

DtmfKey DtmfDetector::finish() {
  active_ = false;
  DtmfKey k;
  k.key = dtmf_event_key(event_);
  k.duration_ms = static_cast<uint32_t>(uint64_t{duration_} * 1000 / rate_);
  k.volume = volume_;
  return k;
}

int DtmfDetector::on_packet(uint32_t ssrc, uint32_t timestamp, const Rfc4733Event& ev, int64_t now_ns,
                            DtmfKey out[2]) {
  int n = 0;
  if (!have_ssrc_ || ssrc != ssrc_) {
    // A new source starts a new timestamp space: forget the old one, but report its pending
    // event first.
    if (active_) out[n++] = finish();
    have_ssrc_ = true;
    ssrc_ = ssrc;
    have_last_ = false;
  }
  if (have_last_ && !ts_after(timestamp, last_ts_)) {
    // The current event again (still held, or its end) or a late packet of an older one.
    if (!active_ || timestamp != ts_) return n;
  } else {
    if (active_) out[n++] = finish();  // a new event began before the old one's end arrived
    active_ = true;
    ts_ = timestamp;
    event_ = ev.event;
    volume_ = ev.volume;
    duration_ = 0;
    started_ns_ = now_ns;
    have_last_ = true;
    last_ts_ = timestamp;
  }
  duration_ = std::max(duration_, ev.duration);
  volume_ = ev.volume;
  if (ev.end) out[n++] = finish();
  // Event codes above 15 (flash, tones) are followed for deduplication but not reported.
  int kept = 0;
  for (int i = 0; i < n; ++i)
    if (out[i].key) out[kept++] = out[i];
  return kept;
}

bool DtmfDetector::poll(int64_t now_ns, DtmfKey& out) {
  if (!active_ || now_ns - started_ns_ < kMissingEndNs) return false;
  out = finish();
  return out.key != 0;
}

int64_t DtmfDetector::deadline() const { return active_ ? started_ns_ + kMissingEndNs : INT64_MAX; }

bool TokenBucket::take(int64_t now_ns) {
  if (started_) tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ns - last_ns_) / 1e9);
  started_ = true;
  last_ns_ = now_ns;
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  ++dropped_;
  return false;
}

}  // namespace relais::media
