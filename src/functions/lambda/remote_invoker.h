#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "functions/aws/sigv4.h"
#include "functions/lambda/invoker.h"

// `runtime: lambda`: an existing AWS Lambda authorizer called through the Lambda Invoke API
// (POST /2015-03-31/functions/{name}/invocations, RequestResponse), every request signed
// with AWS Signature Version 4. Asio stays in remote_invoker.cc (docs/conventions.md §14).
namespace portcullis::functions::lambda {

// Where and how to invoke. Immutable once an invoker is built from it.
struct RemoteOptions {
  std::string function;          // name, `name:alias`, partial or full ARN, as configured
  std::string qualifier;         // version or alias (`?Qualifier=`); empty = none
  std::string region;            // the SigV4 scope's region
  std::string scheme = "https";  // "http" only for an `endpoint` override
  std::string host;              // lower case; an IP literal without brackets
  std::uint16_t port = 443;
  aws::Credentials credentials;
  unsigned connections = 8;  // most connections open at once (and requests on the wire)
  std::size_t queue = 64;    // invocations waiting for a connection; more are refused at once
  // Not a config key: tests trust their own CA here. Empty = the system trust store.
  std::string ca_file;
  // Not a config key: Unix seconds for X-Amz-Date (tests skew it). Empty = the system clock.
  std::function<std::int64_t()> now;

  // Everything that shapes the connection pool, secrets only as a hash: functions whose
  // keys are equal (the same entry across policy reloads) share one invoker.
  std::string key() const;
  // "/2015-03-31/functions/{function, URI-encoded}/invocations".
  std::string path() const;
  // "Qualifier={qualifier, URI-encoded}", or empty.
  std::string query() const;
  // The Host header: the port only when it is not the scheme's default.
  std::string hostHeader() const;
};

// What a pool looks like right now (tests, diagnostics).
struct RemoteStatus {
  std::uint64_t connections_opened = 0;  // TCP (and TLS) connections established
  std::uint64_t requests = 0;            // HTTP requests written, retries included
  std::uint64_t reused = 0;              // of which on a connection that had served before
  std::uint64_t retries = 0;             // resent once on a fresh connection (stale keep-alive)
  std::uint64_t refused = 0;             // invocations refused at once (function_overloaded)
  std::size_t in_flight = 0;             // accepted, not yet answered
};

class RemoteCore;

// The Invoke API client behind the Invoker seam. Thread-safe.
//
// Threads: every remote invoker runs its I/O on one I/O thread (an io_context) shared by the
// whole process, started on first use and stopped at exit; invoke() only counts and posts.
// `done` is called on that thread, never inline, exactly once.
//
// Connections: HTTP/1.1 keep-alive, opened on demand up to `connections`, reused LIFO;
// HTTPS verifies the peer against the system trust store and its name (SNI sent for host
// names). A connection idle for more than 50 s is closed rather than reused. A request
// that fails on a reused connection before any byte of an answer came back (the server
// closed it while idle) is sent once more on a fresh connection.
//
// Bounds: at most `connections + queue` invocations in flight; beyond that invoke() answers
// function_overloaded at once. Each invocation has its own deadline (`timeout` from the
// invoke() call): when it passes, `done` gets function_timeout at once and the connection
// carrying the request is closed (never reused with an answer still on its way). Answers
// larger than 6 MB (Lambda's own limit) are function_error.
//
// Answers: 200 → the body; 200 with X-Amz-Function-Error → `function_error` (the body is
// the function's error document); 429 → function_overloaded; any other status →
// function_error. Failure messages carry the HTTP status, the AWS error type (from
// x-amzn-ErrorType or the JSON body's `__type` / `code`) and the request id, never the
// event, a response body, nor a credential.
//
// Lifetime: the destructor only posts the shutdown (it may run on the I/O thread itself):
// idle connections are closed, invocations still waiting or on the wire are answered
// function_error. Remote invokers must be destroyed before the process exits.
class RemoteInvoker final : public Invoker {
 public:
  // The running invoker for `options.key()`, shared by every function whose key is equal,
  // created on first use. An invoker lives while a function refers to it.
  static std::shared_ptr<RemoteInvoker> acquire(const RemoteOptions& options);

  explicit RemoteInvoker(RemoteOptions options);
  ~RemoteInvoker() override;
  RemoteInvoker(const RemoteInvoker&) = delete;
  RemoteInvoker& operator=(const RemoteInvoker&) = delete;

  std::optional<InvokeResult> invoke(std::string payload, std::chrono::milliseconds timeout,
                                     InvokeDone done) override;
  // Opens one connection ahead of the first invocation, when none is open. A failure is
  // logged (the endpoint and the error, nothing else); invocations open their own.
  void prepare() override;

  RemoteStatus status() const;

 private:
  std::shared_ptr<RemoteCore> core_;
};

}  // namespace portcullis::functions::lambda
