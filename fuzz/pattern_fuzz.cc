// libFuzzer target: the sandbox's Lua pattern matcher (functions/lua/pattern.h) against
// LuaJIT's own string.find, differentially.
//   build-fuzz/fuzz/pattern_fuzz CORPUS_DIR   (seeds: fuzz/corpus/pattern)
//
// Input: one byte n, then a pattern of n % 32 bytes, then the subject (at most 128 bytes).
// Ours runs first with a step budget; only when it finished within the budget (so LuaJIT's
// backtracking, the same algorithm, is bounded too) is LuaJIT asked. They must agree on
// error or not, on where the first match is, and on every capture; else abort.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <lua.hpp>

#include "functions/lua/pattern.h"

namespace {

using portcullis::functions::lua::PatternMatcher;
using portcullis::functions::lua::plainPattern;

constexpr int kMaxChecks = 200;  // × PatternMatcher::kCheckEvery steps

// find(s, p) by the sandbox's rules: "nil", "error", or "start,end,cap,cap…".
std::string ours(std::string_view s, std::string_view p, bool& bounded) {
  bounded = true;
  if (plainPattern(p)) {
    const auto at = s.find(p);
    if (at == std::string_view::npos) return "nil";
    return std::to_string(at + 1) + "," + std::to_string(at + p.size());
  }
  int checks = 0;
  PatternMatcher m(
      s, p, [](void* arg) { return ++*static_cast<int*>(arg) < kMaxChecks; }, &checks);
  const bool anchor = !p.empty() && p[0] == '^';
  for (std::size_t at = 0;; ++at) {
    std::size_t end = 0;
    const auto status = m.matchAt(at, anchor ? 1 : 0, end);
    if (status == PatternMatcher::Status::kStopped) {
      bounded = false;
      return "";
    }
    if (status == PatternMatcher::Status::kError) return "error";
    if (status == PatternMatcher::Status::kMatch) {
      std::string out = std::to_string(at + 1) + "," + std::to_string(end);
      for (int i = 0; i < m.captureCount(); ++i) {
        const auto& c = m.capture(i);
        if (c.length == PatternMatcher::kUnfinished) return "error";  // as Lua: unfinished capture
        if (c.length == PatternMatcher::kPosition) {
          out += ",p" + std::to_string(c.start + 1);
        } else {
          out += ",s" + std::string(s.substr(c.start, static_cast<std::size_t>(c.length)));
        }
      }
      return out;
    }
    if (anchor || at >= s.size()) return "nil";
  }
}

std::string theirs(lua_State* L, std::string_view s, std::string_view p) {
  lua_settop(L, 0);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "find");
  lua_pushlstring(L, s.data(), s.size());
  lua_pushlstring(L, p.data(), p.size());
  if (lua_pcall(L, 2, LUA_MULTRET, 0) != 0) return "error";
  const int n = lua_gettop(L) - 1;  // results after the string table
  if (n < 1 || lua_isnil(L, 2)) return "nil";
  std::string out = std::to_string(lua_tointeger(L, 2)) + "," + std::to_string(lua_tointeger(L, 3));
  for (int i = 4; i <= n + 1; ++i) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      out += ",p" + std::to_string(lua_tointeger(L, i));
    } else {
      std::size_t len = 0;
      const char* v = lua_tolstring(L, i, &len);
      out += ",s" + std::string(v, len);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t plen = std::min<std::size_t>(data[0] % 32, size - 1);
  const std::string_view p(reinterpret_cast<const char*>(data + 1), plen);
  const std::string_view s(reinterpret_cast<const char*>(data + 1 + plen), size - 1 - plen);
  if (s.size() > 128) return 0;
  // LuaJIT 2.1's matcher stops at an embedded NUL in the pattern; ours does not (%z).
  if (p.find('\0') != std::string_view::npos) return 0;

  bool bounded = false;
  const std::string a = ours(s, p, bounded);
  if (!bounded) return 0;
  static lua_State* L = [] {
    lua_State* state = luaL_newstate();
    luaL_openlibs(state);
    return state;
  }();
  const std::string b = theirs(L, s, p);
  if (a != b) {
    std::fprintf(stderr, "pattern %.*s: ours %s, LuaJIT %s\n", static_cast<int>(p.size()), p.data(),
                 a.c_str(), b.c_str());
    std::abort();
  }
  return 0;
}
