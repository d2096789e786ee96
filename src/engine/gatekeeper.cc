#include "engine/gatekeeper.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <random>

#include <fmt/format.h>

#include "common/strings.h"
#include "common/units.h"
#include "engine/challenge.h"
#include "identity/jwt/jwt.h"
#include "telemetry/metrics.h"

namespace portcullis::engine {
namespace {

// One field of a cache key's input: its length, then its bytes, so that ("ab","c") and
// ("a","bc") never hash alike.
void addField(std::string& input, std::string_view field) {
  const std::uint64_t n = field.size();
  input.append(reinterpret_cast<const char*>(&n), sizeof n);
  input.append(field.data(), field.size());
}

std::string claimString(const identity::Identity& id, const char* name) {
  if (!id.claims) return {};
  const json::Value value = id.claims->root().find(name);
  return value && value.isString() ? std::string(value.string()) : std::string();
}

// What `token_hash` revocation matches: the canonical hash of the credential that
// authenticated (identity/jwt/jwt.h credentialDigest) — the one its provider read, never
// merely the first any provider of the route found — none without a verified identity.
std::optional<Sha256> revocationDigest(const identity::Credentials& credentials,
                                       const std::optional<identity::Identity>& identity) {
  if (!identity) return std::nullopt;
  const std::string_view token = credentials.of(identity->provider);
  if (token.empty()) return std::nullopt;
  return identity::credentialDigest(token);
}
// The same in hex, as Revocations holds it; empty without one.
std::string revocationHash(const identity::Credentials& credentials,
                           const std::optional<identity::Identity>& identity) {
  const auto digest = revocationDigest(credentials, identity);
  return digest ? hex(*digest) : std::string();
}

// Turns the evaluation into a plain deny for `reason` (its table status, no headers).
void setDeny(Evaluation& ev, Reason reason, std::string detail) {
  Decision& d = ev.decision;
  d.allow = false;
  d.outcome = Outcome::kDeny;
  d.reason = reason;
  d.function_reason.clear();
  d.status = reasonInfo(reason).status;
  d.detail = std::move(detail);
  d.upstream_headers.clear();
  d.response_headers.clear();
  d.shadow = false;
  d.fail_open = false;
}

// A per-request stage (revocation, rate limit) denies — except on a route in shadow mode,
// where the request goes through and the audit line says what would have happened.
void denyUnlessShadow(const Route* route, Evaluation& ev, Reason reason, std::string detail) {
  if (route != nullptr && route->mode == Route::Mode::kShadow) {
    Decision& d = ev.decision;
    d.outcome = Outcome::kDeny;
    d.reason = reason;
    d.function_reason.clear();
    d.detail = std::move(detail);
    d.shadow = true;
    return;
  }
  setDeny(ev, reason, std::move(detail));
}

}  // namespace

Gatekeeper::Gatekeeper(std::shared_ptr<const PolicySnapshot> initial, DecisionLog& log,
                       telemetry::Metrics& metrics, const Clock& clock, Services services)
    : snapshot_(std::move(initial)), log_(log), clock_(clock), services_(services) {
  PORTCULLIS_STAT_REGISTER(PORTCULLIS_GATEKEEPER_STATS, stats_, telemetry::StatScope(metrics));
}

void exportGatekeeperGauges(telemetry::Metrics& metrics, const Gatekeeper& gatekeeper) {
  PORTCULLIS_STAT_EXPORT_GAUGES(PORTCULLIS_GATEKEEPER_STATS, gatekeeper,
                                telemetry::StatScope(metrics));
}

Evaluation Gatekeeper::decide(http::Request& request, bool explain) {
  return *decide(request, Clients{}, explain, [](Evaluation) {});
}

std::optional<Evaluation> Gatekeeper::decide(http::Request& request, const Clients& clients,
                                             bool explain, EvaluationDone done) {
  return decide(this->snapshot(), request, clients, explain, std::move(done));
}

std::optional<Evaluation> Gatekeeper::decide(std::shared_ptr<const PolicySnapshot> snapshot,
                                             http::Request& request, const Clients& clients,
                                             bool explain, EvaluationDone done) {
  const auto started = std::chrono::steady_clock::now();
  if (request.request_id.empty()) request.request_id = newRequestId();
  const std::int64_t now_ms = clock_.unixMillis();
  const std::int64_t now = now_ms / 1000;
  const Route* route = snapshot->findRoute(request);
  if (auto why = refusedPathParams(route, request)) {
    return reject(request, Reason::kBadRequest, std::move(*why));
  }

  // Before anything reads an input (the cache key, a rate-limit key, a provider): a
  // request that repeats one is refused, not decided on one copy of it.
  if (route != nullptr) {
    if (auto repeated = repeatedInput(*route, request)) {
      Evaluation refused;
      refused.route = route;
      setDeny(refused, Reason::kBadRequest, *repeated + " appears more than once");
      finish(request, refused, *snapshot, started, now_ms);
      return refused;
    }
  }

  // A limit keyed on the request alone (e.g. the client address) is checked before any
  // verification, so a flood of bad tokens costs no crypto.
  if (route != nullptr && route->rate_limit && !route->rate_limit->needs_identity) {
    Evaluation limited;
    limited.route = route;
    const std::string key = route->rate_limit->key.render(TemplateInput{request, nullptr, nullptr});
    if (rateLimited(*route, key, limited)) {
      finish(request, limited, *snapshot, started, now_ms);
      return limited;
    }
  }

  // Each provider's credential, read once: the cache key, the pipeline, revocation and the
  // cache entry all use these views.
  const auto credentials = route != nullptr ? identity::Credentials::read(route->providers, request)
                                            : identity::Credentials();

  const bool use_cache = services_.cache != nullptr && route != nullptr && route->cached();
  if (!use_cache) {
    auto later = [this, &request, snapshot, route, credentials, started, now_ms,
                  done = std::move(done)](Evaluation ev) {
      afterDecision(request, route, credentials, ev, nullptr, now_ms / 1000);
      finish(request, ev, *snapshot, started, now_ms);
      done(std::move(ev));
    };
    auto ev = evaluateRoute(snapshot, route, request, credentials, now, clients, explain,
                            std::move(later));
    if (ev) {
      afterDecision(request, route, credentials, *ev, nullptr, now);
      finish(request, *ev, *snapshot, started, now_ms);
    }
    return ev;
  }

  const CacheKey key = cacheKey(*snapshot, *route, request, credentials);
  if (auto cached = services_.cache->get(key, now)) {
    Evaluation ev;
    ev.route = route;
    ev.cache = Evaluation::Cache::kHit;
    ev.decision = cached->decision();
    const std::string_view sub = cached->sub();
    const std::string_view iss = cached->iss();
    if (!sub.empty() || !iss.empty()) {
      ev.identity.emplace();
      ev.identity->subject = sub;
      ev.identity->issuer = iss;
    }
    if (explain) ev.trace.push_back({"cache", "hit", "key recipe: " + route->cache_recipe});
    afterDecision(request, route, credentials, ev, cached.get(), now);
    finish(request, ev, *snapshot, started, now_ms);
    return ev;
  }

  // A miss. Concurrent misses for one key wait for the first one's evaluation; each
  // waiter still gets its own revocation and rate-limit checks and its own audit line.
  const bool leader = flights_.join(key, [this, &request, snapshot, route, credentials, started,
                                          now_ms, done](const Evaluation& shared) {
    Evaluation ev = shared;
    ev.cache = Evaluation::Cache::kMiss;  // not from the cache: it waited for the leader
    afterDecision(request, route, credentials, ev, nullptr, now_ms / 1000);
    finish(request, ev, *snapshot, started, now_ms);
    done(std::move(ev));
  });
  if (!leader) return std::nullopt;

  auto complete = [this, &request, snapshot, route, credentials, key, now](Evaluation& ev) {
    ev.cache = Evaluation::Cache::kMiss;
    if (auto entry = toCacheEntry(*route, request, credentials, ev, now)) {
      ev.decision.ttl = std::chrono::seconds(entry->expires_at - now);
      services_.cache->put(key, CachedDecision::make(*entry));
    }
    flights_.finish(key, ev);  // waiters get the policy decision before per-request stages
  };
  auto later = [this, &request, snapshot, route, credentials, started, now_ms, complete,
                done = std::move(done)](Evaluation ev) mutable {
    complete(ev);
    afterDecision(request, route, credentials, ev, nullptr, now_ms / 1000);
    finish(request, ev, *snapshot, started, now_ms);
    done(std::move(ev));
  };
  auto ev =
      evaluateRoute(snapshot, route, request, credentials, now, clients, explain, std::move(later));
  if (ev) {
    if (explain) ev->trace.push_back({"cache", "miss", "key recipe: " + route->cache_recipe});
    complete(*ev);
    afterDecision(request, route, credentials, *ev, nullptr, now);
    finish(request, *ev, *snapshot, started, now_ms);
  }
  return ev;
}

void Gatekeeper::afterDecision(const http::Request& request, const Route* route,
                               const identity::Credentials& credentials, Evaluation& ev,
                               const CachedDecision* cached, std::int64_t now) {
  if (!ev.decision.allow || route == nullptr) return;
  // Nothing revoked (the usual case): nothing to gather. isRevoked would say no anyway.
  if (services_.revocations != nullptr && !route->providers.empty() &&
      !services_.revocations->empty()) {
    std::string sub, jti, token_hash;
    if (cached != nullptr) {
      sub = cached->sub();
      jti = cached->jti();
      token_hash = cached->tokenHash();
    } else if (ev.identity) {
      sub = ev.identity->subject;
      jti = claimString(*ev.identity, "jti");
    }
    if (token_hash.empty()) token_hash = revocationHash(credentials, ev.identity);
    if (services_.revocations->isRevoked(sub, jti, token_hash, now)) {
      denyUnlessShadow(route, ev, Reason::kTokenRevoked,
                       "the credential was revoked (sub, jti or token)");
      if (ev.decision.allow) return;  // shadow mode
      ev.decision.response_headers.emplace_back("WWW-Authenticate",
                                                *bearerChallenge(Reason::kTokenRevoked, route));
      return;
    }
  }
  if (route->rate_limit && route->rate_limit->needs_identity) {
    if (cached != nullptr) {
      rateLimited(*route, cached->rateKey(), ev);
    } else {
      rateLimited(*route,
                  route->rate_limit->key.render(
                      TemplateInput{request, ev.identity ? &*ev.identity : nullptr, nullptr}),
                  ev);
    }
  }
}

bool Gatekeeper::rateLimited(const Route& route, std::string_view key, Evaluation& ev) {
  if (services_.limiter == nullptr) return false;
  std::string limiter_key = route.name;
  limiter_key += '\0';
  limiter_key += key;
  const RateVerdict v =
      services_.limiter->check(limiter_key, route.rate_limit->limit, clock_.monotonicMicros());
  if (v.allowed) return false;
  denyUnlessShadow(
      &route, ev, Reason::kRateLimited,
      fmt::format("rate limit of route {} exhausted; retry in {}s", route.name, v.retry_after_s));
  if (ev.decision.allow) return false;  // shadow mode: audited, not enforced
  auto& h = ev.decision.response_headers;
  h.emplace_back("Retry-After", std::to_string(v.retry_after_s));
  h.emplace_back("RateLimit-Limit", std::to_string(v.limit));
  h.emplace_back("RateLimit-Remaining", std::to_string(v.remaining));
  h.emplace_back("RateLimit-Reset", std::to_string(v.reset_s));
  return true;
}

namespace {

// OpenSSL 3 deprecates the SHA256_* functions for EVP, but only they expose the state as a
// plain struct that a copy resumes; EVP_MD_CTX_copy_ex allocates a provider context per copy.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

// The SHA-256 state after a cache key's salt and credentials, for the last few credential
// sets this thread saw. The token is most of a key's input (an RS256 JWT is some 600 of
// its 700 bytes) and the same token comes back request after request: resuming from its
// state hashes only the rest. Slots are matched on the exact bytes, so the memo never
// changes a key; round-robin replacement, nothing kept for credentials over 4 KiB.
class CredentialStates {
 public:
  void resume(std::string_view salt, std::string_view credentials, SHA256_CTX& into) {
    if (credentials.size() > kMaxKept) {
      start(salt, credentials, into);
      return;
    }
    // The slots hold other callers' credentials: a comparison whose time tells how many
    // leading bytes matched would leak them. So a hash picks the candidate, and bytes are
    // compared in a time that depends on the length only (lengths are not secret).
    const std::size_t hash = std::hash<std::string_view>{}(credentials);
    for (const Slot& slot : slots_) {
      if (slot.hash == hash && slot.credentials.size() == credentials.size() &&
          CRYPTO_memcmp(slot.credentials.data(), credentials.data(), credentials.size()) == 0) {
        into = slot.state;
        return;
      }
    }
    Slot& slot = slots_[next_];
    next_ = (next_ + 1) % slots_.size();
    slot.hash = hash;
    slot.credentials.assign(credentials);
    start(salt, credentials, slot.state);
    into = slot.state;
  }

