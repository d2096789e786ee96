# shellcheck shell=bash
# The tenant check of bench/functions/run.sh as a bash Lambda handler, for the custom runtime
# examples/functions/lambda/bash/bootstrap (the script copies both into one folder:
# `handler: tenant.handler`). The same check as tenant.lua and tenant.js: a request is
# allowed when X-Tenant names a tenant (1 to 32 characters, no quote or backslash) and the
# credential is exactly `Authorization: Bearer demo-<that tenant>`.
handler() {
  local event=$1 tenant="" re='"x-tenant":"([^"\\]{1,32})"'
  [[ $event =~ $re ]] && tenant=${BASH_REMATCH[1]}
  if [[ -n $tenant && $event == *"\"authorization\":\"Bearer demo-$tenant\""* ]]; then
    printf '{"isAuthorized":true,"context":{"tenant":"%s"}}' "$tenant"
  else
    printf '{"isAuthorized":false}'
  fi
}
