#include "functions/lambda/local/runtime.h"

#include <utility>

#include "functions/lambda/lambda_function.h"
#include "functions/lambda/local/config.h"
#include "functions/lambda/local/pool.h"

namespace portcullis::functions::lambda {

std::shared_ptr<const engine::Function> compileLocal(config::FunctionSource& source) {
  auto spec = readLocalSpec(source);
  auto options = readLambdaOptions(source);
  if (!spec || !options) return nullptr;
  spec->region = options->api.region;
  spec->account_id = options->api.account_id;
  auto pool = LocalPool::acquire(*spec);
  return std::make_shared<LambdaFunction>(source.spec, std::move(*options), std::move(pool));
}

}  // namespace portcullis::functions::lambda
