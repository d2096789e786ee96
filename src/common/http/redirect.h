#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::http {

// Where a browser may be sent after signing in (the `rd` of /.portcullis/start, the page
// that asked for the login): never to a host the operator did not list (an open redirect
// turns the company's login into a phishing relay).
struct RedirectPolicy {
  // "app.example.com" (that host on the default port), "app.example.com:8443" (that port),
  // ".example.com" (example.com and every name under it, default port). Lower case.
  std::vector<std::string> hosts;
  bool allow_http = false;  // http:// as well as https:// (a local development setup)
};

// `target` when it is safe to put in a Location field, else nullopt. Safe: a path on this
// site ("/orders?x=1": one '/', then not a second '/' or '\'), or an absolute http(s) URL
// whose host is listed. Refused, whatever follows: control characters, spaces and '\'
// anywhere (browsers read "\" as "/" and drop tabs and newlines inside URLs), userinfo
// ("https://listed@evil"), other schemes ("javascript:"), scheme-relative ("//evil") and
// path forms that a browser or a second decoding turns into one ("/%2F%2Fevil",
// "/%5Cevil"), and hosts that are not plain DNS names (IDN must arrive as punycode).
std::optional<std::string> safeRedirect(std::string_view target, const RedirectPolicy& policy);

}  // namespace portcullis::http
