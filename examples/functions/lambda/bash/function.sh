# shellcheck shell=bash
# An API Gateway Lambda authorizer (HTTP API, payload 2.0, simple response) in bash.
# Demo credentials: `Authorization: Bearer demo-TENANT` (TENANT: 1-32 of [a-z0-9]) is
# allowed with the tenant in the context; anything else is denied. A real authorizer
# verifies a token here.
handler() {
  local event=$1 tenant
  if [[ $event =~ \"authorization\":\"Bearer\ demo-([a-z0-9]{1,32})\" ]]; then
    tenant=${BASH_REMATCH[1]}
    printf '{"isAuthorized":true,"context":{"tenant":"%s","runtime":"bash"}}' "$tenant"
  else
    printf '{"isAuthorized":false}'
  fi
}
