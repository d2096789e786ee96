#include "aws/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>

#include "common/strings.h"

namespace portcullis::aws {

namespace {

constexpr char kUpperHex[] = "0123456789ABCDEF";

std::string hmacSha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  HMAC(sha256Md(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data(), &len);
  return std::string(reinterpret_cast<const char*>(md.data()), len);
}

// Header values are signed with leading and trailing blanks removed and every run of
// spaces inside reduced to one.
std::string canonicalHeaderValue(std::string_view value) {
  const auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!value.empty() && blank(value.front()))
    value.remove_prefix(1);
  while (!value.empty() && blank(value.back()))
    value.remove_suffix(1);
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out.push_back(c);
  }
  return out;
}

bool unsignedHeader(std::string_view lower_name) {
  static constexpr std::array<std::string_view, 11> kNames = {
      "authorization",    "user-agent", "x-amzn-trace-id",   "expect",  "connection", "keep-alive",
      "proxy-connection", "te",         "transfer-encoding", "trailer", "upgrade"};
  return std::find(kNames.begin(), kNames.end(), lower_name) != kNames.end();
}

}  // namespace

std::string uriEncode(std::string_view bytes, bool keep_slash) {
  std::string out;
  out.reserve(bytes.size());
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (isUnreserved(u) || (keep_slash && c == '/')) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kUpperHex[u >> 4]);
      out.push_back(kUpperHex[u & 0xf]);
    }
  }
  return out;
}

std::string canonicalUri(std::string_view path) {
  // RFC 3986 §5.2.4 on segments, plus AWS's merging of empty segments ("//").
  std::vector<std::string_view> kept;
  bool trailing_slash = false;
  std::size_t start = (!path.empty() && path.front() == '/') ? 1 : 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    const bool last = end == path.size();
    if (segment == "..") {
      if (!kept.empty()) kept.pop_back();
    } else if (!segment.empty() && segment != ".") {
      kept.push_back(segment);
    }
    if (last) trailing_slash = segment.empty() || segment == "." || segment == "..";
    start = end + 1;
  }
  std::string out = "/";
  for (std::size_t i = 0; i < kept.size(); ++i) {
    if (i > 0) out.push_back('/');
    out += uriEncode(kept[i]);
  }
  if (trailing_slash && !kept.empty()) out.push_back('/');
  return out;
}

std::string canonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  for (const auto& [name, value] : queryParameters(query))
    params.emplace_back(uriEncode(name), uriEncode(value));
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

namespace {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

CanonicalRequest buildCanonical(std::string_view method, std::string_view path,
                                std::string_view query, const HeaderList& sent,
                                std::string_view body) {
  HeaderList headers;
  headers.reserve(sent.size());
  for (const auto& [name, value] : sent) {
    headers.emplace_back(toLower(name), canonicalHeaderValue(value));
  }
  // Stable: the values of a repeated name stay in the order they are sent.
  std::stable_sort(headers.begin(), headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  CanonicalRequest out;
  std::string& text = out.text;
  text.reserve(256 + path.size() + query.size());
  text += method;
  text.push_back('\n');
  text += canonicalUri(path);
  text.push_back('\n');
  text += canonicalQuery(query);
  text.push_back('\n');
  for (std::size_t i = 0; i < headers.size(); ++i) {
    if (i > 0 && headers[i].first == headers[i - 1].first) {
      text.back() = ',';  // replaces the previous value's '\n'
    } else {
      text += headers[i].first;
      text.push_back(':');
      if (!out.signed_headers.empty()) out.signed_headers.push_back(';');
      out.signed_headers += headers[i].first;
    }
    text += headers[i].second;
    text.push_back('\n');
  }
  text.push_back('\n');
  text += out.signed_headers;
  text.push_back('\n');
  text += sha256Hex(body);
  return out;
}

}  // namespace

CanonicalRequest canonicalRequest(const SignableRequest& request) {
  return buildCanonical(request.method, request.path, request.query, request.headers, request.body);
}

std::string credentialScope(std::string_view amz_date, std::string_view region,
                            std::string_view service) {
  std::string out(amz_date.substr(0, 8));
  out.push_back('/');
  out += region;
  out.push_back('/');
  out += service;
  out += "/aws4_request";
  return out;
}

std::string stringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request) {
  std::string out(kSigV4Algorithm);
  out.push_back('\n');
  out += amz_date;
  out.push_back('\n');
  out += scope;
  out.push_back('\n');
  out += sha256Hex(canonical_request);
  return out;
}

std::string signingKey(std::string_view secret_access_key, std::string_view date,
                       std::string_view region, std::string_view service) {
  std::string secret = "AWS4";
  secret += secret_access_key;
  std::string key = hmacSha256(secret, date.substr(0, 8));
  OPENSSL_cleanse(secret.data(), secret.size());
  key = hmacSha256(key, region);
  key = hmacSha256(key, service);
  return hmacSha256(key, "aws4_request");
}

std::string signature(std::string_view signing_key, std::string_view string_to_sign) {
  return hex(hmacSha256(signing_key, string_to_sign));
}

std::string authorizationHeader(std::string_view access_key_id, std::string_view scope,
                                std::string_view signed_headers, std::string_view signature) {
  std::string out(kSigV4Algorithm);
  out += " Credential=";
  out += access_key_id;
  out.push_back('/');
  out += scope;
  out += ", SignedHeaders=";
  out += signed_headers;
  out += ", Signature=";
  out += signature;
  return out;
}

void sign(SignableRequest& request, const Credentials& credentials, std::string_view region,
          std::string_view service, std::string_view amz_date) {
  auto& headers = request.headers;
  std::erase_if(headers, [](const auto& h) {
    return iequals(h.first, "authorization") || iequals(h.first, "x-amz-date") ||
           iequals(h.first, "x-amz-security-token");
  });
  headers.emplace_back("X-Amz-Date", std::string(amz_date));
  if (!credentials.session_token.empty()) {
    headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }

  // The canonical request covers the signed subset; the request keeps every header.
  HeaderList signed_headers;
  signed_headers.reserve(headers.size());
  for (const auto& h : headers) {
    if (!unsignedHeader(toLower(h.first))) signed_headers.push_back(h);
  }
  const CanonicalRequest canonical =
      buildCanonical(request.method, request.path, request.query, signed_headers, request.body);
  const std::string scope = credentialScope(amz_date, region, service);
  const std::string key = signingKey(credentials.secret_access_key, amz_date, region, service);
  const std::string sig = signature(key, stringToSign(amz_date, scope, canonical.text));
  headers.emplace_back("Authorization", authorizationHeader(credentials.access_key_id, scope,
                                                            canonical.signed_headers, sig));
}

std::string amzDate(std::int64_t unix_seconds) {
  using namespace std::chrono;
  const sys_seconds tp{seconds{unix_seconds}};
  const sys_days day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss hms{tp - day};
  std::array<char, 32> buf{};
  std::snprintf(buf.data(), buf.size(), "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return std::string(buf.data());
}

}  // namespace portcullis::aws
