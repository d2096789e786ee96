#include "engine/template.h"

#include "common/strings.h"

namespace portcullis::engine {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out.push_back(' ');
    out += item;
  }
  return out;
}

}  // namespace

Result<Template::Part> Template::compileVariable(std::string_view name) {
  const auto simple = [](Kind kind) { return Part{kind, {}, {}}; };
  if (name.starts_with("claims.") && name.size() > 7) {
    return Part{Kind::kClaim, {}, identity::ClaimPath(std::string(name.substr(7)))};
  }
  if (name.starts_with("ctx.") && name.size() > 4) {
    return Part{Kind::kCtx, std::string(name.substr(4)), {}};
  }
  if (name.starts_with("request.header.") && name.size() > 15) {
    return Part{Kind::kHeader, toLower(name.substr(15)), {}};
  }
  if (name == "identity.sub") return simple(Kind::kSub);
  if (name == "identity.iss") return simple(Kind::kIss);
  if (name == "identity.provider") return simple(Kind::kProvider);
  if (name == "identity.scopes") return simple(Kind::kScopes);
  if (name == "identity.groups") return simple(Kind::kGroups);
  if (name == "identity.roles") return simple(Kind::kRoles);
  if (name == "request.ip") return simple(Kind::kIp);
  if (name == "request.method") return simple(Kind::kMethod);
  if (name == "request.host") return simple(Kind::kHost);
  if (name == "request.path") return simple(Kind::kPath);
  if (name == "request.query") return simple(Kind::kQuery);
  if (name == "request.client_cert_subject") return simple(Kind::kClientCert);
  if (name == "request.client_cert_sans") return simple(Kind::kClientCertSans);
  if (name == "request.client_cert_fingerprint") return simple(Kind::kClientCertFingerprint);
  return fail(Reason::kInternalError,
              "unknown template variable '" + std::string(name) +
                  "' (known: claims.NAME, identity.sub|iss|provider|scopes|groups|roles, "
                  "ctx.NAME, request.header.NAME, request.ip|method|host|path|query, "
                  "request.client_cert_subject|client_cert_sans|client_cert_fingerprint)");
}

Result<Template> Template::compile(std::string_view text) {
  Template t;
  t.text_ = std::string(text);
  std::string literal;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "$${") == 0) {
      literal += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      literal.push_back(text[i++]);
      continue;
    }
    const std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return fail(Reason::kInternalError, "unterminated '${' in template");
    }
    auto part = compileVariable(text.substr(i + 2, close - i - 2));
    if (!part) return tl::unexpected(std::move(part.error()));
    if (!literal.empty()) {
      t.parts_.push_back(Part{Kind::kLiteral, std::move(literal), {}});
      literal.clear();
    }
    t.parts_.push_back(std::move(*part));
    i = close + 1;
  }
  if (!literal.empty()) t.parts_.push_back(Part{Kind::kLiteral, std::move(literal), {}});
  return t;
}

bool Template::needsIdentity() const {
  for (const auto& p : parts_) {
    switch (p.kind) {
      case Kind::kClaim:
      case Kind::kSub:
      case Kind::kIss:
      case Kind::kProvider:
      case Kind::kScopes:
      case Kind::kGroups:
      case Kind::kRoles:
        return true;
      default:
        break;
    }
  }
  return false;
}

bool Template::needsFullEvaluation() const {
  for (const auto& p : parts_) {
    switch (p.kind) {
      case Kind::kClaim:
      case Kind::kProvider:
      case Kind::kScopes:
      case Kind::kGroups:
      case Kind::kRoles:
      case Kind::kCtx:
        return true;
      default:
        break;
    }
  }
  return false;
}

void Template::addRequestInputs(RequestInputs& inputs) const {
  for (const auto& p : parts_) {
    switch (p.kind) {
      case Kind::kIp:
        inputs.ip = true;
        break;
      case Kind::kMethod:
        inputs.method = true;
        break;
      case Kind::kHost:
        inputs.host = true;
        break;
      case Kind::kPath:
        inputs.path = true;
        break;
      case Kind::kQuery:
        inputs.query = true;
        break;
      case Kind::kClientCert:
      case Kind::kClientCertSans:
      case Kind::kClientCertFingerprint:
        inputs.client_cert = true;
        break;
      case Kind::kHeader:
        inputs.headers.push_back(p.text);
        break;
      default:
        break;
    }
  }
}

std::string Template::render(const TemplateInput& in) const {
  std::string out;
  const identity::Identity* id = in.identity;
  for (const auto& p : parts_) {
    switch (p.kind) {
      case Kind::kLiteral:
        out += p.text;
        break;
      case Kind::kClaim:
        if (id && id->claims) {
          if (const auto v = p.claim.find(*id->claims)) out += identity::claimToString(v);
        }
        break;
      case Kind::kSub:
        if (id) out += id->subject;
        break;
      case Kind::kIss:
        if (id) out += id->issuer;
        break;
      case Kind::kProvider:
        if (id) out += id->provider;
        break;
      case Kind::kScopes:
        if (id) out += join(id->scopes);
        break;
      case Kind::kGroups:
        if (id) out += join(id->groups);
        break;
      case Kind::kRoles:
        if (id) out += join(id->roles);
        break;
      case Kind::kCtx:
        if (in.ctx) {
          if (const auto it = in.ctx->find(p.text); it != in.ctx->end()) out += it->second;
        }
        break;
      case Kind::kHeader:
        if (const auto* v = in.request.headers.find(p.text)) out += *v;
        break;
      case Kind::kIp:
        out += in.request.client_ip.toString();
        break;
      case Kind::kMethod:
        out += in.request.method;
        break;
      case Kind::kHost:
        out += in.request.host;
        break;
      case Kind::kPath:
        out += in.request.path;
        break;
      case Kind::kQuery:
        out += in.request.query;
        break;
      case Kind::kClientCert:
        out += in.request.client_cert_subject;
        break;
      case Kind::kClientCertSans:
        for (std::size_t i = 0; i < in.request.client_cert_sans.size(); ++i) {
          if (i > 0) out += ',';
          out += in.request.client_cert_sans[i];
        }
        break;
      case Kind::kClientCertFingerprint:
        out += in.request.client_cert_fingerprint;
        break;
    }
  }
  return out;
}

}  // namespace portcullis::engine
