#pragma once

// Calling an engine::Function from a test the way the pipeline does (inline answer, or
// later from the function's own thread), timing the answer. Shared by the Lambda tests.
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "engine/function.h"
#include "engine/snapshot.h"

namespace portcullis::testing {

using namespace std::chrono_literals;

// GET https://api.example.com/orders/1 with `Authorization: Bearer token-1`, by default.
inline http::Request functionRequest(std::string path = "/orders/1", std::string method = "GET",
                                     std::string authorization = "Bearer token-1") {
  http::Request r;
  r.method = std::move(method);
  r.scheme = "https";
  r.host = "api.example.com";
  r.path = std::move(path);
  r.listener = "test";
  r.request_id = "req-1";
  if (!authorization.empty()) r.headers.add("authorization", authorization);
  return r;
}

struct Called {
  engine::FunctionAnswer answer;
  std::chrono::milliseconds elapsed{0};
  bool inline_answer = false;
  bool answered = false;  // false: no answer within the wait
};

// A call in flight: what it refers to lives until the answer came.
struct PendingCall {
  std::shared_ptr<http::Request> request;
  std::shared_ptr<engine::Route> route;
  std::shared_ptr<engine::Context> ctx;
  std::shared_ptr<std::promise<Called>> promise;
  std::future<Called> future;
};

inline PendingCall startCall(const engine::Function& f, http::Request request) {
  using Clock = std::chrono::steady_clock;
  PendingCall c;
  c.request = std::make_shared<http::Request>(std::move(request));
  c.route = std::make_shared<engine::Route>();
  c.route->name = "test-route";
  c.ctx = std::make_shared<engine::Context>();
  c.promise = std::make_shared<std::promise<Called>>();
  c.future = c.promise->get_future();
  const auto t0 = Clock::now();
  const auto answered = [t0](engine::FunctionAnswer a, bool inline_answer) {
    Called o;
    o.answer = std::move(a);
    o.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    o.inline_answer = inline_answer;
    o.answered = true;
    return o;
  };
  const engine::FunctionCall call{*c.request, nullptr, *c.ctx, *c.route, 1'700'000'000};
  auto answer = f.call(call, [p = c.promise, answered](engine::FunctionAnswer a) {
    p->set_value(answered(std::move(a), false));
  });
  if (answer) c.promise->set_value(answered(std::move(*answer), true));
  return c;
}

// The waits bound a hang (a call that never answers), with room for a busy machine.
inline Called finishCall(PendingCall& c, std::chrono::milliseconds wait = 60s) {
  if (c.future.wait_for(wait) != std::future_status::ready) return {};
  return c.future.get();
}

inline Called callSync(const engine::Function& f, http::Request request,
                       std::chrono::milliseconds wait = 60s) {
  auto c = startCall(f, std::move(request));
  return finishCall(c, wait);
}

// Polls `pred` every 10 ms until it holds or `limit` has passed (a limit with room for a
// busy machine: a passing wait returns as soon as `pred` holds).
template <typename Pred>
bool waitFor(Pred pred, std::chrono::milliseconds limit = 20s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

}  // namespace portcullis::testing
