// media_services.cpp — ng media verbs over sessions and the media plane.
#include "media_services.hpp"

#include <poll.h>

#include <algorithm>
#include <cstdio>

#include "dtmf_event.hpp"
#include "media_log.hpp"
#include "tone_generator.hpp"
#include "udp_socket.hpp"

namespace relais::media {

using bencode::Value;

MediaServices::MediaServices(SessionManager& sessions, MediaPlane& plane, MediaEventQueue* events)
    : sessions_(sessions), plane_(plane), events_(events) {
  sessions_.set_release_hook([this](Call& call) { on_release(call); });
}

MediaServices::~MediaServices() {
  sessions_.set_release_hook(nullptr);
  std::vector<uint64_t> running;
  for (auto& [id, rec] : recordings_)
    if (!rec.done) running.push_back(id);
  for (uint64_t id : running) {
    int64_t duration = 0;
    std::string file;
    finish_recording(id, duration, file);
  }
}

std::string MediaServices::target(const std::string& call_id, const std::string& tag, bool allow_no_tag, Target& t) {
  t.call = sessions_.find_mutable(call_id);
  if (!t.call) return "Unknown call-id";
  if (tag.empty() && allow_no_tag) t.side = 0;
  else if (!tag.empty() && tag == t.call->tag[0]) t.side = 0;
  else if (!tag.empty() && tag == t.call->tag[1]) t.side = 1;
  else return "Unknown from-tag";
  for (Stream& st : t.call->streams) {
    if (st.type == "audio") {
      t.stream = &st;
      return "";
    }
  }
  return "No audio stream";
}

void MediaServices::notify(const Call& call, Value v) {
  v["call-id"] = Value::string(call.id);
  if (notify_ && call.controller.sin_port != 0) notify_(call.controller, v);
}

std::string MediaServices::play(const std::string& call_id, const std::string& tag, const PlayRequest& req,
                                int64_t& duration_ms) {
  Target t;
  if (auto e = target(call_id, tag, false, t); !e.empty()) return e;
  const SideSpec& side = t.stream->spec.side[t.side];
  if (side.g711_pt < 0) return "No G.711 codec";
  if (req.repeat < 0 || req.repeat > kMaxRepeat) return "bad repeat-times";
  MediaCommand cmd;
  cmd.kind = MediaCommand::Kind::play;
  cmd.side = t.side;
  cmd.codec = OutputCodec{static_cast<uint8_t>(side.g711_pt), side.g711_alaw, side.te_pt};
  cmd.repeat = req.repeat;
  if (!req.tone.empty()) {
    if (!named_tone(req.tone, cmd.tone_spec)) return "Unknown tone";
    cmd.tone = true;
    if (req.duration_ms >= 0) cmd.tone_samples = std::min<int64_t>(req.duration_ms, int64_t{24} * 3600 * 1000) * 8;
    else if (req.repeat == 0) cmd.tone_samples = -1;
    else cmd.tone_samples = tone_samples(cmd.tone_spec, req.repeat);
    duration_ms = cmd.tone_samples < 0 ? -1 : cmd.tone_samples / 8;
  } else {
    if (req.files.empty()) return "No media file";
    if (req.files.size() > kMaxFiles) return "Too many media files";
    int64_t samples = 0;
    for (const std::string& path : req.files) {
      std::string error;
      PcmBuffer pcm = path.size() <= kMaxPath ? cache_.get(path, error) : nullptr;
      if (!pcm) {
        Log(LogLevel::warn, "media.file_error").kv("call-id", call_id).kv("file", path).kv("reason", error);
        return "Cannot open media file";
      }
      samples += static_cast<int64_t>(pcm->size());
      cmd.files.push_back(std::move(pcm));
    }
    duration_ms = req.repeat == 0 ? -1 : samples * req.repeat / 8;
  }
  cmd.ref = next_ref_++;
  t.call->playing[t.side] = cmd.ref;
  plane_.media_command(t.stream->handle.id, std::move(cmd));
  Log(LogLevel::info, "media.play").kv("call-id", call_id).kv("from-tag", tag).kv("side", t.side)
      .kv("source", req.tone.empty() ? req.files.front() : req.tone)
      .kv("files", static_cast<unsigned long>(req.files.size())).kv("duration-ms", static_cast<long long>(duration_ms));
  return "";
}

std::string MediaServices::stop_play(const std::string& call_id, const std::string& tag) {
  Target t;
  if (auto e = target(call_id, tag, false, t); !e.empty()) return e;
  MediaCommand cmd;
  cmd.kind = MediaCommand::Kind::stop_play;
  cmd.side = t.side;
  t.call->playing[t.side] = 0;
  plane_.media_command(t.stream->handle.id, std::move(cmd));
  Log(LogLevel::info, "media.stop").kv("call-id", call_id).kv("from-tag", tag).kv("side", t.side);
  return "";
}

std::string MediaServices::play_dtmf(const std::string& call_id, const std::string& tag, const std::string& code,
                                     int64_t duration_ms, int64_t volume) {
  Target t;
  if (auto e = target(call_id, tag, false, t); !e.empty()) return e;
  if (code.size() != 1 || dtmf_key_event(code[0]) < 0) return "Invalid DTMF code";
  const SideSpec& side = t.stream->spec.side[t.side];
  if (side.te_pt < 0 && side.g711_pt < 0) return "No G.711 codec";
  MediaCommand cmd;
  cmd.kind = MediaCommand::Kind::dtmf;
  cmd.side = t.side;
  cmd.codec = OutputCodec{static_cast<uint8_t>(std::max<int>(side.g711_pt, 0)), side.g711_alaw, side.te_pt};
  cmd.key = dtmf_event_key(static_cast<uint8_t>(dtmf_key_event(code[0])));
  cmd.duration_ms = static_cast<int>(std::clamp<int64_t>(duration_ms, 40, 2000));
  cmd.volume = static_cast<int>(std::clamp<int64_t>(volume, 0, 63));
  plane_.media_command(t.stream->handle.id, std::move(cmd));
  Log(LogLevel::info, "media.dtmf_send").kv("call-id", call_id).kv("from-tag", tag).kv("code", code)
      .kv("mode", side.te_pt >= 0 ? "rfc4733" : "inband");
  return "";
}

std::string MediaServices::start_recording(const std::string& call_id, const RecordRequest& req) {
  Target t;
  if (auto e = target(call_id, req.from_tag, true, t); !e.empty()) return e;
  if (req.path.empty()) return "missing output-destination";
  if (req.path.size() > kMaxPath) return "output-destination too long";
  if (req.silence_ms < 0 || req.silence_ms > 3'600'000) return "bad silence-ms";
  if (t.call->recording) {  // one recording per call: the new one replaces it
    int64_t duration = 0;
    std::string file;
    finish_recording(t.call->recording, duration, file);
  }
  uint64_t id = next_ref_++;
  Recording& rec = recordings_[id];
  std::string error;
  if (!rec.writer.open(req.path + ".part", error)) {
    recordings_.erase(id);
    Log(LogLevel::warn, "media.record_error").kv("call-id", call_id).kv("file", req.path).kv("reason", error);
    return "Cannot open output file";
  }
  rec.call_id = call_id;
  rec.tag = req.from_tag;
  rec.path = req.path;
  rec.pair_id = t.stream->handle.id;
  MediaCommand cmd;
  cmd.kind = MediaCommand::Kind::record_start;
  cmd.ref = id;
  cmd.record_sides = req.from_tag.empty() ? 3 : static_cast<uint8_t>(1u << t.side);
  cmd.silence_ms = req.silence_ms;
  cmd.max_samples = kMaxRecordingSamples;
  t.call->recording = id;
  plane_.media_command(rec.pair_id, std::move(cmd));
  Log(LogLevel::info, "media.record_start").kv("call-id", call_id).kv("from-tag", req.from_tag)
      .kv("file", req.path).kv("silence-ms", static_cast<long long>(req.silence_ms));
  return "";
}

std::string MediaServices::stop_recording(const std::string& call_id, int64_t& duration_ms, std::string& file) {
  Call* call = sessions_.find_mutable(call_id);
  if (!call) return "Unknown call-id";
  if (!call->recording) return "Not recording";
  finish_recording(call->recording, duration_ms, file);
  return "";
}

std::string MediaServices::recording_path(const Call& call) const {
  auto it = recordings_.find(call.recording);
  return call.recording && it != recordings_.end() ? it->second.path : "";
}

void MediaServices::on_release(Call& call) {
  if (call.recording) {
    int64_t duration = 0;
    std::string file;
    finish_recording(call.recording, duration, file);
  }
  call.playing[0] = call.playing[1] = 0;
}

void MediaServices::finish_recording(uint64_t id, int64_t& duration_ms, std::string& file) {
  auto it = recordings_.find(id);
  if (it == recordings_.end()) return;
  Recording& rec = it->second;
  if (Call* call = sessions_.find_mutable(rec.call_id); call && call->recording == id) call->recording = 0;
  if (!rec.done && events_) {
    // The worker holds up to a second of samples: ask for them and wait for that block. The
    // worker answers within one loop turn; the bound only matters if it is wedged.
    rec.waited = true;
    MediaCommand cmd;
    cmd.kind = MediaCommand::Kind::record_stop;
    cmd.ref = id;
    plane_.media_command(rec.pair_id, std::move(cmd));
    int64_t deadline = monotonic_ns() + kFinalWaitNs;
    while (!rec.done) {
      int64_t left = deadline - monotonic_ns();
      if (left <= 0) break;
      pollfd pfd{events_->fd(), POLLIN, 0};
      ::poll(&pfd, 1, static_cast<int>((left + 999'999) / 1'000'000));
      process_events();
    }
    if (!rec.done) Log(LogLevel::warn, "media.record_final_timeout").kv("call-id", rec.call_id).kv("file", rec.path);
  }
  if (!rec.done) complete(rec);
  duration_ms = static_cast<int64_t>(rec.writer.samples() / 8);
  file = rec.path;
  recordings_.erase(it);
}

void MediaServices::complete(Recording& rec) {
  rec.done = true;
  uint64_t samples = rec.writer.samples();
  rec.writer.close();  // libsndfile writes the final RIFF and data sizes here
  std::string part = rec.path + ".part";
  if (std::rename(part.c_str(), rec.path.c_str()) != 0)
    Log(LogLevel::error, "media.record_rename_failed").kv("file", rec.path);
  Log(LogLevel::info, "media.record_done").kv("call-id", rec.call_id).kv("file", rec.path)
      .kv("duration-ms", static_cast<long long>(samples / 8)).kv("write-error", rec.write_error ? 1 : 0);
}

void MediaServices::process_events() {
  if (!events_) return;
  for (MediaEvent& ev : events_->take()) {
    switch (ev.kind) {
      case MediaEvent::Kind::record_block: {
        auto it = recordings_.find(ev.ref);
        if (it == recordings_.end() || it->second.done) break;  // finalised without this block (timeout)
        Recording& rec = it->second;
        uint64_t room = static_cast<uint64_t>(kMaxRecordingSamples) - std::min<uint64_t>(rec.writer.samples(), kMaxRecordingSamples);
        size_t n = std::min<size_t>(ev.samples.size(), room);
        if (n && !rec.writer.write(ev.samples.data(), n) && !rec.write_error) {
          rec.write_error = true;
          Log(LogLevel::error, "media.record_write_failed").kv("call-id", rec.call_id).kv("file", rec.path);
        }
        if (ev.final) {
          complete(rec);
          if (!rec.waited) recordings_.erase(it);  // nobody is waiting to read its result
        }
        break;
      }
      case MediaEvent::Kind::dtmf: {
        const Call* call = sessions_.find_by_pair(ev.pair_id);
        if (!call) break;
        Value v = Value::make_dict();
        v["command"] = Value::string("dtmf");
        v["from-tag"] = Value::string(call->tag[ev.side & 1]);
        v["digit"] = Value::string(std::string(1, ev.key.key));
        v["duration"] = Value::integer(ev.key.duration_ms);
        v["volume"] = Value::integer(ev.key.volume);
        v["source"] = Value::string(ev.inband ? "inband" : "rfc4733");
        Log(LogLevel::info, "media.dtmf").kv("call-id", call->id).kv("from-tag", call->tag[ev.side & 1])
            .kv("digit", std::string(1, ev.key.key)).kv("duration-ms", static_cast<long>(ev.key.duration_ms))
            .kv("source", ev.inband ? "inband" : "rfc4733");
        notify(*call, std::move(v));
        break;
      }
      case MediaEvent::Kind::playback_done: {
        Call* call = sessions_.find_by_pair(ev.pair_id);
        // Only the playback the control thread still believes in: one that was replaced or
        // stopped meanwhile ended by request, not by itself.
        if (!call || call->playing[ev.side & 1] != ev.ref) break;
        call->playing[ev.side & 1] = 0;
        Value v = Value::make_dict();
        v["command"] = Value::string("playback-done");
        v["from-tag"] = Value::string(call->tag[ev.side & 1]);
        Log(LogLevel::info, "media.playback_done").kv("call-id", call->id).kv("from-tag", call->tag[ev.side & 1]);
        notify(*call, std::move(v));
        break;
      }
      case MediaEvent::Kind::silence: {
        auto it = recordings_.find(ev.ref);
        const Call* call = sessions_.find_by_pair(ev.pair_id);
        if (it == recordings_.end() || !call) break;
        Value v = Value::make_dict();
        v["command"] = Value::string("silence");
        v["from-tag"] = Value::string(it->second.tag.empty() ? call->tag[0] : it->second.tag);
        Log(LogLevel::info, "media.silence").kv("call-id", call->id).kv("file", it->second.path);
        notify(*call, std::move(v));
        break;
      }
    }
  }
}

}  // namespace relais::media
