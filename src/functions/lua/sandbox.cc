#include "functions/lua/sandbox.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "functions/lua/budget.h"
#include "functions/lua/helpers.h"
#include "functions/lua/pattern.h"

namespace portcullis::functions::lua {
namespace {

// Registry keys (addresses of these objects).
const char kWritableKey = 0;

std::string_view checkString(lua_State* L, int index) {
  std::size_t len = 0;
  const char* s = luaL_checklstring(L, index, &len);
  return {s, len};
}

// ---- errors that must not be swallowed ---------------------------------------------------
//
// A call that ran out of time or memory is aborted: pcall, xpcall and coroutine.resume
// hand the error back to the function, so the sandbox's versions re-raise it while the
// abort is pending. They are small Lua functions around the originals (kWrappers): an error
// raised by the count hook must not unwind through a C function that called one of LuaJIT's
// built-ins (a coroutine switch in between leaves the unwinder looping).

// check(ok, ...): re-raises a pending abort when ok is false; else returns its arguments.
int checkResults(lua_State* L) {
  if (lua_gettop(L) > 0 && !lua_toboolean(L, 1)) {
    Budget& budget = Budget::of(L);
    if (budget.aborted()) budget.raiseAbort(L);
  }
  return lua_gettop(L);
}

// checkRep(s, n, sep): refuses at once a string.rep the heap could not hold.
int checkRep(lua_State* L) {
  std::size_t len = 0;
  std::size_t sep = 0;
  luaL_checklstring(L, 1, &len);
  const lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &sep);
  if (n > 1 && len + sep > 0) {
    if (static_cast<std::size_t>(n) > Budget::of(L).headroom() / (len + sep)) {
      Budget::of(L).raiseMemory(L);
    }
  }
  return 0;
}

// aborted(): whether the call is being aborted (an error handler must not run user code
// then: LuaJIT calls the handler again for an error raised inside it).
int abortPending(lua_State* L) {
  lua_pushboolean(L, Budget::of(L).aborted() ? 1 : 0);
  return 1;
}

constexpr std::string_view kWrappers = R"lua(
local pcall, xpcall, resume, rep, check, check_rep, aborted, type, error = ...
return function(...) return check(pcall(...)) end,
       function(f, handler, ...)
         if type(handler) ~= "function" then
           error("bad argument #2 to 'xpcall' (function expected)", 2)
         end
         return check(xpcall(f, function(e)
           if aborted() then return e end
           return handler(e)
         end, ...))
       end,
       function(...) return check(resume(...)) end,
       function(s, n, sep) check_rep(s, n, sep) return rep(s, n, sep) end
)lua";

// ---- string ----------------------------------------------------------------------------

bool stillInTime(void* arg) {
  return !Budget::of(static_cast<lua_State*>(arg)).overdue();
}

// 1-based, negative from the end (Lua 5.1's posrelat).
std::ptrdiff_t relativePosition(lua_Integer pos, std::size_t len) {
  if (pos >= 0) return static_cast<std::ptrdiff_t>(pos);
  if (static_cast<std::size_t>(-pos) > len) return 0;
  return static_cast<std::ptrdiff_t>(len) + static_cast<std::ptrdiff_t>(pos) + 1;
}

// Raises the matcher's error or the pending abort.
[[noreturn]] void raiseMatchFailure(lua_State* L, const PatternMatcher& m,
                                    PatternMatcher::Status status) {
  if (status == PatternMatcher::Status::kStopped) Budget::of(L).raiseAbort(L);
  luaL_error(L, "%s", m.error().c_str());
  std::abort();  // luaL_error does not return
}

void pushCapture(lua_State* L, const PatternMatcher& m, std::string_view s, int i,
                 std::size_t start, std::size_t end) {
  if (i >= m.captureCount()) {
    if (i != 0) luaL_error(L, "invalid capture index");
    lua_pushlstring(L, s.data() + start, end - start);  // the whole match
    return;
  }
  const auto& c = m.capture(i);
  if (c.length == PatternMatcher::kUnfinished) luaL_error(L, "unfinished capture");
  if (c.length == PatternMatcher::kPosition) {
    lua_pushinteger(L, static_cast<lua_Integer>(c.start + 1));
  } else {
    lua_pushlstring(L, s.data() + c.start, static_cast<std::size_t>(c.length));
  }
}

