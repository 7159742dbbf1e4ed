// ng_client.hpp — relais's side of rtpengine's ng protocol: requests to a media relay
// (relais-media or rtpengine) over UDP with cookies and retransmission, plus the relay's
// `timeout` notifications for dead calls.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "bencode.hpp"

struct event;
struct event_base;

namespace relais {

struct MediaSettings {
  std::string mode = "relay";        // "relay" (anchor every call) | "passthrough" (SDP untouched)
  std::string ng = "127.0.0.1:2223";  // the relay's ng control address
  int timeout_ms = 1000;             // per attempt; the same request is resent with its cookie
  int attempts = 3;
  std::string srtp = "optional";     // default SRTP policy of users and trunks (srtp_policy.hpp)
};

class NgClient {
 public:
  using Reply = std::function<void(const std::string& error, const bencode::Value& reply)>;
  // A relay reported a dead call (idle timeout): call-id and from-tag.
  using TimeoutHandler = std::function<void(const std::string& call_id, const std::string& from_tag)>;
  // Any other notification the relay sends (relais-media: dtmf, playback-done, silence).
  using NotificationHandler = std::function<void(const std::string& command, const bencode::Value& message)>;

  NgClient(event_base* base, MediaSettings settings);
  ~NgClient();
  NgClient(const NgClient&) = delete;
  NgClient& operator=(const NgClient&) = delete;

  bool start(std::string& error);
  void on_timeout(TimeoutHandler handler) { timeout_handler_ = std::move(handler); }
  void on_notification(NotificationHandler handler) { notification_handler_ = std::move(handler); }

  // Sends `request` (a dict with "command"); `done` runs exactly once, from the loop.
  void request(bencode::Value request, Reply done);

  bool relay_up() const { return up_; }

 private:
  struct Pending {
    std::string datagram;
    int attempts_left = 0;
    ::event* timer = nullptr;
    Reply done;
    NgClient* client = nullptr;
    std::string cookie;
  };
  static void on_readable(int fd, short, void* arg);
  static void on_retry(int, short, void* arg);
  static void on_ping(int, short, void* arg);
  void received(const char* data, size_t len);
  void complete(const std::string& cookie, const std::string& error, const bencode::Value& reply);
  void set_up(bool up, const std::string& why);

  event_base* base_;
  MediaSettings settings_;
  int fd_ = -1;
  ::event* read_event_ = nullptr;
  ::event* ping_timer_ = nullptr;
  uint64_t next_cookie_ = 1;
  std::string cookie_prefix_;
  std::map<std::string, Pending> pending_;
  TimeoutHandler timeout_handler_;
  NotificationHandler notification_handler_;
  bool up_ = true;
  bool ever_answered_ = false;
  bool down_logged_ = false;
};

}  // namespace relais
