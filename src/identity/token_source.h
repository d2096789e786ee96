#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http/request.h"

namespace portcullis::identity {

// One place a provider looks for its credential (config `token_from`).
struct TokenSource {
  enum class Kind { kBearerHeader, kCookie, kQuery };
  Kind kind = Kind::kBearerHeader;
  std::string name;  // header name (lower case), cookie name or query parameter
};

// How a provider finds its credential in a request. The seam exists so that a kind can read
// its credential from elsewhere (a client certificate, a signed request) and so that tests
// can count the reads: the gatekeeper reads each provider's credential once per decision
// (identity::Credentials) and hands that one view to the cache key, the pipeline,
// revocation and the cache entry. Implementations are immutable and thread-safe.
class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  // The credential, as a view into `request`, or an empty view when the request has none.
  virtual std::string_view read(const http::Request& request) const = 0;
  // A place this source reads that `request` fills more than once ("header authorization",
  // "cookie session", "query parameter access_token"), or nullopt. Readers disagree on
  // which copy counts, so the engine refuses such a request before anything reads it.
  virtual std::optional<std::string> repeated(const http::Request& request) const = 0;
};

// The `token_from` list: the first of its places that holds a non-empty credential wins.
// `Authorization` takes `Bearer <token>` only; another header named by `header:NAME` may
// carry the bare token.
class TokenSources final : public CredentialSource {
 public:
  explicit TokenSources(std::vector<TokenSource> sources) : sources_(std::move(sources)) {}
  const std::vector<TokenSource>& sources() const { return sources_; }
  std::string_view read(const http::Request& request) const override;
  std::optional<std::string> repeated(const http::Request& request) const override;

 private:
  std::vector<TokenSource> sources_;
};

// The credential at one place, or an empty view.
std::string_view readTokenSource(const TokenSource& source, const http::Request& request);

// How many times `request` fills `source`'s place.
std::size_t occurrences(const TokenSource& source, const http::Request& request);

}  // namespace portcullis::identity