// Pushes the captures (or the whole match when the pattern has none and `whole`).
int pushCaptures(lua_State* L, const PatternMatcher& m, std::string_view s, std::size_t start,
                 std::size_t end, bool whole) {
  const int n = (m.captureCount() == 0 && whole) ? 1 : m.captureCount();
  luaL_checkstack(L, n, "too many captures");
  for (int i = 0; i < n; ++i)
    pushCapture(L, m, s, i, start, end);
  return n;
}

int findOrMatch(lua_State* L, bool find) {
  const std::string_view s = checkString(L, 1);
  const std::string_view p = checkString(L, 2);
  std::ptrdiff_t init = relativePosition(luaL_optinteger(L, 3, 1), s.size()) - 1;
  init = std::clamp<std::ptrdiff_t>(init, 0, static_cast<std::ptrdiff_t>(s.size()));
  const auto from = static_cast<std::size_t>(init);
  if (find && (lua_toboolean(L, 4) || plainPattern(p))) {
    const std::size_t at = s.find(p, from);
    if (at == std::string_view::npos) {
      lua_pushnil(L);
      return 1;
    }
    lua_pushinteger(L, static_cast<lua_Integer>(at + 1));
    lua_pushinteger(L, static_cast<lua_Integer>(at + p.size()));
    return 2;
  }
  PatternMatcher m(s, p, stillInTime, L);
  const bool anchor = !p.empty() && p[0] == '^';
  for (std::size_t at = from;; ++at) {
    std::size_t end = 0;
    const auto status = m.matchAt(at, anchor ? 1 : 0, end);
    if (status == PatternMatcher::Status::kMatch) {
      if (!find) return pushCaptures(L, m, s, at, end, true);
      lua_pushinteger(L, static_cast<lua_Integer>(at + 1));
      lua_pushinteger(L, static_cast<lua_Integer>(end));
      return pushCaptures(L, m, s, 0, 0, false) + 2;
    }
    if (status != PatternMatcher::Status::kNoMatch) raiseMatchFailure(L, m, status);
    if (anchor || at >= s.size()) break;
  }
  lua_pushnil(L);
  return 1;
}

int strFind(lua_State* L) {
  return findOrMatch(L, true);
}

int strMatch(lua_State* L) {
  return findOrMatch(L, false);
}

// The iterator of gmatch: upvalues subject, pattern, next position.
int gmatchStep(lua_State* L) {
  std::size_t sl = 0;
  std::size_t pl = 0;
  const char* sp = lua_tolstring(L, lua_upvalueindex(1), &sl);
  const char* pp = lua_tolstring(L, lua_upvalueindex(2), &pl);
  const std::string_view s(sp, sl);
  const std::string_view p(pp, pl);
  PatternMatcher m(s, p, stillInTime, L);
  for (auto at = static_cast<std::size_t>(lua_tointeger(L, lua_upvalueindex(3))); at <= s.size();
       ++at) {
    std::size_t end = 0;
    const auto status = m.matchAt(at, 0, end);
    if (status == PatternMatcher::Status::kMatch) {
      // An empty match moves on by one, or the iterator would never end.
      lua_pushinteger(L, static_cast<lua_Integer>(end == at ? end + 1 : end));
      lua_replace(L, lua_upvalueindex(3));
      return pushCaptures(L, m, s, at, end, true);
    }
    if (status != PatternMatcher::Status::kNoMatch) raiseMatchFailure(L, m, status);
  }
  return 0;
}

int strGmatch(lua_State* L) {
  luaL_checkstring(L, 1);
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, gmatchStep, 3);
  return 1;
}

