#include "net/http/bounded_client.h"

#include <algorithm>
#include <deque>
#include <exception>
#include <set>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace portcullis::net {
namespace {

using Kind = BoundedOutcome::Kind;

// One request, from submit() to its outcome. Loop thread only.
struct Pending {
  explicit Pending(asio::io_context& io) : deadline(io) {}
  BoundedJob job;
  asio::steady_timer deadline;
  std::shared_ptr<HttpConnection> conn;  // the connection carrying it, or being opened for it
  bool queued = false;
  bool answered = false;
};

}  // namespace

// Everything here runs on the loop's thread, except the atomics (status()). Coroutines and
// handlers hold a shared_ptr to the core.
struct BoundedClient::Core : std::enable_shared_from_this<BoundedClient::Core> {
  Core(asio::io_context& io_context, PoolKey key, BoundedLimits l, BoundedHooks h)
      : io(io_context), limits(std::move(l)), hooks(std::move(h)), pool(io.get_executor(), key) {}

  asio::io_context& io;
  const BoundedLimits limits;
  const BoundedHooks hooks;
  HttpPool pool;
  std::atomic<bool> started{false};  // something was posted to the loop
  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> reused{0};
  std::atomic<std::uint64_t> retries{0};

  std::deque<std::shared_ptr<Pending>> queue;  // waiting for a connection, oldest first
  std::set<std::shared_ptr<Pending>> active;   // on a connection (or opening one)
  unsigned open = 0;  // connections carrying a request, or being opened (not the idle ones)
  std::shared_ptr<Pending> warming;  // owns the connection prepare() is opening, if any
  bool stopping = false;

