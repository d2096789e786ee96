// Subcommands that need no listener: check, eval, test, token.
#include <charconv>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "audit/audit.h"
#include "common/clock.h"
#include "common/http/path.h"
#include "common/strings.h"
#include "common/units.h"
#include "config/compiler.h"
#include "config/functions.h"
#include "config/yaml_reader.h"
#include "engine/gatekeeper.h"
#include "engine/router.h"
#include "identity/jwt/jwt.h"
#include "net/jwks_service.h"
#include "telemetry/metrics.h"

namespace portcullis::app {
namespace {

class FixedClock final : public Clock {
 public:
  explicit FixedClock(std::int64_t unix_ms) : ms_(unix_ms) {}
  std::int64_t unixMillis() const override { return ms_; }

 private:
  std::int64_t ms_;
};

// Compiles the policy and, when providers fetch their keys from an IdP, fetches them once
// (bounded) so offline decisions use the same keys a server would.
std::shared_ptr<const engine::PolicySnapshot> loadOrReport(const std::string& config,
                                                           const config::FunctionRuntimes& runtimes,
                                                           telemetry::Metrics& metrics) {
  boost::asio::io_context io(1);
  net::JwksService jwks(io, metrics);
  auto loaded = config::loadPolicy(config, metrics, SystemClock().unixSeconds(), &jwks, &runtimes);
  for (const auto& e : loaded.errors)
    std::cerr << e.toString() << "\n";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (loaded.snapshot && !jwks.allLoaded() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(std::chrono::milliseconds(50));
  }
  if (loaded.snapshot) {
    for (const auto& p : loaded.snapshot->providers) {
      if (const auto* remote = p->remote(); remote && !remote->status().loaded) {
        std::cerr << "warning: provider " << p->name()
                  << " has no keys: " << remote->status().last_error << "\n";
      }
    }
  }
  return loaded.snapshot;
}

// Builds a Request from a URL such as https://api.example.com/orders/7?x=1.
std::optional<http::Request> requestFromUrl(const std::string& method, const std::string& url,
                                            std::string& why) {
  http::Request req;
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    why = "the URL needs a scheme and host, e.g. https://api.example.com/orders";
    return std::nullopt;
  }
  req.scheme = toLower(url.substr(0, scheme_end));
  const std::size_t path_at = url.find_first_of("/?", scheme_end + 3);
  req.host = engine::normalizeHost(url.substr(scheme_end + 3, path_at - scheme_end - 3));
  std::string target = path_at == std::string::npos ? "/" : url.substr(path_at);
  if (target.front() == '?') target.insert(0, "/");
  auto parsed = http::parseTarget(target);
  if (!parsed) {
    why = "the URL's path is not valid";
    return std::nullopt;
  }
  req.path = std::move(parsed->path);
  req.query = std::move(parsed->query);
  req.method = toUpper(method);
  return req;
}

bool addHeaderLine(http::Request& req, const std::string& line) {
  const std::size_t colon = line.find(':');
  if (colon == std::string::npos || colon == 0) return false;
  req.headers.add(trim(std::string_view(line).substr(0, colon)),
                  trim(std::string_view(line).substr(colon + 1)));
  return true;
}

void printDecision(const engine::Evaluation& ev) {
  const auto& d = ev.decision;
  std::cout << (d.allow ? "allow" : "deny") << " " << d.status << " " << d.reasonCode();
  if (d.wouldDeny()) std::cout << (d.shadow ? " (shadow: would deny)" : " (on_error: allow)");
  std::cout << "\n";
  std::cout << "route: " << (ev.route ? ev.route->name : std::string("(none)")) << "\n";
  if (!d.detail.empty()) std::cout << "detail: " << d.detail << "\n";
  for (const auto& [n, v] : d.upstream_headers)
    std::cout << "upstream " << n << ": " << v << "\n";
  for (const auto& [n, v] : d.response_headers)
    std::cout << "response " << n << ": " << v << "\n";
  if (ev.route != nullptr && ev.route->cached()) {
    std::cout << "cache: ttl=" << ev.route->cache_ttl.count()
              << "s deny_ttl=" << ev.route->cache_deny_ttl.count()
              << "s; key recipe: " << ev.route->cache_recipe << "\n";
  }
}

// Parses "1h", "-10m" (signed durations, for token lifetimes in tests).
std::optional<std::int64_t> signedSeconds(std::string_view text) {
  const bool negative = text.starts_with('-');
  if (negative) text.remove_prefix(1);
  const auto d = parseDuration(text);
  if (!d) return std::nullopt;
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
  return negative ? -s : s;
}

// A test file's `now`: Unix seconds, or UTC as 2026-12-07T10:00:00Z.
std::optional<std::int64_t> readTime(config::Diagnostics& diag, const YAML::Node& node) {
  const std::string text = node.IsScalar() ? node.Scalar() : "";
  std::int64_t seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (ec == std::errc() && end == text.data() + text.size() && !text.empty()) return seconds;
  std::tm tm{};
  char z = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &z) == 7 &&
      z == 'Z' && text.size() == 20) {
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<std::int64_t>(::timegm(&tm));
  }
  diag.error(node, "now must be Unix seconds or a UTC time such as 2026-12-07T10:00:00Z");
  return std::nullopt;
}

