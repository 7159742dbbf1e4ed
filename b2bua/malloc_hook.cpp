// malloc_hook.cpp — relais's allocation entry points in front of jemalloc's, so that memory
// allocated inside a CallMemory scope comes from the call arena (call_memory.hpp). Linked into
// the relais binary only, and only when it runs on jemalloc (CMakeLists.txt).
//
// malloc, calloc, realloc, free and the plain operator new/delete defined here take precedence
// over jemalloc's for every library of the process (Sofia included). Outside a scope each one
// hands over to jemalloc's own, found with dlsym(RTLD_NEXT): a thread-local test and an
// indirect call more. Inside a scope, allocations call mallocx() with the call arena and its
// own thread cache, and frees bypass every thread cache: a temporary freed in a scope would
// otherwise wait in the thread's cache for the next short-lived allocation of its size, which
// would then hold a slot of a call slab for as long as a transaction lingers; and a region of
// the main arena must not enter the call arena's cache. The aligned allocators stay jemalloc's
// (nothing per call uses them); jemalloc frees any of its regions whatever the arena.
#include <dlfcn.h>

#include <cerrno>
#include <cstddef>
#include <new>

#include "call_memory.hpp"

extern "C" {
void* mallocx(size_t size, int flags);
void* rallocx(void* ptr, size_t size, int flags);
void dallocx(void* ptr, int flags);
void sdallocx(void* ptr, size_t size, int flags);
// Tells init_call_memory() that allocations really go through here.
extern const int relais_malloc_hook;
const int relais_malloc_hook = 1;
}

namespace {

constexpr int kZero = 0x40;             // MALLOCX_ZERO
constexpr int kTcacheMask = 0xfff << 8;  // MALLOCX_TCACHE(...) bits
constexpr int kNoTcache = 1 << 8;       // MALLOCX_TCACHE_NONE

using MallocFn = void* (*)(size_t);
using CallocFn = void* (*)(size_t, size_t);
using ReallocFn = void* (*)(void*, size_t);
using FreeFn = void (*)(void*);
using SizedDeleteFn = void (*)(void*, size_t);

// jemalloc's own functions, resolved on first use (every thread resolves the same values).
MallocFn next_malloc = nullptr;
CallocFn next_calloc = nullptr;
ReallocFn next_realloc = nullptr;
FreeFn next_free = nullptr;
SizedDeleteFn next_sized_delete = nullptr;
thread_local bool resolving = false;

// dlsym may allocate: while it runs, this thread's allocations take the mallocx() path.
bool resolve() {
  if (__atomic_load_n(&next_sized_delete, __ATOMIC_ACQUIRE)) return true;
  if (resolving) return false;
  resolving = true;
  auto m = reinterpret_cast<MallocFn>(dlsym(RTLD_NEXT, "malloc"));
  auto c = reinterpret_cast<CallocFn>(dlsym(RTLD_NEXT, "calloc"));
  auto r = reinterpret_cast<ReallocFn>(dlsym(RTLD_NEXT, "realloc"));
  auto f = reinterpret_cast<FreeFn>(dlsym(RTLD_NEXT, "free"));
  auto d = reinterpret_cast<SizedDeleteFn>(dlsym(RTLD_NEXT, "_ZdlPvm"));  // operator delete(void*, size_t)
  resolving = false;
  if (!m || !c || !r || !f || !d) return false;
  __atomic_store_n(&next_malloc, m, __ATOMIC_RELAXED);
  __atomic_store_n(&next_calloc, c, __ATOMIC_RELAXED);
  __atomic_store_n(&next_realloc, r, __ATOMIC_RELAXED);
  __atomic_store_n(&next_free, f, __ATOMIC_RELAXED);
  __atomic_store_n(&next_sized_delete, d, __ATOMIC_RELEASE);
  return true;
}

// The slow paths: inside a scope, or before resolve() succeeded (then flags is 0 and mallocx
// with no flags is jemalloc's plain allocation).
__attribute__((noinline)) void* other_malloc(size_t size, int flags) {
  if (!flags && resolve()) return next_malloc(size);
  void* p = mallocx(size ? size : 1, flags);  // mallocx(0) is undefined
  if (!p) errno = ENOMEM;
  return p;
}

__attribute__((noinline)) void other_free(void* ptr, int flags) {
  if (!flags && resolve()) return next_free(ptr);
  // Inside a scope, not into a thread cache: the region goes straight back to its slab.
  if (ptr) dallocx(ptr, flags ? kNoTcache : 0);
}

}  // namespace

extern "C" void* malloc(size_t size) {
  int flags = relais::CallMemory::flags();
  MallocFn fn = __atomic_load_n(&next_malloc, __ATOMIC_RELAXED);
  if (__builtin_expect(!flags && fn, 1)) return fn(size);
  return other_malloc(size, flags);
}

extern "C" void* calloc(size_t n, size_t size) {
  int flags = relais::CallMemory::flags();
  CallocFn fn = __atomic_load_n(&next_calloc, __ATOMIC_RELAXED);
  if (__builtin_expect(!flags && fn, 1)) return fn(n, size);
  if (!flags && resolve()) return next_calloc(n, size);
  size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  void* p = mallocx(total ? total : 1, flags | kZero);
  if (!p) errno = ENOMEM;
  return p;
}

extern "C" void* realloc(void* ptr, size_t size) {
  int flags = relais::CallMemory::flags();
  ReallocFn fn = __atomic_load_n(&next_realloc, __ATOMIC_RELAXED);
  if (__builtin_expect(!flags && fn, 1)) return fn(ptr, size);
  if (!flags && resolve()) return next_realloc(ptr, size);
  if (!ptr) return other_malloc(size, flags);
  if (size == 0) {  // frees, as jemalloc's realloc does
    other_free(ptr, flags);
    return nullptr;
  }
  // Not through the arena's thread cache: the old region may belong to another arena.
  void* p = rallocx(ptr, size, flags ? (flags & ~kTcacheMask) | kNoTcache : 0);
  if (!p) errno = ENOMEM;
  return p;
}

extern "C" void free(void* ptr) {
  int flags = relais::CallMemory::flags();
  FreeFn fn = __atomic_load_n(&next_free, __ATOMIC_RELAXED);
  if (__builtin_expect(!flags && fn, 1)) return fn(ptr);
  other_free(ptr, flags);
}

void* operator new(size_t size) {
  void* p = malloc(size);
  if (__builtin_expect(!p, 0)) throw std::bad_alloc();
  return p;
}

void* operator new[](size_t size) {
  void* p = malloc(size);
  if (__builtin_expect(!p, 0)) throw std::bad_alloc();
  return p;
}

void* operator new(size_t size, const std::nothrow_t&) noexcept { return malloc(size); }
void* operator new[](size_t size, const std::nothrow_t&) noexcept { return malloc(size); }

void operator delete(void* ptr) noexcept { free(ptr); }
void operator delete[](void* ptr) noexcept { free(ptr); }

void operator delete(void* ptr, size_t size) noexcept {
  int flags = relais::CallMemory::flags();
  SizedDeleteFn fn = __atomic_load_n(&next_sized_delete, __ATOMIC_RELAXED);
  if (__builtin_expect(!flags && fn, 1)) return fn(ptr, size);
  if (ptr) sdallocx(ptr, size, flags ? kNoTcache : 0);
}

void operator delete[](void* ptr, size_t size) noexcept { operator delete(ptr, size); }
