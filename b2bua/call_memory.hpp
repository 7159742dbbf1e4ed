// call_memory.hpp — long-lived per-call state in an allocator arena of its own.
//
// A call's setup allocates two kinds of memory at the same time: what the call keeps while it
// is up (nta dialog legs, the B2bCall, its strings) and what is gone within 5–32 s (messages
// and transactions, which nta keeps for their retransmission timers). From one arena both fill
// the same slabs; once the transactions are gone, nearly every slab still holds a few live call
// objects and the freed memory cannot go back to the kernel (measured: 17 KiB RSS per held
// call for 5.6 KiB in use, tests/bench/README.md). Code that creates long-lived call state
// opens a CallMemory scope; relais's allocation hook (malloc_hook.cpp) then serves every
// allocation on this thread — ours, Sofia's, libevent's — from a dedicated jemalloc arena whose
// slabs hold nothing else. Without jemalloc (sanitizer builds) or without the hook (unit
// tests) a scope does nothing.
#pragma once

#include <string>

namespace relais {

// Creates the arena (once, at start-up). False when the hook is not there (no jemalloc).
bool init_call_memory();

// Opens a scope for the current thread; scopes nest. Only relais's main thread opens them (the
// arena's thread cache is not shared).
class CallMemory {
 public:
  CallMemory() {
    if (depth_++ == 0) active_ = flags_;
  }
  ~CallMemory() {
    if (--depth_ == 0) active_ = 0;
  }
  CallMemory(const CallMemory&) = delete;
  CallMemory& operator=(const CallMemory&) = delete;

  // For the hook: jemalloc mallocx() flags (the call arena and its own thread cache) while a
  // scope is open on this thread, else 0.
  static int flags() { return active_; }

 private:
  friend bool init_call_memory();
  // constinit: read without a thread-local initialisation check on every allocation.
  static constinit inline thread_local int depth_ = 0;
  static constinit inline thread_local int active_ = 0;
  static inline int flags_ = 0;
};

// Assigns a string the call keeps (an SDP, a tag) with its buffer from the call arena.
inline void assign_call_string(std::string& field, const std::string& value) {
  CallMemory memory;
  field = value;
}

}  // namespace relais