// Appends the replacement of one match to `b` (gsub's third argument at stack index 3).
void addReplacement(lua_State* L, luaL_Buffer* b, const PatternMatcher& m, std::string_view s,
                    std::size_t start, std::size_t end) {
  switch (lua_type(L, 3)) {
    case LUA_TNUMBER:
    case LUA_TSTRING: {
      std::size_t rl = 0;
      const char* r = lua_tolstring(L, 3, &rl);
      for (std::size_t i = 0; i < rl; ++i) {
        if (r[i] != '%' || i + 1 == rl) {
          luaL_addchar(b, r[i]);
          continue;
        }
        const char d = r[++i];
        if (d < '0' || d > '9') {
          luaL_addchar(b, d);  // "%%" and any other escaped character stand for themselves
        } else if (d == '0') {
          luaL_addlstring(b, s.data() + start, end - start);
        } else {
          pushCapture(L, m, s, d - '1', start, end);
          luaL_addvalue(b);
        }
      }
      return;
    }
    case LUA_TFUNCTION: {
      lua_pushvalue(L, 3);
      const int n = pushCaptures(L, m, s, start, end, true);
      lua_call(L, n, 1);
      break;
    }
    case LUA_TTABLE:
      pushCapture(L, m, s, 0, start, end);
      lua_gettable(L, 3);
      break;
    default:
      luaL_argerror(L, 3, "string/function/table expected");
  }
  if (!lua_toboolean(L, -1)) {  // nil or false: keep the original text
    lua_pop(L, 1);
    lua_pushlstring(L, s.data() + start, end - start);
  } else if (!lua_isstring(L, -1)) {
    luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  }
  luaL_addvalue(b);
}

int strGsub(lua_State* L) {
  const Budget::Nesting nesting(L);  // a replacement function may call gsub again
  const std::string_view s = checkString(L, 1);
  const std::string_view p = checkString(L, 2);
  const int repl = lua_type(L, 3);
  luaL_argcheck(
      L, repl == LUA_TNUMBER || repl == LUA_TSTRING || repl == LUA_TFUNCTION || repl == LUA_TTABLE,
      3, "string/function/table expected");
  const lua_Integer max = luaL_optinteger(L, 4, static_cast<lua_Integer>(s.size()) + 1);
  const bool anchor = !p.empty() && p[0] == '^';
  PatternMatcher m(s, p, stillInTime, L);  // counts steps across every match below
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  std::size_t at = 0;
  lua_Integer n = 0;
  while (n < max) {
    std::size_t end = 0;
    const auto status = m.matchAt(at, anchor ? 1 : 0, end);
    if (status == PatternMatcher::Status::kMatch) {
      ++n;
      addReplacement(L, &b, m, s, at, end);
    } else if (status != PatternMatcher::Status::kNoMatch) {
      raiseMatchFailure(L, m, status);
    }
    if (status == PatternMatcher::Status::kMatch && end > at) {
      at = end;
    } else if (at < s.size()) {
      luaL_addchar(&b, s[at++]);
    } else {
      break;
    }
    if (anchor) break;
  }
  luaL_addlstring(&b, s.data() + at, s.size() - at);
  luaL_pushresult(&b);
  lua_pushinteger(L, n);
  return 2;
}

// ---- table.sort ------------------------------------------------------------------------
//
// Heap sort on the table itself, with the deadline checked as it goes: the built-in sort
// compares inside one C call, where no hook fires.

bool sortLess(lua_State* L, int a, int b) {
  // a and b are absolute stack indices of the two values.
  if (lua_isnil(L, 2)) return lua_lessthan(L, a, b) != 0;
  lua_pushvalue(L, 2);
  lua_pushvalue(L, a);
  lua_pushvalue(L, b);
  lua_call(L, 2, 1);
  const bool less = lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  return less;
}

bool elementLess(lua_State* L, lua_Integer i, lua_Integer j, std::uint32_t& compares) {
  if ((++compares & 255) == 0) Budget::of(L).checkDeadline(L);
  lua_rawgeti(L, 1, static_cast<int>(i));
  lua_rawgeti(L, 1, static_cast<int>(j));
  const int top = lua_gettop(L);
  const bool less = sortLess(L, top - 1, top);
  lua_pop(L, 2);
  return less;
}

void swapElements(lua_State* L, lua_Integer i, lua_Integer j) {
  lua_rawgeti(L, 1, static_cast<int>(i));
  lua_rawgeti(L, 1, static_cast<int>(j));
  lua_rawseti(L, 1, static_cast<int>(i));
  lua_rawseti(L, 1, static_cast<int>(j));
}

void siftDown(lua_State* L, lua_Integer root, lua_Integer n, std::uint32_t& compares) {
  for (;;) {
    lua_Integer child = 2 * root;
    if (child > n) return;
    if (child + 1 <= n && elementLess(L, child, child + 1, compares)) ++child;
    if (!elementLess(L, root, child, compares)) return;
    swapElements(L, root, child);
    root = child;
  }
}

