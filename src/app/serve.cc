// `portcullis serve`: compiles the policy, then hands it to the server (app/server.h),
// which opens the listeners on every worker and runs the control loop (signals, file
// watching, reloads) on the main thread.
#include <csignal>
#include <iostream>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>

#include "app/commands.h"
#include "app/server.h"
#include "common/clock.h"
#include "config/compiler.h"
#include "functions/lambda/runtime.h"
#include "net/jwks_service.h"
#include "telemetry/metrics.h"

namespace portcullis::app {

int runServe(const ServeOptions& options, const config::FunctionRuntimes& runtimes) {
  spdlog::set_level(spdlog::level::from_str(options.log_level));
  std::signal(SIGPIPE, SIG_IGN);

  telemetry::Metrics metrics;
  // Lambda runtimes declare their series while the policy compiles: into this registry.
  functions::lambda::attachMetrics(metrics);
  boost::asio::io_context control(1);
  net::JwksService jwks(control, metrics);
  auto loaded =
      config::loadPolicy(options.config, metrics, SystemClock().unixSeconds(), &jwks, &runtimes);
  if (!loaded.errors.empty()) {
    for (const auto& e : loaded.errors)
      std::cerr << e.toString() << "\n";
    std::cerr << "portcullis: not starting: " << loaded.errors.size() << " problem(s) in "
              << options.config << "\n";
    return kExitConfigError;
  }
  for (const auto& w : loaded.warnings)
    spdlog::warn("{}", w);
  const auto& settings = loaded.snapshot->settings;
  if (settings.listeners.authz.empty() && settings.listeners.admin.empty() &&
      settings.listeners.spoe.empty()) {
    std::cerr << options.config
              << ": no listener configured (listeners.authz, listeners.spoe, listeners.admin)\n";
    return kExitConfigError;
  }

  for (const auto& f : loaded.snapshot->functions)
    f->prepare();
  // The server's gatekeeper holds the only reference: a reload that replaces the policy
  // frees it, and with it the functions and key sets only it used.
  Server server(options, runtimes, std::move(loaded.snapshot), metrics, control, jwks);
  if (!server.listen()) return kExitConfigError;
  server.run();
  return kExitOk;
}

}  // namespace portcullis::app
