#include "net/jwks_service.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "net/http/client.h"
#include "telemetry/metrics.h"

namespace portcullis::net {

struct JwksService::Entry {
  explicit Entry(asio::io_context& io, std::shared_ptr<identity::RemoteKeys> k)
      : keys(std::move(k)), timer(io) {}
  std::shared_ptr<identity::RemoteKeys> keys;
  asio::steady_timer timer;
  bool stopped = false;
};

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

std::int64_t nowMs() {
  return SystemClock().unixMillis();
}

struct Fetched {
  std::shared_ptr<const identity::KeySet> keys;
  std::optional<std::chrono::seconds> max_age;
};

asio::awaitable<Result<HttpReply>> get(const identity::RemoteKeySpec& spec,
                                       const std::string& url_text) {
  const auto url = Url::parse(url_text);
  if (!url) co_return fail(Reason::kInternalError, "'" + url_text + "' is not an http(s) URL");
  HttpCall call;
  call.url = *url;
  call.timeout = spec.timeout;
  call.max_body_bytes = spec.max_bytes;
  call.ca_file = spec.ca_file;
  call.headers.emplace_back("Accept", "application/json");
  auto reply = co_await httpCall(std::move(call));
  if (!reply) co_return reply;
  if (reply->status != 200) {
    co_return fail(Reason::kInternalError,
                   fmt::format("{} answered HTTP {}", url_text, reply->status));
  }
  co_return reply;
}

// Discovery (OIDC Discovery 1.0 §4): {issuer}/.well-known/openid-configuration, whose
// `issuer` must equal ours exactly (§4.3), giving `jwks_uri`.
asio::awaitable<Result<std::string>> discover(const identity::RemoteKeySpec& spec) {
  std::string base = spec.issuer;
  while (base.ends_with('/'))
    base.pop_back();
  const std::string url = base + "/.well-known/openid-configuration";
  auto reply = co_await get(spec, url);
  if (!reply) co_return tl::unexpected(reply.error());
  const auto doc = nlohmann::json::parse(reply->body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    co_return fail(Reason::kInternalError, url + " is not a JSON object");
  }
  const auto issuer = doc.find("issuer");
  if (issuer == doc.end() || !issuer->is_string() || issuer->get<std::string>() != spec.issuer) {
    co_return fail(Reason::kInternalError,
                   url + ": the document's issuer is not the configured issuer");
  }
  const auto jwks_uri = doc.find("jwks_uri");
  if (jwks_uri == doc.end() || !jwks_uri->is_string()) {
    co_return fail(Reason::kInternalError, url + " has no jwks_uri");
  }
  const std::string uri = jwks_uri->get<std::string>();
  const auto parsed = Url::parse(uri);
  if (!parsed) co_return fail(Reason::kInternalError, url + ": jwks_uri is not an http(s) URL");
  // Keys over plain HTTP only from an issuer that is itself plain HTTP (local testing).
  if (parsed->scheme == "http" && !spec.issuer.starts_with("http://")) {
    co_return fail(Reason::kInternalError, url + ": jwks_uri must be https");
  }
  co_return uri;
}

asio::awaitable<Result<Fetched>> fetchKeys(const identity::RemoteKeySpec& spec) {
  std::string uri = spec.jwks_uri;
  if (spec.discovery) {
    auto found = co_await discover(spec);
    if (!found) co_return tl::unexpected(found.error());
    uri = std::move(*found);
  }
  auto reply = co_await get(spec, uri);
  if (!reply) co_return tl::unexpected(reply.error());
  std::vector<std::string> skipped;
  auto set = identity::KeySet::fromJwks(reply->body, &skipped);
  if (!set) co_return fail(Reason::kInternalError, uri + ": " + set.error().message);
  for (const auto& s : skipped)
    spdlog::warn("jwks {}: key skipped: {}", uri, s);
  if (set->size() == 0) co_return fail(Reason::kInternalError, uri + ": no usable key");
  Fetched out;
  out.keys = std::make_shared<const identity::KeySet>(std::move(*set));
  if (const auto* cc = reply->header("cache-control")) out.max_age = cacheMaxAge(*cc);
  co_return out;
}

asio::awaitable<void> refreshLoop(std::shared_ptr<JwksService::Entry> entry, telemetry::Counter& ok,
                                  telemetry::Counter& failed) {
  const identity::RemoteKeySpec spec = entry->keys->spec();
  const std::string name = spec.discovery ? spec.issuer : spec.jwks_uri;
  std::chrono::seconds backoff{1};
  while (!entry->stopped) {
    entry->keys->fetchStarted(nowMs());
    auto fetched = co_await fetchKeys(spec);
    if (entry->stopped) co_return;
    std::chrono::seconds delay;
    if (fetched) {
      const bool first = !entry->keys->status().loaded;
      entry->keys->publish(fetched->keys, nowMs());
      ok.inc();
      delay = std::clamp(fetched->max_age.value_or(spec.ttl_min), spec.ttl_min, spec.ttl_max);
      backoff = std::chrono::seconds(1);
      spdlog::info("keys for {}: {} key(s){}, next refresh in {}s", name, fetched->keys->size(),
                   first ? " (first load)" : "", delay.count());
    } else {
      entry->keys->fetchFailed(fetched.error().message, nowMs());
      failed.inc();
      delay = std::min(backoff, spec.ttl_min);
      backoff = std::min(backoff * 2, std::chrono::seconds(60));
      spdlog::warn("keys for {}: fetch failed ({}); {} retry in {}s", name, fetched.error().message,
                   entry->keys->status().loaded ? "keeping the last good keys," : "no keys yet,",
                   delay.count());
    }
    entry->timer.expires_after(delay);
    co_await entry->timer.async_wait(kNoThrow);  // cancelled = woken early (unknown kid)
  }
}

}  // namespace