Result<std::string> mint(const std::string& key_file, const std::string& alg_name,
                         const nlohmann::json& claims) {
  std::ifstream in(key_file);
  if (!in) return fail(Reason::kInternalError, "cannot read key file " + key_file);
  std::stringstream buf;
  buf << in.rdbuf();
  auto key = identity::Key::fromJwk(buf.str(), true);
  if (!key) return fail(Reason::kInternalError, key_file + ": " + key.error().message);
  if (!key->canSign()) return fail(Reason::kInternalError, key_file + " holds no private key");
  std::optional<identity::Alg> alg = alg_name.empty() ? key->alg() : identity::parseAlg(alg_name);
  if (!alg) return fail(Reason::kInternalError, "say --alg (the key names none, or it is unknown)");
  return identity::signJwt(claims, *key, *alg);
}

// A test file's `tokens`: each minted with its key file, lifetime and claims at `now`.
std::map<std::string, std::string> mintTokens(config::Diagnostics& diag, const YAML::Node& t,
                                              std::int64_t now) {
  std::map<std::string, std::string> tokens;
  config::MapReader all(diag, t, "tokens");
  for (auto it = t.begin(); all.valid() && it != t.end(); ++it) {
    const std::string name = it->first.Scalar();
    all.get(name);
    config::MapReader tok(diag, it->second, "token " + name);
    const auto key = config::readString(diag, tok.get("key"), "token key");
    nlohmann::json claims = nlohmann::json::object();
    if (const auto c = tok.get("claims"); c.IsDefined()) {
      config::MapReader cm(diag, c, "token claims");
      for (auto ci = c.begin(); cm.valid() && ci != c.end(); ++ci) {
        cm.get(ci->first.Scalar());
        if (ci->second.IsSequence()) {
          auto list = config::readStringList(diag, ci->second, "claim");
          if (list) claims[ci->first.Scalar()] = *list;
        } else if (auto v = config::readString(diag, ci->second, "claim")) {
          auto parsed = nlohmann::json::parse(*v, nullptr, false);
          claims[ci->first.Scalar()] =
              parsed.is_discarded() || parsed.is_string() ? nlohmann::json(*v) : parsed;
        }
      }
    }
    std::int64_t ttl = 3600;
    if (const auto t2 = tok.get("ttl"); t2.IsDefined()) {
      const auto s = t2.IsScalar() ? signedSeconds(t2.Scalar()) : std::nullopt;
      if (!s) diag.error(t2, "ttl must be a duration such as 1h or -10m");
      ttl = s.value_or(ttl);
    }
    if (!claims.contains("iat")) claims["iat"] = now;
    if (!claims.contains("exp")) claims["exp"] = now + ttl;
    if (!key) continue;
    auto minted = mint(diag.resolvePath(*key), "", claims);
    if (!minted) {
      diag.error(tok.get("key"), minted.error().message);
      continue;
    }
    tokens[name] = *minted;
  }
  return tokens;
}

// What a decision differs in from a case's `expect`, one line per difference.
std::vector<std::string> differences(config::Diagnostics& diag, config::MapReader& ex,
                                     const engine::Evaluation& ev) {
  const auto& d = ev.decision;
  std::vector<std::string> diffs;
  if (const auto s = ex.get("status"); s.IsDefined()) {
    const auto want = config::readInt(diag, s, "status", 100, 599);
    if (want && *want != d.status)
      diffs.push_back(fmt::format("status: expected {}, got {}", *want, d.status));
  }
  if (const auto r = ex.get("reason"); r.IsDefined()) {
    const auto want = config::readString(diag, r, "reason");
    if (want && *want != d.reasonCode()) {
      diffs.push_back(fmt::format("reason: expected {}, got {}", *want, d.reasonCode()));
    }
  }
  if (const auto r = ex.get("route"); r.IsDefined()) {
    const auto want = config::readString(diag, r, "route");
    const std::string got = ev.route ? ev.route->name : "";
    if (want && *want != got)
      diffs.push_back(fmt::format("route: expected {}, got {}", *want, got));
  }
  if (const auto h = ex.get("headers"); h.IsDefined()) {
    config::MapReader hm(diag, h, "expected headers");
    for (auto it = h.begin(); hm.valid() && it != h.end(); ++it) {
      const std::string hn = it->first.Scalar();
      hm.get(hn);
      const auto want = config::readString(diag, it->second, "header value");
      std::optional<std::string> got;
      for (const auto* list : {&d.upstream_headers, &d.response_headers}) {
        for (const auto& [n, v] : *list) {
          if (!got && iequals(n, hn)) got = v;
        }
      }
      if (want && got != want) {
        diffs.push_back(fmt::format("header {}: expected '{}', got {}", hn, *want,
                                    got ? "'" + *got + "'" : std::string("none")));
      }
    }
  }
  return diffs;
}

