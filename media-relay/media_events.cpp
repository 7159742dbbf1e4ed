// media_events.cpp — worker → control event queue.
#include "media_events.hpp"

namespace relais::media {

void MediaEventQueue::push(MediaEvent ev) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= kMaxQueued && ev.kind != MediaEvent::Kind::record_block) {
      ++dropped_;
      return;
    }
    was_empty = queue_.empty();
    queue_.push_back(std::move(ev));
  }
  // A non-empty queue has already woken the control thread (or it is taking it right now and
  // will see this event in the same swap).
  if (was_empty) wake_.signal();
}

std::vector<MediaEvent> MediaEventQueue::take() {
  wake_.drain();
  std::vector<MediaEvent> out;
  std::lock_guard<std::mutex> lock(mu_);
  out.swap(queue_);
  return out;
}

uint64_t MediaEventQueue::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

}  // namespace relais::media
