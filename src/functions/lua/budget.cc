#include "functions/lua/budget.h"

#include <time.h>

#include <cstdlib>

namespace portcullis::functions::lua {

void* Budget::allocate(void* ud, void* ptr, std::size_t osize, std::size_t nsize) {
  auto* self = static_cast<Budget*>(ud);
  const std::size_t old = ptr == nullptr ? 0 : osize;
  if (nsize == 0) {
    std::free(ptr);
    self->used_ -= old;
    return nullptr;
  }
  if (nsize > old && nsize - old > self->headroom()) {
    self->memory_exceeded_ = true;
    return nullptr;
  }
  void* grown = std::realloc(ptr, nsize);
  if (grown == nullptr) {
    // The process itself is out of memory: refuse like the limit would, but a shrink
    // must never fail (the old block stays valid and is still the right size to free).
    if (nsize <= old) {
      self->used_ = self->used_ - old + nsize;  // the block is freed later with nsize
      return ptr;
    }
    self->memory_exceeded_ = true;
    return nullptr;
  }
  self->used_ = self->used_ - old + nsize;
  return grown;
}

namespace {

std::int64_t threadCpuNanos() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

bool Budget::overdue() {
  if (aborted()) return true;
  if (cpu_start_ < 0) cpu_start_ = threadCpuNanos();
  const auto now = Clock::now();
  if (now < deadline_) return false;
  const std::chrono::nanoseconds ran(threadCpuNanos() - cpu_start_);
  if (ran >= limit_time_) return true;
  deadline_ = now + (limit_time_ - ran);  // preempted: the rest of its CPU time
  return false;
}

void Budget::raiseAbort(lua_State* L) {
  if (memory_exceeded_) raiseMemory(L);
  timed_out_ = true;
  lua_pushstring(L, kTimeoutMessage);  // interned at start-up: no allocation
  lua_error(L);
  std::abort();  // lua_error does not return
}

void Budget::raiseMemory(lua_State* L) {
  memory_exceeded_ = true;
  lua_pushstring(L, kMemoryMessage);
  lua_error(L);
  std::abort();
}

void Budget::raiseTooDeep(lua_State* L) {
  luaL_error(L, "too many nested calls of gsub or sort (at most %d)", kMaxNesting);
  std::abort();
}

void Budget::internMessages(lua_State* L) {
  lua_pushstring(L, kTimeoutMessage);
  luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushstring(L, kMemoryMessage);
  luaL_ref(L, LUA_REGISTRYINDEX);
}

}  // namespace portcullis::functions::lua
