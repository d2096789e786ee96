#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "engine/gatekeeper.h"
#include "frontends/spoe/codec.h"
#include "telemetry/stats.h"

namespace portcullis::frontends::spoe {

namespace asio = boost::asio;

// The message name and argument names the generated SPOE configuration sends
// (`portcullis haproxy-config`), and the variables the agent sets (under HAProxy's
// `option var-prefix`, in the transaction scope).
inline constexpr std::string_view kMessageName = "portcullis-request";

struct AgentOptions {
  std::uint32_t max_frame_size = 16'384;  // what we accept; HAProxy's may be lower
  std::chrono::milliseconds idle_timeout{120'000};
  std::chrono::milliseconds hello_timeout{5'000};
  // Bounds on what one peer can make the agent hold (`limits.*`). Connections over
  // max_connections (per listener, across workers) are closed at once. At max_inflight
  // NOTIFYs being decided, a connection is not read until one completes (back-pressure:
  // nothing is dropped). ACKs waiting to be written beyond max_queued_bytes mean a peer
  // that does not read: its connection is closed.
  std::uint64_t max_connections = 10'000;
  std::uint32_t max_inflight = 256;
  std::size_t max_queued_bytes = 1024 * 1024;
};

// Every series of the SPOE agent (docs/conventions.md §11): connections, NOTIFYs decided,
// protocol errors answered with a DISCONNECT, and connections closed by the agent's bounds
// (`refused`: at once, over max_connections; `overflowed`: ACKs queued over max_queued_bytes).
inline constexpr char kSpoeClosedHelp[] =
    "SPOP connections closed by the agent's bounds: over limits.max_connections, or ACKs "
    "queued over limits.spoe_max_queued_bytes (a peer that does not read)";
#define PORTCULLIS_SPOE_STATS(COUNTER, HISTOGRAM, GAUGE)                                         \
  COUNTER(connections, "portcullis_spoe_connections_total", "SPOP connections from HAProxy", "") \
  COUNTER(notifies, "portcullis_spoe_notify_total", "NOTIFY frames decided", "")                 \
  COUNTER(disconnects_sent, "portcullis_spoe_protocol_errors_total",                             \
          "SPOP connections closed with an error DISCONNECT", "")                                \
  COUNTER(refused, "portcullis_spoe_connections_closed_total", kSpoeClosedHelp,                  \
          "reason=\"max_connections\"")                                                          \
  COUNTER(overflowed, "portcullis_spoe_connections_closed_total", kSpoeClosedHelp,               \
          "reason=\"write_queue\"")

struct AgentStats {
  PORTCULLIS_STAT_FIELDS(PORTCULLIS_SPOE_STATS)
  // Connections open on this listener, shared by every worker's acceptLoop (a connection
  // counts until its socket is closed, pending decisions included).
  std::shared_ptr<std::atomic<std::uint64_t>> open =
      std::make_shared<std::atomic<std::uint64_t>>(0);
};
// The counters are process-wide; `open` is new each call: call once per listener.
AgentStats makeAgentStats(telemetry::Metrics& metrics);

// Turns one NOTIFY message into the original request's view (exposed for tests).
std::optional<http::Request> requestFromMessage(const Message& message, std::string& why);
// The set-var actions that carry a decision back to HAProxy (exposed for tests). With
// `haproxy_cache` (the message's `hcache` argument, sent by a configuration generated with
// --haproxy-cache) they say whether HAProxy may keep the decision; without, that work is
// skipped.
std::vector<SetVar> decisionVars(const engine::Evaluation& ev, const http::Request& request,
                                 bool haproxy_cache = false);
// `X-User` → `hdr_x_user`: the variable that carries an upstream header.
std::string headerVarName(std::string_view header);

// One SPOP connection from HAProxy: HELLO handshake (or health check), then NOTIFY frames
// decided concurrently and ACKed as each completes (pipelining: a slow decision never
// holds up the others), DISCONNECT in both directions. A malformed frame ends this
// connection only, with the matching DISCONNECT status. `clients` are this worker's.
// The connection counts in stats.open, which the caller has already incremented.
asio::awaitable<void> serveConnection(asio::ip::tcp::socket socket, engine::Gatekeeper& gatekeeper,
                                      engine::Clients clients, AgentOptions options,
                                      AgentStats stats);
asio::awaitable<void> serveConnection(asio::local::stream_protocol::socket socket,
                                      engine::Gatekeeper& gatekeeper, engine::Clients clients,
                                      AgentOptions options, AgentStats stats);

// Accepts HAProxy's connections on one worker's acceptor until it is closed.
asio::awaitable<void> acceptLoop(asio::ip::tcp::acceptor& acceptor, engine::Gatekeeper& gatekeeper,
                                 engine::Clients clients, AgentOptions options, AgentStats stats);

// A unix-socket listener: one acceptor, its connections spread round-robin over the
// workers (each served on its worker's loop with that worker's clients).
struct AgentWorker {
  asio::io_context* loop = nullptr;
  engine::Clients clients;
};
asio::awaitable<void> acceptLoop(asio::local::stream_protocol::acceptor& acceptor,
                                 engine::Gatekeeper& gatekeeper, std::vector<AgentWorker> workers,
                                 AgentOptions options, AgentStats stats);

}  // namespace portcullis::frontends::spoe
