#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws/credentials.h"

// AWS Signature Version 4 (AWS4-HMAC-SHA256, signature in the Authorization header) for the
// requests portcullis sends to AWS APIs, such as Lambda Invoke. Pure: no I/O and no clock
// (the caller passes the time), so the AWS test suite runs as plain unit tests. Canonical
// URIs follow the rules for every service but S3 (dot segments removed, each segment
// encoded again); S3 is not a target. docs/functions-lambda.md.
namespace portcullis::aws {

// An HTTP request exactly as it will be sent.
struct SignableRequest {
  std::string method;  // "POST"
  std::string path;    // as sent, percent-encoded, starting with '/'
  std::string query;   // as sent, without '?'; empty when there is none
  // In the order sent; names in any case. Must include Host (and the port when it is not
  // the scheme's default), because AWS recomputes the signature from what it receives.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

inline constexpr std::string_view kSigV4Algorithm = "AWS4-HMAC-SHA256";

// AWS's URI encoding: every byte but A-Z a-z 0-9 '-' '.' '_' '~' becomes %XY (upper-case
// hex), '/' too unless `keep_slash`. Also what a caller uses to put a Lambda function name
// or ARN into a path segment: "/2015-03-31/functions/" + uriEncode(name) + "/invocations".
std::string uriEncode(std::string_view bytes, bool keep_slash = false);

// The canonical URI of a path as sent: '.' and '..' segments removed, runs of '/' merged
// (the trailing '/' kept), each segment URI-encoded once more ("/a%20b" → "/a%2520b").
std::string canonicalUri(std::string_view path);

// The canonical query string: parameters split on '&' (a name without '=' gets an empty
// value), percent-escapes decoded ('+' stays a plus), names and values URI-encoded, sorted
// by name then value, joined with '&'.
std::string canonicalQuery(std::string_view query);

struct CanonicalRequest {
  std::string text;            // the canonical request, as hashed into the string to sign
  std::string signed_headers;  // "host;x-amz-date": lower-case names joined with ';'
};

// Signs every header of `request`: names lower-cased and sorted, values trimmed with runs
// of spaces collapsed, repeated names joined with ','. The payload hash is SHA-256 of body.
CanonicalRequest canonicalRequest(const SignableRequest& request);

// "20150830/us-east-1/service/aws4_request"; `amz_date` is YYYYMMDDTHHMMSSZ.
std::string credentialScope(std::string_view amz_date, std::string_view region,
                            std::string_view service);

// "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hex sha256 of canonical_request}".
std::string stringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request);

// The derived key (32 raw bytes) for one day, region and service; `date` is YYYYMMDD (or a
// full amz_date: only its first 8 characters are used). Callers may keep it for the day.
std::string signingKey(std::string_view secret_access_key, std::string_view date,
                       std::string_view region, std::string_view service);

// Lower-case hex HMAC-SHA256 of `string_to_sign` under `signing_key`.
std::string signature(std::string_view signing_key, std::string_view string_to_sign);

// "AWS4-HMAC-SHA256 Credential={id}/{scope}, SignedHeaders={…}, Signature={…}".
std::string authorizationHeader(std::string_view access_key_id, std::string_view scope,
                                std::string_view signed_headers, std::string_view signature);

// Signs `request` in place for `service` in `region` at `amz_date` (see amzDate()): removes
// any Authorization, X-Amz-Date and X-Amz-Security-Token it has, adds X-Amz-Date, then
// X-Amz-Security-Token when the credentials have a session token (signed, as the AWS SDKs
// do), then Authorization. Every header present is signed except those a proxy or client
// library may rewrite in transit (User-Agent, X-Amzn-Trace-Id, Expect and the hop-by-hop
// ones: Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade).
// Nothing may change the path, query, body or a signed header afterwards.
void sign(SignableRequest& request, const Credentials& credentials, std::string_view region,
          std::string_view service, std::string_view amz_date);

// YYYYMMDDTHHMMSSZ (UTC) for Unix seconds, e.g. 1440938160 → "20150830T123600Z".
std::string amzDate(std::int64_t unix_seconds);

}  // namespace portcullis::aws