int tableSort(lua_State* L) {
  const Budget::Nesting nesting(L);  // a comparator may sort again
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  const auto n = static_cast<lua_Integer>(lua_objlen(L, 1));
  if (n > INT32_MAX) luaL_error(L, "table too large to sort");
  std::uint32_t compares = 0;
  for (lua_Integer i = n / 2; i >= 1; --i)
    siftDown(L, i, n, compares);
  for (lua_Integer end = n; end > 1; --end) {
    swapElements(L, 1, end);
    siftDown(L, 1, end - 1, compares);
  }
  return 0;
}

// ---- globals -------------------------------------------------------------------------------

int globalsNewIndex(lua_State* L) {
  lua_pushlightuserdata(L, const_cast<char*>(&kWritableKey));
  lua_rawget(L, LUA_REGISTRYINDEX);
  const bool writable = lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  if (!writable) {
    const char* name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    return luaL_error(L,
                      "assignment to global '%s': globals are read-only while handling a "
                      "request (use a local, or set it in init)",
                      name);
  }
  lua_rawset(L, 1);
  return 0;
}

int readOnlyNewIndex(lua_State* L) {
  return luaL_error(L, "attempt to modify a read-only table");
}

// Copies field `name` of the table at `from` into the table at `to`.
void copyField(lua_State* L, int from, int to, const char* name) {
  lua_getfield(L, from, name);
  lua_setfield(L, to, name);
}

// Opens a standard library with its luaopen function; leaves its table on the stack.
void openStandard(lua_State* L, lua_CFunction open, const char* name) {
  lua_pushcfunction(L, open);
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
}

}  // namespace

void pushReadOnlyView(lua_State* L) {
  lua_newtable(L);           // the view
  lua_createtable(L, 0, 3);  // its metatable
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, readOnlyNewIndex);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_replace(L, -2);
}

void addLibrary(lua_State* L, int libs, const char* name, const luaL_Reg* functions) {
  lua_newtable(L);
  for (const luaL_Reg* f = functions; f->name != nullptr; ++f) {
    lua_pushcfunction(L, f->func);
    lua_setfield(L, -2, f->name);
  }
  pushReadOnlyView(L);
  lua_setfield(L, libs, name);
}

