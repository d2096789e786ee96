#include "functions/lua/vm.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/strings.h"
#include "functions/lua/helpers.h"
#include "functions/lua/sandbox.h"

namespace portcullis::functions::lua {
namespace {

using Clock = std::chrono::steady_clock;

// The count hook runs every kHookInstructions VM instructions (a few microseconds of
// interpreted code) and ends the call once its deadline has passed.
constexpr int kHookInstructions = 1000;
constexpr std::size_t kMaxContextEntries = 64;
constexpr std::size_t kMaxValueBytes = 4096;  // one header or context value
constexpr std::size_t kMaxErrorBytes = 300;   // of a Lua error message, in the audit line
constexpr lua_Number kMaxTtl = 86400;

// Registry key: the Vm a state belongs to (light userdata).
const char kVmKey = 0;

void countHook(lua_State* L, lua_Debug* /*ar*/) {
  Budget::of(L).checkDeadline(L);
}

void pushField(lua_State* L, const char* name, std::string_view value) {
  lua_pushlstring(L, value.data(), value.size());
  lua_setfield(L, -2, name);
}

std::string luaMessage(lua_State* L, int index) {
  if (const char* s = lua_tostring(L, index)) return s;
  return std::string("(error object is a ") + luaL_typename(L, index) + ")";
}

std::string clip(std::string s) {
  if (s.size() > kMaxErrorBytes) {
    s.resize(kMaxErrorBytes);
    s += "…";
  }
  return headerSafe(s);
}

std::string describeDuration(std::chrono::microseconds d) {
  if (d.count() % 1000 == 0) return fmt::format("{}ms", d.count() / 1000);
  return fmt::format("{}µs", d.count());
}

bool validReason(std::string_view r) {
  return !r.empty() && r.size() <= 64 && std::all_of(r.begin(), r.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool validValue(std::string_view v) {
  return v.size() <= kMaxValueBytes &&
         std::none_of(v.begin(), v.end(), [](char c) { return c == '\r' || c == '\n' || c == 0; });
}

}  // namespace

// The state of the call in progress (the C functions below reach it through the registry).
struct Vm::Call {
  const engine::FunctionCall* call = nullptr;
  engine::FunctionAnswer* answer = nullptr;
  const Program* program = nullptr;
  std::string error;  // the handler returned something malformed
};

namespace {

Vm& vmOf(lua_State* L) {
  lua_pushlightuserdata(L, const_cast<char*>(&kVmKey));
  lua_rawget(L, LUA_REGISTRYINDEX);
  auto* vm = static_cast<Vm*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return *vm;
}

Vm::Call* currentCall(lua_State* L) {
  return vmOf(L).current();
}

// Header tables: keys are lower case; a lookup lower-cases the name first.
int headersIndex(lua_State* L) {
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  std::size_t len = 0;
  const char* name = lua_tolstring(L, 2, &len);
  const std::string lower = toLower({name, len});
  lua_pushlstring(L, lower.data(), lower.size());
  lua_rawget(L, 1);
  return 1;
}

// request.headers (name → values joined with ", ") and request.client_ip, built on first use.
int requestIndex(lua_State* L) {
  Vm::Call* c = currentCall(L);
  if (c == nullptr || lua_type(L, 2) != LUA_TSTRING) return 0;
  const std::string_view key = lua_tostring(L, 2);
  if (key == "client_ip") {  // formatting an address costs more than the rest of a call
    const auto& ip = c->call->request.client_ip;
    const std::string text = ip.valid() ? ip.toString() : "";
    lua_pushlstring(L, text.data(), text.size());
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
  }
  if (key != "headers") return 0;
  lua_newtable(L);
  const auto& fields = c->call->request.headers.fields();
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const auto& [name, value] = fields[i];
    std::string joined;
    bool seen_before = false;
    for (std::size_t j = 0; j < i && !seen_before; ++j)
      seen_before = fields[j].first == name;
    if (seen_before) continue;
    c->call->request.headers.forEach(name, [&](const std::string& v) {
      if (!joined.empty()) joined += ", ";
      joined += v;
    });
    lua_pushlstring(L, name.data(), name.size());
    lua_pushlstring(L, joined.data(), joined.size());
    lua_rawset(L, -3);
  }
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "headers_meta");
  lua_setmetatable(L, -3);
  lua_pop(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);  // later reads find it directly
  return 1;
}

// A list that is also a set: {"a", "b", a = true, b = true}.
void pushNameSet(lua_State* L, const std::vector<std::string>& names) {
  lua_createtable(L, static_cast<int>(names.size()), static_cast<int>(names.size()));
  int i = 0;
  for (const auto& n : names) {
    lua_pushlstring(L, n.data(), n.size());
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, ++i);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
  }
}

// identity.claims / scopes / groups / roles, built on first use.
int identityIndex(lua_State* L) {
  Vm::Call* c = currentCall(L);
  if (c == nullptr || c->call->identity == nullptr || lua_type(L, 2) != LUA_TSTRING) return 0;
  const identity::Identity& id = *c->call->identity;
  const std::string_view key = lua_tostring(L, 2);
  if (key == "claims") {
    if (id.claims) {
      pushJson(L, id.claims->root());
    } else {
      lua_newtable(L);
    }
  } else if (key == "scopes") {
    pushNameSet(L, id.scopes);
  } else if (key == "groups") {
    pushNameSet(L, id.groups);
  } else if (key == "roles") {
    pushNameSet(L, id.roles);
  } else {
    return 0;
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

// Runs protected, with the Vm as light userdata: builds the sandbox, runs the chunk (and
// init), and keeps references to the handler and the metatables in vm.refs().
int setUp(lua_State* L) {
  auto* vm = static_cast<Vm*>(lua_touserdata(L, 1));
  const Program& program = vm->program();
  lua_settop(L, 0);
  lua_pushlightuserdata(L, const_cast<char*>(&kVmKey));
  lua_pushlightuserdata(L, vm);
  lua_rawset(L, LUA_REGISTRYINDEX);
  openSandbox(L);  // 1: the globals table
  const std::string chunkname = "=" + program.file;
  const char* file = program.file.c_str();
  if (luaL_loadbufferx(L, program.source.data(), program.source.size(), chunkname.c_str(), "t") !=
      0) {
    return lua_error(L);
  }
  lua_pushvalue(L, 1);
  lua_setfenv(L, -2);
  lua_call(L, 0, 1);  // the chunk returns the handler, or {init = f, handle = f}
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "init");
    if (!lua_isnil(L, -1)) {
      if (!lua_isfunction(L, -1)) return luaL_error(L, "%s: init must be a function", file);
      lua_call(L, 0, 0);
    } else {
      lua_pop(L, 1);
    }
    lua_getfield(L, -1, "handle");
    if (!lua_isfunction(L, -1)) {
      return luaL_error(L, "%s: the returned table has no handle function", file);
    }
    lua_replace(L, -2);
  } else if (!lua_isfunction(L, -1)) {
    return luaL_error(L,
                      "%s: the chunk must return the handler function, or a table with "
                      "handle (and init); it returned a %s",
                      file, luaL_typename(L, -1));
  }
  setGlobalsWritable(L, false);
  Vm::Refs& refs = vm->refs();
  refs.handler = luaL_ref(L, LUA_REGISTRYINDEX);

  lua_createtable(L, 0, 2);  // request metatable
  lua_pushcfunction(L, requestIndex);
  lua_setfield(L, -2, "__index");
  lua_createtable(L, 0, 1);  // header tables' metatable
  lua_pushcfunction(L, headersIndex);
  lua_setfield(L, -2, "__index");
  lua_setfield(L, -2, "headers_meta");
  refs.request_meta = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_createtable(L, 0, 1);  // identity metatable
  lua_pushcfunction(L, identityIndex);
  lua_setfield(L, -2, "__index");
  refs.identity_meta = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

void readHeaders(lua_State* L, Vm::Call& c) {
  if (lua_isnil(L, -1)) return;
  if (!lua_istable(L, -1)) {
    c.error = "headers must be a table of name = value";
    return;
  }
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1)) {
      c.error = "headers must map names to strings";
      lua_pop(L, 2);
      return;
    }
    const std::string_view name = lua_tostring(L, -2);
    std::size_t len = 0;
    const char* v = lua_tolstring(L, -1, &len);  // a number converts in place: the key is untouched
    const auto& allowed = c.program->headers;
    const auto declared = std::find_if(allowed.begin(), allowed.end(),
                                       [&](const std::string& h) { return iequals(h, name); });
    if (declared == allowed.end()) {
      c.error = fmt::format("header '{}' is not declared in the function's `headers`",
                            headerSafe(name.substr(0, 64)));
    } else if (!validValue({v, len})) {
      c.error = fmt::format("header '{}': the value has CR, LF or NUL, or is longer than {} bytes",
                            *declared, kMaxValueBytes);
    } else {
      c.answer->headers.emplace_back(*declared, std::string(v, len));
    }
    lua_pop(L, 1);
    if (!c.error.empty()) {
      lua_pop(L, 1);
      return;
    }
  }
}

