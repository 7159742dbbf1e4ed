// media_services.hpp — the control-thread half of play / DTMF / record: resolves a call and a
// participant, loads prompts (PromptCache), owns the recording files, sends the commands to
// the worker owning the stream pair, and turns worker events into notifications for the
// call's controller (playback-done, dtmf, silence). Recorded blocks are written here, on the
// control thread, never on a packet worker.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bencode.hpp"
#include "media_events.hpp"
#include "media_plane.hpp"
#include "prompt_cache.hpp"
#include "session.hpp"
#include "wav_file.hpp"

namespace relais::media {

struct PlayRequest {
  std::vector<std::string> files;  // back to back
  std::string tone;                // or a named tone
  int64_t repeat = 1;              // 0 = until `stop media`
  int64_t duration_ms = -1;        // tones: total length, overrides repeat
};

struct RecordRequest {
  std::string from_tag;            // empty: both directions mixed
  std::string path;
  int64_t silence_ms = 0;
};

class MediaServices {
 public:
  static constexpr int64_t kMaxRecordingSamples = int64_t{3600} * 8000;  // one hour
  static constexpr int64_t kFinalWaitNs = 1'000'000'000;  // for the worker's last block
  static constexpr size_t kMaxFiles = 64;                 // per play media
  static constexpr int64_t kMaxRepeat = 100000;
  static constexpr size_t kMaxPath = 4096;

  using Notify = std::function<void(const sockaddr_in& to, const bencode::Value& notification)>;

  // events may be null (no worker events: recordings are finalised without waiting).
  MediaServices(SessionManager& sessions, MediaPlane& plane, MediaEventQueue* events);
  ~MediaServices();  // finalises every running recording
  MediaServices(const MediaServices&) = delete;
  MediaServices& operator=(const MediaServices&) = delete;

  // Each returns "" or the error text for the ng reply.
  std::string play(const std::string& call_id, const std::string& tag, const PlayRequest& req, int64_t& duration_ms);
  std::string stop_play(const std::string& call_id, const std::string& tag);
  std::string play_dtmf(const std::string& call_id, const std::string& tag, const std::string& code,
                        int64_t duration_ms, int64_t volume);
  std::string start_recording(const std::string& call_id, const RecordRequest& req);
  std::string stop_recording(const std::string& call_id, int64_t& duration_ms, std::string& file);

  // Control loop: the event queue's fd is readable.
  void process_events();
  void set_notifier(Notify notify) { notify_ = std::move(notify); }
  // For query: the path being recorded ("" when none).
  std::string recording_path(const Call& call) const;
  const PromptCache& cache() const { return cache_; }

 private:
  struct Target {
    Call* call = nullptr;
    int side = 0;
    Stream* stream = nullptr;
  };
  struct Recording {
    std::string call_id, tag, path;
    uint64_t pair_id = 0;
    WavWriter writer;
    bool done = false;
    bool waited = false;   // a stop is waiting for the final block
    bool write_error = false;
  };
  // tag "" with allow_no_tag: the call's first audio stream, side 0.
  std::string target(const std::string& call_id, const std::string& tag, bool allow_no_tag, Target& t);
  // Stops the recording on its worker, waits (bounded) for the last block, closes and renames.
  void finish_recording(uint64_t id, int64_t& duration_ms, std::string& file);
  void complete(Recording& rec);
  void on_release(Call& call);
  void notify(const Call& call, bencode::Value v);

  SessionManager& sessions_;
  MediaPlane& plane_;
  MediaEventQueue* events_;
  PromptCache cache_;
  std::map<uint64_t, Recording> recordings_;
  uint64_t next_ref_ = 1;
  Notify notify_;
};

}  // namespace relais::media
