// event_loop.cpp — libevent + Sofia su_root on one thread.
#include "event_loop.hpp"

#include <dirent.h>
#include <event2/event.h>
#include <sofia-sip/su.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <set>

#include "log.hpp"

namespace relais {

namespace {

std::set<int> open_eventpoll_fds() {
  std::set<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return fds;
  int own = dirfd(dir);
  while (dirent* entry = readdir(dir)) {
    int fd = atoi(entry->d_name);
    if (entry->d_name[0] == '.' || fd == own) continue;
    char link[64] = {0};
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n > 0 && strstr(link, "eventpoll")) fds.insert(fd);
  }
  closedir(dir);
  return fds;
}

// su_root_step() reports "a timer is due within 1 ms" as 0 as well; re-arming with 0 would
// spin (~13,000 steps/s idle, measured). One millisecond is the floor.
constexpr long kMinTimerMs = 1;
constexpr int kMaxStepsPerPump = 32;

}  // namespace

EventLoop::~EventLoop() {
  for (auto& s : signals_) event_free(s->ev);
  if (kick_event_) event_free(kick_event_);
  if (sofia_timer_) event_free(sofia_timer_);
  if (sofia_fd_event_) event_free(sofia_fd_event_);
  if (root_) su_root_destroy(root_);
  if (base_) event_base_free(base_);
  su_deinit();
}

bool EventLoop::init(std::string& error) {
  if (su_init() != 0) {
    error = "su_init failed";
    return false;
  }
  base_ = event_base_new();
  if (!base_) {
    error = "event_base_new failed";
    return false;
  }
  std::set<int> before = open_eventpoll_fds();
  root_ = su_root_create(nullptr);
  if (!root_) {
    error = "su_root_create failed";
    return false;
  }
  // Without this nua/nta may start a second thread for their own loop (SOFIA-NOTES.md).
  su_root_threading(root_, 0);
  int sofia_fd = -1;
  for (int fd : open_eventpoll_fds())
    if (!before.count(fd)) sofia_fd = fd;
  if (sofia_fd < 0) {
    error = "cannot find Sofia's epoll descriptor (is su_port epoll?)";
    return false;
  }
  sofia_fd_event_ = event_new(base_, sofia_fd, EV_READ | EV_PERSIST, on_sofia_ready, this);
  sofia_timer_ = evtimer_new(base_, on_sofia_ready, this);
  kick_event_ = event_new(base_, -1, 0, on_sofia_ready, this);
  event_add(sofia_fd_event_, nullptr);
  pump();
  return true;
}

void EventLoop::on_sofia_ready(int, short, void* arg) { static_cast<EventLoop*>(arg)->pump(); }

void EventLoop::pump() {
  su_duration_t next = 0;
  for (int i = 0; i < kMaxStepsPerPump; ++i) {
    next = su_root_step(root_, 0);
    if (next != 0) break;
  }
  if (next == SU_WAIT_FOREVER) {
    evtimer_del(sofia_timer_);
    return;
  }
  long ms = next < kMinTimerMs ? kMinTimerMs : next;
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  evtimer_add(sofia_timer_, &tv);
}

void EventLoop::kick() {
  if (kick_event_ && !event_pending(kick_event_, EV_TIMEOUT, nullptr)) event_active(kick_event_, EV_TIMEOUT, 0);
}

void EventLoop::on_signal(int signo, std::function<void()> fn) {
  auto handler = std::make_unique<SignalHandler>();
  handler->fn = std::move(fn);
  handler->ev = evsignal_new(
      base_, signo, [](int, short, void* arg) { static_cast<SignalHandler*>(arg)->fn(); }, handler.get());
  evsignal_add(handler->ev, nullptr);
  signals_.push_back(std::move(handler));
}

int EventLoop::run() { return event_base_dispatch(base_); }

void EventLoop::stop() { event_base_loopexit(base_, nullptr); }

}  // namespace relais