void readContext(lua_State* L, Vm::Call& c) {
  if (lua_isnil(L, -1)) return;
  if (!lua_istable(L, -1)) {
    c.error = "context must be a table of name = value";
    return;
  }
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    const int type = lua_type(L, -1);
    if (lua_type(L, -2) != LUA_TSTRING ||
        (type != LUA_TSTRING && type != LUA_TNUMBER && type != LUA_TBOOLEAN)) {
      c.error = "context must map names to strings, numbers or booleans";
      lua_pop(L, 2);
      return;
    }
    std::string value;
    if (type == LUA_TBOOLEAN) {
      value = lua_toboolean(L, -1) ? "true" : "false";
    } else {
      std::size_t len = 0;
      const char* v = lua_tolstring(L, -1, &len);
      value.assign(v, len);
    }
    if (c.answer->context.size() >= kMaxContextEntries || !validValue(value)) {
      c.error = fmt::format("context: at most {} entries of at most {} bytes, without CR/LF",
                            kMaxContextEntries, kMaxValueBytes);
      lua_pop(L, 2);
      return;
    }
    c.answer->context[lua_tostring(L, -2)] = std::move(value);
    lua_pop(L, 1);
  }
}

// The handler's answer (on the stack top) into c.answer, or c.error.
void readAnswer(lua_State* L, Vm::Call& c) {
  engine::FunctionAnswer& a = *c.answer;
  if (lua_isboolean(L, -1)) {
    a.outcome = lua_toboolean(L, -1) ? engine::Outcome::kAllow : engine::Outcome::kDeny;
    return;
  }
  if (!lua_istable(L, -1)) {
    c.error = fmt::format("the handler must return a table (or a boolean), not a {}",
                          luaL_typename(L, -1));
    return;
  }
  lua_getfield(L, -1, "allow");
  if (!lua_isboolean(L, -1)) {
    c.error = "the answer needs allow = true or allow = false";
    return;
  }
  const bool allow = lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  a.outcome = allow ? engine::Outcome::kAllow : engine::Outcome::kDeny;

  lua_getfield(L, -1, "status");
  if (!lua_isnil(L, -1)) {
    const lua_Number s = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER ||
        (s != 400 && s != 401 && s != 403 && s != 404 && s != 429)) {
      c.error = "status must be 400, 401, 403, 404 or 429";
      return;
    }
    a.status = static_cast<int>(s);
  }
  lua_pop(L, 1);

  lua_getfield(L, -1, "reason");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING || !validReason(lua_tostring(L, -1))) {
      c.error = "reason must be 1 to 64 characters of a-z, 0-9 and _";
      return;
    }
    if (!allow) a.reason = lua_tostring(L, -1);
  }
  lua_pop(L, 1);

  lua_getfield(L, -1, "ttl");
  if (!lua_isnil(L, -1)) {
    const lua_Number ttl = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(ttl >= 0)) {
      c.error = "ttl must be a number of seconds, 0 or more";
      return;
    }
    a.ttl = std::chrono::seconds(static_cast<std::int64_t>(std::min(ttl, kMaxTtl)));
  }
  lua_pop(L, 1);

  if (!allow) return;  // headers and context go upstream only with an allow
  lua_getfield(L, -1, "headers");
  readHeaders(L, c);
  if (!c.error.empty()) return;
  lua_pop(L, 1);
  lua_getfield(L, -1, "context");
  readContext(L, c);
  if (!c.error.empty()) return;
  lua_pop(L, 1);
}

