#pragma once

#include "config/functions.h"

namespace portcullis::app {

// Every function runtime of this program: `lua`, `lambda-local` and `lambda`, in the order
// errors list them. main() builds it once and hands it to every command that compiles a
// policy (check, eval, test, serve, haproxy-config), so they all accept the same policies.
// Filled by explicit calls: a self-registering static object in a static library is
// dropped by the linker when nothing else refers to its file.
config::FunctionRuntimes functionRuntimes();

}  // namespace portcullis::app
