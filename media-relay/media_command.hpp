// media_command.hpp — what the control thread asks a worker to do with the media of one
// stream pair (play, stop, send DTMF, start/stop recording), and the events a worker sends
// back (a playback ended, a DTMF key arrived, silence after speech, recorded samples). Plain
// data: the prompt audio travels as shared_ptr<const> so a cached prompt is never copied.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dtmf_detector.hpp"
#include "tone_generator.hpp"

namespace relais::media {

using PcmBuffer = std::shared_ptr<const std::vector<int16_t>>;  // 8 kHz mono

// How a side gets audio from us: its first G.711 format and its telephone-event type.
struct OutputCodec {
  uint8_t pt = 0;
  bool alaw = false;
  int te_pt = -1;  // -1: no telephone-event, DTMF goes in-band
};

struct MediaCommand {
  enum class Kind { play, stop_play, dtmf, record_start, record_stop } kind = Kind::play;
  int side = 0;           // play/stop/dtmf: the side that hears it
  uint64_t ref = 0;       // play id or recording id
  OutputCodec codec;      // play, dtmf
  // play: files back to back, or a tone
  std::vector<PcmBuffer> files;
  int64_t repeat = 1;     // 0 = until stopped
  bool tone = false;
  ToneSpec tone_spec;
  int64_t tone_samples = -1;  // < 0 = until stopped
  // dtmf
  char key = 0;
  int duration_ms = 100;
  int volume = 10;
  // record_start
  uint8_t record_sides = 3;   // bit i = what side i sends
  int64_t silence_ms = 0;
  int64_t max_samples = 0;
};

struct MediaEvent {
  enum class Kind { playback_done, dtmf, silence, record_block } kind = Kind::playback_done;
  uint64_t pair_id = 0;
  int side = 0;               // playback_done: the side that heard it; dtmf: the sender
  uint64_t ref = 0;           // play id / recording id
  DtmfKey key;
  bool inband = false;
  bool final = false;         // record_block: the last block, the recording is over
  std::vector<int16_t> samples;
};

}  // namespace relais::media
