'use strict';
// The tenant check of bench/functions/run.sh as an API Gateway Lambda authorizer (HTTP API,
// payload 2.0, simple response), run by `runtime: lambda-local` through
// examples/functions/lambda/node/runtime.js. The same check as tenant.lua and tenant.sh: a
// request is allowed when X-Tenant names a tenant (1 to 32 characters) and the credential
// is exactly `Authorization: Bearer demo-<that tenant>`; the tenant goes into the context.
exports.handler = async (event) => {
  const h = event.headers || {};
  const tenant = h['x-tenant'] || '';
  if (tenant.length === 0 || tenant.length > 32 || h.authorization !== `Bearer demo-${tenant}`) {
    return { isAuthorized: false };
  }
  return { isAuthorized: true, context: { tenant } };
};