// One request: builds the arguments, runs the handler, reads its answer.
int runCall(lua_State* L) {
  Vm& vm = *static_cast<Vm*>(lua_touserdata(L, 1));
  Vm::Call* c = vm.current();
  const Vm::Refs& refs = vm.refs();
  const engine::FunctionCall& call = *c->call;
  lua_settop(L, 0);

  lua_createtable(L, 0, 8);  // 1: request
  pushField(L, "method", call.request.method);
  pushField(L, "scheme", call.request.scheme);
  pushField(L, "host", call.request.host);
  pushField(L, "path", call.request.path);
  pushField(L, "query", call.request.query);
  pushField(L, "id", call.request.request_id);
  lua_rawgeti(L, LUA_REGISTRYINDEX, refs.request_meta);
  lua_setmetatable(L, -2);

  if (call.identity != nullptr) {  // 2: identity, or nil on an anonymous route
    lua_createtable(L, 0, 8);
    pushField(L, "sub", call.identity->subject);
    pushField(L, "iss", call.identity->issuer);
    pushField(L, "provider", call.identity->provider);
    lua_rawgeti(L, LUA_REGISTRYINDEX, refs.identity_meta);
    lua_setmetatable(L, -2);
  } else {
    lua_pushnil(L);
  }

  lua_rawgeti(L, LUA_REGISTRYINDEX, refs.handler);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_createtable(L, 0, static_cast<int>(call.ctx.size()));  // ctx
  for (const auto& [name, value] : call.ctx)
    pushField(L, name.c_str(), value);
  lua_call(L, 3, 1);
  readAnswer(L, *c);

  // Tables kept by the function past this call must not read a later request's data.
  lua_settop(L, 2);
  lua_pushnil(L);
  lua_setmetatable(L, 1);
  if (lua_istable(L, 2)) {
    lua_pushnil(L);
    lua_setmetatable(L, 2);
  }
  return 0;
}

}  // namespace

