// call_media.hpp — the media side of a call that relais answered itself: prompts, tones,
// recordings and DTMF. Each is a request to relais-media over ng; the relay's events (dtmf,
// playback-done, silence) and SIP INFO digits come back here. One script verb waits at a time
// (a call's coroutine does one thing at a time); digits that arrive meanwhile are kept, bounded,
// for the next verb (type-ahead, as callers expect from phone menus).
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ng_client.hpp"

struct event;
struct event_base;

namespace relais {

struct MediaOutcome {
  // done | digit | timeout | hangup | error | silence | max
  std::string status;
  std::string digit;     // the digit that interrupted (status "digit")
  std::string error;     // status "error"
  double seconds = 0;    // record: length of the recording
  std::string path;      // record: the WAV written
};

class CallMedia {
 public:
  using Done = std::function<void(const MediaOutcome&)>;
  static constexpr size_t kMaxBufferedDigits = 32;

  CallMedia(event_base* base, NgClient& ng, std::string call_id, std::string caller_tag);
  ~CallMedia();
  CallMedia(const CallMedia&) = delete;
  CallMedia& operator=(const CallMedia&) = delete;

  // Plays the files back to back to the caller, `repeat` times (0 = until interrupted). With
  // `interrupt`, a digit (buffered or new) stops it and is returned (consumed).
  void play(std::vector<std::string> files, bool interrupt, int repeat, Done done);
  // ringback | busy | beep | dial; duration_ms 0 = the tone's natural length (beep) or until
  // a digit/the next verb (the others).
  void tone(const std::string& name, int duration_ms, bool interrupt, Done done);
  // Records what the caller says into `path` (WAV). Ends on a digit (consumed, returned), on
  // `silence_seconds` of silence (0 = off), after `max_seconds`, or when the caller hangs up.
  void record(const std::string& path, int max_seconds, int silence_seconds, Done done);
  // The next digit: from the buffer, or the first to arrive within `timeout_seconds`.
  void wait_digit(double timeout_seconds, Done done);
  // Starts a tone and returns at once (ringback while a transfer rings): the next playback,
  // stop_playback() or a bridged callee ends it.
  void start_tone(const std::string& name, int duration_ms);
  // Sends DTMF to the caller (RFC 4733 when negotiated). Fire and forget.
  void send_dtmf(const std::string& digits);
  // Stops whatever plays to the caller (e.g. a ringback tone once a dial is answered).
  void stop_playback();

  // Events.
  void digit(const std::string& digit);  // RFC 4733 (via relais-media) or SIP INFO
  void playback_done();
  void silence();
  void caller_gone();                    // ends the waiting verb with "hangup"

  // on_dtmf: sees every digit first; returning true interrupts the waiting verb with it
  // (the digit is then not buffered).
  void set_digit_hook(std::function<bool(const std::string&)> hook) { hook_ = std::move(hook); }
  void flush_digits() { digits_.clear(); }
  size_t buffered_digits() const { return digits_.size(); }
  bool gone() const { return gone_; }
  const std::string& call_id() const { return call_id_; }

 private:
  enum class Kind { none, play, record, digit };
  struct Wait {
    Kind kind = Kind::none;
    Done done;
    bool interrupt = false;
    bool playing = false;    // relais-media is playing something to the caller for this wait
    bool stopping = false;   // record: `stop recording` sent, waiting for its reply
    std::string path;
    std::string end_status;  // record: why it ends
    std::string end_digit;
    uint64_t serial = 0;     // replies and timers of an older wait are ignored
  };

  void request(bencode::Value req, std::function<void(const std::string&, const bencode::Value&)> done);
  bencode::Value base_request(const char* command) const;
  void arm_timer(double seconds);
  static void on_timer(int, short, void* arg);
  void timer_fired();
  void finish(MediaOutcome outcome);
  void end_recording(const std::string& status, const std::string& digit);
  void start_playback(bencode::Value req, bool interrupt, Kind kind, Done done);

  event_base* base_;
  NgClient& ng_;
  std::string call_id_, caller_tag_;
  std::shared_ptr<CallMedia*> self_;  // replies check it: the call may be gone by then
  ::event* timer_ = nullptr;
  Wait wait_;
  uint64_t serial_ = 0;
  std::deque<std::string> digits_;
  std::function<bool(const std::string&)> hook_;
  bool gone_ = false;
  bool recording_ = false;  // a recording runs on the relay (stop it if the call object dies)
};

}  // namespace relais
