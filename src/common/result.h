#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

#include "common/reason.h"

namespace portcullis {

// Errors on the data plane are values (docs/conventions.md §6). `message` is for operators and the
// audit log, never for clients, and never contains a token or a secret.
struct Error {
  Reason code = Reason::kInternalError;
  std::string message;
};

template <typename T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(Reason code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace portcullis
