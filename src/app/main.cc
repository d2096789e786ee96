#include <CLI/CLI.hpp>

#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "app/commands.h"
#include "app/runtimes.h"

int main(int argc, char** argv) {
  using namespace portcullis::app;
  // Operational logs go to stderr for every subcommand; stdout carries results and audit.
  spdlog::set_default_logger(spdlog::stderr_color_mt("portcullis"));
  // One set of function runtimes for every command that compiles a policy.
  const portcullis::config::FunctionRuntimes runtimes = functionRuntimes();
  CLI::App cli{"portcullis: an identity-aware gatekeeper for the HTTP edge"};
  cli.require_subcommand(1);
  cli.set_version_flag("--version", PORTCULLIS_VERSION);

  ServeOptions serve;
  auto* serve_cmd =
      cli.add_subcommand("serve", "Run the listeners; SIGHUP or a file change reloads");
  serve_cmd->add_option("-c,--config", serve.config, "Policy file")->required();
  serve_cmd->add_option("--ready-file", serve.ready_file,
                        "Write the bound listener addresses here as JSON once serving");
  serve_cmd->add_option("--log-level", serve.log_level, "trace|debug|info|warn|error");

  std::string check_config;
  auto* check_cmd = cli.add_subcommand("check", "Validate and compile a policy; exit 2 on error");
  check_cmd->add_option("-c,--config", check_config, "Policy file")->required();

  EvalOptions eval;
  auto* eval_cmd = cli.add_subcommand("eval", "Decide one request offline; exit 0 allow, 1 deny");
  eval_cmd->add_option("-c,--config", eval.config, "Policy file")->required();
  eval_cmd->add_option("--method,-X", eval.method, "HTTP method");
  eval_cmd->add_option("--url", eval.url, "Full URL: scheme://host/path?query")->required();
  eval_cmd->add_option("-H,--header", eval.headers, "Request header 'Name: value' (repeatable)");
  eval_cmd->add_option("--source-ip", eval.source_ip, "Client address");
  eval_cmd->add_option("--now", eval.now, "Evaluate at this Unix time");
  eval_cmd->add_flag("--explain", eval.explain, "Print every stage's verdict");

  std::string test_config;
  std::vector<std::string> test_files;
  auto* test_cmd = cli.add_subcommand("test", "Run policy test cases; exit 1 on a failure");
  test_cmd->add_option("-c,--config", test_config, "Policy file")->required();
  test_cmd->add_option("cases", test_files, "Test case files (YAML)")->required();

  TokenOptions token;
  auto* token_cmd = cli.add_subcommand("token", "Mint a development JWT (local testing only)");
  token_cmd->add_option("--key", token.key_file, "Private JWK file")->required();
  token_cmd->add_option("--alg", token.alg, "Algorithm (default: the key's alg)");
  token_cmd->add_option("--iss", token.iss, "Issuer");
  token_cmd->add_option("--sub", token.sub, "Subject");
  token_cmd->add_option("--aud", token.aud, "Audience (repeatable)");
  token_cmd->add_option("--scope", token.scope, "Space-separated scopes");
  token_cmd->add_option("--ttl", token.ttl, "Lifetime, e.g. 1h");
  token_cmd->add_option("--claim", token.claims, "Extra claim name=value (JSON values allowed)");
  token_cmd->add_option("--exp", token.exp, "Expiry (Unix time), overrides --ttl");
  token_cmd->add_option("--nbf", token.nbf, "Not-before (Unix time)");
  token_cmd->add_option("--iat", token.iat, "Issued-at (Unix time)");

  HaproxyConfigOptions haproxy;
  auto* haproxy_cmd =
      cli.add_subcommand("haproxy-config", "Print the HAProxy config and SPOE file for a policy");
  haproxy_cmd->add_option("-c,--config", haproxy.config, "Policy file")->required();
  haproxy_cmd->add_option("--haproxy-version", haproxy.haproxy_version, "2.6 (default) or 3.1+");
  haproxy_cmd->add_option("--bind", haproxy.bind, "The protected frontend's bind address");
  haproxy_cmd->add_option("--upstream", haproxy.upstream,
                          "The backend server for allowed requests");
  haproxy_cmd->add_option("--agent", haproxy.agent,
                          "portcullis' SPOE address (default: listeners.spoe)");
  haproxy_cmd->add_option("--out-dir", haproxy.out_dir,
                          "Write haproxy.cfg and portcullis-spoe.conf here");
  haproxy_cmd->add_flag("--haproxy-cache", haproxy.haproxy_cache,
                        "Cache allows in an HAProxy stick table; ask the agent only on a miss");
  haproxy_cmd->add_option("--haproxy-cache-size", haproxy.haproxy_cache_size,
                          "Stick-table entries for --haproxy-cache (default 100000)");
  haproxy_cmd->add_option("--processing-timeout", haproxy.processing_timeout,
                          "SPOE timeout processing, e.g. 2s (default: the slowest route's "
                          "budget plus 500ms, at least 1s)");

  cli.add_subcommand("version", "Print the version");

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = cli.exit(e);
    return code == 0 ? 0 : kExitConfigError;
  }

  if (*serve_cmd) return runServe(serve, runtimes);
  if (*check_cmd) return runCheck(check_config, runtimes);
  if (*eval_cmd) return runEval(eval, runtimes);
  if (*test_cmd) return runTest(test_config, test_files, runtimes);
  if (*token_cmd) return runToken(token);
  if (*haproxy_cmd) return runHaproxyConfig(haproxy, runtimes);
  std::cout << "portcullis " << PORTCULLIS_VERSION << "\n";
  return kExitOk;
}