 private:
  static void start(std::string_view salt, std::string_view credentials, SHA256_CTX& state) {
    SHA256_Init(&state);
    SHA256_Update(&state, salt.data(), salt.size());
    SHA256_Update(&state, credentials.data(), credentials.size());
  }
  static constexpr std::size_t kMaxKept = 4096;
  struct Slot {
    std::size_t hash = 0;
    std::string credentials;
    SHA256_CTX state{};
  };
  std::array<Slot, 8> slots_;
  std::size_t next_ = 0;
};

CacheKey finishKey(SHA256_CTX& state, std::string_view rest) {
  SHA256_Update(&state, rest.data(), rest.size());
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256_Final(md, &state);
  CacheKey key;
  std::memcpy(&key.hi, md, 8);
  std::memcpy(&key.lo, md + 8, 8);
  return key;
}

#pragma GCC diagnostic pop

}  // namespace

CacheKey cacheKey(const PolicySnapshot& snapshot, const Route& route, const http::Request& request,
                  const identity::Credentials& credentials) {
  // A secret of this process first: the key picks the cache shard and the index cell, so a
  // client who could predict keys could grind tokens whose entries all land in one probe
  // run and make every lookup there walk it.
  static const std::array<unsigned char, 32> kSalt = [] {
    std::array<unsigned char, 32> salt{};
    if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
      std::random_device device;  // getrandom(2) as well, should OpenSSL's pool fail
      for (auto& b : salt)
        b = static_cast<unsigned char>(device());
    }
    return salt;
  }();
  // The input is gathered in two buffers per thread (credentials, then the rest) and
  // digested in one update each.
  thread_local std::string creds;
  thread_local std::string input;
  thread_local CredentialStates states;
  creds.clear();
  input.clear();
  for (std::size_t i = 0; i < route.providers.size(); ++i)
    addField(creds, credentials.at(i));
  addField(input, snapshot.version);
  addField(input, route.name);
  addField(input, request.method);
  const auto& in = route.cache_inputs;
  if (in.ip) {
    const auto& b = request.client_ip.bytes();
    addField(input, std::string_view(reinterpret_cast<const char*>(b.data()),
                                     request.client_ip.isV4() ? 4 : 16));
  }
  if (in.host) addField(input, request.host);
  if (in.path) addField(input, request.path);
  if (in.query) addField(input, request.query);
  if (in.client_cert || in.all_headers) {
    addField(input, request.client_cert_subject);
    addField(input, request.client_cert_fingerprint);  // the certificate decides its SANs
  }
  if (in.all_headers) {
    for (const auto& [name, value] : request.headers.fields()) {
      addField(input, name);
      addField(input, value);
    }
  } else {
    // Every value, counted: readers differ on which copy of a repeated header counts.
    // (repeatedInput() refuses repeats of these before the cache is consulted; the key
    // must not depend on that staying true.)
    for (const auto& name : in.headers) {
      std::uint64_t n = 0;
      request.headers.forEach(name, [&](const std::string&) { ++n; });
      input.append(reinterpret_cast<const char*>(&n), sizeof n);
      request.headers.forEach(name, [&](const std::string& v) { addField(input, v); });
    }
  }
  SHA256_CTX state;
  states.resume(std::string_view(reinterpret_cast<const char*>(kSalt.data()), kSalt.size()), creds,
                state);
  const CacheKey key = finishKey(state, input);
  for (std::string* buffer : {&creds, &input}) {
    if (buffer->capacity() > 64 * 1024) std::string().swap(*buffer);  // one huge key keeps nothing
  }
  return key;
}

