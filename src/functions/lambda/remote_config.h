#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/functions.h"
#include "engine/function.h"

// The `runtime: lambda` entry of a policy: an existing AWS Lambda authorizer invoked through
// the Invoke API (remote_invoker.h). No Asio here (docs/conventions.md §14).
namespace portcullis::functions::lambda {

// What a configured `function` names, as the Invoke API accepts it in its path: a name
// (`authz`), a name with a version or alias (`authz:live`), a partial ARN
// (`123456789012:function:authz[:live]`) or a full ARN
// (`arn:aws:lambda:eu-west-1:123456789012:function:authz[:live]`).
struct FunctionRef {
  std::string name;        // the function's name alone
  std::string qualifier;   // the version or alias the reference carries; empty = none
  std::string region;      // from a full ARN; empty otherwise
  std::string account_id;  // from an ARN; empty otherwise
};

// Nullopt when `text` is none of the forms above: names are 1 to 64 letters, digits, '-'
// or '_'; qualifiers `$LATEST` or 1 to 128 letters, digits, '-' or '_'.
std::optional<FunctionRef> parseFunctionRef(std::string_view text);

// "lambda.{region}.amazonaws.com" (".amazonaws.com.cn" for the China regions).
std::string defaultEndpointHost(std::string_view region);

// The `runtime: lambda` factory: reads `function`, `region`, `qualifier`, `endpoint`,
// `credentials` (else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from
// the environment), `connections`, `queue` and the keys every Lambda runtime shares
// (lambda_function.h), and returns a function backed by the shared remote invoker for those
// options. Errors never quote a credential.
std::shared_ptr<const engine::Function> compileRemote(config::FunctionSource& source);

}  // namespace portcullis::functions::lambda
