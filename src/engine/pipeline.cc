#include "engine/pipeline.h"

#include <fmt/format.h>

#include <future>

#include "common/http/path.h"
#include "common/strings.h"
#include "engine/challenge.h"
#include "identity/authenticator.h"

namespace portcullis::engine {
namespace {

// Runs one request through the pipeline. Synchronous stages run inline; a stage that must
// wait (token introspection on a cache miss) suspends the evaluator, which then lives in
// the waiting client's callback (shared_ptr) until it resumes and completes.
class Evaluator final : public std::enable_shared_from_this<Evaluator> {
 public:
  Evaluator(const PolicySnapshot& snapshot, std::shared_ptr<const PolicySnapshot> keep_alive,
            const http::Request& request, const identity::Credentials& credentials,
            std::int64_t now, const Clients& clients, bool explain)
      : snapshot_(snapshot),
        keep_alive_(std::move(keep_alive)),
        request_(request),
        credentials_(credentials),
        now_(now),
        clients_(clients),
        explain_(explain) {}

  // The answer for a request refused before any stage runs (repeatedInput(),
  // refusedPathParams()): whatever the route's mode, since how readers take the request is
  // not a policy question. The gatekeeper checks both itself, before the cache.
  Evaluation refuse(const Route* route, std::string detail) {
    ev_.route = route;
    if (route != nullptr) note("route", route->name, "");
    Decision& d = ev_.decision;
    d.allow = false;
    d.outcome = Outcome::kDeny;
    d.reason = Reason::kBadRequest;
    d.status = reasonInfo(Reason::kBadRequest).status;
    d.detail = std::move(detail);
    note("decision", "deny", d.detail);
    return std::move(ev_);
  }

  // Returns the evaluation when it completed inline; otherwise nullopt, and `done` is
  // called exactly once when it completes.
  std::optional<Evaluation> start(const Route* matched, EvaluationDone done) {
    done_ = std::move(done);
    ev_.route = matched;
    if (ev_.route == nullptr) {
      note("route", "none",
           "no route matches " + request_.method + " " + request_.host + request_.path);
      if (snapshot_.default_allow) return allow("default: allow");
      return deny(Reason::kNoRoute, "no route matches and default is deny");
    }
    const Route& route = *ev_.route;
    note("route", route.name, "");
    if (!route.allow) {
      return deny(Reason::kRouteDenied, "route " + route.name + " says allow: false");
    }
    if (route.providers.empty()) return afterAuthentication();
    return authenticateFrom(0);
  }

 private:
  // ---- authenticate ------------------------------------------------------------------
  //
  // Tries the route's providers in order; the first that finds a credential decides unless
  // its verdict says the credential belongs to someone else (another issuer, an unknown
  // key). When a route accepts several providers, a credential that names its issuer
  // (unverified: a JWT's `iss`) goes to the provider of that issuer, so it is never tried
  // against every key set. Each provider's kind is behind identity::Authenticator; a kind
  // that must wait (introspection on a cache miss) suspends the evaluator.
  std::optional<Evaluation> authenticateFrom(std::size_t index) {
    const Route& route = *ev_.route;
    const bool by_issuer = route.providers.size() > 1;
    for (; index < route.providers.size(); ++index) {
      const identity::Provider& provider = *route.providers[index];
      const std::string_view token = credentials_.at(index);
      if (token.empty()) continue;
      saw_token_ = true;
      const identity::Authenticator& kind = provider.authenticator();
      if (by_issuer && kind.claimsIssuer()) {
        if (token.data() != peeked_token_.data() || token.size() != peeked_token_.size()) {
          peeked_token_ = token;
          issuer_ = kind.claimedIssuer(token);
        }
        if (issuer_ && *issuer_ != provider.policy().issuer && routeHasIssuer(route, *issuer_)) {
          // Another provider of this route owns the token; if that one does not find it
          // where it looks, this is the answer.
          if (!first_error_) {
            first_error_ = Error{Reason::kIssuerMismatch, "provider " + provider.name() +
                                                              " found a token of another issuer"};
          }
          continue;
        }
      }
      auto verdict = kind.authenticate(
          token, identity::AuthContext{snapshot_.rbac, now_, clients_.introspector},
          [self = shared_from_this(), index](identity::Authenticator::Verdict later) {
            self->resumeAfterProvider(index, std::move(later));
          });
      if (!verdict) return std::nullopt;
      if (providerAnswered(provider, std::move(*verdict))) return afterAuthentication();
    }
    return afterAuthentication();
  }