std::optional<CacheEntry> Gatekeeper::toCacheEntry(const Route& route, const http::Request& request,
                                                   const identity::Credentials& credentials,
                                                   const Evaluation& ev, std::int64_t now) const {
  const Decision& d = ev.decision;
  // Errors are never cached, nor is anything an operator must see every time, nor denies
  // whose cause fixes itself without a policy change: a key the refresher has not fetched
  // yet, a token that is not valid *yet*.
  if (d.outcome == Outcome::kError || d.fail_open) return std::nullopt;
  if (!d.allow && (d.reason == Reason::kKeyNotFound || d.reason == Reason::kTokenNotYetValid ||
                   d.reason == Reason::kTokenIssuedInFuture ||
                   reasonInfo(d.reason).kind == ReasonKind::kLimited)) {
    return std::nullopt;
  }
  std::int64_t ttl = (d.allow ? route.cache_ttl : route.cache_deny_ttl).count();
  if (ev.function_ttl) ttl = std::min<std::int64_t>(ttl, ev.function_ttl->count());
  if (ev.identity && ev.identity->claims) {  // never beyond the credential's own expiry
    const json::Value exp = ev.identity->claims->root().find("exp");
    if (exp && exp.isNumber()) {
      ttl = std::min<std::int64_t>(ttl, jsonSeconds(exp.number()) - now);
    }
  }
  if (ttl <= 0) return std::nullopt;
  CacheEntry entry;
  entry.decision = d;
  entry.route = route.name;
  entry.expires_at = now + ttl;
  if (ev.identity) {
    entry.sub = ev.identity->subject;
    entry.iss = ev.identity->issuer;
    entry.jti = claimString(*ev.identity, "jti");
  }
  entry.token_hash = revocationDigest(credentials, ev.identity);
  if (route.rate_limit && route.rate_limit->needs_identity) {
    entry.rate_key = route.rate_limit->key.render(
        TemplateInput{request, ev.identity ? &*ev.identity : nullptr, nullptr});
  }
  return entry;
}

