// call_memory.cpp — the call arena (see call_memory.hpp).
#include "call_memory.hpp"

#include <cstddef>

// jemalloc's control interface when relais is linked with it; null otherwise.
extern "C" int mallctl(const char*, void*, size_t*, void*, size_t) __attribute__((weak));
// Defined by malloc_hook.cpp, which only the relais binary links (and only with jemalloc).
extern "C" const int relais_malloc_hook __attribute__((weak));

namespace relais {

bool init_call_memory() {
  if (CallMemory::flags_) return true;
  if (!mallctl || !&relais_malloc_hook) return false;
  unsigned arena = 0, tcache = 0;
  size_t len = sizeof arena;
  if (mallctl("arenas.create", &arena, &len, nullptr, 0) != 0) return false;
  // A thread cache of its own (the thread's cache holds regions of whichever arena filled
  // it): MALLOCX_ARENA(arena) | MALLOCX_TCACHE(tcache).
  len = sizeof tcache;
  if (mallctl("tcache.create", &tcache, &len, nullptr, 0) != 0) return false;
  CallMemory::flags_ = static_cast<int>((arena + 1) << 20) | static_cast<int>((tcache + 2) << 8);
  return true;
}

}  // namespace relais
