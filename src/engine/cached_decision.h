#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "common/strings.h"
#include "engine/decision.h"

namespace portcullis::engine {

// What the gatekeeper keeps of a decision it may answer again without running the pipeline:
// the decision, and the facts a hit needs to audit and re-check it (revocation, rate limit).
// Plain values, built on a miss; CachedDecision::make packs them.
struct CacheEntry {
  Decision decision;  // its ttl is not kept: a decision from the cache reports 0
  std::string route;  // route name
  std::string sub, iss, jti;
  std::optional<Sha256> token_hash;  // identity::credentialDigest of the credential that
                                     // authenticated, for revocation by token
  std::string rate_key;              // the route's rendered rate-limit key, if it has one
  std::int64_t expires_at = 0;       // Unix seconds
};

// Strings that repeat across entries (route names, issuers, header names), each kept once
// for the life of the process; an entry holds a name's number instead of its bytes. At
// most `capacity` names of at most kMaxNameBytes each: a string refused (nullopt) stays in
// the entry, so names a function makes up per request cannot grow the table without bound.
// Thread-safe: number() locks; name() does not.
class NameTable final {
 public:
  static constexpr std::size_t kMaxNameBytes = 256;
  explicit NameTable(std::size_t capacity);
  NameTable(const NameTable&) = delete;
  NameTable& operator=(const NameTable&) = delete;
  // The table entries use. Never destroyed, so an entry never outlives its names.
  static NameTable& shared();

  std::optional<std::uint32_t> number(std::string_view name);
  // `n` must have come from number() on this table.
  std::string_view name(std::uint32_t n) const {
    return *names_[n].load(std::memory_order_acquire);
  }

 private:
  std::mutex mu_;
  std::deque<std::string> storage_;  // a deque never moves what it holds
  std::unordered_map<std::string_view, std::uint32_t> numbers_;  // views into storage_
  std::unique_ptr<std::atomic<const std::string*>[]> names_;     // `capacity` slots
  std::size_t capacity_;
  std::uint32_t size_ = 0;
};

// A cached decision packed into one allocation: a 16-byte header (reference count, the
// decision's flags, outcome and reason, the expiry), the 32-byte token hash when there is
// one, then what a hit answers with (sub, iss, the function reason, the detail, the status,
// the upstream and the response headers), then the facts (jti, route, rate key). A string
// is a varint: an odd value n names interned string n >> 1 of NameTable::shared() (iss,
// route and header names), an even one is followed by its n >> 1 bytes; counts and the
// status are varints too. Immutable once made; shared through Ptr. A typical allow (one
// injected header, a 36-character jti) takes 107 bytes in one malloc chunk of 128; it took
// ≈ 580 in four as a shared_ptr to a Decision and six std::strings (docs/benchmarks.md).
class CachedDecision final {
 public:
  class Ptr;
  static Ptr make(const CacheEntry& entry);

  std::int64_t expiresAt() const { return expires_at_; }
  // What every hit reads (the identity and decision()) comes first in the entry; what only
  // revocation, a rate limit or a purge reads (jti, route, rate key), after it.
  std::string_view sub() const;
  std::string_view iss() const;
  std::string_view jti() const { return fact(kJti); }
  std::string_view route() const { return fact(kRoute); }
  std::string_view rateKey() const { return fact(kRateKey); }
  // SHA-256 hex, as Revocations holds token hashes; empty when no credential authenticated.
  std::string tokenHash() const;
  // The decision as it was cached, with ttl 0: an answer from the cache is not cached again
  // downstream (docs/haproxy.md, `cache_ttl`).
  Decision decision() const;
  // The bytes of the allocation (the header and what follows it).
  std::size_t allocationSize() const;

  CachedDecision(const CachedDecision&) = delete;
  CachedDecision& operator=(const CachedDecision&) = delete;

 private:
  enum Fact { kJti, kRoute, kRateKey, kFacts };
  enum Flag : std::uint8_t {
    kAllow = 1,
    kShadow = 2,
    kFailOpen = 4,
    kExposeReason = 8,
    kHasTokenHash = 16,
  };
  CachedDecision() = default;
  ~CachedDecision() = default;
  // The allocation's bytes after the header, and after the token hash.
  const unsigned char* bytes() const { return reinterpret_cast<const unsigned char*>(this + 1); }
  const unsigned char* fields() const { return bytes() + (flags_ & kHasTokenHash ? 32 : 0); }
  // The bytes after the identity and the decision, where the facts start.
  const unsigned char* facts() const;
  std::string_view fact(Fact fact) const;

  std::atomic<std::uint32_t> refs_{1};  // the Ptrs that share this entry
  std::uint8_t flags_ = 0;
  Outcome outcome_ = Outcome::kDeny;
  Reason reason_ = Reason::kNoRoute;
  std::int64_t expires_at_ = 0;
};
static_assert(sizeof(CachedDecision) == 16);

// Shares one CachedDecision: a copy adds a reference (one atomic increment); the last Ptr
// to go frees it. Copies may be made and dropped on any thread.
class CachedDecision::Ptr final {
 public:
  Ptr() = default;
  Ptr(std::nullptr_t) {}
  Ptr(const Ptr& other) : p_(other.p_) {
    if (p_ != nullptr) p_->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  Ptr(Ptr&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  Ptr& operator=(Ptr other) noexcept {
    std::swap(p_, other.p_);
    return *this;
  }
  ~Ptr() { reset(); }
  void reset() {
    CachedDecision* p = std::exchange(p_, nullptr);
    if (p != nullptr && p->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(p);
  }

  const CachedDecision* get() const { return p_; }
  const CachedDecision& operator*() const { return *p_; }
  const CachedDecision* operator->() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }
  friend bool operator==(const Ptr& a, std::nullptr_t) { return a.p_ == nullptr; }

 private:
  friend class CachedDecision;
  explicit Ptr(CachedDecision* adopted) : p_(adopted) {}
  static void destroy(CachedDecision* p);
  CachedDecision* p_ = nullptr;
};

}  // namespace portcullis::engine
