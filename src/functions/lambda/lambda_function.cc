#include "functions/lambda/lambda_function.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>

#include "common/strings.h"
#include "config/yaml_reader.h"
#include "functions/lambda/metrics.h"
#include "telemetry/metrics.h"

namespace portcullis::functions::lambda {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::int64_t kMaxTtlSeconds = 3600;

bool allOf(std::string_view s, std::size_t min, std::size_t max, bool (*ok)(char)) {
  return s.size() >= min && s.size() <= max && std::all_of(s.begin(), s.end(), ok);
}

bool regionChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}
bool digit(char c) {
  return c >= '0' && c <= '9';
}
bool idChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || digit(c) || c == '-' || c == '_';
}
bool stageChar(char c) {
  return idChar(c) || c == '$' || c == '.';
}

// `ttl: 300` (seconds) or `ttl: 5m`.
std::optional<std::chrono::seconds> readTtl(config::Diagnostics& diag, const YAML::Node& node,
                                            const std::string& what) {
  if (node.IsScalar() && !node.Scalar().empty() &&
      std::all_of(node.Scalar().begin(), node.Scalar().end(), digit)) {
    const auto n = config::readInt(diag, node, what, 0, kMaxTtlSeconds);
    if (!n) return std::nullopt;
    return std::chrono::seconds(*n);
  }
  const auto d = config::readDuration(diag, node, what);
  if (!d) return std::nullopt;
  if (*d < std::chrono::microseconds(0) || *d > std::chrono::seconds(kMaxTtlSeconds) ||
      *d % std::chrono::seconds(1) != std::chrono::microseconds(0)) {
    diag.error(node, what + " must be whole seconds between 0 and 3600 (API Gateway's range)");
    return std::nullopt;
  }
  return std::chrono::duration_cast<std::chrono::seconds>(*d);
}

bool readApi(config::Diagnostics& diag, const YAML::Node& node, const std::string& what,
             apigw::ApiInfo& api) {
  config::MapReader map(diag, node, what);
  if (!map.valid()) return false;
  bool ok = true;
  const auto field = [&](std::string_view key, std::string& out, bool (*valid)(std::string_view),
                         std::string_view rule) {
    const auto v = map.get(key);
    if (!v.IsDefined()) return;
    const std::string name = what + "." + std::string(key);
    auto s = config::readString(diag, v, name);
    if (!s) {
      ok = false;
    } else if (!valid(*s)) {
      diag.error(v, fmt::format("{} must be {}", name, rule));
      ok = false;
    } else {
      out = std::move(*s);
    }
  };
  field(
      "region", api.region, [](std::string_view s) { return allOf(s, 1, 32, regionChar); },
      "lower-case letters, digits and '-' (e.g. eu-west-1)");
  field(
      "account_id", api.account_id, [](std::string_view s) { return allOf(s, 12, 12, digit); },
      "12 digits");
  field(
      "api_id", api.api_id, [](std::string_view s) { return allOf(s, 1, 64, idChar); },
      "1 to 64 letters, digits, '-' or '_'");
  field(
      "stage", api.stage, [](std::string_view s) { return allOf(s, 1, 128, stageChar); },
      "1 to 128 letters, digits, '-', '_', '.' or '$'");
  return ok;
}

// Identity-source values → a fixed-size key that does not keep credentials in memory.
std::string cacheKey(const std::vector<std::string>& values) {
  std::string joined;
  for (const auto& v : values)
    joined += std::to_string(v.size()) + ":" + v + "\n";
  return sha256Hex(joined);
}