std::optional<std::int64_t> Vm::decisionTime(lua_State* L) {
  const Call* c = vmOf(L).current();
  if (c == nullptr) return std::nullopt;
  return c->call->now;
}

Vm::Vm(std::shared_ptr<const Program> program)
    : program_(std::move(program)), budget_(std::make_unique<Budget>(program_->memory)) {}

Vm::~Vm() {
  if (L_ != nullptr) lua_close(L_);
}

Result<std::unique_ptr<Vm>> Vm::create(std::shared_ptr<const Program> program) {
  std::unique_ptr<Vm> vm(new Vm(std::move(program)));
  const Program& p = *vm->program_;
  vm->L_ = lua_newstate(Budget::allocate, vm->budget_.get());
  if (vm->L_ == nullptr) {
    return fail(Reason::kFunctionError,
                fmt::format("{}: cannot create a Lua state within {} bytes", p.file, p.memory));
  }
  lua_State* L = vm->L_;
  // Interpreter only: the count hook, which enforces the time limit, never fires inside
  // JIT-compiled traces (docs/functions-lua.md "Why the JIT compiler is off").
  luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
  lua_sethook(L, countHook, LUA_MASKCOUNT, kHookInstructions);
  vm->budget_->start(p.init_timeout);
  if (lua_cpcall(L, setUp, vm.get()) != 0) {
    std::string message = luaMessage(L, -1);
    if (vm->budget_->timedOut()) {
      message = fmt::format("{}: the chunk and init took longer than {}", p.file,
                            describeDuration(p.init_timeout));
    } else if (vm->budget_->memoryExceeded()) {
      message = fmt::format("{}: the chunk and init need more than the {} bytes of `memory`",
                            p.file, p.memory);
    }
    return fail(Reason::kFunctionError, std::move(message));
  }
  lua_gc(L, LUA_GCCOLLECT, 0);
  return vm;
}

engine::FunctionAnswer Vm::call(const engine::FunctionCall& call) {
  engine::FunctionAnswer answer;
  Call c;
  c.call = &call;
  c.answer = &answer;
  c.program = program_.get();
  current_ = &c;
  budget_->start(program_->timeout);
  const int status = lua_cpcall(L_, runCall, this);
  current_ = nullptr;
  if (status != 0) {
    std::string message = luaMessage(L_, -1);
    lua_settop(L_, 0);
    if (budget_->aborted()) {
      broken_ = true;
      if (budget_->memoryExceeded()) {
        return engine::FunctionAnswer::failure(
            Reason::kFunctionError,
            fmt::format("exceeded its memory limit ({} bytes)", program_->memory));
      }
      return engine::FunctionAnswer::failure(
          Reason::kFunctionTimeout,
          fmt::format("exceeded its {} timeout", describeDuration(program_->timeout)));
    }
    return engine::FunctionAnswer::failure(Reason::kFunctionError, clip(std::move(message)));
  }
  if (!c.error.empty()) {
    return engine::FunctionAnswer::failure(Reason::kFunctionError,
                                           "bad answer: " + clip(std::move(c.error)));
  }
  // LuaJIT does not collect before it reports "not enough memory": keep the garbage of
  // past calls well below the ceiling.
  if (budget_->used() > budget_->limit() / 2) lua_gc(L_, LUA_GCCOLLECT, 0);
  return answer;
}

}  // namespace portcullis::functions::lua
