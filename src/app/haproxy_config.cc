// `portcullis haproxy-config`: a complete HAProxy setup for a policy — the frontend rules
// that enforce the agent's decision and the SPOE configuration file.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "app/commands.h"
#include "common/clock.h"
#include "common/ip.h"
#include "common/strings.h"
#include "common/units.h"
#include "config/compiler.h"
#include "frontends/spoe/agent.h"
#include "frontends/spoe/haproxy_cache.h"
#include "telemetry/metrics.h"

namespace portcullis::app {
namespace {

// A word of a HAProxy configuration line: the characters its tokenizer treats specially
// (blank, comment, quotes, backslash) are backslash-escaped.
std::string cfgWord(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '#' || c == '\\' || c == '\'' || c == '"')
      out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// HAProxy's copy of one `match.paths` entry (engine::PathPattern::matches), for canonical
// paths only (no '%', empty or dot segments: the fail-open rules require that, so the path
// HAProxy sees is the path the router matches). Regex-free where the pattern has no `*`:
//   /a/b  → path -m str /a/b        /a/**  → path -m str /a, path -m beg /a/
//   /**   → path -m beg /           /a/*/b → path -m reg ^/a/[^/]+/b$
// Returns the ACL criteria, one per `acl` line (lines of one name are OR-ed).
std::vector<std::string> pathCriteria(std::string_view pattern) {
  std::string_view rest = pattern;
  bool tail = false;
  if (rest.ends_with("/**")) {
    tail = true;
    rest.remove_suffix(3);
  }
  if (rest.find('*') == std::string_view::npos) {
    if (!tail) return {"path -m str " + cfgWord(rest)};
    if (rest.empty()) return {"path -m beg /"};
    return {"path -m str " + cfgWord(rest), "path -m beg " + cfgWord(std::string(rest) + "/")};
  }
  std::string re = "^";
  for (char c : rest) {
    if (c == '*') {
      re += "[^/]+";  // a whole segment (PathPattern::compile refuses `a*`), never empty
    } else if (std::string_view(".+?()[]{}|^$\\").find(c) != std::string_view::npos) {
      re += '\\';
      re += c;
    } else {
      re += c;
    }
  }
  re += tail ? "(/.*)?$" : "$";
  return {"path -m reg " + cfgWord(re)};
}

// HAProxy's copy of one `match.hosts` entry (engine::HostPattern::matches) against
// txn.pc_route_host: the Host header lower-cased, its port stripped, but its trailing dot kept
// (engine::normalizeHost strips one, so `h` matches `h` and `h.`). Returns an ACL
// condition (anonymous ACLs, AND-ed).
std::string hostCondition(const std::string& pattern) {
  std::string p = toLower(pattern);
  const auto either = [](const std::string& s) {  // s, or s with the dot normalizeHost strips
    return s.ends_with('.') ? cfgWord(s + ".") : cfgWord(s) + " " + cfgWord(s + ".");
  };
  if (!p.starts_with("*.")) return "{ var(txn.pc_route_host) -m str " + either(p) + " }";
  // `*.example.com`: ends with ".example.com" and has at least one more character.
  const std::string suffix = p.substr(1);
  return "{ var(txn.pc_route_host) -m end " + either(suffix) +
         " } !{ var(txn.pc_route_host) -m str " + either(suffix) + " }";
}

// What the generated files depend on, worked out once from the policy and the options.
struct Plan {
  Plan(const HaproxyConfigOptions& o, const engine::PolicySnapshot& s) : options(o), snapshot(s) {}