Evaluation Gatekeeper::reject(http::Request& request, Reason reason, std::string detail) {
  const auto started = std::chrono::steady_clock::now();
  const std::shared_ptr<const PolicySnapshot> snapshot = this->snapshot();
  if (request.request_id.empty()) request.request_id = newRequestId();
  Evaluation ev;
  setDeny(ev, reason, std::move(detail));
  finish(request, ev, *snapshot, started, clock_.unixMillis());
  return ev;
}

void Gatekeeper::finish(const http::Request& request, const Evaluation& ev,
                        const PolicySnapshot& snapshot, Started started, std::int64_t now_ms) {
  const RouteStats& stats = ev.route ? ev.route->stats : snapshot.default_stats;
  telemetry::Counter* counter = ev.decision.outcome == Outcome::kAllow  ? stats.allow
                                : ev.decision.outcome == Outcome::kDeny ? stats.deny
                                                                        : stats.error;
  if (counter != nullptr) counter->inc();

  const auto elapsed = std::chrono::steady_clock::now() - started;
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
  stats_.latency->observe(static_cast<double>(micros) / 1e6);
  log_.record({request, ev, snapshot.version, now_ms, static_cast<std::uint64_t>(micros)});
}

std::string newRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const std::array<std::uint64_t, 2> bits = {rng(), rng()};
  return hex(std::string_view(reinterpret_cast<const char*>(bits.data()), sizeof bits));
}

}  // namespace portcullis::engine
