// event_loop.hpp — the one event loop: libevent owns it and pumps Sofia's su_root.
#pragma once

#include <sofia-sip/su_wait.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

struct event_base;
struct event;

namespace relais {

// Sofia has no public call returning its epoll fd, so we find the eventpoll fd that
// su_root_create() opened and watch it from libevent (SOFIA-NOTES.md, "One thread").
class EventLoop {
 public:
  EventLoop() = default;
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  bool init(std::string& error);

  event_base* base() const { return base_; }
  su_root_t* root() const { return root_; }

  // Call after any Sofia API call made outside a Sofia callback (store reply, Lua, timer):
  // Sofia may have queued work or moved its next timer, which only a pump notices.
  void kick();

  // Runs `fn` when signal `signo` arrives (on the loop, not in the handler).
  void on_signal(int signo, std::function<void()> fn);

  int run();
  void stop();

 private:
  static void on_sofia_ready(int fd, short what, void* arg);
  void pump();

  event_base* base_ = nullptr;
  su_root_t* root_ = nullptr;
  event* sofia_fd_event_ = nullptr;
  event* sofia_timer_ = nullptr;
  event* kick_event_ = nullptr;
  struct SignalHandler {
    event* ev;
    std::function<void()> fn;
  };
  std::vector<std::unique_ptr<SignalHandler>> signals_;
};

}  // namespace relais
