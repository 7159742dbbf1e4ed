// inband_dtmf.cpp — spandsp's realtime callback reports a key's start (its ASCII code) and its
// end (code 0); only those two edges matter here, the digit buffer is not used.
#include "inband_dtmf.hpp"

#include <spandsp.h>

#include <algorithm>

namespace relais::media {

void InbandDtmf::Free::operator()(dtmf_rx_state_s* s) const {
  if (s) dtmf_rx_free(s);
}

InbandDtmf::InbandDtmf() : rx_(dtmf_rx_init(nullptr, nullptr, nullptr)) {
  if (rx_) dtmf_rx_set_realtime_callback(rx_.get(), &InbandDtmf::on_tone, this);
}

void InbandDtmf::on_tone(void* self, int code, int level, int /*delay*/) {
  auto* me = static_cast<InbandDtmf*>(self);
  if (code != 0) {
    me->key_ = static_cast<char>(code);
    me->key_start_ = me->samples_;
    me->key_level_ = level;
    return;
  }
  if (me->key_ == 0) return;
  if (me->out_ && me->out_count_ < kMaxKeys) {
    DtmfKey& k = me->out_[me->out_count_++];
    k.key = me->key_;
    // Resolution of one fed block (20 ms): spandsp reports within the block.
    k.duration_ms = static_cast<uint32_t>(std::max<int64_t>(0, me->samples_ - me->key_start_) / 8);
    // spandsp's level is the tone power in dBm0 (negative); RFC 4733 volume is its magnitude.
    k.volume = static_cast<uint8_t>(std::clamp(-me->key_level_, 0, 63));
  }
  me->key_ = 0;
}

int InbandDtmf::feed(const int16_t* pcm, size_t n, DtmfKey out[kMaxKeys]) {
  if (!rx_) return 0;
  out_ = out;
  out_count_ = 0;
  dtmf_rx(rx_.get(), pcm, static_cast<int>(n));
  samples_ += static_cast<int64_t>(n);
  out_ = nullptr;
  return out_count_;
}

}  // namespace relais::media
