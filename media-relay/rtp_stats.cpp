// rtp_stats.cpp — RFC 3550 A.1/A.3/A.8, simplified: no probation period (a relay counts what
// it sees), a jump of more than kMaxDropout restarts the count as a new source would.
#include "rtp_stats.hpp"

#include <cstdlib>

namespace relais::media {

namespace {
constexpr uint16_t kMaxDropout = 3000;   // RFC 3550 A.1 MAX_DROPOUT
constexpr uint16_t kMaxMisorder = 100;   // RFC 3550 A.1 MAX_MISORDER
}  // namespace

void RtpReceiveState::restart(uint16_t seq, uint32_t ssrc) {
  started_ = true;
  ssrc_ = ssrc;
  base_seq_ = max_seq_ = seq;
  cycles_ = 0;
  received_ = 0;
  have_transit_ = false;
  jitter_ = 0;
}

void RtpReceiveState::update(uint16_t seq, uint32_t timestamp, uint32_t ssrc, uint32_t arrival) {
  if (!started_ || ssrc != ssrc_) {
    restart(seq, ssrc);
  } else {
    uint16_t delta = static_cast<uint16_t>(seq - max_seq_);
    if (delta < kMaxDropout) {
      if (seq < max_seq_) cycles_ += 65536;  // wrapped
      max_seq_ = seq;
    } else if (delta <= 65535 - kMaxMisorder) {
      restart(seq, ssrc);  // a big jump: the sender restarted
    }  // else: late or duplicate, counted as received only
  }
  ++received_;
  // A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si) = transit_j - transit_i; J += (|D| - J) / 16.
  uint32_t transit = arrival - timestamp;
  if (have_transit_) {
    int32_t d = static_cast<int32_t>(transit - last_transit_);
    double ad = d < 0 ? -static_cast<double>(d) : static_cast<double>(d);
    jitter_ += (ad - jitter_) / 16.0;
  }
  last_transit_ = transit;
  have_transit_ = true;
}

}  // namespace relais::media