std::int64_t unixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::optional<LambdaOptions> readLambdaOptions(config::FunctionSource& source) {
  config::Diagnostics& diag = source.diag;
  config::MapReader& map = source.map;
  const std::string& what = source.what;
  LambdaOptions options;
  bool ok = true;

  if (const auto v = map.get("payload_version"); v.IsDefined()) {
    const auto c = config::readChoice(diag, v, what + ".payload_version", {"2.0", "1.0"});
    if (!c) {
      ok = false;
    } else {
      options.payload_version =
          *c == "1.0" ? apigw::PayloadVersion::kV1 : apigw::PayloadVersion::kV2;
    }
  }

  std::vector<std::string> sources{"$request.header.Authorization"};
  const YAML::Node sources_node = map.get("identity_source");
  if (sources_node.IsDefined()) {
    auto list = config::readStringList(diag, sources_node, what + ".identity_source");
    if (!list) {
      ok = false;
    } else if (list->empty()) {
      diag.error(sources_node, what + ".identity_source needs at least one source");
      ok = false;
    } else {
      sources = std::move(*list);
    }
  }
  for (std::size_t i = 0; i < sources.size(); ++i) {
    auto parsed = apigw::parseIdentitySource(sources[i]);
    if (!parsed) {
      const YAML::Node at = sources_node.IsSequence() ? sources_node[i] : sources_node;
      diag.error(
          at.IsDefined() ? at : source.node,
          fmt::format("{}.identity_source: '{}': {}", what, sources[i], parsed.error().message));
      ok = false;
      continue;
    }
    options.identity_sources.push_back(std::move(*parsed));
  }

  if (const auto v = map.get("ttl"); v.IsDefined()) {
    if (auto ttl = readTtl(diag, v, what + ".ttl")) {
      options.ttl = *ttl;
    } else {
      ok = false;
    }
  }

  if (const auto v = map.get("api"); v.IsDefined()) {
    ok = readApi(diag, v, what + ".api", options.api) && ok;
  }
  if (auto n = config::readIntKey(diag, map, "max_in_flight_per_client", what, 0, 100'000, ok)) {
    options.max_in_flight_per_client = static_cast<std::uint32_t>(*n);
  }

  if (!source.spec.cache_inputs) {
    engine::Template::RequestInputs in;
    in.path = true;
    in.method = true;
    for (const auto& s : options.identity_sources) {
      if (s.kind == apigw::IdentitySource::Kind::kHeader) {
        in.headers.push_back(s.name);
      } else {
        in.query = true;
      }
    }
    source.spec.cache_inputs = std::move(in);
  }
  if (!ok) return std::nullopt;
  return options;
}

// Authorizer responses by identity-source values, for `ttl`. Bounded: when full, expired
// entries go first, then the ones closest to expiry. Shared by every worker (a mutex: one
// lookup per decision that reaches this function, far from the hot path's cost).
class LambdaFunction::ResultCache {
 public:
  explicit ResultCache(std::size_t max_entries) : max_(std::max<std::size_t>(max_entries, 1)) {}

  struct Hit {
    apigw::AuthorizerResponse response;
    std::chrono::seconds remaining;
  };

  std::optional<Hit> get(const std::string& key, Clock::time_point now) {
    const std::lock_guard lock(mu_);
    const auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    if (it->second.expires <= now) {
      by_expiry_.erase(it->second.slot);
      entries_.erase(it);
      return std::nullopt;
    }
    return Hit{it->second.response,
               std::chrono::duration_cast<std::chrono::seconds>(it->second.expires - now)};
  }

  void put(const std::string& key, apigw::AuthorizerResponse response, Clock::time_point expires,
           Clock::time_point now) {
    const std::lock_guard lock(mu_);
    if (const auto it = entries_.find(key); it != entries_.end()) {
      by_expiry_.erase(it->second.slot);
      entries_.erase(it);
    }
    while (!by_expiry_.empty() && (by_expiry_.begin()->first <= now || entries_.size() >= max_)) {
      entries_.erase(by_expiry_.begin()->second);
      by_expiry_.erase(by_expiry_.begin());
    }
    const auto slot = by_expiry_.emplace(expires, key);
    entries_.emplace(key, Entry{std::move(response), expires, slot});
  }

 private:
  struct Entry {
    apigw::AuthorizerResponse response;
    Clock::time_point expires;
    std::multimap<Clock::time_point, std::string>::iterator slot;
  };
  const std::size_t max_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::multimap<Clock::time_point, std::string> by_expiry_;
};

// Calls in flight per client. A slot is held by a Held object, which the invocation's
// callback owns: it is released when the callback is destroyed, i.e. once the invocation
// has answered (or was refused at once). Thread-safe; entries exist only while in flight.
class LambdaFunction::ClientSlots final : public std::enable_shared_from_this<ClientSlots> {
 public:
  explicit ClientSlots(std::uint32_t max) : max_(max) {}

  class Held final {
   public:
    Held(std::shared_ptr<ClientSlots> slots, std::string client)
        : slots_(std::move(slots)), client_(std::move(client)) {}
    ~Held() { slots_->release(client_); }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;

   private:
    std::shared_ptr<ClientSlots> slots_;
    std::string client_;
  };

  // A held slot for `client`, or null when it already has `max` calls in flight.
  std::shared_ptr<Held> acquire(std::string client) {
    {
      std::lock_guard lock(mu_);
      auto& n = in_flight_[client];
      if (n >= max_) return nullptr;
      ++n;
    }
    return std::make_shared<Held>(shared_from_this(), std::move(client));
  }
  std::uint32_t max() const { return max_; }

 private:
  void release(const std::string& client) {
    std::lock_guard lock(mu_);
    const auto it = in_flight_.find(client);
    if (it != in_flight_.end() && --it->second == 0) in_flight_.erase(it);
  }

  const std::uint32_t max_;
  std::mutex mu_;
  std::unordered_map<std::string, std::uint32_t> in_flight_;
};

LambdaFunction::LambdaFunction(Spec spec, LambdaOptions options, std::shared_ptr<Invoker> invoker)
    : Function(std::move(spec)), options_(std::move(options)), invoker_(std::move(invoker)) {
  if (options_.ttl && options_.ttl->count() > 0) {
    cache_ = std::make_unique<ResultCache>(options_.max_cached_results);
  }
  if (options_.max_in_flight_per_client > 0) {
    slots_ = std::make_shared<ClientSlots>(options_.max_in_flight_per_client);
  }
  PORTCULLIS_STAT_REGISTER(PORTCULLIS_LAMBDA_FUNCTION_STATS, stats_,
                           telemetry::StatScope(metricsRegistry(), functionLabel(name())));
}

LambdaFunction::~LambdaFunction() = default;

void LambdaFunction::prepare() const {
  invoker_->prepare();
}

engine::FunctionAnswer LambdaFunction::answer(const apigw::AuthorizerResponse& response,
                                              const std::string& route_arn,
                                              std::optional<std::chrono::seconds> ttl) const {
  engine::FunctionAnswer a = apigw::verdict(response, route_arn);
  if (ttl) a.ttl = ttl;
  return a;
}

std::optional<engine::FunctionAnswer> LambdaFunction::call(const engine::FunctionCall& call,
                                                           engine::FunctionDone done) const {
  auto values = apigw::identityValues(call.request, options_.identity_sources);
  if (!values) {
    stats_.unauthorized->inc();
    engine::FunctionAnswer a;
    a.outcome = engine::Outcome::kDeny;
    a.status = 401;
    a.reason = "identity_source_missing";
    return a;
  }
  std::string arn = apigw::routeArn(options_.api, call.request);
  std::string key;
  if (cache_) {
    key = cacheKey(*values);
    if (auto hit = cache_->get(key, Clock::now())) {
      stats_.cache_hits->inc();
      return answer(hit->response, arn, hit->remaining);
    }
    stats_.cache_misses->inc();
  }
  std::shared_ptr<ClientSlots::Held> slot;
  if (slots_) {
    std::string client = call.identity != nullptr
                             ? "s:" + call.identity->issuer + '\n' + call.identity->subject
                             : "a:" + call.request.client_ip.toString();
    slot = slots_->acquire(std::move(client));
    if (!slot) {
      stats_.concurrency_limited->inc();
      return engine::FunctionAnswer::failure(
          Reason::kConcurrencyLimited,
          fmt::format("this client already has {} calls in flight", slots_->max()));
    }
  }
  std::string event = apigw::requestEvent(call, options_.api, options_.payload_version, *values,
                                          call.request.request_id, unixMillis());

  // Maps what the invoker reports to an answer (and keeps a good response for `ttl`).
  auto finish = [this, arn, key](InvokeResult r) -> engine::FunctionAnswer {
    if (!r.ok) return engine::FunctionAnswer::failure(r.code, std::move(r.message));
    if (r.function_error) {
      return engine::FunctionAnswer::failure(Reason::kFunctionError, std::move(r.message));
    }
    auto response = apigw::parseResponse(r.body, options_.payload_version);
    if (!response) {
      stats_.malformed->inc();
      return engine::FunctionAnswer::failure(Reason::kFunctionError,
                                             "malformed response: " + response.error().message);
    }
    if (cache_) {
      const auto now = Clock::now();
      cache_->put(key, *response, now + *options_.ttl, now);
    }
    return answer(*response, arn, options_.ttl);
  };

  // `done` keeps the caller's evaluation (and so this function's snapshot) alive until it
  // is called; nothing here touches `this` after it.
  auto inline_result =
      invoker_->invoke(std::move(event), spec().timeout,
                       [finish, slot, done = std::move(done)](InvokeResult r) mutable {
                         (void)slot;  // the client's slot is held until this callback is destroyed
                         done(finish(std::move(r)));
                       });
  if (inline_result) return finish(std::move(*inline_result));
  return std::nullopt;
}

}  // namespace portcullis::functions::lambda
