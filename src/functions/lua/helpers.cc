#include "functions/lua/helpers.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

#include "common/ip.h"
#include "common/strings.h"
#include "functions/lua/budget.h"
#include "functions/lua/sandbox.h"
#include "functions/lua/vm.h"
#include "identity/jwt/base64url.h"

namespace portcullis::functions::lua {
namespace {

constexpr int kMaxJsonDepth = 64;
constexpr std::size_t kChunk = 64 * 1024;  // work between two deadline checks on big input

std::string_view checkString(lua_State* L, int index) {
  std::size_t len = 0;
  const char* s = luaL_checklstring(L, index, &len);
  return {s, len};
}

void pushString(lua_State* L, std::string_view s) {
  lua_pushlstring(L, s.data(), s.size());
}

// Appends to a buffer that lives outside the Lua heap, refusing growth the heap could not
// have held either.
void reserveFor(lua_State* L, const std::string& out, std::size_t more) {
  if (out.size() + more > out.capacity()) Budget::of(L).reserve(L, out.size() + more);
}

// nil, message: the Lua way of saying "this input is not valid" (not a bug in the caller).
int failed(lua_State* L, const std::string& message) {
  lua_pushnil(L);
  pushString(L, message);
  return 2;
}

// ---- json -------------------------------------------------------------------------------

// json.null: a light userdata no other value equals.
void pushNull(lua_State* L) {
  lua_pushlightuserdata(L, nullptr);
}

class JsonDecoder final {
 public:
  JsonDecoder(lua_State* L, std::string_view text) : L_(L), s_(text) {}

  // Pushes the value; false (nothing pushed that matters: the caller resets the stack)
  // with error() set when the text is not one JSON value.
  bool decode() {
    skipSpace();
    if (!value(0)) return false;
    skipSpace();
    if (pos_ != s_.size()) return fail("trailing characters");
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  bool fail(const std::string& what) {
    error_ = "json: " + what + " at offset " + std::to_string(pos_);
    return false;
  }
  void tick() {
    if (++ticks_ % 1024 == 0) Budget::of(L_).checkDeadline(L_);
  }
  void skipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool value(int depth) {
    tick();
    if (pos_ >= s_.size()) return fail("unexpected end");
    switch (s_[pos_]) {
      case '{':
        return object(depth + 1);
      case '[':
        return array(depth + 1);
      case '"': {
        std::string out;
        if (!string(out)) return false;
        pushString(L_, out);
        return true;
      }
      case 't':
        if (!literal("true")) return false;
        lua_pushboolean(L_, 1);
        return true;
      case 'f':
        if (!literal("false")) return false;
        lua_pushboolean(L_, 0);
        return true;
      case 'n':
        if (!literal("null")) return false;
        pushNull(L_);
        return true;
      default:
        return number();
    }
  }

  bool object(int depth) {
    if (depth > kMaxJsonDepth) return fail("nested too deeply");
    luaL_checkstack(L_, 4, "json nested too deeply");
    ++pos_;
    lua_newtable(L_);
    skipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      skipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return fail("expected a member name");
      std::string key;
      if (!string(key)) return false;
      skipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      skipSpace();
      pushString(L_, key);
      if (!value(depth)) return false;
      lua_rawset(L_, -3);
      skipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  bool array(int depth) {
    if (depth > kMaxJsonDepth) return fail("nested too deeply");
    luaL_checkstack(L_, 4, "json nested too deeply");
    ++pos_;
    lua_newtable(L_);
    skipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (int i = 1;; ++i) {
      skipSpace();
      if (!value(depth)) return false;
      lua_rawseti(L_, -2, i);
      skipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  bool number() {
    const std::size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    const auto digits = [&] {
      const std::size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
      return pos_ - from;
    };
    const std::size_t int_start = pos_;
    const std::size_t int_digits = digits();
    if (int_digits == 0) return fail("invalid value");
    if (int_digits > 1 && s_[int_start] == '0') return fail("leading zero");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) return fail("invalid number");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) return fail("invalid number");
    }
    if (pos_ - start > 64) return fail("number too long");
    const std::string text(s_.substr(start, pos_ - start));
    lua_pushnumber(L_, std::strtod(text.c_str(), nullptr));
    return true;
  }

  static void appendUtf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  bool hex4(std::uint32_t& out) {
    if (s_.size() - pos_ < 4) return fail("truncated \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      out <<= 4;
      if (c >= '0' && c <= '9') {
        out |= static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        out |= static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        out |= static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return fail("invalid \\u escape");
      }
    }
    return true;
  }

  bool string(std::string& out) {
    ++pos_;  // the opening quote
    std::size_t since_check = 0;
    for (;;) {
      if (pos_ >= s_.size()) return fail("unterminated string");
      if (++since_check == kChunk) {
        since_check = 0;
        Budget::of(L_).checkDeadline(L_);
      }
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return fail("unterminated string");
      switch (s_[pos_++]) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xd800 && cp <= 0xdbff) {
            std::uint32_t low = 0;
            if (s_.substr(pos_, 2) != "\\u") return fail("lone surrogate");
            pos_ += 2;
            if (!hex4(low)) return false;
            if (low < 0xdc00 || low > 0xdfff) return fail("lone surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return fail("lone surrogate");
          }
          appendUtf8(out, cp);
          break;
        }
        default:
          return fail("invalid escape");
      }
    }
  }

