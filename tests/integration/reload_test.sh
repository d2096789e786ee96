#!/usr/bin/env bash
# Hot reload while requests flow: a rule is changed three ways, (a) by editing the watched
# file, (b) SIGHUP, (c) POST /reload, then a broken file is rejected while the old policy
# keeps serving. The admin listener has a token (admin.token from ${file:}): POST /reload
# without it is refused, and a new token file takes effect with the reload that reads it. Meanwhile wrk (keep-alive connections) and a curl loop (a new connection
# per request) hit the authz listener; no request may fail or get an unexpected status.
#
#   bash tests/integration/reload_test.sh PORTCULLIS_BINARY SOURCE_DIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"

command -v wrk >/dev/null || fail "wrk is not installed"
JWKS="$SRC/examples/keys/demo-jwks.json"
POLICY="$TEST_TMP/policy.yaml"
AUDIT_FILE="$TEST_TMP/audit.jsonl"
LOAD_SECONDS=40   # upper bound: the load is stopped (SIGINT, wrk then reports) once done

# write_policy FLAG_ALLOW WATCH_ENABLED: atomically replaces the policy (write + rename, the
# way config management and Kubernetes update files), so the watcher never sees half a file.
#   /flag       allow: FLAG_ALLOW (false = 403 route_denied, true = 200 with a valid token)
#   /orders/**  needs scope read:orders: always 200 for the load's token
write_policy() {
  cat >"$POLICY.tmp" <<EOF
version: 1
workers: 2
listeners:
  authz: 127.0.0.1:0
  admin: 127.0.0.1:0
admin: { token: "\${file:$TOKEN_FILE}" }
watch: { enabled: $2, interval: 100ms }
audit: { sink: "file:$AUDIT_FILE" }
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $JWKS
    audiences: [orders-api]
routes:
  - name: orders
    match: { paths: [/orders/**] }
    authenticate: [demo]
    require: { scopes: [read:orders] }
  - name: flag
    match: { paths: [/flag] }
    authenticate: [demo]
    allow: $1
default: deny
EOF
  mv -f "$POLICY.tmp" "$POLICY"
}

# A YAML syntax error on a known line (an illegal second ':' on the flag route's allow line).
write_broken_policy() {
  write_policy true "$1"
  sed -i 's/^    allow: true$/    allow: true: false/' "$POLICY"
  BROKEN_LINE=$(grep -n 'allow: true: false' "$POLICY" | cut -d: -f1)
  [[ -n $BROKEN_LINE ]] || fail "could not break the policy"
}

TOKEN=$(mint_token --sub alice --aud orders-api --scope read:orders)
# The admin token (lib.sh's admin_post/admin_get/metric send ADMIN_TOKEN).
random_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
TOKEN_FILE="$TEST_TMP/admin_token"
ADMIN_TOKEN=$(random_token)
FIRST_ADMIN_TOKEN=$ADMIN_TOKEN
printf '%s\n' "$ADMIN_TOKEN" >"$TOKEN_FILE"

# ---- start ------------------------------------------------------------------------------
write_policy false true
start_portcullis portcullis "$POLICY"
wait_http "http://$ADMIN/readyz" 30 portcullis

PROBES=0
# decide PATH: one request to the authz endpoint (nginx style); HTTP_STATUS, PROBE_ID.
decide() {
  PROBES=$((PROBES + 1))
  PROBE_ID="probe-$PROBES"
  http -H "Authorization: Bearer $TOKEN" -H "X-Original-URI: $1" -H "X-Original-Method: GET" \
       -H "X-Request-Id: $PROBE_ID" "http://$AUTHZ/"
}

# wait_decision PATH STATUS SECONDS: until PATH is decided with STATUS.
wait_decision() {
  local path=$1 want=$2 secs=$3 i
  for ((i = 0; i < secs * 20; i++)); do
    decide "$path"
    [[ $HTTP_STATUS == "$want" ]] && return 0
    sleep 0.05
  done
  fail "$path: still HTTP $HTTP_STATUS after ${secs}s, expected $want"
}

reloads() { metric "http://$ADMIN/metrics" "portcullis_reloads_total{result=\"$1\"}"; }

# wait_counter RESULT ABOVE SECONDS: until reloads_total{result=RESULT} > ABOVE.
wait_counter() {
  local result=$1 above=$2 secs=$3 i v
  for ((i = 0; i < secs * 20; i++)); do
    v=$(reloads "$result")
    [[ -n $v ]] && ((v > above)) && return 0
    sleep 0.05
  done
  fail "portcullis_reloads_total{result=\"$result\"} is '$v' after ${secs}s, expected > $above"
}

policy_version() {
  local body
  admin_get "http://$ADMIN/status"
  [[ $HTTP_STATUS == 200 ]] || fail "GET /status: HTTP $HTTP_STATUS"
  body=$HTTP_BODY
  [[ $body != *"$ADMIN_TOKEN"* ]] || fail "GET /status shows the admin token"
  sed -n 's/.*"policy_version":"\([^"]*\)".*/\1/p' <<<"$body"
}

decide /flag
assert_status 403 "initial policy: /flag has allow: false"
decide /orders/1
assert_status 200 "initial policy: /orders/1"
assert_eq 0 "$(reloads ok)" "reloads ok at start"
assert_eq 0 "$(reloads error)" "reloads error at start"

# ---- load: wrk on /flag (200 or 403 are both fine), curl on /orders/1 (always 200) ---------
cat >"$TEST_TMP/load.lua" <<'EOF'
-- Counts statuses per thread; prints one RESULT line. delay() paces each connection so the
-- audit file stays small (a few thousand requests per second).
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; denied = 0; other = 0 end
function delay() return 1 end
function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 403 then denied = denied + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local o, d, x = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); d = d + t:get("denied"); x = x + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d ok=%d denied=%d other=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, o, d, x, e.connect, e.read, e.write, e.timeout))
end
EOF
start_bg wrk wrk -t1 -c4 -d"${LOAD_SECONDS}s" --timeout 2s -s "$TEST_TMP/load.lua" \
  -H "Authorization: Bearer $TOKEN" -H "X-Original-URI: /flag" -H "X-Original-Method: GET" \
  "http://$AUTHZ/"