void setGlobalsWritable(lua_State* L, bool writable) {
  lua_pushlightuserdata(L, const_cast<char*>(&kWritableKey));
  lua_pushboolean(L, writable ? 1 : 0);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

void openSandbox(lua_State* L) {
  Budget::internMessages(L);
  setGlobalsWritable(L, true);
  lua_newtable(L);
  const int libs = lua_gettop(L);  // what the globals table falls back to

  // Base functions. luaopen_base also fills the state's own globals (with load, print,
  // …), which the function never sees: its chunk runs with the table built here.
  openStandard(L, luaopen_base, "");
  const int base = lua_gettop(L);
  openStandard(L, luaopen_string, LUA_STRLIBNAME);  // also sets the metatable of strings
  lua_pop(L, 1);
  for (const char* name :
       {"assert", "error", "ipairs", "next", "pairs", "select", "tonumber", "tostring", "type",
        "unpack", "rawequal", "rawget", "getmetatable", "setmetatable", "_VERSION"}) {
    copyField(L, base, libs, name);
  }
  // pcall, xpcall, coroutine.resume and string.rep, wrapped (kWrappers).
  if (luaL_loadbuffer(L, kWrappers.data(), kWrappers.size(), "=sandbox") != 0) lua_error(L);
  lua_getfield(L, base, "pcall");
  lua_getfield(L, base, "xpcall");
  lua_getfield(L, LUA_GLOBALSINDEX, "coroutine");
  lua_getfield(L, -1, "resume");
  lua_replace(L, -2);
  lua_getfield(L, LUA_GLOBALSINDEX, "string");
  lua_getfield(L, -1, "rep");
  lua_replace(L, -2);
  lua_pushcfunction(L, checkResults);
  lua_pushcfunction(L, checkRep);
  lua_pushcfunction(L, abortPending);
  lua_getfield(L, base, "type");
  lua_getfield(L, base, "error");
  lua_call(L, 9, 4);
  const int wrapped = lua_gettop(L) - 3;  // pcall, xpcall, resume, rep
  lua_pushvalue(L, wrapped);
  lua_setfield(L, libs, "pcall");
  lua_pushvalue(L, wrapped + 1);
  lua_setfield(L, libs, "xpcall");

  // coroutine (opened by luaopen_base in Lua 5.1 as a global table).
  lua_getfield(L, LUA_GLOBALSINDEX, "coroutine");
  const int co = lua_gettop(L);
  lua_newtable(L);
  const int safe_co = lua_gettop(L);
  for (const char* name : {"create", "running", "status", "wrap", "yield"})
    copyField(L, co, safe_co, name);
  lua_pushvalue(L, wrapped + 2);
  lua_setfield(L, safe_co, "resume");
  pushReadOnlyView(L);
  lua_setfield(L, libs, "coroutine");

  // string: the safe functions; pattern matching by our bounded matcher.
  lua_getfield(L, LUA_GLOBALSINDEX, "string");
  const int str = lua_gettop(L);
  lua_newtable(L);
  const int safe_str = lua_gettop(L);
  for (const char* name : {"byte", "char", "format", "len", "lower", "reverse", "sub", "upper"})
    copyField(L, str, safe_str, name);
  lua_pushvalue(L, wrapped + 3);
  lua_setfield(L, safe_str, "rep");
  const luaL_Reg matchers[] = {{"find", strFind},
                               {"match", strMatch},
                               {"gmatch", strGmatch},
                               {"gsub", strGsub},
                               {nullptr, nullptr}};
  for (const luaL_Reg* f = matchers; f->name != nullptr; ++f) {
    lua_pushcfunction(L, f->func);
    lua_setfield(L, safe_str, f->name);
  }
  // Methods on string values ("x"):upper() use the safe table; the metatable of strings
  // is shared by every string of the VM, so getmetatable("") answers false.
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushvalue(L, safe_str);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_settop(L, safe_str);
  pushReadOnlyView(L);
  lua_setfield(L, libs, "string");
  lua_settop(L, libs);

  openStandard(L, luaopen_table, LUA_TABLIBNAME);
  const int tab = lua_gettop(L);
  lua_newtable(L);
  const int safe_tab = lua_gettop(L);
  for (const char* name : {"concat", "insert", "maxn", "remove"})
    copyField(L, tab, safe_tab, name);
  lua_pushcfunction(L, tableSort);
  lua_setfield(L, safe_tab, "sort");
  pushReadOnlyView(L);
  lua_setfield(L, libs, "table");
  lua_settop(L, libs);

  openStandard(L, luaopen_math, LUA_MATHLIBNAME);
  pushReadOnlyView(L);
  lua_setfield(L, libs, "math");

  openStandard(L, luaopen_bit, LUA_BITLIBNAME);
  pushReadOnlyView(L);
  lua_setfield(L, libs, "bit");

  openStandard(L, luaopen_os, LUA_OSLIBNAME);
  const int os = lua_gettop(L);
  lua_newtable(L);
  copyField(L, os, lua_gettop(L), "time");
  copyField(L, os, lua_gettop(L), "clock");
  pushReadOnlyView(L);
  lua_setfield(L, libs, "os");
  lua_settop(L, libs);

  openHelpers(L, libs);

  // The globals table: reads fall back to the libraries; writes only while allowed.
  lua_newtable(L);
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, libs);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, globalsNewIndex);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_replace(L, libs);
  lua_settop(L, libs);

  // Drop what the standard openers left in the state's own globals: nothing should keep
  // a path to them (the chunk's environment is the table above).
  for (const char* name :
       {"string",  "table",          "math",       "bit",      "os",     "coroutine", "package",
        "require", "load",           "loadstring", "loadfile", "dofile", "getfenv",   "setfenv",
        "rawset",  "collectgarbage", "newproxy",   "print",    "module", "gcinfo"}) {
    lua_pushnil(L);
    lua_setfield(L, LUA_GLOBALSINDEX, name);
  }
  // The table of loaded modules keeps the originals, too.
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "_LOADED");
}

}  // namespace portcullis::functions::lua
