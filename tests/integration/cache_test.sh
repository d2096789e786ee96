#!/usr/bin/env bash
# The decision cache, revocation and rate limits, end to end through the authz endpoint
# (nginx auth_request style: X-Original-URI + Authorization: Bearer).
#
#   bash tests/integration/cache_test.sh PORTCULLIS_BINARY SOURCE_DIR
#
# Every request carries its own X-Request-Id, so each assertion about the cache ("hit",
# "miss") is made on the audit line of exactly that request. Checked:
#   - one token: miss, then hits (audit and portcullis_cache_lookups_total agree);
#     another token is a miss; an input the route does not read does not split the key
#   - POST /reload with a changed rule: the next request is a miss and follows the new rule
#   - POST /revoke?sub=alice while alice's allow is cached: 401 token_revoked, audited as a
#     cache hit; bob unaffected; the revocation ends with its ttl; by token_hash too
#   - POST /cache/purge?sub=bob: only bob's entries go; ?route=R: only that route's
#   - the admin token (admin.token from ${env:}): a POST /revoke without it, without
#     X-Portcullis-Admin: 1, or with an Origin header revokes nothing
#   - rate_limit keyed on ${claims.sub}, 5/s burst 5: a burst of 10 → 5 × 200 then 429 with
#     Retry-After / RateLimit-* headers (cache hits are counted too); other subjects have
#     their own bucket; allowed again after ~1.2 s
#   - rate_limit keyed on ${request.ip}: 429 without any token (checked before verification)
#   - deny_ttl: a deny (missing scope) is cached; without deny_ttl it is not
#   - a token that expires soon (leeway 0s) is not served from the cache once expired
#   - `portcullis eval` prints the route's cache settings and key recipe
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"

JWKS="$SRC/examples/keys/demo-jwks.json"
POLICY="$TEST_TMP/policy.yaml"
AUDIT_FILE="$TEST_TMP/audit.jsonl"

