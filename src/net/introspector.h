#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "engine/pipeline.h"

namespace portcullis::net {

namespace asio = boost::asio;

// The token introspection client of one worker (RFC 7662 §2.1): POSTs the token to the
// provider's endpoint with HTTP Basic client credentials, on this worker's loop. Concurrent
// requests for the same token share one call (single-flight). Completion handlers run on
// the worker's loop, never inline. Not thread-safe: one instance per worker.
class HttpIntrospector final : public engine::Introspector {
 public:
  explicit HttpIntrospector(asio::io_context& io) : io_(io) {}
  void introspect(const identity::IntrospectionSpec& spec, std::string token,
                  std::function<void(Answer)> done) override;

 private:
  asio::io_context& io_;
  std::map<std::string, std::vector<std::function<void(Answer)>>>
      in_flight_;  // by url + token hash
};

// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 Appendix B).
std::string formEncode(std::string_view value);

}  // namespace portcullis::net