  lua_State* L_;
  std::string_view s_;
  std::size_t pos_ = 0;
  std::uint32_t ticks_ = 0;
  std::string error_;
};

int jsonDecode(lua_State* L) {
  const std::string_view text = checkString(L, 1);
  const int top = lua_gettop(L);
  JsonDecoder decoder(L, text);
  if (!decoder.decode()) {
    lua_settop(L, top);
    return failed(L, decoder.error());
  }
  return 1;
}

class JsonEncoder final {
 public:
  explicit JsonEncoder(lua_State* L) : L_(L) {}

  // Encodes the value at `index` (absolute); nullopt-like false with error() on a value
  // JSON cannot hold.
  bool encode(int index, int depth) {
    if (++ticks_ % 1024 == 0) Budget::of(L_).checkDeadline(L_);
    switch (lua_type(L_, index)) {
      case LUA_TNIL:
        append("null");
        return true;
      case LUA_TBOOLEAN:
        append(lua_toboolean(L_, index) ? "true" : "false");
        return true;
      case LUA_TNUMBER:
        return number(lua_tonumber(L_, index));
      case LUA_TSTRING: {
        std::size_t len = 0;
        const char* s = lua_tolstring(L_, index, &len);
        string({s, len});
        return true;
      }
      case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L_, index) == nullptr) {
          append("null");
          return true;
        }
        break;
      case LUA_TTABLE:
        return table(index, depth + 1);
      default:
        break;
    }
    error_ = std::string("json: cannot encode a ") + luaL_typename(L_, index);
    return false;
  }

  const std::string& out() const { return out_; }
  const std::string& error() const { return error_; }

 private:
  void append(std::string_view s) {
    reserveFor(L_, out_, s.size());
    out_.append(s);
  }

  bool number(double v) {
    if (!std::isfinite(v)) {
      error_ = "json: cannot encode NaN or infinity";
      return false;
    }
    char buf[32];
    if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    } else {
      std::snprintf(buf, sizeof buf, "%.17g", v);
    }
    append(buf);
    return true;
  }

  void string(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    reserveFor(L_, out_, s.size() + 2);
    out_.push_back('"');
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        append(c == '"' ? "\\\"" : "\\\\");
      } else if (c == '\n' || c == '\r' || c == '\t') {
        append(c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t");
      } else if (u < 0x20) {
        const char esc[] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 0xf], '\0'};
        append(esc);
      } else {
        out_.push_back(c);
      }
    }
    out_.push_back('"');
  }

  // A table with exactly the keys 1..n (n > 0) is an array; anything else an object whose
  // keys must be strings or numbers.
  bool table(int index, int depth) {
    if (depth > kMaxJsonDepth) {
      error_ = "json: nested too deeply (or a cycle)";
      return false;
    }
    luaL_checkstack(L_, 4, "json nested too deeply");
    const std::size_t n = lua_objlen(L_, index);
    std::size_t keys = 0;
    lua_pushnil(L_);
    while (lua_next(L_, index) != 0) {
      ++keys;
      lua_pop(L_, 1);
    }
    if (n > 0 && keys == n) {
      append("[");
      for (std::size_t i = 1; i <= n; ++i) {
        if (i > 1) append(",");
        lua_rawgeti(L_, index, static_cast<int>(i));
        const bool ok = encode(lua_gettop(L_), depth);
        lua_pop(L_, 1);
        if (!ok) return false;
      }
      append("]");
      return true;
    }
    append("{");
    bool first = true;
    lua_pushnil(L_);
    while (lua_next(L_, index) != 0) {
      const int value = lua_gettop(L_);
      const int key = value - 1;
      if (lua_type(L_, key) != LUA_TSTRING && lua_type(L_, key) != LUA_TNUMBER) {
        lua_pop(L_, 2);
        error_ = std::string("json: cannot encode a ") + luaL_typename(L_, key) + " key";
        return false;
      }
      if (!first) append(",");
      first = false;
      lua_pushvalue(L_, key);  // tolstring on a number key would confuse lua_next
      std::size_t len = 0;
      const char* k = lua_tolstring(L_, -1, &len);
      string({k, len});
      lua_pop(L_, 1);
      append(":");
      if (!encode(value, depth)) {
        lua_pop(L_, 2);
        return false;
      }
      lua_pop(L_, 1);
    }
    append("}");
    return true;
  }

  lua_State* L_;
  std::string out_;
  std::string error_;
  std::uint32_t ticks_ = 0;
};

