#!/usr/bin/env bash
# The golden test: a fixed set of requests through the authz, SPOE and admin front doors of
# one running portcullis, and everything observable about their answers compared byte for
# byte with tests/integration/golden/expected.txt. It pins behaviour across refactoring:
# the HTTP answers (status, headers, body), the SPOE actions, the audit lines (ts,
# latency_us and request_id masked), the admin answers (ports, uptime and times masked) and
# the names of every /metrics series. Masked everywhere: what the clock, the random request
# ids and the temporary folder decide (the policy version hashes its path).
#
#   bash tests/integration/golden_test.sh PORTCULLIS_BINARY SOURCE_DIR
#   GOLDEN_UPDATE=1 bash …   rewrites expected.txt (review the diff: it is a behaviour change)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"

command -v node >/dev/null || fail "node is not installed (Debian: nodejs)"
GOLDEN="$SRC/tests/integration/golden"
NORMALISE=(node "$GOLDEN/normalise.js")
OUT="$TEST_TMP/actual.txt"
: >"$OUT"

# The policy, its keys and functions in one folder: relative paths keep the version stable.
mkdir -p "$TEST_TMP/p/keys" "$TEST_TMP/p/lua"
cp "$GOLDEN/policy.yaml" "$TEST_TMP/p/policy.yaml"
cp "$SRC/examples/keys/demo-jwks.json" "$TEST_TMP/p/keys/"
cp "$SRC/examples/functions/lua/tenant.lua" "$SRC/examples/functions/lua/agent_scopes.lua" \
  "$TEST_TMP/p/lua/"
cd "$TEST_TMP/p"
start_portcullis golden "$TEST_TMP/p/policy.yaml"
SPOE=$(json_string_field "$TEST_TMP/golden.ready.json" spoe)
[[ -n $SPOE ]] || fail "the ready file names no spoe listener: $(cat "$TEST_TMP/golden.ready.json")"

# Tokens with fixed times, so they (and everything derived from them) are the same each run.
tok() { mint_token --aud orders-api --iat 1700000000 --exp 4102444800 "$@"; }
T_READER=$(tok --sub alice --scope read:orders --claim 'groups=["staff"]')
T_ADMIN=$(tok --sub root --claim 'groups=["admins"]')
T_NOSCOPE=$(tok --sub bob --scope write:x --claim 'groups=["staff"]')
T_EXPIRED=$(mint_token --aud orders-api --iat 900000000 --exp 1000000000 --sub carol --scope read:orders)
T_TENANT=$(tok --sub dave --claim 'groups=["staff"]' --claim tenant='"acme"')
T_SUPPORT=$(tok --sub sam --claim 'groups=["support"]' --claim tenant='"other"')
T_AGENT=$(tok --sub bot-1 --scope orders:read --claim agent=true --claim tenant='"acme"')
T_ES=$("$PORTCULLIS" token --key "$SRC/examples/keys/demo-es256.jwk" --iat 1700000000 \
  --exp 4102444800 --aud orders-api --sub erin --scope read:orders --claim 'groups=["staff"]')

# record TITLE: the last `http` answer, headers in the order sent; masked: Date, the
# rate limit's times and a generated X-Request-Id (32 random hex digits).
record() {
  {
    echo "### $1"
    echo "status $HTTP_STATUS"
    tr -d '\r' <"$TEST_TMP/last.headers" | sed -e '/^HTTP\//d' -e '/^$/d' \
      -e 's/^\([Dd]ate\): .*/\1: */' -e 's/^\([Rr]etry-[Aa]fter\): .*/\1: */' \
      -e 's/^\(RateLimit-Reset\|ratelimit-reset\): .*/\1: */' \
      -e 's/^\([Xx]-[Rr]equest-[Ii]d\): [0-9a-f]\{32\}$/\1: */'
    echo "body $(printf '%s' "$HTTP_BODY" | head -c 400)"
  } >>"$OUT"
}
# authz TITLE METHOD URI [CURL ARGS…]: one nginx auth_request-style check.
authz() {
  local title=$1 method=$2 uri=$3
  shift 3
  http -H "X-Original-URI: $uri" -H "X-Original-Method: $method" "$@" "http://$AUTHZ/auth"
  record "authz $title: $method $uri"
}
bearer() { printf 'Authorization: Bearer %s' "$1"; }

