#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "common/http/request.h"
#include "common/ip.h"
#include "engine/decision.h"

// What the built-in proxy writes on the wire around a decision: the request head it sends
// upstream, the response head it relays to the client, and its own answers (deny, 502,
// 504). Pure functions over plain types, so each rule is unit-tested without a socket.
namespace portcullis::frontends::proxy {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// One of the fields that always describe a connection, not the message: Connection,
// Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade (any case).
bool fixedHopByHop(std::string_view name);

// The hop-by-hop fields of one message (RFC 9110 §7.6.1): the fixed ones above and every
// name the message's Connection fields list. None of them crosses the proxy; framing is
// the proxy's own.
class HopByHop final {
 public:
  // Refers to `fields`, which must outlive it.
  explicit HopByHop(const HeaderList& fields);
  // `name` in any case.
  bool contains(std::string_view name) const;
  // A Connection field lists `token` (any case): "close", "upgrade", "keep-alive".
  bool connectionHas(std::string_view token) const;

 private:
  // The Connection field's tokens, in `fields` (usually one: "keep-alive" or "close").
  boost::container::small_vector<std::string_view, 4> listed_;
};

// How a message's body is framed on the wire.
struct Framing {
  enum class Kind : std::uint8_t { kNone, kLength, kChunked, kUntilClose };
  Kind kind = Kind::kNone;
  std::uint64_t length = 0;  // kLength
};

// Everything the request head sent upstream is made of.
struct UpstreamRequest {
  std::string_view method;
  std::string_view target;                 // origin-form, after the route's strip_prefix
  const http::Headers* headers = nullptr;  // the client's, as received (names lower case)
  const HopByHop* hop = nullptr;           // of `headers`; null: computed here
  std::string_view host;                   // the client's Host, as received
  std::string_view scheme;                 // "http" or "https": the client's connection
  IpAddress peer;                          // the TCP peer
  bool peer_trusted = false;               // peer is in proxy.trusted_proxies
  std::string_view request_id;
  const engine::Decision::HeaderList* identity = nullptr;  // the decision's upstream headers
  // Names any route or provider may set as identity headers (lower case): a client's own
  // copy of one never reaches the upstream, set this time or not.
  const std::vector<std::string>* identity_names = nullptr;
  Framing framing;       // the body as it will be sent (kNone, kLength or kChunked)
  bool upgrade = false;  // pass Connection: upgrade and the Upgrade field through
};

// Appends the request line and header block for `r` to `out`. X-Forwarded-For, -Proto and
// -Host and Forwarded (RFC 7239) say who asked: from a trusted peer the chain it sent is
// kept and this hop appended; from any other peer whatever it sent is dropped first.
// X-Request-Id is the decision's request id; a traceparent that is not W3C Trace Context
// version 00 syntax is dropped (with its tracestate). Expect is not passed (the proxy
// answers "100 Continue" itself once the request is allowed).
void writeUpstreamHead(std::string& out, const UpstreamRequest& r);

// A W3C traceparent value (version 00, lower-case hex, non-zero ids).
bool validTraceparent(std::string_view value);

// The response head relayed to the client: status line, the upstream's fields minus
// hop-by-hop ones and its framing, then the proxy's framing and connection fields.
struct RelayedResponse {
  int status = 200;
  const HeaderList* fields = nullptr;            // as the upstream sent them
  Framing framing;                               // as it will be sent to the client
  bool head_request = false;                     // keep a Content-Length the upstream sent for HEAD
  std::optional<std::uint64_t> upstream_length;  // the upstream's Content-Length, if any
  bool keep_alive = true;                        // the client connection stays open
  bool client_http10 = false;
  std::string_view request_id;  // added as X-Request-Id unless the upstream sent one
  bool upgrade = false;         // a 101: Connection: upgrade and the upstream's Upgrade kept
};
void writeResponseHead(std::string& out, const RelayedResponse& r);

// An answer the proxy makes itself: a deny, 502, 504, 400.
struct LocalAnswer {
  int status = 403;
  std::string_view title;   // "Forbidden"; empty: the status's reason phrase
  std::string_view detail;  // one sentence for the client; never a secret
  std::string_view reason;  // the public reason code, or empty (not exposed)
  std::string_view request_id;
  const engine::Decision::HeaderList* headers = nullptr;  // WWW-Authenticate, Retry-After, …
  bool html = false;          // the client prefers text/html (a browser)
  bool keep_alive = true;     // the connection stays open after it
  bool head_request = false;  // no body
  std::string_view server = "portcullis";
};
// Writes an RFC 9457 problem document (application/problem+json), or a small HTML page
// when `html`, with its head.
void writeLocalAnswer(std::string& out, const LocalAnswer& a);

// Whether an Accept field prefers HTML (a browser navigating) over JSON.
bool prefersHtml(const http::Headers& headers);

// The reason phrase the proxy writes for `status` ("Unknown" for codes it does not know).
std::string_view reasonPhrase(int status);

}  // namespace portcullis::frontends::proxy
