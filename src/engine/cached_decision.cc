#include "engine/cached_decision.h"

#include <cstring>
#include <new>

namespace portcullis::engine {
namespace {

// Numbers are LEB128 varints: seven bits a byte, low bits first, the high bit set on every
// byte but the last. A name number or a length below 64 takes one byte.
void putNumber(std::string& out, std::uint64_t n) {
  while (n >= 0x80) {
    out.push_back(static_cast<char>(n | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
}

void putString(std::string& out, std::string_view s) {
  putNumber(out, std::uint64_t{s.size()} << 1);
  out.append(s);
}

// A string that repeats across entries: its number in the shared table when it has one.
void putName(std::string& out, std::string_view s) {
  const auto n = s.empty() ? std::nullopt : NameTable::shared().number(s);
  if (n) {
    putNumber(out, (std::uint64_t{*n} << 1) | 1);
  } else {
    putString(out, s);
  }
}

// Zigzag, so that any int round-trips (a status is always positive in practice).
std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
std::int64_t unzigzag(std::uint64_t u) {
  return static_cast<std::int64_t>(u >> 1) ^ -static_cast<std::int64_t>(u & 1);
}

// Reads what putNumber and putString / putName wrote, in order. The bytes were written by
// make(): no bounds to check.
class Reader {
 public:
  explicit Reader(const unsigned char* at) : at_(at) {}
  std::uint64_t number() {
    std::uint64_t n = 0;
    for (int shift = 0;; shift += 7) {
      const unsigned char b = *at_++;
      n |= std::uint64_t{b & 0x7fu} << shift;
      if (b < 0x80) return n;
    }
  }
  std::string_view string() {
    const std::uint64_t v = number();
    if ((v & 1) != 0) return NameTable::shared().name(static_cast<std::uint32_t>(v >> 1));
    const std::string_view s(reinterpret_cast<const char*>(at_), v >> 1);
    at_ += s.size();
    return s;
  }
  void skipString() {
    const std::uint64_t v = number();
    if ((v & 1) == 0) at_ += v >> 1;
  }
  const unsigned char* at() const { return at_; }

 private:
  const unsigned char* at_;
};

}  // namespace

NameTable::NameTable(std::size_t capacity)
    : names_(std::make_unique<std::atomic<const std::string*>[]>(capacity)), capacity_(capacity) {}

NameTable& NameTable::shared() {
  // Enough for every route, issuer and header name of a deployment, many reloads over.
  static NameTable* const table = new NameTable(4096);
  return *table;
}

std::optional<std::uint32_t> NameTable::number(std::string_view name) {
  if (name.size() > kMaxNameBytes) return std::nullopt;
  std::lock_guard lock(mu_);
  if (const auto it = numbers_.find(name); it != numbers_.end()) return it->second;
  if (size_ == capacity_) return std::nullopt;
  const std::string& kept = storage_.emplace_back(name);
  // Published before the number is handed out: a reader holding the number sees the name.
  names_[size_].store(&kept, std::memory_order_release);
  numbers_.emplace(kept, size_);
  return size_++;
}

CachedDecision::Ptr CachedDecision::make(const CacheEntry& entry) {
  const Decision& d = entry.decision;
  std::string out;
  out.reserve(64 + entry.sub.size() + entry.jti.size() + entry.rate_key.size() + d.detail.size());
  if (entry.token_hash) {
    out.append(reinterpret_cast<const char*>(entry.token_hash->data()), entry.token_hash->size());
  }
  // What a hit answers with, in the order decision() reads it.
  putString(out, entry.sub);
  putName(out, entry.iss);
  putString(out, d.function_reason);
  putString(out, d.detail);
  putNumber(out, zigzag(d.status));
  for (const Decision::HeaderList* list : {&d.upstream_headers, &d.response_headers}) {
    putNumber(out, list->size());
    for (const auto& [name, value] : *list) {
      putName(out, name);
      putString(out, value);
    }
  }
  // The facts, in the order of Fact.
  putString(out, entry.jti);
  putName(out, entry.route);
  putString(out, entry.rate_key);

  void* memory = ::operator new(sizeof(CachedDecision) + out.size());
  auto* cached = new (memory) CachedDecision();
  cached->flags_ = static_cast<std::uint8_t>(
      (d.allow ? kAllow : 0) | (d.shadow ? kShadow : 0) | (d.fail_open ? kFailOpen : 0) |
      (d.expose_reason ? kExposeReason : 0) | (entry.token_hash ? kHasTokenHash : 0));
  cached->outcome_ = d.outcome;
  cached->reason_ = d.reason;
  cached->expires_at_ = entry.expires_at;
  std::memcpy(static_cast<unsigned char*>(memory) + sizeof(CachedDecision), out.data(), out.size());
  return Ptr(cached);
}

void CachedDecision::Ptr::destroy(CachedDecision* p) {
  p->~CachedDecision();
  ::operator delete(p);
}

std::string_view CachedDecision::sub() const {
  return Reader(fields()).string();
}

std::string_view CachedDecision::iss() const {
  Reader r(fields());
  r.skipString();
  return r.string();
}

Decision CachedDecision::decision() const {
  Decision d;
  d.allow = (flags_ & kAllow) != 0;
  d.shadow = (flags_ & kShadow) != 0;
  d.fail_open = (flags_ & kFailOpen) != 0;
  d.expose_reason = (flags_ & kExposeReason) != 0;
  d.outcome = outcome_;
  d.reason = reason_;
  Reader r(fields());
  r.skipString();  // sub
  r.skipString();  // iss
  // Usually empty: assigning nothing is not free.
  if (const std::string_view reason = r.string(); !reason.empty()) d.function_reason = reason;
  if (const std::string_view detail = r.string(); !detail.empty()) d.detail = detail;
  d.status = static_cast<int>(unzigzag(r.number()));
  for (Decision::HeaderList* list : {&d.upstream_headers, &d.response_headers}) {
    const std::uint64_t n = r.number();
    list->reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::string_view name = r.string();
      list->emplace_back(name, r.string());
    }
  }
  return d;
}

const unsigned char* CachedDecision::facts() const {
  Reader r(fields());
  for (int i = 0; i < 4; ++i)  // sub, iss, function reason, detail
    r.skipString();
  r.number();  // status
  for (int list = 0; list < 2; ++list) {
    const std::uint64_t n = r.number();
    for (std::uint64_t i = 0; i < 2 * n; ++i)
      r.skipString();
  }
  return r.at();
}

std::string_view CachedDecision::fact(Fact fact) const {
  Reader r(facts());
  for (int i = 0; i < fact; ++i)
    r.skipString();
  return r.string();
}

std::string CachedDecision::tokenHash() const {
  if ((flags_ & kHasTokenHash) == 0) return {};
  Sha256 digest;
  std::memcpy(digest.data(), bytes(), digest.size());
  return hex(digest);
}

std::size_t CachedDecision::allocationSize() const {
  Reader r(facts());
  for (int i = 0; i < kFacts; ++i)
    r.skipString();
  return static_cast<std::size_t>(r.at() - reinterpret_cast<const unsigned char*>(this));
}

}  // namespace portcullis::engine