authz "anonymous allow" GET /healthz
authz "no token" GET /orders/1
authz "reader, miss" GET /orders/1 -H "$(bearer "$T_READER")" -H 'X-Request-Id: golden-1'
authz "reader, hit" GET /orders/1 -H "$(bearer "$T_READER")"
authz "HEAD" HEAD /orders/1 -H "$(bearer "$T_READER")"
authz "ES256" GET /orders/2 -H "$(bearer "$T_ES")"
authz "missing scope, deny cached" GET /orders/1 -H "$(bearer "$T_NOSCOPE")"
authz "missing scope, again" GET /orders/1 -H "$(bearer "$T_NOSCOPE")"
authz "expired" GET /orders/1 -H "$(bearer "$T_EXPIRED")"
authz "malformed token" GET /orders/1 -H 'Authorization: Bearer abc.def.ghi'
authz "not a bearer" GET /orders/1 -H 'Authorization: Basic Zm9vOmJhcg=='
authz "write as reader" POST /orders -H "$(bearer "$T_READER")"
authz "write as admin" POST /orders -H "$(bearer "$T_ADMIN")"
authz "tenant own" GET /t/acme/x -H "$(bearer "$T_TENANT")" -H 'X-Tenant: acme'
authz "tenant other" GET /t/zeta/x -H "$(bearer "$T_TENANT")" -H 'X-Tenant: zeta'
authz "tenant missing" GET /t/x -H "$(bearer "$T_TENANT")"
authz "support reads any tenant" GET /t/zeta/x -H "$(bearer "$T_SUPPORT")" -H 'X-Tenant: zeta'
authz "agent outside its scopes" GET /t/acme/x -H "$(bearer "$T_AGENT")" -H 'X-Tenant: acme'
authz "on_error route, bad token" GET /catalog/x -H 'Authorization: Bearer abc.def.ghi'
authz "no route" GET /nowhere -H "$(bearer "$T_ADMIN")"
authz "raw #" GET '/orders/7#/../../healthz' -H "$(bearer "$T_READER")"
authz "path parameter" GET '/healthz/..;/orders/1'
authz "dot segments" GET '/healthz/../orders/1' -H "$(bearer "$T_READER")"
authz "two tokens" GET /orders/1 -H "$(bearer "$T_READER")" -H "$(bearer "$T_ADMIN")"
authz "no X-Original-URI" GET '' -H "$(bearer "$T_READER")"
authz "search 1" GET /search
authz "search 2" GET '/search?q=a'
authz "search 3, limited" GET /search

