#include "frontends/proxy/forwarding.h"

#include <array>
#include <charconv>
#include <optional>

#include <boost/beast/http/status.hpp>

#include "audit/json_writer.h"
#include "common/strings.h"

namespace portcullis::frontends::proxy {
namespace {

constexpr std::array<std::string_view, 7> kHopByHop = {
    "connection", "keep-alive",        "proxy-connection", "te",
    "trailer",    "transfer-encoding", "upgrade"};

void field(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

void appendNumber(std::string& out, std::uint64_t n) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, end);
}

void contentLength(std::string& out, std::uint64_t n) {
  out += "Content-Length: ";
  appendNumber(out, n);
  out += "\r\n";
}

// The framing fields of a body framed `framing`: true when it wrote one.
bool framingField(std::string& out, const Framing& framing) {
  switch (framing.kind) {
    case Framing::Kind::kLength:
      contentLength(out, framing.length);
      return true;
    case Framing::Kind::kChunked:
      field(out, "Transfer-Encoding", "chunked");
      return true;
    case Framing::Kind::kNone:
    case Framing::Kind::kUntilClose:
      break;
  }
  return false;
}

// Appends the values of every `name` field joined by ", " (the list form of RFC 9110
// §5.3), each trimmed, empty ones left out; true when it appended anything.
bool appendJoined(std::string& out, const http::Headers& headers, std::string_view name) {
  const std::size_t start = out.size();
  headers.forEach(name, [&](const std::string& v) {
    const std::string_view t = trim(v);
    if (t.empty()) return;
    if (out.size() > start) out += ", ";
    out += t;
  });
  return out.size() > start;
}

// Appends a Forwarded node (RFC 7239 §6): an IPv4 address as it is, an IPv6 one bracketed
// and quoted.
void appendForwardedNode(std::string& out, std::string_view text) {
  if (text.find(':') == std::string_view::npos) {
    out += text;
    return;
  }
  out += "\"[";
  out += text;
  out += "]\"";
}

bool isLowerHex(std::string_view s) {
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Fields the proxy writes itself, whatever the client sent.
bool ownField(std::string_view name) {
  return name == "host" || name == "content-length" || name == "expect" || name == "x-request-id" ||
         name == "x-forwarded-for" || name == "x-forwarded-proto" || name == "x-forwarded-host" ||
         name == "forwarded";
}

}  // namespace

HopByHop::HopByHop(const HeaderList& fields) {
  for (const auto& [name, value] : fields) {
    if (!iequals(name, "connection")) continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      const auto t = trim(rest.substr(0, comma));
      if (!t.empty()) listed_.push_back(t);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
}

bool fixedHopByHop(std::string_view name) {
  for (const auto fixed : kHopByHop) {
    if (iequals(name, fixed)) return true;
  }
  return false;
}

bool HopByHop::contains(std::string_view name) const {
  if (fixedHopByHop(name)) return true;
  for (const auto& listed : listed_) {
    if (iequals(name, listed)) return true;
  }
  return false;
}

bool HopByHop::connectionHas(std::string_view token) const {
  for (const auto& listed : listed_) {
    if (iequals(listed, token)) return true;
  }
  return false;
}

bool validTraceparent(std::string_view v) {
  // 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
  if (v.size() != 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  const auto trace = v.substr(3, 32);
  const auto parent = v.substr(36, 16);
  if (v.substr(0, 2) != "00" || !isLowerHex(trace) || !isLowerHex(parent) ||
      !isLowerHex(v.substr(53, 2))) {
    return false;
  }
  return trace.find_first_not_of('0') != std::string_view::npos &&
         parent.find_first_not_of('0') != std::string_view::npos;
}

void writeUpstreamHead(std::string& out, const UpstreamRequest& r) {
  const http::Headers& headers = *r.headers;
  const std::optional<HopByHop> own_hop =
      r.hop == nullptr ? std::optional<HopByHop>(std::in_place, headers.fields()) : std::nullopt;
  const HopByHop& hop = r.hop != nullptr ? *r.hop : *own_hop;
  const auto* traceparent = headers.find("traceparent");
  const bool keep_trace = traceparent != nullptr && validTraceparent(trim(*traceparent));
  const auto identityName = [&](std::string_view name) {
    if (r.identity_names == nullptr) return false;
    for (const auto& n : *r.identity_names) {
      if (n == name) return true;
    }
    return false;
  };

  std::size_t size = r.method.size() + r.target.size() + 3 * r.host.size() + 384;
  for (const auto& [name, value] : headers.fields())
    size += name.size() + value.size() + 4;
  out.reserve(out.size() + size);

  out += r.method;
  out += ' ';
  out += r.target;
  out += " HTTP/1.1\r\n";
  field(out, "Host", r.host);
  for (const auto& [name, value] : headers.fields()) {
    if (hop.contains(name) || ownField(name) || identityName(name)) continue;
    if ((name == "traceparent" || name == "tracestate") && !keep_trace) continue;
    if (name == "x-real-ip" && !r.peer_trusted) continue;
    field(out, name, value);
  }

  const std::string peer = r.peer.toString();
  out += "X-Forwarded-For: ";
  if (r.peer_trusted && appendJoined(out, headers, "x-forwarded-for")) out += ", ";
  out += peer;
  out += "\r\n";
  const auto* proto = r.peer_trusted ? headers.find("x-forwarded-proto") : nullptr;
  field(out, "X-Forwarded-Proto", proto != nullptr ? trim(*proto) : r.scheme);
  const auto* fwd_host = r.peer_trusted ? headers.find("x-forwarded-host") : nullptr;
  field(out, "X-Forwarded-Host", fwd_host != nullptr ? trim(*fwd_host) : r.host);
  out += "Forwarded: ";
  if (r.peer_trusted && appendJoined(out, headers, "forwarded")) out += ", ";
  out += "for=";
  appendForwardedNode(out, peer);
  out += ";host=";
  appendQuoted(out, r.host);
  out += ";proto=";
  out += r.scheme;
  out += "\r\n";
  field(out, "X-Request-Id", r.request_id);
  if (r.identity != nullptr) {
    for (const auto& [name, value] : *r.identity)
      field(out, name, value);
  }
  // RFC 9110 §8.6: a request whose method defines a body says when it has none.
  if (!framingField(out, r.framing) &&
      (r.method == "POST" || r.method == "PUT" || r.method == "PATCH")) {
    field(out, "Content-Length", "0");
  }
  if (r.upgrade) {
    field(out, "Connection", "upgrade");
    if (const auto* upgrade = headers.find("upgrade")) field(out, "Upgrade", *upgrade);
  }
  out += "\r\n";
}

void writeResponseHead(std::string& out, const RelayedResponse& r) {
  const HopByHop hop(*r.fields);
  out += "HTTP/1.1 ";
  appendNumber(out, static_cast<std::uint64_t>(r.status));
  out += ' ';
  out += reasonPhrase(r.status);
  out += "\r\n";
  bool has_request_id = false;
  const std::string* upgrade = nullptr;
  for (const auto& [name, value] : *r.fields) {
    if (iequals(name, "upgrade")) upgrade = &value;
    if (hop.contains(name) || iequals(name, "content-length")) continue;
    if (iequals(name, "x-request-id")) has_request_id = true;
    field(out, name, value);
  }
  if (!has_request_id && !r.request_id.empty()) field(out, "X-Request-Id", r.request_id);
  // A HEAD answer's and a 304's Content-Length say what a GET would have carried.
  if (!framingField(out, r.framing) && r.framing.kind == Framing::Kind::kNone &&
      (r.head_request || r.status == 304) && r.upstream_length) {
    contentLength(out, *r.upstream_length);
  }
  if (r.upgrade) {
    field(out, "Connection", "upgrade");
    if (upgrade != nullptr) field(out, "Upgrade", *upgrade);
  } else if (!r.keep_alive && !r.client_http10) {
    field(out, "Connection", "close");
  } else if (r.keep_alive && r.client_http10) {
    field(out, "Connection", "keep-alive");
  }
  out += "\r\n";
}

bool prefersHtml(const http::Headers& headers) {
  const auto* accept = headers.find("accept");
  if (accept == nullptr) return false;
  // A browser's navigation asks for text/html first; an API client asks for JSON or */*.
  const auto first = trim(split(*accept, ',').front());
  return first.starts_with("text/html") || first.starts_with("application/xhtml+xml");
}

void writeLocalAnswer(std::string& out, const LocalAnswer& a) {
  const std::string_view title = a.title.empty() ? reasonPhrase(a.status) : a.title;
  std::string body;
  std::string_view type;
  if (a.html) {
    type = "text/html; charset=utf-8";
    std::string text;
    const auto escape = [&text](std::string_view s) {
      for (const char c : s) {
        switch (c) {
          case '<':
            text += "&lt;";
            break;
          case '>':
            text += "&gt;";
            break;
          case '&':
            text += "&amp;";
            break;
          case '"':
            text += "&quot;";
            break;
          default:
            text += c;
        }
      }
    };
    text += "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>";
    escape(title);
    text += "</title></head>\n<body><h1>";
    escape(title);
    text += "</h1>\n<p>";
    escape(a.detail);
    text += "</p>\n";
    if (!a.reason.empty()) {  // only on routes with expose_reason, as in the JSON
      text += "<p><small>Reason: ";
      escape(a.reason);
      text += "</small></p>\n";
    }
    if (!a.request_id.empty()) {
      text += "<p><small>Request id: ";
      escape(a.request_id);
      text += "</small></p>\n";
    }
    text += "</body></html>\n";
    body = std::move(text);
  } else {
    type = "application/problem+json";
    audit::JsonWriter json(body);
    json.string("type", "about:blank");
    json.string("title", title);
    json.number("status", a.status);
    if (!a.detail.empty()) json.string("detail", a.detail);
    if (!a.reason.empty()) json.string("reason", a.reason);
    if (!a.request_id.empty()) json.string("request_id", a.request_id);
    json.close();
    body += '\n';
  }

  out += "HTTP/1.1 ";
  appendNumber(out, static_cast<std::uint64_t>(a.status));
  out += ' ';
  out += reasonPhrase(a.status);
  out += "\r\n";
  field(out, "Server", a.server);
  if (a.headers != nullptr) {
    for (const auto& [name, value] : *a.headers)
      field(out, name, value);
  }
  if (!a.request_id.empty()) field(out, "X-Request-Id", a.request_id);
  field(out, "Content-Type", type);
  field(out, "Cache-Control", "no-store");
  out += "Content-Length: ";
  appendNumber(out, body.size());
  out += "\r\n";
  if (!a.keep_alive) field(out, "Connection", "close");
  out += "\r\n";
  if (!a.head_request) out += body;
}

std::string_view reasonPhrase(int status) {
  // Beast's table of the registered codes; it says "<unknown-status>" for the others.
  const auto phrase =
      boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
  return phrase.starts_with('<') ? std::string_view("Unknown")
                                 : std::string_view(phrase.data(), phrase.size());
}

}  // namespace portcullis::frontends::proxy
