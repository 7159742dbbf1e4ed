// rtp_stats.hpp — receive statistics of one RTP source as RFC 3550 appendix A defines them:
// extended highest sequence number, expected/lost packets (A.3) and interarrival jitter (A.8).
// Worker-thread state; the worker publishes the results into SideCounters.
#pragma once

#include <cstddef>
#include <cstdint>

namespace relais::media {

// RFC 5761 §4: with RTP and RTCP on one port, a second byte of 192..223 marks RTCP.
inline bool is_rtcp_byte(uint8_t second) { return second >= 192 && second <= 223; }
inline bool is_rtp_version2(const uint8_t* data, size_t len) { return len >= 1 && (data[0] >> 6) == 2; }

class RtpReceiveState {
 public:
  // seq/timestamp/ssrc from the RTP header; arrival in RTP timestamp units of the stream.
  void update(uint16_t seq, uint32_t timestamp, uint32_t ssrc, uint32_t arrival);
  uint64_t expected() const { return started_ ? cycles_ + max_seq_ - base_seq_ + 1 : 0; }
  int64_t lost() const { return static_cast<int64_t>(expected()) - static_cast<int64_t>(received_); }
  uint32_t jitter() const { return static_cast<uint32_t>(jitter_); }
  uint64_t received() const { return received_; }

 private:
  void restart(uint16_t seq, uint32_t ssrc);

  bool started_ = false;
  uint32_t ssrc_ = 0;
  uint16_t max_seq_ = 0;
  uint16_t base_seq_ = 0;
  uint64_t cycles_ = 0;      // count of sequence wraps, times 65536
  uint64_t received_ = 0;
  bool have_transit_ = false;
  uint32_t last_transit_ = 0;
  double jitter_ = 0;
};

}  // namespace relais::media