JwksService::JwksService(asio::io_context& io, telemetry::Metrics& metrics) : io_(io) {
  PORTCULLIS_STAT_REGISTER(PORTCULLIS_JWKS_STATS, stats_, telemetry::StatScope(metrics));
}

JwksService::~JwksService() {
  for (auto& [id, entry] : entries_) {
    entry->stopped = true;
    entry->keys->setWake(nullptr);
  }
}

std::shared_ptr<identity::RemoteKeys> JwksService::acquire(const identity::RemoteKeySpec& spec) {
  const std::string id = spec.identity();
  if (auto it = entries_.find(id); it != entries_.end()) return it->second->keys;
  auto entry = std::make_shared<Entry>(io_, std::make_shared<identity::RemoteKeys>(spec));
  // New settings for a source we already fetch (a changed timeout, TTL or CA): start from
  // its last good keys, so a reload during an IdP outage does not drop them.
  for (const auto& [other_id, other] : entries_) {
    if (other->keys->spec().source() == spec.source()) {
      if (auto keys = other->keys->keys(); keys && keys->size() > 0) {
        entry->keys->publish(std::move(keys), other->keys->status().last_success_ms);
        break;
      }
    }
  }
  // Workers call wake(); it only posts to this service's thread.
  entry->keys->setWake([weak = std::weak_ptr<Entry>(entry), &io = io_] {
    asio::post(io, [weak] {
      if (auto e = weak.lock()) e->timer.cancel();
    });
  });
  entries_[id] = entry;
  asio::co_spawn(io_, refreshLoop(entry, *stats_.fetch_ok, *stats_.fetch_failed), asio::detached);
  return entry->keys;
}

void JwksService::collect() {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second->keys.use_count() == 1) {  // only we hold it: no snapshot uses it
      it->second->stopped = true;
      it->second->keys->setWake(nullptr);
      it->second->timer.cancel();
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

bool JwksService::allLoaded() const {
  return std::all_of(entries_.begin(), entries_.end(),
                     [](const auto& e) { return e.second->keys->status().loaded; });
}

}  // namespace portcullis::net
