#include "engine/upstream.h"

#include <algorithm>
#include <limits>
#include <numeric>

namespace portcullis::engine {
namespace {

constexpr std::uint32_t kRingPointsPerWeight = 160;
constexpr std::size_t kMaxRingPoints = 262'144;

std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

bool contains(std::span<const std::size_t> tried, std::size_t server) {
  return std::find(tried.begin(), tried.end(), server) != tried.end();
}

// One cycle of smooth weighted round robin (nginx's): at each turn every server gains its
// weight, the one with the most goes and loses the total. Each server goes `weight` times
// in a cycle, its turns spread out. Weights are divided by their common divisor first, so
// 2,2,2 is the cycle a b c, not a b c a b c.
std::vector<std::uint32_t> smoothSchedule(const std::vector<UpstreamServer>& servers) {
  std::uint32_t divisor = 0;
  for (const auto& s : servers)
    divisor = std::gcd(divisor, s.weight);
  std::vector<std::int64_t> weight(servers.size());
  std::int64_t total = 0;
  for (std::size_t i = 0; i < servers.size(); ++i) {
    weight[i] = servers[i].weight / divisor;
    total += weight[i];
  }
  std::vector<std::int64_t> current(servers.size(), 0);
  std::vector<std::uint32_t> schedule;
  schedule.reserve(static_cast<std::size_t>(total));
  for (std::int64_t turn = 0; turn < total; ++turn) {
    std::size_t best = 0;
    for (std::size_t i = 0; i < servers.size(); ++i) {
      current[i] += weight[i];
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    schedule.push_back(static_cast<std::uint32_t>(best));
  }
  return schedule;
}

}  // namespace

// One server's state. Its own cache line: workers update the in-flight counts of
// neighbouring servers at once.
struct alignas(64) Upstream::Slot {
  std::atomic<bool> active_up{true};
  std::atomic<std::uint32_t> in_flight{0};
  std::atomic<std::uint32_t> failures{0};      // consecutive
  std::atomic<std::int64_t> ejected_until{0};  // monotonic ms; in the past = not ejected
};

bool HealthCheckSpec::passes(int status_code) const {
  return std::any_of(status.begin(), status.end(), [&](const StatusRange& r) {
    return status_code >= r.low && status_code <= r.high;
  });
}

std::uint64_t hash64(std::string_view bytes) {
  std::uint64_t h = 14695981039346656037ULL;  // FNV-1a 64
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return mix64(h);
}

std::string_view strippedPath(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || !path.starts_with(prefix)) return path;
  if (path.size() == prefix.size()) return "/";
  if (path[prefix.size()] != '/') return path;
  return path.substr(prefix.size());
}

Upstream::Upstream(UpstreamSpec spec)
    : spec_(std::move(spec)), slots_(std::make_unique<Slot[]>(spec_.servers.size())) {
  if (spec_.servers.empty()) return;
  schedule_ = smoothSchedule(spec_.servers);
  if (spec_.balance != Balance::kHash) return;
  std::uint64_t total_weight = 0;
  for (const auto& s : spec_.servers)
    total_weight += s.weight;
  const auto per_weight = static_cast<std::uint32_t>(
      std::clamp<std::uint64_t>(kMaxRingPoints / total_weight, 1, kRingPointsPerWeight));
  ring_.reserve(total_weight * per_weight);
  for (std::size_t i = 0; i < spec_.servers.size(); ++i) {
    // A point's position depends only on its server's address and its number, so the
    // other servers' points stay where they are when one is added or removed.
    const std::uint64_t base = hash64(spec_.servers[i].address);
    const std::uint64_t points = std::uint64_t{spec_.servers[i].weight} * per_weight;
    for (std::uint64_t k = 0; k < points; ++k) {
      ring_.push_back(RingPoint{mix64(base ^ mix64(k + 1)), static_cast<std::uint32_t>(i)});
    }
  }
  // Ties (vanishingly rare) are broken by address, not by position in the list.
  std::sort(ring_.begin(), ring_.end(), [&](const RingPoint& a, const RingPoint& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    return spec_.servers[a.server].address < spec_.servers[b.server].address;
  });
}

Upstream::~Upstream() = default;

std::optional<std::size_t> Upstream::find(std::string_view address) const {
  for (std::size_t i = 0; i < spec_.servers.size(); ++i) {
    if (spec_.servers[i].address == address) return i;
  }
  return std::nullopt;
}

std::string Upstream::hashInput(const TemplateInput& in) const {
  if (spec_.balance != Balance::kHash || !spec_.hash_key) return {};
  return spec_.hash_key->render(in);
}

bool Upstream::usable(std::size_t server, std::span<const std::size_t> tried,
                      std::int64_t now_ms) const {
  const Slot& s = slots_[server];
  return s.active_up.load(std::memory_order_relaxed) &&
         s.ejected_until.load(std::memory_order_relaxed) <= now_ms && !contains(tried, server);
}

std::optional<std::size_t> Upstream::pick(std::string_view hash_input,
                                          std::span<const std::size_t> tried,
                                          std::int64_t now_ms) const {
  if (spec_.servers.empty()) return std::nullopt;
  switch (spec_.balance) {
    case Balance::kLeastConnections:
      return pickLeastConnections(tried, now_ms);
    case Balance::kHash:
      if (!hash_input.empty()) return pickHash(hash_input, tried, now_ms);
      break;
    case Balance::kRoundRobin:
      break;
  }
  return pickRoundRobin(tried, now_ms);
}

std::optional<std::size_t> Upstream::pickRoundRobin(std::span<const std::size_t> tried,
                                                    std::int64_t now_ms) const {
  // An unusable server's turn goes to the rotation's next turn (not to its neighbour in the
  // cycle, which would then get two turns in a row and twice its share). Bounded: past one
  // attempt per server, the scan below decides.
  for (std::size_t attempt = 0; attempt < spec_.servers.size(); ++attempt) {
    const std::uint64_t turn = rotation_.fetch_add(1, std::memory_order_relaxed);
    const std::size_t server = schedule_[turn % schedule_.size()];
    if (usable(server, tried, now_ms)) return server;
  }
  return scan(tried, now_ms);
}

std::optional<std::size_t> Upstream::pickLeastConnections(std::span<const std::size_t> tried,
                                                          std::int64_t now_ms) const {
  const std::size_t n = spec_.servers.size();
  const std::size_t start = rotation_.fetch_add(1, std::memory_order_relaxed) % n;
  std::optional<std::size_t> best;
  std::uint64_t best_load = 0;
  std::uint64_t best_weight = 1;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (start + k) % n;
    if (!usable(i, tried, now_ms)) continue;
    const std::uint64_t load = slots_[i].in_flight.load(std::memory_order_relaxed);
    const std::uint64_t weight = spec_.servers[i].weight;
    // load / weight < best_load / best_weight, without division.
    if (!best || load * best_weight < best_load * weight) {
      best = i;
      best_load = load;
      best_weight = weight;
    }
  }
  return best;
}