curl_loop() {
  local i code
  for ((i = 0; i < 5000; i++)); do
    [[ -e $TEST_TMP/stop-curl ]] && break
    code=$(curl -s --noproxy '*' --max-time 2 -o /dev/null -w '%{http_code}' \
           -H "Authorization: Bearer $TOKEN" -H "X-Original-URI: /orders/1" \
           -H "X-Original-Method: GET" "http://$AUTHZ/" 2>/dev/null) || true
    echo "${code:-000}"
  done
}
start_bg curl-loop curl_loop
sleep 0.5   # let the load run on the initial policy first

# ---- (a) the watched file changes -------------------------------------------------------
ok0=$(reloads ok)
write_policy true true
wait_decision /flag 200 30
wait_counter ok "$ok0" 30
assert_contains "$(<"$TEST_TMP/portcullis.err")" "reload (file change): now serving policy" "(a) log"
log "(a) file edit: /flag now 200, reloads ok $(reloads ok)"

# (a') a broken file under the watcher: rejected, the old policy stays
err0=$(reloads error)
version_a=$(policy_version)
write_broken_policy true
wait_counter error "$err0" 30
decide /flag
assert_status 200 "(a') after a broken file was watched: still the old policy"
assert_eq "$version_a" "$(policy_version)" "(a') policy_version after a rejected file"
assert_contains "$(<"$TEST_TMP/portcullis.err")" "reload (file change) failed; still serving policy $version_a" "(a') log"
log "(a') broken file rejected by the watcher, reloads error $(reloads error)"

