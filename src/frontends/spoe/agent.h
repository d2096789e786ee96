#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "engine/gatekeeper.h"
#include "frontends/spoe/codec.h"

namespace portcullis::audit {
class Counter;
class Metrics;
}  // namespace portcullis::audit

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
};

struct AgentStats {
  audit::Counter* connections = nullptr;
  audit::Counter* notifies = nullptr;
  audit::Counter* disconnects_sent = nullptr;  // protocol errors we answered with DISCONNECT
};
AgentStats makeAgentStats(audit::Metrics& metrics);

// Turns one NOTIFY message into the original request's view (exposed for tests).
std::optional<engine::Request> requestFromMessage(const Message& message, std::string& why);
// The set-var actions that carry a decision back to HAProxy (exposed for tests). With
// `haproxy_cache` (the message's `hcache` argument, sent by a configuration generated with
// --haproxy-cache) they say whether HAProxy may keep the decision; without, that work is
// skipped.
std::vector<SetVar> decisionVars(const engine::Evaluation& ev, const engine::Request& request,
                                 bool haproxy_cache = false);
// `X-User` → `hdr_x_user`: the variable that carries an upstream header.
std::string headerVarName(std::string_view header);

// One SPOP connection from HAProxy: HELLO handshake (or health check), then NOTIFY frames
// decided concurrently and ACKed as each completes (pipelining: a slow decision never
// holds up the others), DISCONNECT in both directions. A malformed frame ends this
// connection only, with the matching DISCONNECT status. `clients` are this worker's.
asio::awaitable<void> serveConnection(asio::ip::tcp::socket socket, engine::Gatekeeper& gatekeeper,
                                      engine::Clients clients, AgentOptions options,
                                      AgentStats stats);

// Accepts HAProxy's connections on one worker's acceptor until it is closed.
asio::awaitable<void> acceptLoop(asio::ip::tcp::acceptor& acceptor, engine::Gatekeeper& gatekeeper,
                                 engine::Clients clients, AgentOptions options, AgentStats stats);

}  // namespace portcullis::frontends::spoe
