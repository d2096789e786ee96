#pragma once

#include <lua.hpp>

#include "common/json/doc.h"

// The helper modules of the sandbox (docs/functions-lua.md "Helpers"): `json`, `cidr`,
// `time`, `str`, `base64`, `crypto`. Every one checks the call's deadline while it works
// on large input, and builds its output within the call's memory ceiling.
namespace portcullis::functions::lua {

// Adds the modules as read-only fields of the table at `libs`.
void openHelpers(lua_State* L, int libs);

// Pushes `value` as Lua: objects and arrays as tables, null as `json.null`. Raises the
// memory or time error like any allocation.
void pushJson(lua_State* L, json::Value value);

}  // namespace portcullis::functions::lua