int jsonEncode(lua_State* L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  JsonEncoder encoder(L);
  if (!encoder.encode(1, 0)) return failed(L, encoder.error());
  pushString(L, encoder.out());
  return 1;
}

// ---- cidr -------------------------------------------------------------------------------

bool inNetwork(lua_State* L, const IpAddress& ip, int index) {
  std::size_t len = 0;
  const char* text = luaL_checklstring(L, index, &len);
  const auto network = Cidr::parse({text, len});
  if (!network) luaL_error(L, "cidr.match: '%s' is not a network", text);
  return network->contains(ip);
}

// cidr.match(ip, "10.0.0.0/8" | {"10.0.0.0/8", "::1"}): false for an unparsable address.
int cidrMatch(lua_State* L) {
  const auto ip = IpAddress::parse(checkString(L, 1));
  if (lua_istable(L, 2)) {
    const std::size_t n = lua_objlen(L, 2);
    bool found = false;
    for (std::size_t i = 1; i <= n && !found; ++i) {
      lua_rawgeti(L, 2, static_cast<int>(i));
      found = ip && inNetwork(L, *ip, lua_gettop(L));
      lua_pop(L, 1);
    }
    lua_pushboolean(L, found ? 1 : 0);
    return 1;
  }
  luaL_checkstring(L, 2);
  lua_pushboolean(L, ip && inNetwork(L, *ip, 2) ? 1 : 0);
  return 1;
}

// ---- time -------------------------------------------------------------------------------

// The decision's time during a call (Vm::decisionTime); the system clock in `init`.
double nowSeconds(lua_State* L) {
  if (const auto t = Vm::decisionTime(L)) return static_cast<double>(*t);
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int timeNow(lua_State* L) {
  lua_pushnumber(L, nowSeconds(L));
  return 1;
}

std::tm utcParts(lua_State* L, int index) {
  const double t = luaL_optnumber(L, index, nowSeconds(L));
  if (!std::isfinite(t) || std::fabs(t) > 1e13) luaL_argerror(L, index, "time out of range");
  const auto secs = static_cast<std::time_t>(std::floor(t));
  std::tm tm{};
  if (::gmtime_r(&secs, &tm) == nullptr) luaL_argerror(L, index, "time out of range");
  return tm;
}

// time.utc([t]) → {year, month, day, hour, min, sec, wday (1 = Sunday, as os.date), yday}
int timeUtc(lua_State* L) {
  const std::tm tm = utcParts(L, 1);
  lua_createtable(L, 0, 8);
  const auto field = [L](const char* name, int v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, name);
  };
  field("year", tm.tm_year + 1900);
  field("month", tm.tm_mon + 1);
  field("day", tm.tm_mday);
  field("hour", tm.tm_hour);
  field("min", tm.tm_min);
  field("sec", tm.tm_sec);
  field("wday", tm.tm_wday + 1);
  field("yday", tm.tm_yday + 1);
  return 1;
}

// time.iso8601([t]) → "2026-12-02T22:53:18Z"
int timeIso(lua_State* L) {
  const std::tm tm = utcParts(L, 1);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  lua_pushstring(L, buf);
  return 1;
}

// ---- str --------------------------------------------------------------------------------

int strStartsWith(lua_State* L) {
  lua_pushboolean(L, checkString(L, 1).starts_with(checkString(L, 2)) ? 1 : 0);
  return 1;
}

int strEndsWith(lua_State* L) {
  lua_pushboolean(L, checkString(L, 1).ends_with(checkString(L, 2)) ? 1 : 0);
  return 1;
}

int strTrim(lua_State* L) {
  std::string_view s = checkString(L, 1);
  const auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (!s.empty() && space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && space(s.back()))
    s.remove_suffix(1);
  pushString(L, s);
  return 1;
}