  const HaproxyConfigOptions& options;
  const engine::PolicySnapshot& snapshot;
  std::string agent_address;  // in HAProxy's syntax
  std::string spoe_path;      // where haproxy.cfg finds the SPOE file
  bool v3 = false;            // HAProxy 3.1+: `mode spop`
  // Every header a route may inject upstream: stripped from clients, set from the agent.
  std::set<std::string> headers;
  // --haproxy-cache: the header profiles HAProxy can rebuild on a hit (none: no caching),
  // and the longest TTL (the table's `expire`, and the most a stored entry may claim).
  std::vector<frontends::spoe::HeaderProfile> profiles;
  std::int64_t max_ttl = 0;
  bool hcache() const { return !profiles.empty(); }
  std::chrono::milliseconds processing{1000};  // SPOE `timeout processing`
};

// The longest a decision on `route` may wait on its dependencies: the introspection timeout
// of each provider it may ask and the timeout of each function it runs, in order. JWKS
// fetches never hold a request (an unknown kid is refused at once and wakes the refresher).
std::chrono::milliseconds routeBudget(const engine::Route& route) {
  std::chrono::milliseconds budget{0};
  for (const auto* p : route.providers) {
    if (const auto* introspection = p->introspection()) budget += introspection->timeout;
  }
  for (const engine::Function* f : route.functions)
    budget += f->spec().timeout;
  return budget;
}

// `timeout processing`: --processing-timeout, or the slowest route's budget plus a margin
// for the decision itself and the network, and never under 1 s. HAProxy fails a request
// closed when it expires, so a shorter one turns a slow function into a 503 while
// portcullis is still deciding. The price of a long one: while the agent is down but not
// yet marked down by the health checks (about 4 s), each request waits that long.
bool planProcessingTimeout(Plan& plan) {
  using std::chrono::milliseconds;
  const engine::Route* slowest = nullptr;
  milliseconds budget{0};
  for (const auto& route : plan.snapshot.routes) {
    if (const auto b = routeBudget(route); b > budget) {
      budget = b;
      slowest = &route;
    }
  }
  const auto& text = plan.options.processing_timeout;
  if (text.empty()) {
    plan.processing = std::max(milliseconds{1000}, budget + milliseconds{500});
    return true;
  }
  const auto parsed = parseDuration(text);
  if (!parsed || *parsed < std::chrono::milliseconds{1} ||
      *parsed % milliseconds{1} != parsed->zero()) {
    std::cerr << "haproxy-config: --processing-timeout " << text
              << ": expected a duration of whole milliseconds, e.g. 1500ms or 3s\n";
    return false;
  }
  plan.processing = std::chrono::duration_cast<milliseconds>(*parsed);
  if (slowest && plan.processing < budget) {
    std::cerr << "haproxy-config: warning: --processing-timeout " << text << " is shorter than "
              << "route " << slowest->name << "'s budget of " << budget.count()
              << "ms (introspection and function timeouts): HAProxy will fail its slow "
                 "requests closed (503) while portcullis is still deciding\n";
  }
  return true;
}

// A duration in HAProxy's syntax: whole seconds as `Ns`, anything else in `ms`.
std::string haproxyDuration(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{}s", d.count() / 1000)
                               : fmt::format("{}ms", d.count());
}

// Every header a route may inject upstream.
std::set<std::string> injectedHeaders(const engine::PolicySnapshot& snapshot) {
  std::set<std::string> headers;
  for (const auto& route : snapshot.routes) {
    for (const auto* p : route.providers) {
      for (const auto& [h, claim] : p->claimsToHeaders())
        headers.insert(h);
    }
    for (const auto& h : route.set_headers)
      headers.insert(h.name);
    for (const engine::Function* f : route.functions) {
      for (const auto& h : f->spec().headers)
        headers.insert(h);
    }
  }
  return headers;
}

// --haproxy-cache: the header profiles and the longest TTL. False when the cache cannot be
// generated (reported on stderr).
bool planCache(Plan& plan) {
  const auto& options = plan.options;
  const auto& snapshot = plan.snapshot;
  if (options.haproxy_cache_size == 0) {
    std::cerr << "haproxy-config: --haproxy-cache-size must be at least 1\n";
    return false;
  }
  auto& profiles = plan.profiles;
  profiles = frontends::spoe::headerProfiles(snapshot);
  for (const auto& route : snapshot.routes) {
    if (frontends::spoe::routeCacheableInHaproxy(route)) {
      plan.max_ttl = std::max<std::int64_t>(plan.max_ttl, route.cache_ttl.count());
    }
  }
  for (std::size_t i = 0; i < profiles.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (profiles[i].id == profiles[j].id) {  // distinct header sets, one id: refuse
        std::cerr << "haproxy-config: --haproxy-cache: two header profiles share the id "
                  << profiles[i].id << "; rename a header in claims_to_headers\n";
        return false;
      }
    }
  }
  if (profiles.empty()) {
    std::cerr << "haproxy-config: --haproxy-cache: no route can be cached by HAProxy (it "
                 "needs `cache`, bearer tokens, no rate_limit, functions or templated "
                 "headers); the agent is asked about every request\n";
  }
  return true;
}

// With --haproxy-cache: the stick-table lookup that answers cached allows without asking
// the agent.
void writeCacheLookup(std::ostream& cfg, const Plan& plan) {
  const auto& profiles = plan.profiles;
  const std::string hit = "!{ var(txn.pc_hit) -m found }";
  const std::string ttl_range = "1:" + std::to_string(plan.max_ttl);
  std::string ids;
  for (const auto& p : profiles)
    ids += " " + std::to_string(p.id);
  const std::string keyed = "{ var(txn.pc_tok) -m found }";
  cfg << "    # --haproxy-cache: allows are kept in the stick table portcullis-decisions,\n"
         "    # keyed by sha256(sha256(method) sha256(Host) sha256(URL) token): fixed-length\n"
         "    # fields, so no two requests share a key. Only requests with one Host, one\n"
         "    # `Authorization: Bearer <JWS>` and a canonical path are keyed. gpt0 is the\n"
         "    # absolute expiry (Unix seconds; `expire` restarts on every touch), gpt1 the\n"
         "    # header profile that a hit rebuilds from the token's payload.\n"
         "    acl pc_path_unsafe path_sub % // /./ /../ \\\\ ; \\#\n"
         "    acl pc_path_unsafe path_end /. /..\n"
         "    acl pc_path_unsafe path_reg [.](/|$)\n"
         "    acl pc_bearer req.fhdr(authorization) -m reg -i "
         "^bearer\\ [a-z0-9_-]+\\.[a-z0-9_-]+\\.[a-z0-9_-]+$\n"
         "    http-request set-var(txn.pc_now) date\n"
         "    http-request set-var(txn.pc_tok) http_auth_bearer if pc_bearer "
         "{ req.fhdr_cnt(authorization) eq 1 } { req.fhdr_cnt(host) eq 1 } !pc_path_unsafe\n"
      << "    http-request set-var(txn.pc_host) req.fhdr(host),sha2(256),hex if " << keyed << "\n"
      << "    http-request set-var(txn.pc_url) url,sha2(256),hex if " << keyed << "\n"
      << "    http-request set-var(txn.pc_key) method,sha2(256),hex,concat(\" \",txn.pc_host),"
         "concat(\" \",txn.pc_url),concat(\" \",txn.pc_tok),sha2(256) if "
      << keyed << " { var(txn.pc_host) -m found } { var(txn.pc_url) -m found }\n"
      << "    http-request set-var(txn.pc_left) "
         "var(txn.pc_key),table_gpt(0,portcullis-decisions),"
         "sub(txn.pc_now) if { var(txn.pc_key) -m found }\n"
         "    http-request set-var(txn.pc_prof) "
         "var(txn.pc_key),table_gpt(1,portcullis-decisions) "
         "if { var(txn.pc_key) -m found }\n"
      << "    http-request set-var(txn.pc_hit) bool(1) if { var(txn.pc_left) -m int " << ttl_range
      << " } { var(txn.pc_prof) -m int" << ids << " }\n"
      << "    http-request send-spoe-group portcullis portcullis-check if " << hit << "\n";
}

// No answer from the agent: HAProxy routes the request itself, as the router does (the
// first route whose hosts, paths and methods match, in order), and lets it through only
// when that route is open. Routes after the last open one cannot change the outcome.
void writeFallbackRoutes(std::ostream& cfg, const Plan& plan) {
  const auto& snapshot = plan.snapshot;
  const bool hcache = plan.hcache();
  const std::string hit = "!{ var(txn.pc_hit) -m found }";
  const auto open = [](const engine::Route& r) { return r.fail_open && r.allow; };
  std::size_t routes_to_copy = 0;
  std::string open_ids;
  for (std::size_t i = 0; i < snapshot.routes.size(); ++i) {
    if (!open(snapshot.routes[i])) continue;
    routes_to_copy = i + 1;
    open_ids += " " + std::to_string(i);
  }
  const std::string var = "var(txn.portcullis.";
  const std::string unless_hit = hcache ? " " + hit : "";
  const std::string no_answer = "!{ " + var + "allow) -m found }" + unless_hit;
  if (routes_to_copy == 0) {
    cfg << "    http-request deny deny_status 503 if " << no_answer << "\n";
  } else {
    cfg << "    # No answer from the agent: HAProxy picks the route as portcullis' router does\n"
           "    # (txn.pc_route = the first route whose hosts, paths and methods match, in\n"
           "    # order) and lets the request through only if that route has on_error: allow.\n"
           "    # Only for a canonical path and a plain, single Host: HAProxy matches what it\n"
           "    # received, and /public/../admin must never ride an open route; nor for a path\n"
           "    # the agent refuses (docs/paths.md: ;parameters, names ending in '.').\n";
    if (!hcache) {
      cfg << "    acl pc_path_unsafe path_sub % // /./ /../ \\\\ ; \\#\n"
             "    acl pc_path_unsafe path_end /. /..\n"
             "    acl pc_path_unsafe path_reg [.](/|$)\n";
    }
    cfg << "    acl pc_host_plain req.fhdr(host) -m reg -i "
           "^([a-z0-9_.-]*|\\\\[[0-9a-f:.]*\\\\])(:[0-9]*)?$\n"
        << "    acl pc_canonical path -m beg /\n"
        << "    http-request set-var(txn.pc_routable) bool(1) if " << no_answer
        << " pc_canonical !pc_path_unsafe { req.fhdr_cnt(host) eq 0 }\n"
        << "    http-request set-var(txn.pc_routable) bool(1) if " << no_answer
        << " pc_canonical !pc_path_unsafe { req.fhdr_cnt(host) eq 1 } pc_host_plain\n"
        << "    http-request set-var(txn.pc_route_host) req.fhdr(host),lower,regsub(:[0-9]*$,) if "
           "{ var(txn.pc_routable) -m found } { req.fhdr_cnt(host) eq 1 }\n"
        << "    http-request set-var(txn.pc_route_method) method,upper if { var(txn.pc_routable) "
           "-m found }\n";
    const std::string unrouted =
        "{ var(txn.pc_routable) -m found } !{ var(txn.pc_route) -m found }";
    for (std::size_t i = 0; i < routes_to_copy; ++i) {
      const auto& route = snapshot.routes[i];
      const auto& m = route.match;
      cfg << "    # route " << i << ": " << route.name << (open(route) ? " (open)" : " (closed)")
          << "\n";
      std::string conds;
      if (!m.paths.empty()) {
        for (const auto& p : m.paths) {
          for (const auto& c : pathCriteria(p.text()))
            cfg << "    acl pc_r" << i << "_path " << c << "\n";
        }
        conds += fmt::format(" pc_r{}_path", i);
      }
      if (!m.methods.empty()) {
        cfg << "    acl pc_r" << i << "_method var(txn.pc_route_method) -m str";
        for (const auto& method : m.methods)
          cfg << " " << cfgWord(method);
        cfg << "\n";
        conds += fmt::format(" pc_r{}_method", i);
      }
      // Hosts are OR-ed: one rule per host pattern, each setting the route only if no
      // earlier rule did.
      if (m.hosts.empty()) {
        cfg << "    http-request set-var(txn.pc_route) int(" << i << ") if " << unrouted << conds
            << "\n";
      }
      for (const auto& h : m.hosts) {
        cfg << "    http-request set-var(txn.pc_route) int(" << i << ") if " << unrouted << " "
            << hostCondition(h.text()) << conds << "\n";
      }
    }
    cfg << "    http-request deny deny_status 503 if " << no_answer
        << " !{ var(txn.pc_route) -m int" << open_ids << " }\n";
  }
}

// The agent's answer, enforced: refusals with their status and headers, then the headers
// it sets upstream.
void writeEnforcement(std::ostream& cfg, const Plan& plan) {
  const std::string var = "var(txn.portcullis.";
  cfg << "    http-request return status 401 content-type text/plain string \"unauthorized\" "
         "hdr WWW-Authenticate \"%["
      << var << "www_authenticate)]\" if { " << var << "allow) -m int 0 } { " << var
      << "status) -m int 401 }\n";
  cfg << "    http-request return status 403 content-type text/plain string \"forbidden\" "
         "hdr WWW-Authenticate \"%["
      << var << "www_authenticate)]\" if { " << var << "allow) -m int 0 } { " << var
      << "status) -m int 403 } { " << var << "www_authenticate) -m found }\n";
  cfg << "    http-request return status 403 content-type text/plain string \"forbidden\" if { "
      << var << "allow) -m int 0 } { " << var << "status) -m int 403 }\n";
  cfg << "    http-request deny deny_status 400 if { " << var << "allow) -m int 0 } { " << var
      << "status) -m int 400 }\n";
  cfg << "    http-request deny deny_status 404 if { " << var << "allow) -m int 0 } { " << var
      << "status) -m int 404 }\n";
  cfg << "    http-request return status 429 content-type text/plain string \"too many requests\" "
         "hdr Retry-After \"%["
      << var << "retry_after)]\" if { " << var << "allow) -m int 0 } { " << var
      << "status) -m int 429 }\n";
  cfg << "    http-request deny deny_status 503 if { " << var << "allow) -m found } !{ " << var
      << "allow) -m int 1 }\n";
  for (const auto& h : plan.headers) {
    const std::string v = frontends::spoe::headerVarName(h);
    cfg << "    http-request set-header " << h << " \"%[" << var << v << ")]\" if { " << var << v
        << ") -m found }\n";
  }
  cfg << "    http-request set-header X-Request-Id \"%[" << var << "request_id)]\" if { " << var
      << "request_id) -m found }\n";
}

// With --haproxy-cache: storing the allows the agent marked cacheable, and answering hits.
void writeCacheStore(std::ostream& cfg, const Plan& plan) {
  const auto& profiles = plan.profiles;
  const std::string var = "var(txn.portcullis.";
  const std::string ttl_range = "1:" + std::to_string(plan.max_ttl);
  const std::string store = "pc_store { " + var + "allow) -m int 1 } { var(txn.pc_key) -m found }";
  const std::string on_hit = "{ var(txn.pc_hit) -m found }";
  cfg << "    # --haproxy-cache: store an allow the agent marked cacheable (sticky counter 2,\n"
         "    # profile before expiry); on a hit, set the identity headers from the token.\n"
      << "    acl pc_store " << var << "hcache_ttl) -m int " << ttl_range << "\n"
      << "    http-request track-sc2 var(txn.pc_key) table portcullis-decisions if " << store
      << "\n"
      << "    http-request sc-set-gpt(1,2) " << var << "hcache_profile) if " << store << "\n"
      << "    http-request sc-set-gpt(0,2) var(txn.pc_now),add(txn.portcullis.hcache_ttl) if "
      << store << "\n";
  for (const auto& p : profiles) {
    for (const auto& [header, path] : p.headers) {
      cfg << "    http-request set-header " << header << " "
          << (path.empty() ? "\"\"" : "\"%[var(txn.pc_tok),jwt_payload_query('\\" + path + "')]\"")
          << " if " << on_hit << " { var(txn.pc_prof) -m int " << p.id << " }\n";
    }
  }
  cfg << "    http-request set-header X-Request-Id \"%[uuid]\" if " << on_hit
      << " !{ req.fhdr_cnt(x-request-id) gt 0 }\n";
}

// haproxy.cfg: the protected frontend and its backends.
std::string haproxyCfg(const Plan& plan) {
  const auto& options = plan.options;
  const bool hcache = plan.hcache();
  std::ostringstream cfg;
  cfg << "# Generated by `portcullis haproxy-config -c " << options.config << "` for HAProxy "
      << options.haproxy_version << ".\n"
      << (hcache ? "# The SPOE filter asks portcullis (message " +
                       std::string(frontends::spoe::kMessageName) +
                       ") about every request\n# that HAProxy has no cached allow for, and these "
                       "rules enforce the answer. Fail closed:\n# no answer, no access.\n\n"
                 : "# The SPOE filter asks portcullis about every request (message " +
                       std::string(frontends::spoe::kMessageName) +
                       ")\n# and these rules enforce the answer. Fail closed: no answer, no "
                       "access.\n\n");
  cfg << "global\n    log stdout format raw local0 notice\n\n";
  cfg << "defaults\n    mode http\n    log global\n    option httplog\n"
      << "    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n";
  cfg << "frontend portcullis-protected\n    bind " << options.bind << "\n"
      << "    filter spoe engine portcullis config " << plan.spoe_path << "\n";
  cfg << "    # Identity headers are set by portcullis only: drop any a client sent.\n";
  for (const auto& h : plan.headers)
    cfg << "    http-request del-header " << h << "\n";
  if (hcache) writeCacheLookup(cfg, plan);
  writeFallbackRoutes(cfg, plan);
  writeEnforcement(cfg, plan);
  if (hcache) writeCacheStore(cfg, plan);
  cfg << "    default_backend portcullis-upstream\n\n";
  cfg << "backend portcullis-upstream\n    server app " << options.upstream << "\n\n";
  if (hcache) {
    cfg << "backend portcullis-decisions\n    stick-table type binary len 32 size "
        << options.haproxy_cache_size << " expire " << plan.max_ttl << "s store gpt(2)\n\n";
  }
  cfg << "backend portcullis-agents\n    mode " << (plan.v3 ? "spop" : "tcp") << "\n"
      << (plan.v3 ? "" : "    option spop-check\n")
      << "    timeout connect 2s\n    timeout server 3m\n"
      << "    server portcullis " << plan.agent_address << " check inter 2s fall 2 rise 1\n";
  return cfg.str();
}

// The SPOE file that `filter spoe engine portcullis` reads.
std::string spoeConf(const Plan& plan) {
  const bool hcache = plan.hcache();
  std::ostringstream spoe;
  spoe << "# Generated by `portcullis haproxy-config`: the SPOE engine of the frontend's\n"
       << "# `filter spoe engine portcullis` line.\n"
       << "[portcullis]\n"
       << "spoe-agent portcullis-agent\n"
       << (hcache ? std::string("    groups portcullis-check\n")
                  : "    messages " + std::string(frontends::spoe::kMessageName) + "\n")
       << "    option var-prefix portcullis\n"
       << "    option set-on-error error\n"
       << (plan.v3 ? "" : "    option pipelining\n    no option async\n")
       << "    timeout hello 2s\n    timeout idle 2m\n"
       << (plan.options.processing_timeout.empty()
               ? "    # the slowest route's introspection and function timeouts, plus 500ms, at "
                 "least 1s\n"
               : "    # --processing-timeout\n")
       << "    timeout processing " << haproxyDuration(plan.processing) << "\n"
       << "    use-backend portcullis-agents\n"
       << "    register-var-names allow status reason request_id sub cache_ttl www_authenticate "
          "retry_after"
       << (hcache ? " hcache_ttl hcache_profile" : "");
  for (const auto& h : plan.headers)
    spoe << " " << frontends::spoe::headerVarName(h);
  spoe << "\n    log global\n\n"
       << "spoe-message " << frontends::spoe::kMessageName << "\n"
       << "    args method=method path=path query=query headers=req.hdrs_bin ip=src ssl=ssl_fc "
          "ssl_dn=ssl_c_s_dn ssl_verify=ssl_c_verify"
       << (hcache ? " hcache=bool(1)" : "") << "\n";
  if (hcache) {
    spoe << "\nspoe-group portcullis-check\n    messages " << frontends::spoe::kMessageName << "\n";
  } else {
    spoe << "    event on-frontend-http-request\n";
  }
  return spoe.str();
}

}  // namespace

