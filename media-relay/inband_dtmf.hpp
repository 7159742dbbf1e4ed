// inband_dtmf.hpp — DTMF keys heard in the audio itself (phones that offer no telephone-event),
// with spandsp's dtmf_rx (ITU-T Q.23/Q.24 tolerances, talk-off protection). A key is reported
// when it is released, with how long it was held, like an RFC 4733 end report. The spandsp
// state is owned by a unique_ptr whose deleter is dtmf_rx_free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dtmf_detector.hpp"

struct dtmf_rx_state_s;  // spandsp's dtmf_rx_state_t

namespace relais::media {

class InbandDtmf {
 public:
  static constexpr int kMaxKeys = 4;  // per feed() call; a 20 ms frame holds at most one

  InbandDtmf();
  bool ok() const { return rx_ != nullptr; }
  // 8 kHz linear samples; writes the keys released in them and returns how many.
  int feed(const int16_t* pcm, size_t n, DtmfKey out[kMaxKeys]);

 private:
  struct Free {
    void operator()(dtmf_rx_state_s* s) const;
  };
  static void on_tone(void* self, int code, int level, int delay);

  std::unique_ptr<dtmf_rx_state_s, Free> rx_;
  int64_t samples_ = 0;       // fed so far
  char key_ = 0;              // the key being held
  int64_t key_start_ = 0;
  int key_level_ = 0;
  DtmfKey* out_ = nullptr;    // during feed(): where on_tone writes
  int out_count_ = 0;
};

}  // namespace relais::media
