-- Tenant isolation: a caller may only reach its own tenant's data. The tenant comes from
-- the X-Tenant header the client sends; the token's `tenant` claim says which one the
-- caller belongs to. Staff with the `support` role may read any tenant, and are named in
-- an upstream header so the application can log it.
return function(request, identity, ctx)
  local wanted = request.headers["x-tenant"]
  if wanted == nil or wanted == "" then
    return { allow = false, status = 400, reason = "tenant_missing" }
  end
  local own = identity.claims.tenant
  if wanted == own then
    return { allow = true, context = { tenant = wanted } }
  end
  if identity.roles.support and request.method == "GET" then
    return { allow = true, context = { tenant = wanted },
             headers = { ["X-Support-Access"] = identity.sub } }
  end
  return { allow = false, status = 403, reason = "tenant_mismatch" }
end