  void resumeAfterProvider(std::size_t index, identity::Authenticator::Verdict verdict) {
    const identity::Provider& provider = *ev_.route->providers[index];
    std::optional<Evaluation> ev = providerAnswered(provider, std::move(verdict))
                                       ? afterAuthentication()
                                       : authenticateFrom(index + 1);
    if (ev) done_(std::move(*ev));
  }

  // Records one provider's verdict. True when it decides (an identity, or an error that
  // is the token's own); false to try the next provider.
  bool providerAnswered(const identity::Provider& provider, Result<identity::Identity> result) {
    if (result) {
      note("authenticate", "ok",
           fmt::format("provider={} sub={} roles={} scopes={}", provider.name(), result->subject,
                       result->roles.size(), result->scopes.size()));
      ev_.identity = std::move(*result);
      return true;
    }
    note("authenticate", std::string(reasonName(result.error().code)),
         "provider " + provider.name() + ": " + result.error().message);
    if (!first_error_) first_error_ = result.error();
    const Reason code = result.error().code;
    return code != Reason::kIssuerMismatch && code != Reason::kKeyNotFound;
  }

  static bool routeHasIssuer(const Route& route, std::string_view issuer) {
    for (const identity::Provider* p : route.providers) {
      if (p->policy().issuer == issuer) return true;
    }
    return false;
  }

  // ---- require and decide ------------------------------------------------------------

  std::optional<Evaluation> afterAuthentication() {
    const Route& route = *ev_.route;
    if (!route.providers.empty() && !ev_.identity) {
      if (!saw_token_) {
        note("authenticate", "token_missing", "no provider found a token");
        return deny(Reason::kTokenMissing, "no token in the request");
      }
      // Only a verified identity authenticates: never fall through as a success.
      const Error err =
          first_error_.value_or(Error{Reason::kInternalError, "no provider verified the token"});
      return deny(err.code, err.message);
    }
    if (auto err = route.require.check(request_, ev_.identity ? &*ev_.identity : nullptr)) {
      note("require", "fail", err->message);
      return deny(err->code, std::move(err->message));
    }
    note("require", "pass", "");
    return runFunctions(0);
  }

  // ---- functions ---------------------------------------------------------------------
  //
  // In order; every one must allow. A function that answers later (a Lambda call) suspends
  // the evaluator, which resumes on whatever thread the answer arrives.
  std::optional<Evaluation> runFunctions(std::size_t index) {
    const Route& route = *ev_.route;
    for (; index < route.functions.size(); ++index) {
      const Function& f = *route.functions[index];
      const auto started = std::chrono::steady_clock::now();
      const FunctionCall call{request_, ev_.identity ? &*ev_.identity : nullptr, ev_.ctx, route,
                              now_};
      auto answer = f.call(call, [self = shared_from_this(), index, started](FunctionAnswer a) {
        self->resumeAfterFunction(index, started, std::move(a));
      });
      if (!answer) return std::nullopt;
      if (auto ev = functionAnswered(f, started, std::move(*answer))) return ev;
    }
    return allow("");
  }

  void resumeAfterFunction(std::size_t index, std::chrono::steady_clock::time_point started,
                           FunctionAnswer answer) {
    const Function& f = *ev_.route->functions[index];
    std::optional<Evaluation> ev = functionAnswered(f, started, std::move(answer));
    if (!ev) ev = runFunctions(index + 1);
    if (ev) done_(std::move(*ev));
  }

  // Records one function's answer. Returns the evaluation when it ends the decision (deny,
  // error); nullopt to go on with the next function.
  std::optional<Evaluation> functionAnswered(const Function& f,
                                             std::chrono::steady_clock::time_point started,
                                             FunctionAnswer a) {
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count();
    const std::string_view outcome = a.outcome == Outcome::kAllow  ? "allow"
                                     : a.outcome == Outcome::kDeny ? "deny"
                                                                   : "error";
    ev_.functions.push_back({&f, outcome, micros});
    note("function " + f.name(), std::string(outcome),
         fmt::format("{}{}µs", a.reason.empty() ? "" : a.reason + "; ", micros));
    if (a.outcome == Outcome::kError) {
      return deny(a.error, "function " + f.name() + ": " + a.reason);
    }
    if (a.outcome == Outcome::kDeny) {
      Evaluation ev = deny(Reason::kFunctionDenied, "function " + f.name() + " denied" +
                                                        (a.reason.empty() ? "" : ": " + a.reason));
      Decision& d = ev.decision;
      if (!d.allow) {  // not shadowed
        d.function_reason = std::move(a.reason);
        d.status = a.status;
        for (auto& [name, value] : d.response_headers) {
          if (name == "X-Portcullis-Reason") value = std::string(d.reasonCode());
        }
      }
      return ev;
    }
    for (auto& [name, value] : a.context)
      ev_.ctx[name] = std::move(value);
    if (a.ttl) ev_.function_ttl = std::min(ev_.function_ttl.value_or(*a.ttl), *a.ttl);
    for (auto& [name, value] : a.headers)
      function_headers_.emplace_back(std::move(name), std::move(value));
    return std::nullopt;
  }

