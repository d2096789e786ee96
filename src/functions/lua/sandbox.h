#pragma once

#include <lua.hpp>

// The sandbox a function's chunk runs in (docs/functions-lua.md "Sandbox"). Everything
// here runs inside a protected call: any allocation may raise the memory error.
namespace portcullis::functions::lua {

// Builds the function's globals table and leaves it on the stack: the safe parts of the
// base library, `string` (with bounded pattern matching), `table`, `math`, `bit`,
// `coroutine`, `os.time`/`os.clock` and the helper modules (helpers.h). Library tables are
// read-only views; the globals table accepts assignments only while setGlobalsWritable is
// on (the chunk and `init`). Not reachable: io, os (but time and clock), require/package,
// load/loadstring/loadfile/dofile, debug, jit, ffi, getfenv/setfenv, rawset, string.dump,
// collectgarbage, newproxy, print, and the metatable of strings.
void openSandbox(lua_State* L);

// Whether assignments to globals are accepted (false while handling requests).
void setGlobalsWritable(lua_State* L, bool writable);

// Replaces the table on top of the stack with a read-only view of it: reads go through,
// writes raise an error, getmetatable() answers false.
void pushReadOnlyView(lua_State* L);

// Registers `functions` (a name → C function list ending with {nullptr, nullptr}) into a
// new table, made read-only, stored as field `name` of the table at `libs`.
void addLibrary(lua_State* L, int libs, const char* name, const luaL_Reg* functions);

}  // namespace portcullis::functions::lua