# Turn the watcher off (that change itself arrives through the watcher) so that (b) and (c)
# are applied by their own trigger only.
ok0=$(reloads ok)
write_policy true false
wait_counter ok "$ok0" 30
ok0=$(reloads ok)
write_policy false false
sleep 0.6
decide /flag
assert_status 200 "watch disabled: a file change alone must not be applied"
assert_eq "$ok0" "$(reloads ok)" "watch disabled: reloads ok"

# ---- (b) SIGHUP -------------------------------------------------------------------------
kill -HUP "${PID_OF[portcullis]}"
wait_decision /flag 403 30
wait_counter ok "$ok0" 30
assert_contains "$(<"$TEST_TMP/portcullis.err")" "reload (SIGHUP): now serving policy" "(b) log"
wait_audit "\"request_id\":\"$PROBE_ID\""
assert_audit reason route_denied "(b) /flag after SIGHUP"
assert_audit status 403 "(b) /flag after SIGHUP"
log "(b) SIGHUP: /flag now 403, reloads ok $(reloads ok)"

# ---- (c) POST /reload -------------------------------------------------------------------
ok0=$(reloads ok)
write_policy true false
sleep 0.3
decide /flag
assert_status 403 "(c) before POST /reload"
# Without the admin token, or without X-Portcullis-Admin: 1 (a browser's form post): refused.
http -X POST -H 'X-Portcullis-Admin: 1' "http://$ADMIN/reload"
assert_status 401 "(c) POST /reload without the admin token"
assert_eq 'Bearer realm="portcullis-admin"' "$(header WWW-Authenticate)" "(c) 401 WWW-Authenticate"
http -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: text/plain' --data x \
     "http://$ADMIN/reload"
assert_status 403 "(c) POST /reload as a simple request"
http -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -H 'X-Portcullis-Admin: 1' \
     -H 'Host: rebound.evil.example' "http://$ADMIN/reload"
assert_status 403 "(c) POST /reload with a foreign Host"
assert_eq "$ok0" "$(reloads ok)" "(c) reloads ok after the refused POSTs"
decide /flag
assert_status 403 "(c) /flag after the refused POSTs: not reloaded"
admin_post "http://$ADMIN/reload"
assert_status 200 "(c) POST /reload"
assert_match "$HTTP_BODY" '"ok":true' "(c) POST /reload body"
assert_match "$HTTP_BODY" '"changed":true' "(c) POST /reload body"
version_c=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$HTTP_BODY")
[[ -n $version_c ]] || fail "(c) no version in the POST /reload answer: $HTTP_BODY"
# The reload is complete when POST /reload answers: the very next decision uses it.
decide /flag
assert_status 200 "(c) /flag right after POST /reload"
wait_audit "\"request_id\":\"$PROBE_ID\""
assert_audit policy_version "$version_c" "(c) audit policy_version"
assert_audit reason none "(c) /flag after POST /reload"
assert_eq "$((ok0 + 1))" "$(reloads ok)" "(c) reloads ok after POST /reload"
assert_eq "$version_c" "$(policy_version)" "(c) /status policy_version"
log "(c) POST /reload: /flag now 200, policy $version_c"

# ---- (c2) a new admin token: the token file changes, the next reload reads it -------------
NEW_ADMIN_TOKEN=$(random_token)
printf '%s\n' "$NEW_ADMIN_TOKEN" >"$TOKEN_FILE.tmp"
mv -f "$TOKEN_FILE.tmp" "$TOKEN_FILE"
admin_post "http://$ADMIN/reload"   # still with the old token
assert_status 200 "(c2) POST /reload with the old token"
assert_match "$HTTP_BODY" '"changed":true' "(c2) a new token file is a new policy"
version_c=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$HTTP_BODY")
admin_get "http://$ADMIN/status"
assert_status 401 "(c2) the old admin token after the reload"
ADMIN_TOKEN=$NEW_ADMIN_TOKEN
admin_get "http://$ADMIN/status"
assert_status 200 "(c2) the new admin token"
log "(c2) admin token rotated through its file, policy $version_c"

