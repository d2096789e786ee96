-- AI-agent confinement: a token issued to an agent (claim `agent: true`) may call only the
-- API operations its scopes name. Each operation is a method and a path glob; the scope
-- `orders:read` grants the operations listed for it. Human callers pass through: their
-- access is decided by the route's other checks and functions.
local operations = {}   -- scope → list of {method, pattern}

local function allow_op(scope, method, path_glob)
  operations[scope] = operations[scope] or {}
  table.insert(operations[scope], { method = method, glob = path_glob })
end

return {
  init = function()
    allow_op("orders:read", "GET", "/orders")
    allow_op("orders:read", "GET", "/orders/*")
    allow_op("orders:write", "POST", "/orders")
    allow_op("orders:write", "PUT", "/orders/*")
    allow_op("refunds:create", "POST", "/orders/*/refunds")
  end,

  handle = function(request, identity, ctx)
    if identity.claims.agent ~= true then
      return { allow = true, context = { caller = "human" } }
    end
    for _, scope in ipairs(identity.scopes) do
      for _, op in ipairs(operations[scope] or {}) do
        if op.method == request.method and str.glob(request.path, op.glob) then
          return { allow = true, context = { caller = "agent", grant = scope },
                   headers = { ["X-Agent"] = identity.sub } }
        end
      end
    end
    return { allow = false, status = 403, reason = "agent_scope_missing" }
  end,
}