// str.split(s, sep [, max]) → a list; `sep` is plain text, not a pattern.
int strSplit(lua_State* L) {
  const std::string_view s = checkString(L, 1);
  const std::string_view sep = checkString(L, 2);
  luaL_argcheck(L, !sep.empty(), 2, "empty separator");
  const lua_Integer max = luaL_optinteger(L, 3, 0);  // 0: no limit
  lua_newtable(L);
  std::size_t from = 0;
  int n = 0;
  for (;;) {
    if ((n & 255) == 255) Budget::of(L).checkDeadline(L);
    const std::size_t at = (max > 0 && n + 1 >= max) ? std::string_view::npos : s.find(sep, from);
    pushString(L,
               s.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from));
    lua_rawseti(L, -2, ++n);
    if (at == std::string_view::npos) break;
    from = at + sep.size();
  }
  return 1;
}

// str.glob(s, pattern): '*' any run of characters, '?' one character, all else literal.
int strGlob(lua_State* L) {
  const std::string_view s = checkString(L, 1);
  const std::string_view p = checkString(L, 2);
  // Greedy with one backtrack point (the last '*'): at most |s| × |p| steps.
  std::size_t si = 0, pi = 0, star = std::string_view::npos, mark = 0;
  std::uint32_t steps = 0;
  while (si < s.size()) {
    if ((++steps & 4095) == 0) Budget::of(L).checkDeadline(L);
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++si;
      ++pi;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      lua_pushboolean(L, 0);
      return 1;
    }
  }
  while (pi < p.size() && p[pi] == '*')
    ++pi;
  lua_pushboolean(L, pi == p.size() ? 1 : 0);
  return 1;
}

// ---- base64 -----------------------------------------------------------------------------

void checkSize(lua_State* L, std::size_t bytes) {
  Budget::of(L).reserve(L, bytes);
  Budget::of(L).checkDeadline(L);
}

int base64UrlEncode(lua_State* L) {
  const std::string_view s = checkString(L, 1);
  checkSize(L, s.size() / 3 * 4 + 4);
  pushString(L, identity::base64urlEncode(s));
  return 1;
}

int base64UrlDecode(lua_State* L) {
  const std::string_view s = checkString(L, 1);
  checkSize(L, s.size());
  auto out = identity::base64urlDecode(s);
  if (!out) return failed(L, "base64: not valid base64url");
  pushString(L, *out);
  return 1;
}

// The standard alphabet with padding, by way of the URL-safe codec.
int base64Encode(lua_State* L) {
  const std::string_view s = checkString(L, 1);
  checkSize(L, s.size() / 3 * 4 + 4);
  std::string out = identity::base64urlEncode(s);
  for (char& c : out)
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  out.append((4 - out.size() % 4) % 4, '=');
  pushString(L, out);
  return 1;
}

int base64Decode(lua_State* L) {
  std::string_view s = checkString(L, 1);
  checkSize(L, s.size());
  if (s.size() % 4 != 0) return failed(L, "base64: length is not a multiple of 4");
  std::size_t pad = 0;
  while (pad < 2 && !s.empty() && s.back() == '=') {
    s.remove_suffix(1);
    ++pad;
  }
  std::string url(s);
  for (char& c : url) {
    if (c == '-' || c == '_') return failed(L, "base64: not valid base64");
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  auto out = identity::base64urlDecode(url);
  if (!out) return failed(L, "base64: not valid base64");
  pushString(L, *out);
  return 1;
}

// ---- crypto -----------------------------------------------------------------------------

void pushDigest(lua_State* L, const unsigned char* md, std::size_t len, int format_index) {
  const std::string_view format = luaL_optstring(L, format_index, "hex");
  if (format == "raw") {
    lua_pushlstring(L, reinterpret_cast<const char*>(md), len);
    return;
  }
  luaL_argcheck(L, format == "hex", format_index, "'hex' or 'raw' expected");
  static constexpr char kHex[] = "0123456789abcdef";
  char hex[2 * EVP_MAX_MD_SIZE];
  for (std::size_t i = 0; i < len; ++i) {
    hex[2 * i] = kHex[md[i] >> 4];
    hex[2 * i + 1] = kHex[md[i] & 0xf];
  }
  lua_pushlstring(L, hex, 2 * len);
}

// crypto.sha256(s [, "hex"|"raw"])
int cryptoSha256(lua_State* L) {
  const std::string_view s = checkString(L, 1);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return luaL_error(L, "crypto: out of memory");
  struct Free {
    EVP_MD_CTX* c;
    ~Free() { EVP_MD_CTX_free(c); }
  } free_ctx{ctx};
  EVP_DigestInit_ex2(ctx, sha256Md(), nullptr);
  for (std::size_t at = 0; at < s.size(); at += kChunk) {
    Budget::of(L).checkDeadline(L);
    EVP_DigestUpdate(ctx, s.data() + at, std::min(kChunk, s.size() - at));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  pushDigest(L, md, len, 2);
  return 1;
}

// crypto.hmac_sha256(key, s [, "hex"|"raw"])
int cryptoHmacSha256(lua_State* L) {
  const std::string_view key = checkString(L, 1);
  const std::string_view s = checkString(L, 2);
  static EVP_MAC* const kHmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = kHmac == nullptr ? nullptr : EVP_MAC_CTX_new(kHmac);
  if (ctx == nullptr) return luaL_error(L, "crypto: HMAC is not available");
  struct Free {
    EVP_MAC_CTX* c;
    ~Free() { EVP_MAC_CTX_free(c); }
  } free_ctx{ctx};
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_END};
  if (EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) !=
      1) {
    return luaL_error(L, "crypto: HMAC init failed");
  }
  for (std::size_t at = 0; at < s.size(); at += kChunk) {
    Budget::of(L).checkDeadline(L);
    EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(s.data()) + at,
                   std::min(kChunk, s.size() - at));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  EVP_MAC_final(ctx, md, &len, sizeof md);
  pushDigest(L, md, len, 3);
  return 1;
}

