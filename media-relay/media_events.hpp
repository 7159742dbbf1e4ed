// media_events.hpp — the queue from the packet workers to the control thread. Workers push
// (a mutex held for one vector push, a few times per second per stream at most: DTMF keys
// are rate limited, recording blocks are 0.5 s each); the control thread polls fd() in its
// loop and takes the whole batch. Only the first push into an empty queue writes the eventfd.
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

#include "media_command.hpp"
#include "udp_socket.hpp"

namespace relais::media {

class MediaEventQueue {
 public:
  // Notifications beyond this many queued are dropped (counted); recording blocks never are,
  // their volume is bounded by the recordings themselves.
  static constexpr size_t kMaxQueued = 65536;

  void push(MediaEvent ev);
  std::vector<MediaEvent> take();
  int fd() const { return wake_.fd(); }
  uint64_t dropped() const;

 private:
  mutable std::mutex mu_;
  std::vector<MediaEvent> queue_;  // guarded by mu_
  uint64_t dropped_ = 0;           // guarded by mu_
  WakeFd wake_;
};

}  // namespace relais::media
