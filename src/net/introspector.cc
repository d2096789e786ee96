#include "net/introspector.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "identity/jwt/base64url.h"
#include "net/http/client.h"

namespace portcullis::net {
namespace {

std::string base64(std::string_view in) {
  // Standard base64 with padding, for HTTP Basic credentials.
  std::string out = identity::base64urlEncode(in);
  for (char& c : out) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (out.size() % 4 != 0)
    out.push_back('=');
  return out;
}

asio::awaitable<engine::Introspector::Answer> call(identity::IntrospectionSpec spec,
                                                   std::string token) {
  const auto url = Url::parse(spec.url);
  if (!url) co_return fail(Reason::kProviderUnavailable, "introspection_url is not a URL");
  HttpCall call;
  call.method = "POST";
  call.url = *url;
  call.timeout = spec.timeout;
  call.max_body_bytes = spec.max_bytes;
  call.ca_file = spec.ca_file;
  call.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  call.headers.emplace_back("Accept", "application/json");
  if (!spec.client_id.empty()) {
    call.headers.emplace_back("Authorization", "Basic " + base64(formEncode(spec.client_id) + ":" +
                                                                 formEncode(spec.client_secret)));
  }
  call.body = "token=" + formEncode(token) + "&token_type_hint=access_token";
  auto reply = co_await httpCall(std::move(call));
  if (!reply) {
    co_return fail(Reason::kProviderUnavailable, "introspection: " + reply.error().message);
  }
  // 429, or 503 with Retry-After, is the endpoint rationing its capacity, which a client
  // sending many tokens can bring about: overload, which `on_error: allow` does not open.
  if (reply->status == 429 || (reply->status == 503 && reply->header("retry-after") != nullptr)) {
    co_return fail(Reason::kProviderOverloaded,
                   "introspection endpoint answered HTTP " + std::to_string(reply->status));
  }
  if (reply->status != 200) {
    co_return fail(Reason::kProviderUnavailable,
                   "introspection endpoint answered HTTP " + std::to_string(reply->status));
  }
  auto doc = nlohmann::json::parse(reply->body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    co_return fail(Reason::kProviderUnavailable, "introspection answer is not a JSON object");
  }
  // nlohmann reads the answer, as it always has (what it accepts is unchanged); the engine
  // reads claims from the compact form.
  co_return std::make_shared<const json::Doc>(json::Doc::fromJson(doc));
}

}  // namespace

std::string formEncode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '*') {
      out.push_back(ch);
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

void HttpIntrospector::introspect(const identity::IntrospectionSpec& spec, std::string token,
                                  std::function<void(Answer)> done) {
  const std::string key = spec.url + "|" + sha256Hex(token);
  auto& waiters = in_flight_[key];
  waiters.push_back(std::move(done));
  if (waiters.size() > 1) return;  // a call for this token is already on its way
  asio::co_spawn(io_, call(spec, std::move(token)),
                 [this, key](std::exception_ptr error, Answer answer) {
                   if (error) answer = fail(Reason::kInternalError, "introspection failed");
                   auto node = in_flight_.extract(key);
                   if (node.empty()) return;
                   for (auto& waiter : node.mapped())
                     waiter(answer);
                 });
}

}  // namespace portcullis::net