int runHaproxyConfig(const HaproxyConfigOptions& options,
                     const config::FunctionRuntimes& runtimes) {
  telemetry::Metrics metrics;
  auto loaded =
      config::loadPolicy(options.config, metrics, SystemClock().unixSeconds(), nullptr, &runtimes);
  for (const auto& e : loaded.errors)
    std::cerr << e.toString() << "\n";
  if (!loaded.snapshot) return kExitConfigError;
  const auto& snapshot = *loaded.snapshot;
  const std::string agent =
      !options.agent.empty() ? options.agent : snapshot.settings.listeners.spoe;
  const auto agent_socket = parseUnixAddress(agent);
  if (agent.empty() || (!parseHostPort(agent) && !agent_socket)) {
    std::cerr << "haproxy-config: set listeners.spoe in the policy or pass --agent IP:PORT or "
                 "--agent unix:/path\n";
    return kExitConfigError;
  }
  Plan plan{options, snapshot};
  // HAProxy's address syntax: `unix@/path` for a unix socket.
  plan.agent_address = agent_socket ? "unix@" + cfgWord(*agent_socket) : agent;
  plan.v3 = options.haproxy_version.starts_with("3.");
  plan.spoe_path =
      options.out_dir.empty()
          ? "/etc/haproxy/portcullis-spoe.conf"
          : std::filesystem::absolute(options.out_dir + "/portcullis-spoe.conf").string();
  plan.headers = injectedHeaders(snapshot);
  if (options.haproxy_cache && !planCache(plan)) return kExitConfigError;
  if (!planProcessingTimeout(plan)) return kExitConfigError;
  const std::string cfg = haproxyCfg(plan);
  const std::string spoe = spoeConf(plan);
  if (options.out_dir.empty()) {
    std::cout << cfg << "\n# ---- " << plan.spoe_path << " ----\n" << spoe;
    return kExitOk;
  }
  std::filesystem::create_directories(options.out_dir);
  std::ofstream(options.out_dir + "/haproxy.cfg") << cfg;
  std::ofstream(options.out_dir + "/portcullis-spoe.conf") << spoe;
  std::cerr << "wrote " << options.out_dir << "/haproxy.cfg and " << plan.spoe_path << "\n";
  return kExitOk;
}

}  // namespace portcullis::app
