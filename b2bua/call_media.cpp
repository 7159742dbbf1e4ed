// call_media.cpp — see call_media.hpp. Every completion path goes through finish(), which
// clears the wait before calling back, so a callback may start the next verb at once.
#include "call_media.hpp"

#include <event2/event.h>

#include <cstring>

#include "log.hpp"

namespace relais {

CallMedia::CallMedia(event_base* base, NgClient& ng, std::string call_id, std::string caller_tag)
    : base_(base), ng_(ng), call_id_(std::move(call_id)), caller_tag_(std::move(caller_tag)),
      self_(std::make_shared<CallMedia*>(this)) {
  timer_ = evtimer_new(base_, on_timer, this);
}

CallMedia::~CallMedia() {
  *self_ = nullptr;
  if (timer_) event_free(timer_);
  // A recording still running is finalized by the relay when the call is deleted; stopping it
  // here as well keeps the file complete even if the delete is lost.
  if (recording_) ng_.request(base_request("stop recording"), [](const std::string&, const bencode::Value&) {});
}

bencode::Value CallMedia::base_request(const char* command) const {
  bencode::Value req = bencode::Value::make_dict();
  req["command"] = bencode::Value::string(command);
  req["call-id"] = bencode::Value::string(call_id_);
  req["from-tag"] = bencode::Value::string(caller_tag_);
  return req;
}

void CallMedia::request(bencode::Value req, std::function<void(const std::string&, const bencode::Value&)> done) {
  std::weak_ptr<CallMedia*> weak = self_;
  ng_.request(std::move(req), [weak, done = std::move(done)](const std::string& error, const bencode::Value& reply) {
    auto alive = weak.lock();
    if (!alive || !*alive) return;
    std::string why = error;
    if (why.empty() && reply.get_string("result") == "error") why = reply.get_string("error-reason", "media relay error");
    done(why, reply);
  });
}

void CallMedia::arm_timer(double seconds) {
  evtimer_del(timer_);
  if (seconds <= 0) return;
  auto usec = static_cast<long>(seconds * 1e6);
  timeval tv{usec / 1000000, usec % 1000000};
  evtimer_add(timer_, &tv);
}

void CallMedia::on_timer(int, short, void* arg) { static_cast<CallMedia*>(arg)->timer_fired(); }

void CallMedia::finish(MediaOutcome outcome) {
  evtimer_del(timer_);
  Done done = std::move(wait_.done);
  wait_ = Wait{};
  if (done) done(outcome);
}

void CallMedia::start_playback(bencode::Value req, bool interrupt, Kind kind, Done done) {
  if (gone_) return done({"hangup"});
  if (interrupt && !digits_.empty()) {
    MediaOutcome o{"digit", digits_.front()};
    digits_.pop_front();
    return done(o);
  }
  wait_ = Wait{};
  wait_.kind = kind;
  wait_.done = std::move(done);
  wait_.interrupt = interrupt;
  wait_.playing = true;
  wait_.serial = ++serial_;
  uint64_t serial = wait_.serial;
  request(std::move(req), [this, serial](const std::string& error, const bencode::Value& reply) {
    if (wait_.serial != serial || wait_.kind == Kind::none) return;
    if (!error.empty()) {
      log_warn("media.play_failed").kv("call_id", call_id_).kv("error", error);
      wait_.playing = false;
      return finish({"error", "", error});
    }
    // The relay says how long it plays; its playback-done normally comes first, the timer is
    // the safety net if that notification is lost (UDP).
    const bencode::Value* d = reply.find("duration");
    if (d && d->is_integer() && d->num >= 0) arm_timer(static_cast<double>(d->num) / 1000.0 + 2.0);
  });
}

void CallMedia::play(std::vector<std::string> files, bool interrupt, int repeat, Done done) {
  if (files.empty()) return done({"done"});
  bencode::Value req = base_request("play media");
  if (files.size() == 1) {
    req["file"] = bencode::Value::string(files[0]);
  } else {
    bencode::Value list = bencode::Value::make_list();
    for (auto& f : files) list.list.push_back(bencode::Value::string(f));
    req["file"] = list;
  }
  req["repeat-times"] = bencode::Value::integer(repeat);
  start_playback(std::move(req), interrupt, Kind::play, std::move(done));
}

void CallMedia::tone(const std::string& name, int duration_ms, bool interrupt, Done done) {
  bencode::Value req = base_request("play media");
  req["tone"] = bencode::Value::string(name);
  if (duration_ms > 0) req["duration"] = bencode::Value::integer(duration_ms);
  start_playback(std::move(req), interrupt, Kind::play, std::move(done));
}

void CallMedia::start_tone(const std::string& name, int duration_ms) {
  bencode::Value req = base_request("play media");
  req["tone"] = bencode::Value::string(name);
  if (duration_ms > 0) req["duration"] = bencode::Value::integer(duration_ms);
  std::string id = call_id_;
  request(std::move(req), [id](const std::string& error, const bencode::Value&) {
    if (!error.empty()) log_warn("media.tone_failed").kv("call_id", id).kv("error", error);
  });
}

void CallMedia::stop_playback() {
  if (wait_.kind == Kind::play) {
    wait_.playing = false;
    finish({"done"});
  }
  request(base_request("stop media"), [](const std::string&, const bencode::Value&) {});
}

void CallMedia::record(const std::string& path, int max_seconds, int silence_seconds, Done done) {
  if (gone_) return done({"hangup"});
  wait_ = Wait{};
  wait_.kind = Kind::record;
  wait_.done = std::move(done);
  wait_.path = path;
  wait_.serial = ++serial_;
  uint64_t serial = wait_.serial;
  bencode::Value req = base_request("start recording");
  req["output-destination"] = bencode::Value::string(path);
  if (silence_seconds > 0) req["silence-ms"] = bencode::Value::integer(silence_seconds * 1000);
  recording_ = true;
  request(std::move(req), [this, serial, max_seconds](const std::string& error, const bencode::Value&) {
    if (wait_.serial != serial || wait_.kind != Kind::record) return;
    if (!error.empty()) {
      recording_ = false;
      log_warn("media.record_failed").kv("call_id", call_id_).kv("error", error);
      return finish({"error", "", error});
    }
    if (!wait_.stopping) arm_timer(max_seconds);
  });
  log_info("media.record_start").kv("call_id", call_id_).kv("path", path).kv("max_seconds", max_seconds);
}

void CallMedia::end_recording(const std::string& status, const std::string& digit) {
  if (wait_.kind != Kind::record || wait_.stopping) return;
  wait_.stopping = true;
  wait_.end_status = status;
  wait_.end_digit = digit;
  evtimer_del(timer_);
  uint64_t serial = wait_.serial;
  request(base_request("stop recording"), [this, serial](const std::string& error, const bencode::Value& reply) {
    recording_ = false;
    if (wait_.serial != serial || wait_.kind != Kind::record) return;
    MediaOutcome o;
    o.status = wait_.end_status;
    o.digit = wait_.end_digit;
    o.path = wait_.path;
    if (!error.empty()) {
      o.status = "error";
      o.error = error;
    } else if (const bencode::Value* d = reply.find("duration"); d && d->is_integer()) {
      o.seconds = static_cast<double>(d->num) / 1000.0;
    }
    log_info("media.record_end").kv("call_id", call_id_).kv("path", o.path).kv("reason", o.status)
        .kv("ms", static_cast<long long>(o.seconds * 1000));
    finish(o);
  });
}

void CallMedia::wait_digit(double timeout_seconds, Done done) {
  if (!digits_.empty()) {
    MediaOutcome o{"digit", digits_.front()};
    digits_.pop_front();
    return done(o);
  }
  if (gone_) return done({"hangup"});
  wait_ = Wait{};
  wait_.kind = Kind::digit;
  wait_.done = std::move(done);
  wait_.serial = ++serial_;
  arm_timer(timeout_seconds);
}

void CallMedia::send_dtmf(const std::string& digits) {
  for (char c : digits) {
    bencode::Value req = base_request("play DTMF");
    req["code"] = bencode::Value::string(std::string(1, c));
    request(std::move(req), [](const std::string&, const bencode::Value&) {});
  }
}

void CallMedia::timer_fired() {
  switch (wait_.kind) {
    case Kind::play:
      wait_.playing = false;
      return finish({"done"});
    case Kind::record:
      return end_recording("max", "");
    case Kind::digit:
      return finish({"timeout"});
    case Kind::none:
      return;
  }
}

void CallMedia::digit(const std::string& d) {
  if (d.size() != 1 || !strchr("0123456789*#ABCD", d[0])) return;
  bool interrupt_now = hook_ && hook_(d);
  if (wait_.kind == Kind::record) {
    // Any key ends a recording (voicemail: "press # when done"); the key is not type-ahead.
    return end_recording("digit", d);
  }
  if (interrupt_now || (wait_.kind == Kind::play && wait_.interrupt) || wait_.kind == Kind::digit) {
    if (wait_.kind == Kind::play && wait_.playing)
      request(base_request("stop media"), [](const std::string&, const bencode::Value&) {});
    if (wait_.kind != Kind::none) return finish({"digit", d});
  }
  if (interrupt_now) return;
  if (digits_.size() >= kMaxBufferedDigits) return;  // a flood: the menu needs only a few
  digits_.push_back(d);
}

void CallMedia::playback_done() {
  if (wait_.kind == Kind::play && wait_.playing) {
    wait_.playing = false;
    finish({"done"});
  }
}

void CallMedia::silence() {
  if (wait_.kind == Kind::record) end_recording("silence", "");
}

void CallMedia::caller_gone() {
  if (gone_) return;
  gone_ = true;
  if (wait_.kind == Kind::record) return end_recording("hangup", "");
  if (wait_.kind != Kind::none) finish({"hangup"});
}

}  // namespace relais