// crypto.equals(a, b): comparison in time independent of where they differ.
int cryptoEquals(lua_State* L) {
  const std::string_view a = checkString(L, 1);
  const std::string_view b = checkString(L, 2);
  lua_pushboolean(L, a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0);
  return 1;
}

}  // namespace

void pushJson(lua_State* L, json::Value value) {
  switch (value.type()) {
    case json::Type::kObject: {
      luaL_checkstack(L, 3, "claims nested too deeply");
      lua_createtable(L, 0, static_cast<int>(value.size()));
      // In name order, as from nlohmann's objects before: a table's traversal order
      // (pairs) depends on the order its keys went in.
      for (const auto& member : value.sortedMembers()) {
        pushString(L, member.name);
        pushJson(L, member.value);
        lua_rawset(L, -3);
      }
      return;
    }
    case json::Type::kArray: {
      luaL_checkstack(L, 2, "claims nested too deeply");
      lua_createtable(L, static_cast<int>(value.size()), 0);
      int i = 0;
      for (const json::Value v : value.elements()) {
        pushJson(L, v);
        lua_rawseti(L, -2, ++i);
      }
      return;
    }
    case json::Type::kString:
      pushString(L, value.string());
      return;
    case json::Type::kBool:
      lua_pushboolean(L, value.boolean() ? 1 : 0);
      return;
    case json::Type::kInteger:
    case json::Type::kUnsigned:
    case json::Type::kFloat:
      lua_pushnumber(L, value.number());
      return;
    case json::Type::kNull:
      pushNull(L);
      return;
  }
}

void openHelpers(lua_State* L, int libs) {
  lua_newtable(L);
  lua_pushcfunction(L, jsonEncode);
  lua_setfield(L, -2, "encode");
  lua_pushcfunction(L, jsonDecode);
  lua_setfield(L, -2, "decode");
  pushNull(L);
  lua_setfield(L, -2, "null");
  pushReadOnlyView(L);
  lua_setfield(L, libs, "json");

  const luaL_Reg cidr[] = {{"match", cidrMatch}, {nullptr, nullptr}};
  addLibrary(L, libs, "cidr", cidr);
  const luaL_Reg time[] = {
      {"now", timeNow}, {"utc", timeUtc}, {"iso8601", timeIso}, {nullptr, nullptr}};
  addLibrary(L, libs, "time", time);
  const luaL_Reg str[] = {{"starts_with", strStartsWith},
                          {"ends_with", strEndsWith},
                          {"trim", strTrim},
                          {"split", strSplit},
                          {"glob", strGlob},
                          {nullptr, nullptr}};
  addLibrary(L, libs, "str", str);
  const luaL_Reg base64[] = {{"encode", base64Encode},
                             {"decode", base64Decode},
                             {"url_encode", base64UrlEncode},
                             {"url_decode", base64UrlDecode},
                             {nullptr, nullptr}};
  addLibrary(L, libs, "base64", base64);
  const luaL_Reg crypto[] = {{"sha256", cryptoSha256},
                             {"hmac_sha256", cryptoHmacSha256},
                             {"equals", cryptoEquals},
                             {nullptr, nullptr}};
  addLibrary(L, libs, "crypto", crypto);
}

}  // namespace portcullis::functions::lua