  void logException(std::exception_ptr e) const {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("{}: unexpected error: {}", limits.log_name, ex.what());
    } catch (...) {
      spdlog::error("{}: unexpected error", limits.log_name);
    }
  }
  auto onException() {
    return [self = shared_from_this()](std::exception_ptr e) { self->logException(e); };
  }

  void start(BoundedJob job) {
    auto p = std::make_shared<Pending>(io);
    p->job = std::move(job);
    if (stopping) {
      complete(p, BoundedOutcome{Kind::kStopped, {}, {}});
      return;
    }
    p->deadline.expires_at(p->job.accepted + p->job.timeout);
    p->deadline.async_wait([self = shared_from_this(), p](boost::system::error_code ec) {
      if (!ec) self->onDeadline(p);
    });
    p->queued = true;
    queue.push_back(std::move(p));
    dispatch();
  }

  void warm() {
    if (stopping || open > 0 || pool.idleCount() > 0) return;
    ++open;
    asio::co_spawn(io, warmUp(shared_from_this()), onException());
  }

  void shutdown() {
    stopping = true;
    while (!queue.empty())
      complete(queue.front(), BoundedOutcome{Kind::kStopped, {}, {}});
    const std::vector<std::shared_ptr<Pending>> on_the_wire(active.begin(), active.end());
    for (const auto& p : on_the_wire) {
      if (p->conn) p->conn->close();
      complete(p, BoundedOutcome{Kind::kStopped, {}, {}});
    }
    pool.closeIdle();
    if (warming && warming->conn) warming->conn->close();
  }

  // Calls the caller back exactly once. Runs `done` last: it may resume a whole evaluation,
  // or release the caller's last reference to this client.
  void complete(const std::shared_ptr<Pending>& p, BoundedOutcome outcome) {
    if (p->answered) return;
    p->answered = true;
    p->deadline.cancel();
    if (p->queued) {
      p->queued = false;
      const auto it = std::find(queue.begin(), queue.end(), p);
      if (it != queue.end()) queue.erase(it);
    }
    active.erase(p);
    p->conn.reset();
    p->job.build = nullptr;
    auto done = std::move(p->job.done);
    done(std::move(outcome));
  }

  void onDeadline(const std::shared_ptr<Pending>& p) {
    if (p->answered) return;
    const bool waiting = p->queued;
    // The connection carrying it is closed: its answer, if one still comes, has nobody to
    // go to, and a connection is never reused with an answer on its way.
    if (auto conn = p->conn) conn->close();
    complete(p, BoundedOutcome{waiting ? Kind::kNoConnection : Kind::kTimedOut, {}, {}});
  }

  // Hands waiting requests to idle connections, most recently used first (so the others can
  // age out), then opens connections for the rest, up to `connections`.
  void dispatch() {
    while (!queue.empty() && !stopping) {
      std::shared_ptr<HttpConnection> conn = pool.takeIdle();
      if (!conn && open >= limits.connections) break;
      auto p = queue.front();
      queue.pop_front();
      p->queued = false;
      active.insert(p);
      ++open;
      asio::co_spawn(io, run(shared_from_this(), p, std::move(conn)), onException());
    }
  }

  // A connection a request (or the warm-up) is done with: back to the pool, which keeps it
  // when its last answer left it clean.
  void release(std::shared_ptr<HttpConnection> conn) {
    --open;
    pool.release(std::move(conn));
  }

  // A connection that must not serve again (a failed or abandoned exchange).
  void discard(const std::shared_ptr<HttpConnection>& conn) {
    conn->close();
    release(conn);
  }

  static asio::awaitable<void> run(std::shared_ptr<Core> self, std::shared_ptr<Pending> p,
                                   std::shared_ptr<HttpConnection> conn) {
    if (p->answered) {  // timed out before this coroutine began
      self->release(std::move(conn));
      self->dispatch();
      co_return;
    }
    const HttpRequest request = p->job.build();
    const bool reused_conn = conn != nullptr;
    HttpError error;
    if (!conn) {
      conn = co_await self->openFor(p, error);
      if (!conn) {
        self->failed(p, std::move(error));
        co_return;
      }
    }
    p->conn = conn;
    auto reply = co_await self->send(conn, request, reused_conn);

    // A kept-alive connection the server closed while it was idle: once more, on a fresh
    // connection (the request never reached the server, or never produced an answer).
    if (!reply && reply.error().nothing_back && reused_conn && !p->answered && !self->stopping) {
      if (self->hooks.retrying) self->hooks.retrying(reply.error());
      conn->close();
      self->pool.release(std::move(conn));  // its slot goes to the fresh one
      self->retries.fetch_add(1);
      conn = co_await self->openFor(p, error);
      if (!conn) {
        self->failed(p, std::move(error));
        co_return;
      }
      p->conn = conn;
      reply = co_await self->send(conn, request, false);
    }

    if (p->answered || conn->closed() || self->stopping) {
      // Timed out (the deadline closed the connection) or stopped meanwhile.
      self->discard(conn);
      self->dispatch();
      co_return;
    }
    if (!reply) {
      self->discard(conn);
      self->complete(p, BoundedOutcome{Kind::kFailed, {}, std::move(reply.error())});
      self->dispatch();
      co_return;
    }
    self->release(std::move(conn));
    self->complete(p, BoundedOutcome{Kind::kAnswered, std::move(*reply), {}});
    self->dispatch();
  }

  // A request whose connection could not be opened.
  void failed(const std::shared_ptr<Pending>& p, HttpError error) {
    --open;
    if (!p->answered && !stopping) complete(p, BoundedOutcome{Kind::kFailed, {}, std::move(error)});
    dispatch();
  }

  asio::awaitable<HttpResult<HttpReply>> send(std::shared_ptr<HttpConnection> conn,
                                              const HttpRequest& request, bool reused_conn) {
    requests.fetch_add(1);
    if (reused_conn) reused.fetch_add(1);
    co_return co_await pool.exchange(std::move(conn), request, limits.max_body_bytes);
  }

  // Opens a connection for `owner` (whose deadline may close it meanwhile). Null with
  // `error` set on failure.
  asio::awaitable<std::shared_ptr<HttpConnection>> openFor(std::shared_ptr<Pending> owner,
                                                           HttpError& error) {
    if (owner->answered) {
      error = HttpError{HttpError::Stage::kAbandoned, {}, "connection abandoned"};
      co_return nullptr;
    }
    auto conn = pool.create();
    owner->conn = conn;
    if (auto failure = co_await pool.open(conn)) {
      error = std::move(*failure);
      co_return nullptr;
    }
    connections_opened.fetch_add(1);
    if (hooks.connection_opened) hooks.connection_opened();
    co_return conn;
  }

  // prepare(): one connection, opened before it is needed, bounded by `warm_timeout`.
  static asio::awaitable<void> warmUp(std::shared_ptr<Core> self) {
    HttpError error;
    // openFor() hands the connection to `owner` as soon as it exists, so the watchdog can
    // close it when the bound passes. `owner` is never queued nor answered.
    auto owner = std::make_shared<Pending>(self->io);
    self->warming = owner;
    asio::steady_timer watchdog(self->io, self->limits.warm_timeout);
    watchdog.async_wait([owner](boost::system::error_code ec) {
      if (!ec && owner->conn) owner->conn->close();
    });
    auto conn = co_await self->openFor(owner, error);
    watchdog.cancel();
    owner->conn.reset();
    self->warming.reset();
    if (!conn) {
      --self->open;
      if (!self->stopping && self->hooks.warm_failed) self->hooks.warm_failed(error);
      self->dispatch();
      co_return;
    }
    if (self->stopping) {
      self->discard(conn);
      co_return;
    }
    self->release(std::move(conn));
    self->dispatch();
  }
};

BoundedClient::BoundedClient(asio::io_context& io, PoolKey key, BoundedLimits limits,
                             BoundedHooks hooks)
    : core_(std::make_shared<Core>(io, std::move(key), std::move(limits), std::move(hooks))) {}

BoundedClient::~BoundedClient() {
  if (!core_->started.load()) return;  // nothing ever ran on the loop
  asio::post(core_->io, [core = core_] { core->shutdown(); });
}

void BoundedClient::submit(BoundedJob job) {
  core_->started.store(true);
  asio::post(core_->io,
             [core = core_, job = std::move(job)]() mutable { core->start(std::move(job)); });
}

void BoundedClient::prepare() {
  core_->started.store(true);
  asio::post(core_->io, [core = core_] { core->warm(); });
}

BoundedStatus BoundedClient::status() const {
  BoundedStatus s;
  s.connections_opened = core_->connections_opened.load();
  s.requests = core_->requests.load();
  s.reused = core_->reused.load();
  s.retries = core_->retries.load();
  return s;
}

}  // namespace portcullis::net
