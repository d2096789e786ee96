// The sandbox's own pattern matcher (functions/lua/pattern.h) against LuaJIT's built-in
// string.find/match/gmatch/gsub: the same cases run through both and must give the same
// results (errors compare as errors; their wording may differ).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "functions/lua/budget.h"
#include "functions/lua/pattern.h"
#include "functions/lua/sandbox.h"

namespace portcullis::functions::lua {
namespace {

using namespace std::chrono_literals;

// Runs every case with the `string` library it is given; one line of results per call.
constexpr const char* kRunner = R"lua(
local string = ...
local function ser(...)
  local t = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    t[#t + 1] = type(v) .. ":" .. tostring(v)
  end
  return table.concat(t, ",")
end
local function try(f)
  local ok, r = pcall(f)
  return ok and r or "ERR"
end
local cases = {
  {"hello world", "o"}, {"hello world", "o", 6}, {"hello world", "o", -3}, {"hello", "l+"},
  {"hello", "^h"}, {"hello", "^e"}, {"hello", "o$"}, {"hel$lo", "l$l"}, {"hello", ""},
  {"hello", "", 10}, {"hello", "", -10}, {"", ""}, {"", "a*"}, {"aaa", "a-"}, {"aaa", "a-$"},
  {"aaab", "a*b"}, {"aaab", "a+b"}, {"b", "a?b"}, {"ab", "a?b"}, {"key = value", "(%w+)%s*=%s*(%w+)"},
  {"key = value", "()(%w+)()"}, {"THE (quick) fox", "%((%a+)%)"}, {"x = [[a]] y", "%[%[(.-)%]%]"},
  {"f(a(b)c)d", "%b()"}, {"f(a(b)c", "%b()"}, {"THE (quick) fox", "%f[%a]%a+"},
  {"hello", "%f[%l]"}, {"abcabc", "(abc)%1"}, {"abcabd", "(abc)%1"}, {"a.b", "%."},
  {"a.b", "."}, {"a1B2c3", "%d"}, {"a1B2c3", "%D+"}, {"a1B2c3", "[%d%u]+"}, {"a-z", "[a%-z]+"},
  {"abcxyz", "[b-y]+"}, {"abc]d", "[]]"}, {"abc^d", "[%^]"}, {"abc^d", "[^abc]"},
  {"  trim  ", "^%s*(.-)%s*$"}, {"a,b,,c", "([^,]*)"}, {"\0a\0", "%z"}, {"tab\there", "%c"},
  {"x!y?z", "%p"}, {"0x1F", "%x+"}, {"/orders/7/refunds", "^/orders/([^/]+)/refunds$"},
  {"Bearer abc.def.ghi", "^Bearer%s+(%S+)$"}, {"aaa", "(a)(a)(a)"}, {"abc", "((a)(b))"},
  {"hello", "(h)(e)(l)(l)(o)"}, {"abc", "%"}, {"abc", "[a"}, {"abc", "(a"}, {"abc", "a)"},
  {"abc", "%b"}, {"abc", "%f"}, {"abc", "%1"}, {"abc", "(()"}, {"αβγ", "[\128-\255]+"},
  {"CamelCaseWord", "%u%l+"}, {"2026-12-02", "(%d+)-(%d+)-(%d+)"}, {"a+b", "a+b"},
  {"a+b", "a%+b"}, {"aXb", "a.-b"}, {"", "^$"}, {"x", "^$"}, {"a b\tc!", "%g+"},
  {"a b\tc!", "%G+"},
}
local out = {}
for i, c in ipairs(cases) do
  local s, p, init = c[1], c[2], c[3]
  out[#out + 1] = i .. " find " .. try(function() return ser(string.find(s, p, init)) end)
  out[#out + 1] = i .. " plain " .. try(function() return ser(string.find(s, p, init, true)) end)
  out[#out + 1] = i .. " match " .. try(function() return ser(string.match(s, p, init)) end)
  out[#out + 1] = i .. " gsub " .. try(function() return ser(string.gsub(s, p, "<%0>")) end)
  out[#out + 1] = i .. " gsub1 " .. try(function() return ser(string.gsub(s, p, "%1!", 2)) end)
  out[#out + 1] = i .. " gsubf " .. try(function()
    return ser(string.gsub(s, p, function(a, b) if a == "l" then return false end return (b or a or "") .. "|" end))
  end)
  out[#out + 1] = i .. " gsubt " .. try(function() return ser(string.gsub(s, p, {hello = "HI", o = 0})) end)
  out[#out + 1] = i .. " gmatch " .. try(function()
    local t = {}
    for a, b in string.gmatch(s, p) do
      t[#t + 1] = ser(a, b)
      if #t > 50 then break end
    end
    return table.concat(t, ";")
  end)
end
return table.concat(out, "\n")
)lua";

std::string run(lua_State* L, bool sandboxed) {
  if (luaL_loadstring(L, kRunner) != 0) return std::string("load: ") + lua_tostring(L, -1);
  if (sandboxed) {
    openSandbox(L);
    lua_pushvalue(L, -1);
    lua_setfenv(L, -3);  // the runner sees only the sandbox
    lua_getfield(L, -1, "string");
    lua_remove(L, -2);
  } else {
    lua_getglobal(L, "string");
  }
  if (lua_pcall(L, 1, 1, 0) != 0) return std::string("run: ") + lua_tostring(L, -1);
  std::size_t len = 0;
  const char* text = lua_tolstring(L, -1, &len);  // results hold NUL bytes
  return {text, len};
}

struct Ran {
  std::string text;
  int status = 0;
};

int runSandboxed(lua_State* L) {
  auto* out = static_cast<Ran*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  out->text = run(L, true);
  return 0;
}

TEST(LuaPatterns, SameResultsAsLuaJit) {
  lua_State* native = luaL_newstate();
  luaL_openlibs(native);
  const std::string expected = run(native, false);
  lua_close(native);

  Budget budget(64 * 1024 * 1024);
  lua_State* L = lua_newstate(Budget::allocate, &budget);
  ASSERT_NE(L, nullptr);
  budget.start(10s);
  Ran ran;
  ASSERT_EQ(lua_cpcall(L, runSandboxed, &ran), 0) << lua_tostring(L, -1);
  lua_close(L);

  ASSERT_FALSE(expected.starts_with("load:") || expected.starts_with("run:")) << expected;
  EXPECT_EQ(std::count(expected.begin(), expected.end(), '\n'), 68 * 8 - 1);  // every case ran
  // Line by line, so a difference names its case.
  std::size_t a = 0, b = 0;
  while (a < expected.size() || b < ran.text.size()) {
    const std::size_t ea = std::min(expected.find('\n', a), expected.size());
    const std::size_t eb = std::min(ran.text.find('\n', b), ran.text.size());
    EXPECT_EQ(ran.text.substr(b, eb - b), expected.substr(a, ea - a));
    a = ea + 1;
    b = eb + 1;
  }
}

TEST(LuaPatterns, MatcherStopsWhenAsked) {
  const std::string subject(5000, 'a');
  int checks = 0;
  PatternMatcher m(
      subject, "a*a*a*a*b", [](void* arg) { return ++*static_cast<int*>(arg) < 10; }, &checks);
  std::size_t end = 0;
  EXPECT_EQ(m.matchAt(0, 0, end), PatternMatcher::Status::kStopped);
  EXPECT_EQ(checks, 10);
}

TEST(LuaPatterns, DeepPatternsAreTooComplex) {
  const std::string pattern(300, '(');
  PatternMatcher m("x", pattern, nullptr, nullptr);
  std::size_t end = 0;
  EXPECT_EQ(m.matchAt(0, 0, end), PatternMatcher::Status::kError);
  EXPECT_FALSE(m.error().empty());
}

}  // namespace
}  // namespace portcullis::functions::lua
