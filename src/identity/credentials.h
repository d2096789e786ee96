#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "common/http/request.h"

namespace portcullis::identity {

class Provider;

// The credentials one request carries for a route's providers, each read once, by the
// gatekeeper, before anything else looks at them. The cache key covers all of them (a key
// on the first one found would let a request borrow a decision made for another
// credential); the pipeline hands each provider its own; revocation and the cache entry
// hash the one that authenticated. Views into the request: valid while it lives. Copying is
// cheap (no allocation for up to kInline providers).
class Credentials final {
 public:
  static constexpr std::size_t kInline = 4;

  Credentials() = default;
  // Reads the credential of each of `providers`, in order.
  static Credentials read(std::span<const Provider* const> providers, const http::Request& request);

  std::size_t size() const { return size_; }
  // The credential the index-th provider read; empty when it found none.
  std::string_view at(std::size_t index) const {
    return index < size_ ? entry(index).value : std::string_view();
  }
  // The credential the first provider named `provider` read (the one whose identity
  // authenticated); empty when no provider has that name or it found none.
  std::string_view of(std::string_view provider) const;

 private:
  struct Found {
    const Provider* provider = nullptr;
    std::string_view value;
  };
  const Found& entry(std::size_t index) const {
    return index < kInline ? inline_[index] : more_[index - kInline];
  }

  std::array<Found, kInline> inline_{};
  std::vector<Found> more_;  // providers past kInline, rare
  std::size_t size_ = 0;
};

}  // namespace portcullis::identity