  Evaluation allow(std::string detail) {
    Decision& d = ev_.decision;
    d.allow = true;
    d.status = 200;
    d.outcome = Outcome::kAllow;
    d.reason = Reason::kNone;
    d.detail = std::move(detail);
    if (ev_.route != nullptr) addUpstreamHeaders(*ev_.route);
    note("decision", "allow", d.detail);
    return std::move(ev_);
  }

  Evaluation deny(Reason reason, std::string detail) {
    const ReasonInfo& info = reasonInfo(reason);
    Decision& d = ev_.decision;
    d.reason = reason;
    d.detail = std::move(detail);
    const bool overloaded = info.kind == ReasonKind::kOverloaded;
    d.outcome = info.kind == ReasonKind::kError || overloaded ? Outcome::kError : Outcome::kDeny;
    d.status = info.status;
    d.allow = false;
    const Route* route = ev_.route;
    d.expose_reason = route != nullptr && route->expose_reason;

    if (auto challenge = bearerChallenge(reason, route)) {
      d.response_headers.emplace_back("WWW-Authenticate", std::move(*challenge));
    }
    if (d.expose_reason) d.response_headers.emplace_back("X-Portcullis-Reason", info.name);
    if (overloaded || info.kind == ReasonKind::kLimited) {
      d.response_headers.emplace_back("Retry-After", "1");
    }

    // `on_error: allow` covers a dependency's failure only. Overload is not failure: a
    // client can cause it (flooding a function's queue, sending tokens an IdP throttles),
    // so it fails open only where the route opts in with `on_overload: allow`.
    if (route != nullptr && ((info.kind == ReasonKind::kError && route->fail_open) ||
                             (overloaded && route->fail_open_on_overload))) {
      d.allow = true;
      d.fail_open = true;
    }
    if (route != nullptr && route->mode == Route::Mode::kShadow) {
      d.allow = true;
      d.shadow = true;
    }
    if (d.allow) {
      d.status = 200;
      d.response_headers.clear();
      addUpstreamHeaders(*route);
    }
    note("decision",
         d.allow ? (d.shadow ? "allow (shadow: would deny)" : "allow (on_error: allow)") : "deny",
         fmt::format("status={} reason={} {}", d.status, info.name, d.detail));
    return std::move(ev_);
  }

  // Identity headers go upstream on allow. Every configured name is always present (empty
  // when there is no value), so a proxy that copies them replaces any client-sent copy.
  void addUpstreamHeaders(const Route& route) {
    const identity::Identity* id = ev_.identity ? &*ev_.identity : nullptr;
    auto& out = ev_.decision.upstream_headers;
    for (const identity::Provider* provider : route.providers) {
      for (const auto& [header, claim] : provider->claimsToHeaders()) {
        std::string value;
        if (id != nullptr && id->provider == provider->name() && id->claims) {
          if (const auto v = claim.find(*id->claims)) value = identity::claimToString(v);
        }
        setHeader(out, header, headerSafe(value));
      }
    }
    for (const Function* f : route.functions) {  // declared: present even when not returned
      for (const auto& name : f->spec().headers)
        setHeader(out, name, "");
    }
    for (auto& [name, value] : function_headers_)
      setHeader(out, name, headerSafe(value));
    const TemplateInput input{request_, id, &ev_.ctx};
    for (const auto& h : route.set_headers)
      setHeader(out, h.name, headerSafe(h.value.render(input)));
  }

  static void setHeader(Decision::HeaderList& list, const std::string& name, std::string value) {
    for (auto& [n, v] : list) {
      if (iequals(n, name)) {
        v = std::move(value);
        return;
      }
    }
    list.emplace_back(name, std::move(value));
  }

  void note(std::string_view stage, std::string verdict, std::string detail) {
    if (explain_) ev_.trace.push_back({std::string(stage), std::move(verdict), std::move(detail)});
  }

