#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace portcullis::config {
class FunctionRuntimes;
}

// The subcommands. Those that compile a policy take the program's function runtimes
// (app/runtimes.h).
namespace portcullis::app {

// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitDenied = 1;       // eval: denied; test: a case failed
inline constexpr int kExitConfigError = 2;  // bad config, bad arguments, cannot start

struct ServeOptions {
  std::string config;
  std::string ready_file;  // written once every listener is bound: {"authz":"IP:PORT",…}
  std::string log_level = "info";
};
int runServe(const ServeOptions& options, const config::FunctionRuntimes& runtimes);

int runCheck(const std::string& config, const config::FunctionRuntimes& runtimes);

struct EvalOptions {
  std::string config;
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string source_ip = "127.0.0.1";
  bool explain = false;
  std::optional<std::int64_t> now;  // Unix seconds; default: the clock
};
int runEval(const EvalOptions& options, const config::FunctionRuntimes& runtimes);

int runTest(const std::string& config, const std::vector<std::string>& case_files,
            const config::FunctionRuntimes& runtimes);

struct TokenOptions {
  std::string key_file;
  std::string alg;  // default: the JWK's alg
  std::string iss = "portcullis-dev";
  std::string sub;
  std::vector<std::string> aud;
  std::string scope;
  std::string ttl = "1h";
  std::vector<std::string> claims;  // "name=value"; value parsed as JSON when it is JSON
  std::optional<std::int64_t> exp, nbf, iat;
};
int runToken(const TokenOptions& options);

struct HaproxyConfigOptions {
  std::string config;
  std::string haproxy_version = "2.6";
  std::string bind = "*:8080";                 // the protected frontend
  std::string upstream = "127.0.0.1:3000";     // where allowed requests go
  std::string agent;                           // default: listeners.spoe
  std::string out_dir;                         // write haproxy.cfg + portcullis-spoe.conf here
  bool haproxy_cache = false;                  // cache allows in a stick table (--haproxy-cache)
  std::uint64_t haproxy_cache_size = 100'000;  // stick-table entries
  // SPOE `timeout processing` (--processing-timeout); empty: derived from the policy.
  std::string processing_timeout;
};
int runHaproxyConfig(const HaproxyConfigOptions& options, const config::FunctionRuntimes& runtimes);

}  // namespace portcullis::app