# ---- SPOE: what HAProxy would be told -----------------------------------------------------
spoe_req() {  # spoe_req METHOD PATH QUERY [NAME VALUE]…: one JSON line
  local method=$1 path=$2 query=$3
  shift 3
  local headers='["host","app.example"]'
  while (($#)); do
    headers+=",[\"$1\",\"$2\"]"
    shift 2
  done
  printf '{"method":"%s","path":"%s","query":"%s","headers":[%s]}\n' \
    "$method" "$path" "$query" "$headers"
}
{
  spoe_req GET /healthz ''
  spoe_req GET /orders/1 ''
  spoe_req GET /orders/1 'a=1' authorization "Bearer $T_READER"
  spoe_req GET /orders/1 '' authorization "Bearer $T_NOSCOPE"
  spoe_req GET /orders/1 '' authorization 'Bearer abc.def.ghi'
  spoe_req POST /orders '' authorization "Bearer $T_ADMIN" x-request-id golden-spoe
  spoe_req GET /t/acme/x '' authorization "Bearer $T_TENANT" x-tenant acme
  spoe_req GET /catalog/x '' authorization 'Bearer abc.def.ghi'
  spoe_req GET /nowhere ''
  spoe_req GET '/orders/1;x' '' authorization "Bearer $T_READER"
} >"$TEST_TMP/spoe.jsonl"
echo "### spoe" >>"$OUT"
node "$SRC/tests/fakes/spoe_client.js" "${SPOE##*:}" "$TEST_TMP/spoe.jsonl" \
  >"$TEST_TMP/spoe.out" 2>&1 || fail "spoe_client: $(cat "$TEST_TMP/spoe.out")"
sed -E 's/(request_id string )"[^"]*"/\1"*"/' "$TEST_TMP/spoe.out" >>"$OUT"

# ---- admin ------------------------------------------------------------------------------
admin() {  # admin TITLE METHOD PATH (a JSON body normalised, its length masked)
  if [[ $2 == POST ]]; then admin_post "http://$ADMIN$3"; else admin_get "http://$ADMIN$3"; fi
  if [[ $(header content-type) == application/json* ]]; then
    HTTP_BODY=$("${NORMALISE[@]}" json <<<"$HTTP_BODY")
    HTTP_BODY=${HTTP_BODY//"$TEST_TMP"/TMP}
    sed -i 's/^\([Cc]ontent-[Ll]ength\): .*/\1: */' "$TEST_TMP/last.headers"
  fi
  record "admin $1: $2 $3"
}
admin healthz GET /healthz
admin readyz GET /readyz
admin status GET /status
admin "unknown path" GET /nope
admin "revoke alice" POST '/revoke?sub=alice&ttl=1h'
authz "revoked, served from the cache" GET /orders/1 -H "$(bearer "$T_READER")"
admin "purge a route" POST '/cache/purge?route=orders-read'
admin "purge without a selector" POST '/cache/purge'
admin "reload, unchanged" POST /reload
admin "revoke nothing" POST /revoke
authz "after reload" GET /orders/2 -H "$(bearer "$T_ES")"

# ---- the audit, after every decision above is written -------------------------------------
decisions=$(grep -c '^### authz' "$OUT")
decisions=$((decisions + $(grep -c '^== ' "$TEST_TMP/spoe.out")))
for ((i = 0; i < 100; i++)); do
  [[ $(wc -l <"$TEST_TMP/p/audit.jsonl" 2>/dev/null || echo 0) -ge $decisions ]] && break
  sleep 0.05
done
echo "### audit" >>"$OUT"
# Sorted: the sink keeps each worker's lines in order, not the order across the two
# workers (a request answered on one worker can be written after the next one on the
# other), so the file order alone flaked.
"${NORMALISE[@]}" audit <"$TEST_TMP/p/audit.jsonl" | LC_ALL=C sort >>"$OUT"

admin_get "http://$ADMIN/metrics"
echo "### metrics" >>"$OUT"
"${NORMALISE[@]}" metrics <<<"$HTTP_BODY" >>"$OUT"

# The policy version hashes the resolved file paths (the temporary folder): one name for it.
VERSION=$(grep -o '"policy_version":"[0-9a-f]*"' "$TEST_TMP/p/audit.jsonl" | head -n 1 | cut -d'"' -f4)
[[ -n $VERSION ]] || fail "no policy_version in the audit"
sed -i "s/$VERSION/POLICY-VERSION/g" "$OUT"

if [[ ${GOLDEN_UPDATE:-} == 1 ]]; then
  cp "$OUT" "$GOLDEN/expected.txt"
  log "wrote $GOLDEN/expected.txt"
  exit 0
fi
diff -u "$GOLDEN/expected.txt" "$OUT" >"$TEST_TMP/golden.diff" ||
  fail "behaviour differs from tests/integration/golden/expected.txt:
$(head -n 200 "$TEST_TMP/golden.diff")"
log "PASS: $(grep -c '^###' "$OUT") sections, $decisions decisions as recorded"
