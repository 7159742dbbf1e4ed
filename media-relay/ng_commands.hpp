// ng_commands.hpp — the rtpengine ng verbs relais-media understands, as a table from verb to
// handler over the SessionManager. Handlers return an error text; execute() is the one place
// that writes result=error / error-reason. No sockets here: the unit tests drive it directly.
#pragma once

#include <netinet/in.h>

#include <string>

#include "bencode.hpp"
#include "session.hpp"

namespace relais::media {

class MediaServices;

// A required call-id/tag-like string key, bounded in length; "" or the error text.
std::string ng_required_id(const bencode::Value& req, const char* key, std::string& out);

class NgCommands {
 public:
  // media: the play/DTMF/record verbs; without it they answer "media services unavailable".
  explicit NgCommands(SessionManager& sessions, MediaServices* media = nullptr) : sessions_(sessions), media_(media) {}
  // One decoded request dict from `from` → the reply dict.
  bencode::Value execute(const bencode::Value& request, const sockaddr_in& from, int64_t now_ns);
  // The statistics of a call as query and delete report them (also used for the timeout log).
  static void call_stats(const Call& call, bencode::Value& reply, int64_t now_ns);

  SessionManager& sessions() { return sessions_; }

 private:
  SessionManager& sessions_;
  MediaServices* media_;
};

}  // namespace relais::media
