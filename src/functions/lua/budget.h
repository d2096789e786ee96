#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include <lua.hpp>

namespace portcullis::functions::lua {

// The limits of one Lua VM: a heap ceiling (the VM's lua_Alloc counts every byte) and, for
// the call or start-up running in it, a CPU deadline and a nesting limit for the sandbox's
// C functions that call back into Lua. The budget is
// the allocator's user data, so any C function running inside the VM finds it with
// `Budget::of(L)`. Used by one thread at a time, like the VM that owns it.
//
// Exceeding the deadline or the heap *aborts* the call: the flag stays set until the next
// call starts, every `pcall`/`xpcall`/`coroutine.resume` of the sandbox re-raises it
// (sandbox.cc), and the VM is closed afterwards because the function's own state may be
// half-updated. Too deep a nesting is an ordinary error (the stack is unwound).
class Budget final {
 public:
  using Clock = std::chrono::steady_clock;

  // gsub with a replacement function, table.sort with a comparator: each level holds a
  // C frame (gsub's a buffer of several KiB) that LuaJIT does not count, so a function that
  // calls them recursively would overflow the thread's stack. Like Lua's own LUAI_MAXCCALLS.
  static constexpr int kMaxNesting = 100;

  explicit Budget(std::size_t memory_limit) : limit_(memory_limit) {}
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;

  static Budget& of(lua_State* L) {
    void* ud = nullptr;
    lua_getallocf(L, &ud);
    return *static_cast<Budget*>(ud);
  }

  // The lua_Alloc: refuses to grow the heap beyond the limit (Lua then raises "not
  // enough memory"); shrinking and freeing always succeed.
  static void* allocate(void* ud, void* ptr, std::size_t osize, std::size_t nsize);

  // Starts a call (or the VM's start-up) that may run for `limit` of CPU time.
  void start(std::chrono::nanoseconds limit) {
    limit_time_ = limit;
    deadline_ = Clock::now() + limit;
    cpu_start_ = -1;
    nesting_ = 0;
    timed_out_ = false;
    memory_exceeded_ = false;
  }

  bool timedOut() const { return timed_out_; }
  bool memoryExceeded() const { return memory_exceeded_; }
  bool aborted() const { return timed_out_ || memory_exceeded_; }
  std::size_t used() const { return used_; }
  std::size_t limit() const { return limit_; }
  // Bytes the heap may still grow by.
  std::size_t headroom() const { return used_ < limit_ ? limit_ - used_ : 0; }

  // Raises the timeout error when the call has used up its time (or an abort is pending).
  void checkDeadline(lua_State* L) {
    if (overdue()) raiseAbort(L);
  }
  // The same test without raising, for loops that must unwind by themselves first.
  //
  // The limit is CPU time, as HAProxy counts its Lua timeouts: a wall-clock deadline is the
  // cheap test (a vDSO read); only once it has passed is the thread's CPU clock read (a
  // system call), and a thread that was preempted meanwhile gets the rest of its time.
  // The CPU clock's start is read at the first check, a few microseconds into the call,
  // so short calls never pay for it.
  bool overdue();
  // Held by a sandbox C function while it may call back into Lua; raises an error beyond
  // kMaxNesting levels. (Lua errors unwind C++ frames: the destructor always runs.)
  class Nesting final {
   public:
    explicit Nesting(lua_State* L) : budget_(of(L)) {
      if (budget_.nesting_ >= kMaxNesting) raiseTooDeep(L);
      ++budget_.nesting_;
    }
    ~Nesting() { --budget_.nesting_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    Budget& budget_;
  };

  // For buffers a helper builds outside the Lua heap (gsub, json.encode): raises the
  // memory error when `bytes` would not fit in what the heap has left.
  void reserve(lua_State* L, std::size_t bytes) {
    if (bytes > headroom()) raiseMemory(L);
  }

  // Raises the pending abort (timeout unless memory was exceeded). Sets timed_out_ when
  // nothing was pending.
  [[noreturn]] void raiseAbort(lua_State* L);
  [[noreturn]] void raiseMemory(lua_State* L);
  [[noreturn]] static void raiseTooDeep(lua_State* L);

  // Interns the abort messages so raising them later allocates nothing. Call once after
  // the VM is created (protected).
  static void internMessages(lua_State* L);

 private:
  std::size_t limit_;
  std::size_t used_ = 0;
  std::chrono::nanoseconds limit_time_{0};
  Clock::time_point deadline_ = Clock::time_point::max();
  std::int64_t cpu_start_ = -1;  // the thread's CPU clock at the first check, in ns
  int nesting_ = 0;              // Nesting levels held now
  bool timed_out_ = false;
  bool memory_exceeded_ = false;
};

// Messages of the abort errors as Lua sees them (a pcall that catches one gets this text,
// although it is re-raised at once).
inline constexpr const char* kTimeoutMessage = "portcullis: time limit exceeded";
inline constexpr const char* kMemoryMessage = "portcullis: memory limit exceeded";

}  // namespace portcullis::functions::lua
