-- The tenant check of bench/functions/run.sh as an in-process Lua function: the same check
-- as tenant.js (Node.js, lambda-local) and tenant.sh (bash, lambda-local). A request is
-- allowed when X-Tenant names a tenant (1 to 32 bytes) and the credential is exactly
-- `Authorization: Bearer demo-<that tenant>`; the tenant goes into the context.
return function(request, identity, ctx)
  local tenant = request.headers["x-tenant"]
  local auth = request.headers["authorization"]
  if tenant == nil or auth == nil or #tenant == 0 or #tenant > 32 or
      auth ~= "Bearer demo-" .. tenant then
    return { allow = false, reason = "tenant_mismatch" }
  end
  return { allow = true, context = { tenant = tenant } }
end