// How one case went: decided and compared; skipped (its request is wrong, reported); or
// the file's remaining cases are not run (an error was reported).
enum class CaseResult : std::uint8_t { kPassed, kFailed, kSkipped, kStop };

CaseResult runCase(config::Diagnostics& diag, const YAML::Node& item,
                   const std::map<std::string, std::string>& tokens, std::int64_t now,
                   const engine::PolicySnapshot& snapshot) {
  config::MapReader tc(diag, item, "test case");
  const std::string name = config::readString(diag, tc.get("name"), "case name").value_or("?");
  config::MapReader rq(diag, tc.get("request"), "request");
  config::MapReader ex(diag, tc.get("expect"), "expect");
  const std::string method =
      rq.get("method").IsDefined()
          ? config::readString(diag, rq.get("method"), "method").value_or("GET")
          : "GET";
  const std::string url = config::readString(diag, rq.get("url"), "url").value_or("");
  std::string why;
  auto req = requestFromUrl(method, url, why);
  if (!req) {
    diag.error(rq.get("url"), why);
    return CaseResult::kSkipped;
  }
  if (const auto t = rq.get("token"); t.IsDefined()) {
    const auto tname = config::readString(diag, t, "token");
    if (tname && tokens.count(*tname) == 0) {
      diag.error(t, "unknown token '" + *tname + "'");
      return CaseResult::kSkipped;
    }
    if (tname) req->headers.add("Authorization", "Bearer " + tokens.at(*tname));
  }
  if (const auto h = rq.get("headers"); h.IsDefined()) {
    config::MapReader hm(diag, h, "headers");
    for (auto it = h.begin(); hm.valid() && it != h.end(); ++it) {
      hm.get(it->first.Scalar());
      if (auto v = config::readString(diag, it->second, "header"))
        req->headers.add(it->first.Scalar(), *v);
    }
  }
  req->client_ip =
      IpAddress::parse(rq.get("source_ip").IsDefined()
                           ? config::readString(diag, rq.get("source_ip"), "source_ip").value_or("")
                           : "127.0.0.1")
          .value_or(IpAddress::v4(0x7f000001));
  req->listener = "test";
  if (!diag.ok()) return CaseResult::kStop;

  std::int64_t case_now = now;  // a case may decide at another time (office hours)
  if (const auto n = tc.get("now"); n.IsDefined()) case_now = readTime(diag, n).value_or(now);
  if (!diag.ok()) return CaseResult::kStop;

  const auto ev = engine::evaluate(snapshot, *req, case_now, true);
  const auto& d = ev.decision;
  const std::vector<std::string> diffs = differences(diag, ex, ev);
  if (diffs.empty()) {
    std::cout << "PASS " << name << "\n";
    return CaseResult::kPassed;
  }
  std::cout << "FAIL " << name << "\n";
  for (const auto& line : diffs)
    std::cout << "     " << line << "\n";
  std::cout << "     decided: " << (d.allow ? "allow" : "deny") << " " << d.status << " "
            << d.reasonCode() << (d.detail.empty() ? "" : " — " + d.detail) << "\n";
  return CaseResult::kFailed;
}

}  // namespace

int runCheck(const std::string& config, const config::FunctionRuntimes& runtimes) {
  telemetry::Metrics metrics;
  auto loaded =
      config::loadPolicy(config, metrics, SystemClock().unixSeconds(), nullptr, &runtimes);
  for (const auto& e : loaded.errors)
    std::cerr << e.toString() << "\n";
  if (!loaded.errors.empty()) return kExitConfigError;
  for (const auto& w : loaded.warnings)
    std::cerr << "warning: " << w << "\n";
  std::cout << fmt::format("{}: ok, policy {}: {} route(s), {} provider(s)\n", config,
                           loaded.snapshot->version, loaded.snapshot->routes.size(),
                           loaded.snapshot->providers.size());
  return kExitOk;
}