std::optional<std::size_t> Upstream::pickHash(std::string_view hash_input,
                                              std::span<const std::size_t> tried,
                                              std::int64_t now_ms) const {
  const std::uint64_t h = hash64(hash_input);
  auto it = std::lower_bound(ring_.begin(), ring_.end(), h,
                             [](const RingPoint& p, std::uint64_t v) { return p.hash < v; });
  if (it == ring_.end()) it = ring_.begin();
  if (usable(it->server, tried, now_ms)) return it->server;
  // Walking the ring costs up to its size: only when some server can be had at all.
  if (!scan(tried, now_ms)) return std::nullopt;
  for (std::size_t step = 1; step < ring_.size(); ++step) {
    if (++it == ring_.end()) it = ring_.begin();
    if (usable(it->server, tried, now_ms)) return it->server;
  }
  return scan(tried, now_ms);  // a server came back while the ring was walked
}

std::optional<std::size_t> Upstream::scan(std::span<const std::size_t> tried,
                                          std::int64_t now_ms) const {
  const std::size_t n = spec_.servers.size();
  const std::size_t start = rotation_.load(std::memory_order_relaxed) % n;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (start + k) % n;
    if (usable(i, tried, now_ms)) return i;
  }
  return std::nullopt;
}

void Upstream::started(std::size_t server) const {
  slots_[server].in_flight.fetch_add(1, std::memory_order_relaxed);
}

void Upstream::finished(std::size_t server) const {
  slots_[server].in_flight.fetch_sub(1, std::memory_order_relaxed);
}

void Upstream::succeeded(std::size_t server) const {
  Slot& s = slots_[server];
  // Plain loads first: the common case (a healthy server) writes nothing shared.
  if (s.failures.load(std::memory_order_relaxed) != 0) {
    s.failures.store(0, std::memory_order_relaxed);
  }
  if (s.ejected_until.load(std::memory_order_relaxed) != 0) {
    s.ejected_until.store(0, std::memory_order_relaxed);
  }
}

void Upstream::failed(std::size_t server, std::int64_t now_ms) const {
  Slot& s = slots_[server];
  std::uint32_t count = s.failures.load(std::memory_order_relaxed);
  // Saturating: a server failing for ever must not wrap back to zero failures.
  while (count != std::numeric_limits<std::uint32_t>::max() &&
         !s.failures.compare_exchange_weak(count, count + 1, std::memory_order_relaxed)) {
  }
  if (count != std::numeric_limits<std::uint32_t>::max()) ++count;
  const std::uint32_t max_fails = spec_.passive.max_fails;
  if (max_fails > 0 && count >= max_fails) {
    s.ejected_until.store(now_ms + spec_.passive.cool_down.count(), std::memory_order_relaxed);
  }
}

void Upstream::setActiveUp(std::size_t server, bool up) const {
  slots_[server].active_up.store(up, std::memory_order_relaxed);
}

Upstream::ServerState Upstream::state(std::size_t server, std::int64_t now_ms) const {
  const Slot& s = slots_[server];
  ServerState out;
  out.up = s.active_up.load(std::memory_order_relaxed);
  out.ejected = s.ejected_until.load(std::memory_order_relaxed) > now_ms;
  out.in_flight = s.in_flight.load(std::memory_order_relaxed);
  out.consecutive_failures = s.failures.load(std::memory_order_relaxed);
  return out;
}

}  // namespace portcullis::engine