# write_policy FLAG_ALLOW: the whole policy; only /flag's `allow` changes between versions.
write_policy() {
  cat >"$POLICY.tmp" <<EOF
version: 1
workers: 2
listeners:
  authz: 127.0.0.1:0
  admin: 127.0.0.1:0
watch: { enabled: false }
admin: { token: "\${env:PORTCULLIS_TEST_ADMIN_TOKEN}" }
audit: { sink: "file:$AUDIT_FILE" }
authz: { style: nginx }
cache: { max_entries: 4096 }
limits: { rate_limit_keys: 10000 }
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $JWKS
    audiences: [orders-api]
    leeway: 0s
    claims_to_headers: { X-User: sub }
routes:
  - name: orders
    match: { paths: [/orders/**] }
    authenticate: [demo]
    require: { scopes: [read:orders] }
    cache: { ttl: 60s }
  - name: flag
    match: { paths: [/flag] }
    authenticate: [demo]
    allow: $1
    cache: { ttl: 60s }
  - name: reports
    match: { paths: [/reports/**] }
    authenticate: [demo]
    require: { scopes: [read:reports] }
    cache: { ttl: 60s, deny_ttl: 30s }
  - name: limited
    match: { paths: [/limited] }
    authenticate: [demo]
    cache: { ttl: 60s }
    rate_limit: { key: "\${claims.sub}", rate: 5/s, burst: 5 }
  - name: by-ip
    match: { paths: [/by-ip] }
    authenticate: [demo]
    rate_limit: { key: "\${request.ip}", rate: 2/m, burst: 2 }
default: deny
EOF
  mv -f "$POLICY.tmp" "$POLICY"
}

ALICE=$(mint_token --sub alice --aud orders-api --scope read:orders --ttl 1h)
ALICE2=$(mint_token --sub alice --aud orders-api --scope read:orders --ttl 1h --claim jti=alice-2)
BOB=$(mint_token --sub bob --aud orders-api --scope read:orders --ttl 1h)
CAROL=$(mint_token --sub carol --aud orders-api --scope read:orders --ttl 1h)
[[ $ALICE != "$ALICE2" ]] || fail "two minted tokens are identical"

# The admin token comes from the environment; lib.sh's admin_post/admin_get/metric send it.
ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export PORTCULLIS_TEST_ADMIN_TOKEN=$ADMIN_TOKEN
write_policy true
check_out=$("$PORTCULLIS" check -c "$POLICY" 2>&1) || fail "portcullis check failed: $check_out"
start_portcullis portcullis "$POLICY"
wait_http "http://$ADMIN/readyz" 30 portcullis

# ---- helpers --------------------------------------------------------------------------------
N=0
# decide PATH TOKEN [CURL ARGS…]: one authz request (nginx style) with a fresh request id
# RID; HTTP_STATUS and the response headers as lib.sh's `http` leaves them.
decide() {
  local path=$1 token=$2
  shift 2
  N=$((N + 1))
  RID="cache-test-$N"
  local -a auth=()
  [[ -n $token ]] && auth=(-H "Authorization: Bearer $token")
  http "${auth[@]}" -H "X-Original-URI: $path" -H "X-Original-Method: GET" \
       -H "X-Request-Id: $RID" "$@" "http://$AUTHZ/"
}

# expect PATH TOKEN STATUS REASON CACHE WHAT: decide, then check the status and this
# request's own audit line (reason and cache field).
expect() {
  local path=$1 token=$2 status=$3 reason=$4 cache=$5 what=$6
  decide "$path" "$token"
  assert_status "$status" "$what ($path, request $RID)"
  assert_eq "$RID" "$(header X-Request-Id)" "$what: X-Request-Id echoed"
  wait_audit "\"request_id\":\"$RID\""
  assert_audit reason "$reason" "$what"
  assert_audit cache "$cache" "$what"
}

M="http://$ADMIN/metrics"
hits() { metric "$M" 'portcullis_cache_lookups_total{result="hit"}'; }
misses() { metric "$M" 'portcullis_cache_lookups_total{result="miss"}'; }
entries() { metric "$M" portcullis_cache_entries; }
# assert_lookups HITS MISSES WHAT: the lookup counters, as deltas from H0/M0.
assert_lookups() {
  assert_eq "$1" "$(($(hits) - H0))" "$3: cache hits (portcullis_cache_lookups_total)"
  assert_eq "$2" "$(($(misses) - M0))" "$3: cache misses (portcullis_cache_lookups_total)"
}
elapsed_since() {  # elapsed_since EPOCHREALTIME-VALUE: milliseconds since then
  local now=$EPOCHREALTIME
  echo $(((10#${now//[.,]/} - 10#${1//[.,]/}) / 1000))
}

# ---- 1. miss, then hits; metrics agree ---------------------------------------------------
H0=$(hits)
M0=$(misses)
[[ -n $H0 && -n $M0 ]] || fail "no portcullis_cache_lookups_total series in /metrics"
assert_eq 0 "$(entries)" "portcullis_cache_entries at start"

expect /orders/1 "$ALICE" 200 none miss "alice, first request"
assert_eq alice "$(header X-User)" "alice, first request: X-User"
assert_lookups 0 1 "after alice's first request"
expect /orders/1 "$ALICE" 200 none hit "alice, second request"
assert_eq alice "$(header X-User)" "alice, cached allow: X-User still sent upstream"
assert_audit sub alice "alice, cached allow: audit sub"
assert_audit iss portcullis-dev "alice, cached allow: audit iss"
expect /orders/1 "$ALICE" 200 none hit "alice, third request"
assert_lookups 2 1 "after three requests with one token"
# The route reads neither the path nor other headers: they share the entry.
decide /orders/2 "$ALICE" -H "X-Unrelated: 1"
assert_status 200 "alice, /orders/2"
wait_audit "\"request_id\":\"$RID\""
assert_audit cache hit "alice, /orders/2 with an unrelated header (the route reads neither)"
# A different credential — even with the same subject — is its own entry.
expect /orders/1 "$ALICE2" 200 none miss "alice's second token"
expect /orders/1 "$BOB" 200 none miss "bob's token"
assert_lookups 3 3 "after two more tokens"
assert_eq 3 "$(entries)" "portcullis_cache_entries after three tokens on one route"
# No token at all: not cacheable on this route (deny, no deny_ttl) — a miss each time.
expect /orders/1 "" 401 token_missing miss "no token"
expect /orders/1 "" 401 token_missing miss "no token, again (denies are not cached without deny_ttl)"
log "1. miss → hit per token; metrics hits $(hits) misses $(misses) entries $(entries)"

# ---- 2. a reload invalidates ---------------------------------------------------------------
expect /flag "$ALICE" 200 none miss "/flag before the reload"
expect /flag "$ALICE" 200 none hit "/flag before the reload, again"
write_policy false
admin_post "http://$ADMIN/reload"
assert_status 200 "POST /reload"
assert_match "$HTTP_BODY" '"changed":true' "POST /reload body"
new_version=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$HTTP_BODY")
assert_eq 0 "$(entries)" "portcullis_cache_entries right after a reload (the old version's entries are dropped)"
expect /flag "$ALICE" 403 route_denied miss "/flag right after the reload (allow: false now)"
assert_audit policy_version "$new_version" "/flag after the reload"
expect /flag "$ALICE" 403 route_denied miss "/flag after the reload (no deny_ttl: denies not cached)"
expect /orders/1 "$ALICE" 200 none miss "alice on /orders after the reload"
expect /orders/1 "$ALICE" 200 none hit "alice on /orders after the reload, again"
log "2. POST /reload: next decision is a miss under policy $new_version"

# ---- 3. revocation of a cached allow -----------------------------------------------------
expect /orders/1 "$BOB" 200 none miss "bob after the reload"
expect /orders/1 "$BOB" 200 none hit "bob, cached"
expect /orders/1 "$ALICE" 200 none hit "alice, cached, before the revocation"
# Refused without the token, without X-Portcullis-Admin: 1, or from a browser (Origin).
http -X POST -H 'X-Portcullis-Admin: 1' "http://$ADMIN/revoke?sub=alice&ttl=10s"
assert_status 401 "POST /revoke without the admin token"
assert_eq 'Bearer realm="portcullis-admin"' "$(header WWW-Authenticate)" "401 WWW-Authenticate"
http -X POST -H "Authorization: Bearer wrong-$ADMIN_TOKEN" -H 'X-Portcullis-Admin: 1' \
     "http://$ADMIN/revoke?sub=alice&ttl=10s"
assert_status 401 "POST /revoke with a wrong admin token"
http -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: text/plain' \
     --data 'x=1' "http://$ADMIN/revoke?sub=alice&ttl=10s"
assert_status 403 "POST /revoke as a simple request (no X-Portcullis-Admin: 1)"
admin_post "http://$ADMIN/revoke?sub=alice&ttl=10s" -H 'Origin: https://evil.example'
assert_status 403 "POST /revoke with a cross-site Origin"
assert_eq 0 "$(metric "$M" portcullis_revocations)" "portcullis_revocations after refused POSTs"
expect /orders/1 "$ALICE" 200 none hit "alice, still cached after the refused revocations"
admin_post "http://$ADMIN/revoke?sub=alice&ttl=10s"
assert_status 200 "POST /revoke?sub=alice&ttl=10s"
assert_match "$HTTP_BODY" '"revoked":1' "POST /revoke body"
revoked_until=$(sed -n 's/.*"until":\([0-9]*\).*/\1/p' <<<"$HTTP_BODY")
now=$(date +%s)
# 10 s: long enough that a busy machine still asks within it; `now` is read after the answer.
((revoked_until >= now + 5 && revoked_until <= now + 11)) ||
  fail "POST /revoke?ttl=10s: until is '$revoked_until', expected about $now + 10"
assert_eq 1 "$(metric "$M" portcullis_revocations)" "portcullis_revocations"
expect /orders/1 "$ALICE" 401 token_revoked hit "alice after POST /revoke?sub=alice"
assert_audit sub alice "revoked: audit sub"
assert_audit decision deny "revoked: audit decision"
assert_contains "$(header WWW-Authenticate)" 'error="invalid_token"' "revoked: WWW-Authenticate"
[[ -z $(header X-User) ]] || fail "revoked: a deny must not carry X-User"
expect /orders/1 "$ALICE2" 401 token_revoked miss "alice's other token, not cached since the reload (revoked by sub)"
expect /orders/1 "$BOB" 200 none hit "bob, while alice is revoked"
# By token hash (SHA-256 hex of the credential): only that token.
# The hash of the signing input (the token without its signature): a holder can re-encode
# an ECDSA signature, never what was signed (docs/caching.md#revocation).
CAROL_HASH=$(printf '%s' "${CAROL%.*}" | sha256sum | cut -d' ' -f1)
expect /orders/1 "$CAROL" 200 none miss "carol before her token is revoked"
admin_post "http://$ADMIN/revoke?token_hash=$CAROL_HASH&ttl=1h"
assert_status 200 "POST /revoke?token_hash=…"
expect /orders/1 "$CAROL" 401 token_revoked hit "carol's token after POST /revoke?token_hash="
carol_fresh=$(mint_token --sub carol --aud orders-api --scope read:orders --ttl 1h --claim jti=carol-2)
expect /orders/1 "$carol_fresh" 200 none miss "carol's other token (revoked by hash only)"
admin_post "http://$ADMIN/revoke?ttl=1h"
assert_status 400 "POST /revoke without sub/jti/token_hash"
# The revocation of alice ends with its ttl; her cache entry was never touched.
for ((i = 0; i < 300; i++)); do
  (($(date +%s) >= revoked_until)) && break
  sleep 0.1
done
sleep 0.1
expect /orders/1 "$ALICE" 200 none hit "alice after the revocation's ttl ran out"
# Informational: expired revocations are not removed today (Revocations::purgeExpired has no
# caller), so this gauge still counts alice's; 1 (carol's) would be the active count.
log "portcullis_revocations after alice's revocation expired: $(metric "$M" portcullis_revocations)"
log "3. revocation: cached allow → 401 token_revoked at once; bob unaffected; ends with ttl"

# ---- 4. purge by subject and by route -----------------------------------------------------
expect /reports/x "$BOB" 403 scope_missing miss "bob on /reports (missing scope; deny_ttl)"
expect /reports/x "$BOB" 403 scope_missing hit "bob on /reports again: the deny is cached"
expect /reports/x "$ALICE" 403 scope_missing miss "alice on /reports (deny_ttl)"
before=$(entries)
admin_post "http://$ADMIN/cache/purge?sub=bob"
assert_status 200 "POST /cache/purge?sub=bob"
assert_match "$HTTP_BODY" '"purged":2' "POST /cache/purge?sub=bob: bob's /orders and /reports entries"
assert_eq "$((before - 2))" "$(entries)" "portcullis_cache_entries after purging bob"
expect /orders/1 "$BOB" 200 none miss "bob after his entries were purged"
expect /reports/x "$BOB" 403 scope_missing miss "bob on /reports after the purge"
expect /orders/1 "$ALICE" 200 none hit "alice after bob's purge"
expect /reports/x "$ALICE" 403 scope_missing hit "alice's cached deny after bob's purge"
admin_post "http://$ADMIN/cache/purge?route=reports"
assert_status 200 "POST /cache/purge?route=reports"
assert_match "$HTTP_BODY" '"purged":2' "POST /cache/purge?route=reports: alice's and bob's denies"
expect /reports/x "$ALICE" 403 scope_missing miss "alice on /reports after purging the route"
expect /orders/1 "$ALICE" 200 none hit "alice on /orders after purging /reports"
admin_get "http://$ADMIN/cache/purge"
assert_status 405 "GET /cache/purge"
log "4. purge: ?sub=bob and ?route=reports drop exactly their entries"

# ---- 5. deny_ttl ---------------------------------------------------------------------------
NOSCOPE=$(mint_token --sub dave --aud orders-api --scope read:other --ttl 1h)
expect /reports/a "$NOSCOPE" 403 scope_missing miss "dave without read:reports, first"
expect /reports/b "$NOSCOPE" 403 scope_missing hit "dave without read:reports, second (deny_ttl)"
expect /orders/1 "$NOSCOPE" 403 scope_missing miss "dave on /orders (no deny_ttl)"
expect /orders/1 "$NOSCOPE" 403 scope_missing miss "dave on /orders again: not cached"
log "5. deny_ttl caches denies; a route without it does not"

# ---- 6. rate limit keyed on the identity: 5/s, burst 5 ---------------------------------------
# Ten requests on one keep-alive connection (one curl, --next between them) so the burst
# takes a few milliseconds: far less than the 200 ms in which one request's worth refills.
burst_args=()
for i in $(seq 1 10); do
  ((i > 1)) && burst_args+=(--next)
  burst_args+=(-sS --noproxy '*' --max-time 5 -o /dev/null -D "$TEST_TMP/burst-$i.headers"
               -w '%{http_code}\n' -H "Authorization: Bearer $ALICE" -H "X-Original-URI: /limited"
               -H "X-Original-Method: GET" -H "X-Request-Id: burst-$i" "http://$AUTHZ/")
done
t0=$EPOCHREALTIME
codes=$(curl "${burst_args[@]}") || fail "curl burst failed"
burst_ms=$(elapsed_since "$t0")
codes=$(tr '\n' ' ' <<<"$codes")
log "burst of 10 in ${burst_ms} ms: $codes"
((burst_ms < 150)) || log "WARNING: the burst took ${burst_ms} ms; a refill may have happened"
assert_eq "200 200 200 200 200 429 429 429 429 429 " "$codes" "burst of 10 on /limited (5/s, burst 5)"
h429="$TEST_TMP/burst-6.headers"
hval() { grep -i "^$1:" "$2" | head -n 1 | cut -d: -f2- | tr -d ' \r'; }
retry=$(hval Retry-After "$h429")
assert_match "$retry" '^[0-9]+$' "429 Retry-After"
((retry >= 1)) || fail "429 Retry-After is $retry, expected >= 1"
assert_eq 5 "$(hval RateLimit-Limit "$h429")" "429 RateLimit-Limit"
assert_eq 0 "$(hval RateLimit-Remaining "$h429")" "429 RateLimit-Remaining"
assert_match "$(hval RateLimit-Reset "$h429")" '^[0-9]+$' "429 RateLimit-Reset"
[[ -z $(hval X-User "$h429") ]] || fail "a 429 must not carry identity headers"
wait_audit '"request_id":"burst-1"'
assert_audit cache miss "burst-1"
assert_audit reason none "burst-1"
wait_audit '"request_id":"burst-2"'
assert_audit cache hit "burst-2: a cache hit, still counted by the limit"
wait_audit '"request_id":"burst-6"'
assert_audit status 429 "burst-6"
assert_audit reason rate_limited "burst-6"
assert_audit cache hit "burst-6: limited on a cache hit"
assert_audit sub alice "burst-6"
rl_keys=$(metric "$M" portcullis_rate_limit_keys)
((rl_keys >= 1)) || fail "portcullis_rate_limit_keys is '$rl_keys' after a limited burst"
# Another subject has its own bucket.
expect /limited "$BOB" 200 none miss "bob on /limited while alice is limited"
# The bucket refills: one request per 200 ms; after ~1.2 s the burst is available again.
sleep 1.2
expect /limited "$ALICE" 200 none hit "alice on /limited after 1.2 s"
log "6. identity-keyed limit: 5 × 200 then 429 (Retry-After $retry), refilled after 1.2 s"

# ---- 7. rate limit keyed on the client address: before any verification -------------------
expect /by-ip "" 401 token_missing off "by-ip #1 without a token"
expect /by-ip "" 401 token_missing off "by-ip #2 without a token"
expect /by-ip "" 429 rate_limited off "by-ip #3 without a token: limited before authentication"
assert_eq 2 "$(header RateLimit-Limit)" "by-ip RateLimit-Limit"
assert_eq 0 "$(header RateLimit-Remaining)" "by-ip RateLimit-Remaining"
retry=$(header Retry-After)
((retry >= 1)) || fail "by-ip Retry-After is '$retry'"
expect /by-ip "not.a.jwt" 429 rate_limited off "by-ip with a garbage token: 429, not 401"
expect /by-ip "$ALICE" 429 rate_limited off "by-ip with a valid token: the address is limited"
log "7. address-keyed limit: 429 without a token (Retry-After $retry)"

# ---- 8. a token that expires soon is not served from the cache after exp --------------------
# 10 s: minting and two requests fit before exp on a busy machine too.
exp=$(($(date +%s) + 10))
SHORT=$("$PORTCULLIS" token --key "$SRC/examples/keys/demo.jwk" --sub erin --aud orders-api \
        --scope read:orders --exp "$exp")
expect /orders/1 "$SHORT" 200 none miss "short-lived token, first"
expect /orders/1 "$SHORT" 200 none hit "short-lived token, second (before exp)"
# Wait until the wall clock is past exp (bounded: exp is 10 s away).
for ((i = 0; i < 300; i++)); do
  (($(date +%s) >= exp)) && break
  sleep 0.1
done
sleep 0.2
expect /orders/1 "$SHORT" 401 token_expired miss "short-lived token after exp (leeway 0s)"
log "8. a cached allow ends at the token's exp: 401 token_expired after it"

# ---- 9. eval prints the key recipe ------------------------------------------------------
eval_out=$("$PORTCULLIS" eval -c "$POLICY" --url http://api.example.com/orders/1 \
           -H "Authorization: Bearer $ALICE" --explain 2>&1) || fail "eval failed: $eval_out"
assert_contains "$eval_out" "allow 200" "eval /orders/1"
assert_contains "$eval_out" \
  "cache: ttl=60s deny_ttl=0s; key recipe: policy_version, route, method, header authorization (provider demo)" \
  "eval --explain: cache line"
eval_out=$("$PORTCULLIS" eval -c "$POLICY" --url http://api.example.com/by-ip \
           -H "Authorization: Bearer $ALICE" --explain 2>&1) || true
assert_not_contains "$eval_out" "key recipe" "eval on a route without cache"
log "9. eval --explain prints the key recipe"

dropped=$(metric "$M" portcullis_audit_dropped_total)
assert_eq 0 "$dropped" "portcullis_audit_dropped_total"
stop_bg portcullis
assert_eq 0 "$BG_STATUS" "portcullis exit status on SIGTERM"