int runEval(const EvalOptions& options, const config::FunctionRuntimes& runtimes) {
  telemetry::Metrics metrics;
  const auto snapshot = loadOrReport(options.config, runtimes, metrics);
  if (!snapshot) return kExitConfigError;
  std::string why;
  auto request = requestFromUrl(options.method, options.url, why);
  if (!request) {
    std::cerr << "eval: " << why << "\n";
    return kExitConfigError;
  }
  for (const auto& h : options.headers) {
    if (!addHeaderLine(*request, h)) {
      std::cerr << "eval: header '" << h << "' is not 'Name: value'\n";
      return kExitConfigError;
    }
  }
  const auto ip = IpAddress::parse(options.source_ip);
  if (!ip) {
    std::cerr << "eval: --source-ip '" << options.source_ip << "' is not an IP address\n";
    return kExitConfigError;
  }
  request->client_ip = *ip;
  request->listener = "eval";
  const std::int64_t now = options.now.value_or(SystemClock().unixSeconds());
  const engine::Evaluation ev = engine::evaluate(*snapshot, *request, now, options.explain);
  printDecision(ev);
  if (options.explain) {
    std::cout << "trace:\n";
    for (const auto& note : ev.trace) {
      std::cout << fmt::format("  {:<13} {}{}\n", note.stage, note.verdict,
                               note.detail.empty() ? "" : "  — " + note.detail);
    }
  }
  return ev.decision.allow ? kExitOk : kExitDenied;
}

int runToken(const TokenOptions& options) {
  const auto now = SystemClock().unixSeconds();
  nlohmann::json claims = nlohmann::json::object();
  claims["iss"] = options.iss;
  if (!options.sub.empty()) claims["sub"] = options.sub;
  if (options.aud.size() == 1) claims["aud"] = options.aud[0];
  if (options.aud.size() > 1) claims["aud"] = options.aud;
  if (!options.scope.empty()) claims["scope"] = options.scope;
  const auto ttl = signedSeconds(options.ttl);
  if (!ttl) {
    std::cerr << "token: --ttl '" << options.ttl << "' is not a duration\n";
    return kExitConfigError;
  }
  claims["iat"] = options.iat.value_or(now);
  claims["exp"] = options.exp.value_or(now + *ttl);
  if (options.nbf) claims["nbf"] = *options.nbf;
  for (const auto& c : options.claims) {
    const std::size_t eq = c.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "token: --claim '" << c << "' is not name=value\n";
      return kExitConfigError;
    }
    const std::string value = c.substr(eq + 1);
    auto parsed = nlohmann::json::parse(value, nullptr, false);
    claims[c.substr(0, eq)] = parsed.is_discarded() ? nlohmann::json(value) : parsed;
  }
  auto token = mint(options.key_file, options.alg, claims);
  if (!token) {
    std::cerr << "token: " << token.error().message << "\n";
    return kExitConfigError;
  }
  std::cout << *token << "\n";
  return kExitOk;
}

int runTest(const std::string& config, const std::vector<std::string>& case_files,
            const config::FunctionRuntimes& runtimes) {
  telemetry::Metrics metrics;
  const auto snapshot = loadOrReport(config, runtimes, metrics);
  if (!snapshot) return kExitConfigError;
  const std::int64_t system_now = SystemClock().unixSeconds();
  int passed = 0;
  int failed = 0;
  bool bad_file = false;

  for (const auto& file : case_files) {
    config::Diagnostics diag(file);
    YAML::Node root;
    try {
      root = YAML::LoadFile(file);
    } catch (const YAML::BadFile&) {
      diag.fileError("cannot read the test file");
    } catch (const YAML::Exception& e) {
      diag.error(e.mark, "YAML syntax error: " + e.msg);
    }
    std::map<std::string, std::string> tokens;
    std::vector<YAML::Node> cases;
    std::int64_t now = system_now;
    if (diag.ok()) {
      config::MapReader top(diag, root, "the test file");
      // `now`: the clock of the file's tokens and cases (functions see it as time.now()).
      if (const auto n = top.get("now"); n.IsDefined()) now = readTime(diag, n).value_or(now);
      if (const auto t = top.get("tokens"); t.IsDefined()) tokens = mintTokens(diag, t, now);
      if (const auto c = top.get("cases"); c.IsSequence()) {
        for (const auto& item : c)
          cases.push_back(item);
      } else {
        diag.error(root, "a test file needs a 'cases' list");
      }
    }

    for (const auto& item : cases) {
      if (!diag.ok()) break;
      const CaseResult result = runCase(diag, item, tokens, now, *snapshot);
      if (result == CaseResult::kSkipped) continue;
      if (result == CaseResult::kStop) break;
      ++(result == CaseResult::kPassed ? passed : failed);
    }
    for (const auto& e : diag.errors())
      std::cerr << e.toString() << "\n";
    if (!diag.ok()) bad_file = true;
  }
  std::cout << fmt::format("{} passed, {} failed\n", passed, failed);
  if (bad_file) return kExitConfigError;
  return failed == 0 ? kExitOk : kExitDenied;
}

}  // namespace portcullis::app
