// ng_control.hpp — the ng wire layer: `<cookie> <bencoded dict>` datagrams in, the reply with
// the same cookie out, a cache of recent replies so a retransmitted request (same cookie from
// the same peer within 30 s) is answered again instead of executed twice, and the idle-timeout
// notifications we send to a call's controller. The socket loop is NgServer.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ng_commands.hpp"
#include "udp_socket.hpp"

namespace relais::media {

class NgControl {
 public:
  static constexpr int64_t kCacheTtlNs = 30'000'000'000;
  static constexpr size_t kCacheMaxBytes = 16u << 20;  // bounds memory under a flood of cookies
  static constexpr size_t kMaxCookie = 128;

  explicit NgControl(NgCommands& commands) : commands_(commands) {}
  // One datagram → the reply datagram, or "" to stay silent (no cookie to answer with, or a
  // reply from a controller to one of our notifications).
  std::string handle(std::string_view datagram, const sockaddr_in& from, int64_t now_ns);
  // `<cookie> d7:call-id..7:command7:timeout8:from-tag..6:to-tag..e` for an expired call.
  std::string timeout_notification(const ExpiredCall& call);
  // `relais-media-<command>-<pid>-<n> <bencoded dict>` for any notification dict.
  std::string notification(const bencode::Value& v);

  size_t cache_entries() const { return cache_.size(); }
  size_t cache_bytes() const { return cache_bytes_; }

 private:
  void expire_cache(int64_t now_ns);
  void remember(std::string key, const std::string& reply, int64_t now_ns);

  struct Cached {
    std::string reply;
    int64_t expires_ns;
  };
  NgCommands& commands_;
  std::unordered_map<std::string, Cached> cache_;
  std::deque<std::pair<int64_t, std::string>> order_;  // (expiry, key), oldest first
  size_t cache_bytes_ = 0;
  uint64_t notify_seq_ = 0;
  int64_t last_junk_log_ns_ = 0;
  uint64_t junk_suppressed_ = 0;
};

class MediaServices;

// The control thread: the ng socket, a signalfd for SIGTERM/SIGINT, the idle-timeout sweep,
// and the media services' event queue (notifications and recording blocks from the workers).
class NgServer {
 public:
  NgServer(Fd socket, NgControl& control, SessionManager& sessions, int64_t timeout_ns,
           MediaServices* media = nullptr, int media_events_fd = -1);
  ~NgServer();  // unhooks the media services' notifier (they outlive us to finish recordings)
  NgServer(const NgServer&) = delete;
  NgServer& operator=(const NgServer&) = delete;
  // Returns when SIGTERM/SIGINT arrives (they must be blocked in every thread beforehand).
  void run(int signal_fd);

 private:
  void receive();
  void sweep(int64_t now_ns);
  void send_to(const sockaddr_in& to, const std::string& datagram);

  Fd socket_;
  NgControl& control_;
  SessionManager& sessions_;
  int64_t timeout_ns_;
  MediaServices* media_;
  int media_fd_;
  std::string buf_;
};

}  // namespace relais::media