# ---- (d) a broken file: rejected by POST /reload and by SIGHUP; the old policy serves -------
err0=$(reloads error)
ok0=$(reloads ok)
write_broken_policy false
admin_post "http://$ADMIN/reload"
assert_status 422 "(d) POST /reload of a broken file"
assert_match "$HTTP_BODY" '"ok":false' "(d) POST /reload body"
assert_match "$HTTP_BODY" "\"errors\":\\[\"$POLICY:$BROKEN_LINE:[0-9]+: YAML syntax error" \
  "(d) POST /reload: FILE:LINE:COL of the syntax error"
assert_match "$HTTP_BODY" "\"version\":\"$version_c\"" "(d) POST /reload: still serving $version_c"
assert_eq "$((err0 + 1))" "$(reloads error)" "(d) reloads error after POST /reload"
decide /flag
assert_status 200 "(d) /flag after a rejected reload: the old policy"
kill -HUP "${PID_OF[portcullis]}"
wait_counter error "$((err0 + 1))" 30
decide /flag
assert_status 200 "(d) /flag after a rejected SIGHUP reload"
assert_eq "$ok0" "$(reloads ok)" "(d) reloads ok after rejected reloads"
assert_eq "$version_c" "$(policy_version)" "(d) /status policy_version"
assert_contains "$(<"$TEST_TMP/portcullis.err")" "$POLICY:$BROKEN_LINE:" "(d) the error is logged"
log "(d) broken file rejected (POST /reload 422, SIGHUP), reloads error $(reloads error)"

# ---- the load: nothing failed -----------------------------------------------------------
sleep 0.3   # a little more load on the final policy
pid_alive "${PID_OF[wrk]}" || fail "wrk finished before the reloads were done: raise LOAD_SECONDS"
stop_bg wrk INT   # wrk stops, prints its summary and runs done()
assert_eq 0 "$BG_STATUS" "wrk exit status"
result=$(grep '^RESULT ' "$TEST_TMP/wrk.out") || fail "wrk printed no RESULT line"
log "wrk: $result"
field() { sed -n "s/.* $1=\\([0-9]*\\).*/\\1/p" <<<"$result"; }
for f in other connect read write timeout; do
  assert_eq 0 "$(field "$f")" "wrk: $f (statuses other than 200/403, or socket errors)"
done
(($(field ok) > 100 && $(field denied) > 100)) ||
  fail "wrk: expected both decisions under load: $result"

touch "$TEST_TMP/stop-curl"
wait_bg curl-loop 10
total=$(grep -c . "$TEST_TMP/curl-loop.out" || true)
bad=$(grep -vc '^200$' "$TEST_TMP/curl-loop.out" || true)
log "curl loop: $total requests on new connections, $bad not 200"
((total >= 20)) || fail "curl loop: only $total requests"
assert_eq 0 "$bad" "curl loop: requests to /orders/1 not answered 200 ($(grep -v '^200$' "$TEST_TMP/curl-loop.out" | sort | uniq -c | tr '\n' ' '))"

dropped=$(metric "http://$ADMIN/metrics" portcullis_audit_dropped_total)
assert_eq 0 "$dropped" "portcullis_audit_dropped_total"

stop_bg portcullis
assert_eq 0 "$BG_STATUS" "portcullis exit status on SIGTERM"
for t in "$FIRST_ADMIN_TOKEN" "$NEW_ADMIN_TOKEN"; do
  ! grep -qF -- "$t" "$TEST_TMP/portcullis.err" "$TEST_TMP/portcullis.out" "$AUDIT_FILE" ||
    fail "an admin token appears in the log or the audit"
done