  const PolicySnapshot& snapshot_;
  const std::shared_ptr<const PolicySnapshot> keep_alive_;  // pinned while suspended
  const http::Request& request_;  // the front door keeps it alive until the evaluation is done
  const identity::Credentials credentials_;  // views into request_, one per route provider
  const std::int64_t now_;
  const Clients clients_;
  const bool explain_;
  EvaluationDone done_;
  Evaluation ev_;
  bool saw_token_ = false;
  std::optional<Error> first_error_;
  std::string_view peeked_token_;
  std::optional<std::string> issuer_;
  Decision::HeaderList function_headers_;
};

}  // namespace

std::optional<std::string> repeatedInput(const Route& route, const http::Request& request) {
  for (const auto* p : route.providers) {
    if (auto repeated = p->credentialSource().repeated(request)) return repeated;
  }
  for (const auto& name : route.cache_inputs.headers) {
    std::size_t n = 0;
    request.headers.forEach(name, [&](const std::string&) { ++n; });
    if (n > 1) return "header " + name;
  }
  return std::nullopt;
}

Evaluation evaluate(const PolicySnapshot& snapshot, const http::Request& request, std::int64_t now,
                    bool explain) {
  const Clients none;
  const Route* route = snapshot.findRoute(request);
  const auto credentials = route != nullptr ? identity::Credentials::read(route->providers, request)
                                            : identity::Credentials();
  auto evaluator =
      std::make_shared<Evaluator>(snapshot, nullptr, request, credentials, now, none, explain);
  // Without clients only a function can wait (a Lambda call): it answers on its own thread
  // within its timeout, and this thread waits for it.
  auto answered = std::make_shared<std::promise<Evaluation>>();
  auto later = answered->get_future();
  if (auto why = refusedPathParams(route, request)) return evaluator->refuse(nullptr, *why);
  if (route != nullptr) {
    if (auto repeated = repeatedInput(*route, request)) {
      return evaluator->refuse(route, *repeated + " appears more than once");
    }
  }
  if (auto ev = evaluator->start(route,
                                 [answered](Evaluation e) { answered->set_value(std::move(e)); })) {
    return std::move(*ev);
  }
  return later.get();
}

std::optional<Evaluation> evaluate(std::shared_ptr<const PolicySnapshot> snapshot,
                                   const http::Request& request, std::int64_t now,
                                   const Clients& clients, bool explain, EvaluationDone done) {
  const Route* route = snapshot->findRoute(request);
  const auto credentials = route != nullptr ? identity::Credentials::read(route->providers, request)
                                            : identity::Credentials();
  return evaluateRoute(std::move(snapshot), route, request, credentials, now, clients, explain,
                       std::move(done));
}

std::optional<Evaluation> evaluateRoute(std::shared_ptr<const PolicySnapshot> snapshot,
                                        const Route* route, const http::Request& request,
                                        const identity::Credentials& credentials, std::int64_t now,
                                        const Clients& clients, bool explain, EvaluationDone done) {
  const PolicySnapshot& ref = *snapshot;
  auto evaluator = std::make_shared<Evaluator>(ref, std::move(snapshot), request, credentials, now,
                                               clients, explain);
  return evaluator->start(route, std::move(done));
}

const Route* PolicySnapshot::findRoute(const http::Request& request) const {
  // A path with ;parameters is routed as a servlet container serves it (without them):
  // `/admin;x/users` must meet the route of `/admin/users`, not a catch-all.
  std::string stripped;
  std::string_view path = request.path;
  if (http::hasPathParams(path)) {
    stripped = http::stripPathParams(path);
    path = stripped;
  }
  for (const Route& route : routes) {
    if (route.match.matches(request.host, path, request.method)) return &route;
  }
  return nullptr;
}

std::optional<std::string> refusedPathParams(const Route* route, const http::Request& request) {
  if (!http::hasPathParams(request.path) || (route != nullptr && route->path_params)) {
    return std::nullopt;
  }
  return route == nullptr ? std::string("the path has ;parameters and no route matches it")
                          : "the path has ;parameters and route " + route->name +
                                " does not allow them (path_params)";
}

const Function* PolicySnapshot::function(std::string_view name) const {
  for (const auto& f : functions) {
    if (f->name() == name) return f.get();
  }
  return nullptr;
}

const identity::Provider* PolicySnapshot::provider(std::string_view name) const {
  for (const auto& p : providers) {
    if (p->name() == name) return p.get();
  }
  return nullptr;
}

}  // namespace portcullis::engine
