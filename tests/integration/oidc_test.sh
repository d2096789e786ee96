#!/usr/bin/env bash
# Remote keys end to end: OIDC discovery and JWKS fetching against the fake identity
# provider (tests/fakes/oidc_server.js), over HTTP and HTTPS, through key rotation, an IdP
# that is down at start or goes down (or answers garbage, or 500) later, an unknown-kid
# storm, a discovery document whose issuer is not the configured one, and a ca_file that
# is replaced.
#
#   bash tests/integration/oidc_test.sh PORTCULLIS_BINARY SOURCE_DIR
#
# Every decision is asked nginx-style (X-Original-URI + Authorization: Bearer) and checked
# by its status, its X-Portcullis-Reason header and its audit line (matched by the
# X-Request-Id we send); key fetching is checked from both sides: the fake's fetch counters
# and portcullis' /readyz, /status and /metrics. Needs node (the fake), openssl, curl.
#
# Four fakes, each with its own role so that one scenario's failure modes never leak into
# another's:
#   web   HTTP; provider `web` refreshes every second (keys_ttl_min = keys_ttl_max = 1s):
#         discovery; IdP down / garbage / 500 while keys are loaded
#   rot   HTTP, issuer with a trailing slash (as Auth0's); provider `rot` refreshes on its
#         own only every 60 s, so every fetch during the test comes from an unknown kid:
#         rotation and the unknown-kid storm
#   tls   HTTPS with a throwaway CA: discovery and jwks_uri with ca_file; without ca_file;
#         with a ca_file holding another CA (later replaced); an issuer with a trailing
#         slash the discovery document lacks
#   late  HTTP, issuer with a path (as Keycloak's); down when portcullis starts
# and three portcullis instances: `main` (web, rot, tls, tls_uri: all must load), `broken`
# (providers that must not load) and `late`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"

command -v node >/dev/null || fail "node is not installed (the fake IdP needs Node.js >= 20)"
command -v openssl >/dev/null || fail "openssl is not installed"
FAKE="$SRC/tests/fakes/oidc_server.js"

# ---- small helpers ----------------------------------------------------------------------

now_ms() {
  local t=$EPOCHREALTIME
  echo $((10#${t//[.,]/} / 1000))
}

# within SECONDS CMD [ARGS…]: runs CMD every 0.1 s until it succeeds (true) or SECONDS
# pass (false). CMD must not call fail (it runs in a condition).
within() {
  local secs=$1
  shift
  local deadline=$(($(now_ms) + secs * 1000))
  while true; do
    if "$@"; then return 0; fi
    (($(now_ms) < deadline)) || return 1
    sleep 0.1
  done
}
# until_ok SECONDS WHAT CMD [ARGS…]: `within`, failing the test with WHAT on a timeout.
until_ok() {
  local secs=$1 what=$2
  shift 2
  within "$secs" "$@" || fail "$what: still not the case after ${secs}s"
}

# js EXPR < JSON: prints EXPR evaluated with the parsed document as `d` (objects as JSON,
# undefined as "undefined"). Node is here anyway: the fake needs it.
js() {
  node -e '
    let s = "";
    process.stdin.on("data", (c) => (s += c)).on("end", () => {
      let v;
      try { const d = JSON.parse(s); v = eval(process.argv[1]); } catch (e) { v = "ERROR " + e.message; }
      process.stdout.write(v !== null && typeof v === "object" ? JSON.stringify(v) : String(v));
    });' "$1"
}

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

# ---- the fakes --------------------------------------------------------------------------

declare -A IDP_ISSUER=() IDP_BASE=() IDP_CURL_TLS=()

# start_idp NAME [FAKE ARGS…]: starts a fake IdP; IDP_ISSUER[NAME], IDP_BASE[NAME].
start_idp() {
  local name=$1
  shift
  start_bg "idp_$name" node "$FAKE" --port 0 --state-dir "$TEST_TMP/idp_$name" "$@"
}
wait_idp() {
  local name=$1 ready
  wait_for_file "$TEST_TMP/idp_$name/ready.json" 15 "idp_$name"
  ready=$(<"$TEST_TMP/idp_$name/ready.json")
  IDP_ISSUER[$name]=$(json_get "$ready" issuer)
  local port
  port=$(json_get "$ready" port)
  if [[ ${IDP_ISSUER[$name]} == https://* ]]; then
    IDP_BASE[$name]="https://127.0.0.1:$port"
    IDP_CURL_TLS[$name]="--cacert $CERTS/ca.pem"
  else
    IDP_BASE[$name]="http://127.0.0.1:$port"
    IDP_CURL_TLS[$name]=""
  fi
  log "fake IdP $name: issuer ${IDP_ISSUER[$name]}"
}

# idp NAME METHOD PATH [BODY]: one control call; IDP_OUT = the answer (fails unless 200).
idp() {
  local name=$1 method=$2 path=$3 body=${4:-}
  local -a tls=()
  [[ -n ${IDP_CURL_TLS[$name]} ]] && read -r -a tls <<<"${IDP_CURL_TLS[$name]}"
  local code
  code=$("${CURL[@]}" "${tls[@]}" -o "$TEST_TMP/idp.out" -w '%{http_code}' -X "$method" \
         --data-binary "$body" "${IDP_BASE[$name]}$path" 2>"$TEST_TMP/idp.curl.err") || true
  IDP_OUT=$(<"$TEST_TMP/idp.out")
  [[ $code == 200 ]] || fail "fake $name: $method $path answered '$code': $IDP_OUT $(cat "$TEST_TMP/idp.curl.err")"
}

# token NAME CLAIMS_JSON: TOKEN (signed by the fake NAME) and TOKEN_KID.
token() {
  idp "$1" POST /control/token "$2"
  TOKEN=$(json_get "$IDP_OUT" token)
  TOKEN_KID=$(json_get "$IDP_OUT" kid)
  [[ $TOKEN == *.*.* ]] || fail "fake $1 minted no token: $IDP_OUT"
}

idp_mode() {
  idp "$1" POST /control/mode "{\"mode\":\"$2\"}"
  log "fake $1: mode $2"
}

# idp_jwks_fetches NAME: the fake's count of JWKS requests so far.
idp_jwks_fetches() {
  idp "$1" GET /control/stats
  json_get "$IDP_OUT" jwks_fetches
}

# ---- portcullis -------------------------------------------------------------------------

declare -A P_AUTHZ=() P_ADMIN=() P_AUDIT=()

# serve NAME: starts portcullis with $TEST_TMP/NAME.yaml (audit into $TEST_TMP/NAME.audit.jsonl).
serve() {
  local name=$1
  local out
  out=$("$PORTCULLIS" check -c "$TEST_TMP/$name.yaml" 2>&1) || fail "portcullis check $name.yaml: $out"
  start_portcullis "$name" "$TEST_TMP/$name.yaml"
  P_AUTHZ[$name]=$AUTHZ
  P_ADMIN[$name]=$ADMIN
  P_AUDIT[$name]="$TEST_TMP/$name.audit.jsonl"
}

# ask INSTANCE PATH [TOKEN]: one nginx-style check; HTTP_STATUS, RID (its request id).
REQ_SEQ=0
ask() {
  local name=$1 path=$2 tok=${3:-}
  REQ_SEQ=$((REQ_SEQ + 1))
  RID="oidc-$REQ_SEQ-$RANDOM$RANDOM"
  local -a args=(-H "X-Original-URI: $path" -H "X-Original-Method: GET" -H "X-Request-Id: $RID")
  [[ -n $tok ]] && args+=(-H "Authorization: Bearer $tok")
  http "${args[@]}" "http://${P_AUTHZ[$name]}/auth"
}

# expect INSTANCE PATH TOKEN STATUS REASON [SUB] [WHAT]: asks, then checks the status, the
# X-Portcullis-Reason header (on denies) and the audit line of that very request.
expect() {
  local name=$1 path=$2 tok=$3 status=$4 reason=$5 sub=${6:-} what=${7:-"$1 $2"}
  ask "$name" "$path" "$tok"
  assert_status "$status" "$what"
  if [[ $reason != none ]]; then
    assert_eq "$reason" "$(header X-Portcullis-Reason)" "$what: X-Portcullis-Reason"
  fi
  AUDIT_FILE=${P_AUDIT[$name]}
  wait_audit "\"request_id\":\"$RID\""
  assert_audit status "$status" "$what"
  assert_audit reason "$reason" "$what"
  [[ -z $sub ]] || assert_audit sub "$sub" "$what"
}

# ask_is INSTANCE PATH TOKEN STATUS: true when one check answers STATUS (for until_ok).
ask_is() {
  ask "$1" "$2" "$3"
  [[ $HTTP_STATUS == "$4" ]]
}

STATUS_JSON=""
fetch_status() {
  STATUS_JSON=$("${CURL[@]}" "http://${P_ADMIN[$1]}/status" 2>/dev/null) || STATUS_JSON="{}"
}
# remote INSTANCE PROVIDER FIELD: a field of the provider's `remote` entry in /status.
remote() {
  fetch_status "$1"
  js "(d.providers || []).find((p) => p.name === '$2').remote.$3" <<<"$STATUS_JSON"
}
# provider_keys INSTANCE PROVIDER: the provider's key count in /status.
provider_keys() {
  fetch_status "$1"
  js "(d.providers || []).find((p) => p.name === '$2').keys" <<<"$STATUS_JSON"
}
remote_ge() { # remote_ge INSTANCE PROVIDER FIELD MIN
  local v
  v=$(remote "$1" "$2" "$3")
  [[ $v =~ ^[0-9]+$ ]] && ((v >= $4))
}

readyz() { # READY_STATUS, READY_BODY
  http "http://${P_ADMIN[$1]}/readyz"
  READY_STATUS=$HTTP_STATUS
  READY_BODY=$HTTP_BODY
}
is_ready() {
  readyz "$1"
  [[ $READY_STATUS == 200 ]]
}

fetch_errors_metric() {
  local v
  v=$(metric "http://${P_ADMIN[$1]}/metrics" 'portcullis_jwks_fetches_total{result="error"}')
  echo "${v:-0}"
}

# =========================================================================================
# Set-up: a throwaway CA and certificate, four fakes.
# =========================================================================================
CERTS="$TEST_TMP/certs"
bash "$SRC/tests/fakes/make_tls_cert.sh" "$CERTS" || fail "make_tls_cert.sh failed"

start_idp web
start_idp rot --issuer 'http://127.0.0.1:{port}/'             # Auth0 style: a trailing slash
start_idp late --issuer 'http://127.0.0.1:{port}/realms/test' # Keycloak style: a path
start_idp tls --tls-cert "$CERTS/server.pem" --tls-key "$CERTS/server.key"
# Another throwaway CA, which did not sign the fake's certificate (for the ca_file rotation).
bash "$SRC/tests/fakes/make_tls_cert.sh" "$TEST_TMP/certs_other" || fail "make_tls_cert.sh failed"
for n in web rot late tls; do wait_idp "$n"; done
[[ ${IDP_ISSUER[tls]} == https://127.0.0.1:* ]] || fail "the TLS fake's issuer is ${IDP_ISSUER[tls]}"
[[ ${IDP_ISSUER[rot]} == http://127.0.0.1:*/ ]] || fail "the rot fake's issuer is ${IDP_ISSUER[rot]}"
[[ ${IDP_ISSUER[late]} == http://127.0.0.1:*/realms/test ]] || fail "the late fake's issuer is ${IDP_ISSUER[late]}"

# `late` is down before portcullis ever asks it.
idp_mode late down

policy_head() { # policy_head NAME: listeners, style, audit for instance NAME
  cat <<EOF
version: 1
workers: 2
listeners: { authz: 127.0.0.1:0, admin: 127.0.0.1:0 }
authz: { style: nginx }
default: deny
audit: { sink: "file:$TEST_TMP/$1.audit.jsonl" }
watch: { enabled: false }
EOF
}

policy_head main >"$TEST_TMP/main.yaml"
cat >>"$TEST_TMP/main.yaml" <<EOF
identity:
  web:                       # refreshed every second
    issuer: ${IDP_ISSUER[web]}
    discovery: true
    audiences: [orders-api]
    keys_ttl_min: 1s
    keys_ttl_max: 1s
    refresh_min_interval: 1s
    fetch_timeout: 2s
    claims_to_headers: { X-User: sub }
  rot:                       # on its own only every 60 s: fetches come from unknown kids
    issuer: ${IDP_ISSUER[rot]}
    discovery: true
    audiences: [orders-api]
    keys_ttl_min: 1s
    keys_ttl_max: 60s
    refresh_min_interval: 2s
    fetch_timeout: 2s
  tls:
    issuer: ${IDP_ISSUER[tls]}
    discovery: true
    ca_file: $CERTS/ca.pem
    audiences: [orders-api]
    keys_ttl_min: 2s
    fetch_timeout: 2s
  tls_uri:
    issuer: ${IDP_ISSUER[tls]}
    jwks_uri: ${IDP_ISSUER[tls]}/jwks
    ca_file: $CERTS/ca.pem
    audiences: [orders-api]
    keys_ttl_min: 2s
    fetch_timeout: 2s
routes:
  - { name: web,     match: { paths: [/web/**] },     authenticate: [web],      expose_reason: true }
  - { name: rot,     match: { paths: [/rot/**] },     authenticate: [rot],      expose_reason: true }
  - { name: storm,   match: { paths: [/storm/**] },   authenticate: [rot],      expose_reason: true }
  - { name: tls,     match: { paths: [/tls/**] },     authenticate: [tls],      expose_reason: true }
  - { name: tls-uri, match: { paths: [/tls-uri/**] }, authenticate: [tls_uri],  expose_reason: true }
  - { name: multi,   match: { paths: [/multi/**] },   authenticate: [web, tls], expose_reason: true }
EOF

policy_head broken >"$TEST_TMP/broken.yaml"
cat >>"$TEST_TMP/broken.yaml" <<EOF
identity:
  tls_noca:                  # HTTPS with the system trust store: the throwaway CA is not in it
    issuer: ${IDP_ISSUER[tls]}
    discovery: true
    audiences: [orders-api]
    keys_ttl_min: 1s
    fetch_timeout: 2s
  mismatch:                  # the document says ${IDP_ISSUER[tls]} (no trailing slash)
    issuer: ${IDP_ISSUER[tls]}/
    discovery: true
    ca_file: $CERTS/ca.pem
    audiences: [orders-api]
    keys_ttl_min: 1s
    fetch_timeout: 2s
  ca_rot:                    # a CA that did not sign the fake's certificate; replaced later
    issuer: ${IDP_ISSUER[tls]}
    discovery: true
    ca_file: $TEST_TMP/ca_rot.pem
    audiences: [orders-api]
    keys_ttl_min: 1s
    fetch_timeout: 2s
routes:
  - { name: noca,     match: { paths: [/noca/**] },     authenticate: [tls_noca], expose_reason: true }
  - { name: mismatch, match: { paths: [/mismatch/**] }, authenticate: [mismatch], expose_reason: true }
  - { name: ca-rot,   match: { paths: [/ca-rot/**] },   authenticate: [ca_rot],   expose_reason: true }
EOF
cp "$TEST_TMP/certs_other/ca.pem" "$TEST_TMP/ca_rot.pem"

policy_head late >"$TEST_TMP/late.yaml"
cat >>"$TEST_TMP/late.yaml" <<EOF
identity:
  late:
    issuer: ${IDP_ISSUER[late]}
    discovery: true
    audiences: [orders-api]
    keys_ttl_min: 2s
    refresh_min_interval: 1s
    fetch_timeout: 2s
routes:
  - { name: late, match: { paths: [/late/**] }, authenticate: [late], expose_reason: true }
EOF

# =========================================================================================
# IdP down at start: not ready, 503 provider_unavailable; ready within the backoff once up.
# =========================================================================================
serve late
until_ok 30 "late: a failed fetch in /status" remote_ge late late failures 1
readyz late
assert_eq 503 "$READY_STATUS" "late: /readyz while the IdP is down"
assert_contains "$READY_BODY" '"providers_without_keys":["late"]' "late: /readyz body"
assert_eq false "$(remote late late loaded)" "late: /status remote.loaded"
err=$(remote late late last_error)
[[ -n $err && $err != undefined ]] || fail "late: /status remote.last_error is empty while the IdP is down"
log "late: IdP down: /readyz 503, last_error '$err'"

token late '{"sub":"lena","aud":"orders-api"}'
LATE_TOKEN=$TOKEN
expect late /late/x "$LATE_TOKEN" 503 provider_unavailable "" "late: request while the IdP is down"
assert_audit decision deny

idp_mode late ok
t_up=$(now_ms)
# Backoff is 1 s doubling, at most keys_ttl_min (2 s): ready within ~2 s; allow 5.
until_ok 20 "late: ready after the IdP came up (backoff at most keys_ttl_min = 2s; 20 s bounds a hang)" is_ready late
log "late: ready $(($(now_ms) - t_up)) ms after the IdP came up"
assert_contains "$READY_BODY" '"ready":true' "late: /readyz body once ready"
expect late /late/x "$LATE_TOKEN" 200 none lena "late: request once the keys loaded"
assert_audit decision allow
assert_eq "" "$(remote late late last_error)" "late: last_error after a good fetch"
stop_bg late
assert_eq 0 "$BG_STATUS" "late: exit status on SIGTERM"

# =========================================================================================
# Main instance: every provider loads (HTTP discovery, HTTPS discovery, HTTPS jwks_uri).
# =========================================================================================
serve main
until_ok 30 "main: /readyz 200 (every provider loaded)" is_ready main
assert_eq 2 "$(provider_keys main web)" "main: web key count (one RSA, one EC)"
assert_eq true "$(remote main web loaded)" "main: web remote.loaded"

# ---- HTTP discovery: a valid token is allowed, the audit line names the subject ----------
token web '{"sub":"alice","aud":"orders-api"}'
WEB_TOKEN=$TOKEN
expect main /web/orders/1 "$WEB_TOKEN" 200 none alice "HTTP discovery: valid token"
assert_audit decision allow
assert_audit route web
assert_audit iss "${IDP_ISSUER[web]}"
assert_audit path /web/orders/1
assert_eq alice "$(header X-User)" "HTTP discovery: X-User from claims_to_headers"
token web '{"sub":"alice","aud":"orders-api","alg":"ES256"}'
expect main /web/orders/2 "$TOKEN" 200 none alice "HTTP discovery: ES256 token"
token web '{"sub":"alice","aud":"billing-api"}'
expect main /web/orders/3 "$TOKEN" 401 audience_mismatch "" "HTTP discovery: wrong audience"
expect main /web/orders/4 "" 401 token_missing "" "HTTP discovery: no token"
# A token from another IdP is not this provider's.
token rot '{"sub":"alice","aud":"orders-api"}'
ask main /web/orders/5 "$TOKEN"
assert_status 401 "HTTP discovery: a token of another issuer"

# ---- HTTPS with ca_file: discovery and jwks_uri ----------------------------------------
token tls '{"sub":"tara","aud":"orders-api"}'
TLS_TOKEN=$TOKEN
expect main /tls/a "$TLS_TOKEN" 200 none tara "HTTPS discovery with ca_file"
assert_audit iss "${IDP_ISSUER[tls]}"
expect main /tls-uri/a "$TLS_TOKEN" 200 none tara "HTTPS jwks_uri with ca_file"
assert_eq "" "$(remote main tls last_error)" "main: tls last_error"

# ---- several providers on one route: the token's iss picks the provider -----------------
expect main /multi/a "$WEB_TOKEN" 200 none alice "multi: a web token"
assert_audit iss "${IDP_ISSUER[web]}"
expect main /multi/b "$TLS_TOKEN" 200 none tara "multi: a tls token"
assert_audit iss "${IDP_ISSUER[tls]}"

# =========================================================================================
# Providers that never load: HTTPS without ca_file, and a discovery issuer mismatch.
# =========================================================================================
serve broken
until_ok 30 "broken: two failed fetches for tls_noca" remote_ge broken tls_noca failures 2
until_ok 30 "broken: two failed fetches for mismatch" remote_ge broken mismatch failures 2
until_ok 30 "broken: two failed fetches for ca_rot" remote_ge broken ca_rot failures 2
readyz broken
assert_eq 503 "$READY_STATUS" "broken: /readyz"
assert_contains "$READY_BODY" '"tls_noca"' "broken: /readyz names tls_noca"
assert_contains "$READY_BODY" '"mismatch"' "broken: /readyz names mismatch"
assert_contains "$READY_BODY" '"ca_rot"' "broken: /readyz names ca_rot"
assert_eq false "$(remote broken tls_noca loaded)" "broken: tls_noca loaded"
assert_eq 0 "$(provider_keys broken tls_noca)" "broken: tls_noca keys"
err=$(remote broken tls_noca last_error)
assert_contains "$err" "TLS handshake" "broken: tls_noca last_error"
assert_contains "${err,,}" "certificate" "broken: tls_noca last_error"
log "tls_noca: $err"
assert_eq false "$(remote broken mismatch loaded)" "broken: mismatch loaded"
err=$(remote broken mismatch last_error)
assert_contains "$err" "${IDP_ISSUER[tls]}/.well-known/openid-configuration" "broken: mismatch last_error"
assert_contains "$err" "issuer is not the configured issuer" "broken: mismatch last_error"
log "mismatch: $err"
expect broken /noca/a "$TLS_TOKEN" 503 provider_unavailable "" "HTTPS without ca_file"
assert_audit decision deny
assert_audit route noca
expect broken /mismatch/a "$TLS_TOKEN" 503 provider_unavailable "" "discovery issuer mismatch"
assert_audit route mismatch
# A ca_file holding another CA does not make the fake's certificate trusted either.
assert_eq false "$(remote broken ca_rot loaded)" "broken: ca_rot loaded"
assert_contains "$(remote broken ca_rot last_error)" "certificate verify failed" "broken: ca_rot last_error"
expect broken /ca-rot/a "$TLS_TOKEN" 503 provider_unavailable "" "ca_file with another CA"
http "http://${P_ADMIN[broken]}/healthz"
assert_status 200 "broken: /healthz (alive, just not ready)"
# (`broken` keeps running: its ca_file is rotated at the end of this test.)

# =========================================================================================
# Rotation: a new kid is fetched on first sight; a dropped kid is gone after the refresh.
# =========================================================================================
token rot '{"sub":"rita","aud":"orders-api"}'
K1=$TOKEN_KID
K1_TOKEN=$TOKEN
expect main /rot/a "$K1_TOKEN" 200 none rita "rotation: token of the first key"
assert_audit iss "${IDP_ISSUER[rot]}"  # with its trailing slash, exactly

idp rot POST /control/rotate
K2=$(json_get "$IDP_OUT" kid)
[[ -n $K2 && $K2 != "$K1" ]] || fail "rotate gave no new kid: $IDP_OUT"
token rot '{"sub":"rita","aud":"orders-api"}'
assert_eq "$K2" "$TOKEN_KID" "the fake signs with the new key"
K2_TOKEN=$TOKEN
fetches_before=$(idp_jwks_fetches rot)
t0=$(now_ms)
ask main /rot/b "$K2_TOKEN"
first=$HTTP_STATUS
if [[ $first != 200 ]]; then
  assert_status 401 "rotation: first request with the new kid"
  assert_eq key_not_found "$(header X-Portcullis-Reason)" "rotation: first request with the new kid"
fi
# refresh_min_interval is 2 s (counted from the last fetch, in whole seconds): allow 5 s.
until_ok 30 "rotation: the new kid $K2 accepted after the unknown-kid refresh" ask_is main /rot/b "$K2_TOKEN" 200
log "rotation: new kid accepted after $(($(now_ms) - t0)) ms (first answer $first)"
expect main /rot/c "$K2_TOKEN" 200 none rita "rotation: new kid"
fetches_after=$(idp_jwks_fetches rot)
((fetches_after > fetches_before)) ||
  fail "rotation: the fake saw no JWKS fetch for the new kid ($fetches_before -> $fetches_after)"
expect main /rot/d "$K1_TOKEN" 200 none rita "rotation: the old key is still published"

# drop_old: the JWKS now holds only K3. Until portcullis refetches, K1 is still in its cached
# set; a token with K3 (unknown) triggers the refresh, after which K1 is gone.
idp rot POST '/control/rotate?drop_old=1'
K3=$(json_get "$IDP_OUT" kid)
assert_contains "$IDP_OUT" "\"kids\":[\"$K3\"]" "rotate?drop_old=1 publishes only the new key"
token rot '{"sub":"rita","aud":"orders-api"}'
K3_TOKEN=$TOKEN
assert_eq "$K3" "$TOKEN_KID" "the fake signs with the newest key"
t0=$(now_ms)
until_ok 30 "rotation: the newest kid $K3 accepted after the unknown-kid refresh" ask_is main /rot/e "$K3_TOKEN" 200
log "rotation (drop_old): newest kid accepted after $(($(now_ms) - t0)) ms"
expect main /rot/f "$K1_TOKEN" 401 key_not_found "" "rotation: token of a dropped key"
assert_audit decision deny
expect main /rot/g "$K2_TOKEN" 401 key_not_found "" "rotation: token of the other dropped key"
assert_eq 1 "$(provider_keys main rot)" "rotation: rot key count after drop_old"
# A token whose header names a kid the fake never made (the fake refuses to sign with
# those, so the header is forged; the kid is looked up before any signature check).
forged_header=$(printf '{"alg":"RS256","kid":"nope-%s","typ":"JWT"}' "$RANDOM$RANDOM" | b64url)
FORGED_TOKEN="$forged_header.${K3_TOKEN#*.}"
expect main /storm/probe "$FORGED_TOKEN" 401 key_not_found "" "rotation: a kid never published"

# =========================================================================================
# IdP down later: the last good keys keep working; failures show in /status and /metrics.
# =========================================================================================
errors0=$(fetch_errors_metric main)
failures0=$(remote main web failures)
idp_mode web down
until_ok 30 "web down: failures grow by 2" remote_ge main web failures $((failures0 + 2))
err=$(remote main web last_error)
[[ -n $err && $err != undefined ]] || fail "web down: last_error is empty"
log "web down: last_error '$err'"
assert_eq true "$(remote main web loaded)" "web down: loaded (last good keys)"
expect main /web/down/1 "$WEB_TOKEN" 200 none alice "web down: valid token on the last good keys"
token web '{"sub":"bob","aud":"orders-api"}'
expect main /web/down/2 "$TOKEN" 200 none bob "web down: freshly minted token"
readyz main
assert_eq 200 "$READY_STATUS" "web down: /readyz (keys are loaded)"
errors1=$(fetch_errors_metric main)
((errors1 >= errors0 + 2)) ||
  fail "web down: portcullis_jwks_fetches_total{result=\"error\"} went $errors0 -> $errors1"

failures1=$(remote main web failures)
idp_mode web garbage
until_ok 30 "web garbage: failures grow by 2" remote_ge main web failures $((failures1 + 2))
err=$(remote main web last_error)
assert_contains "$err" "not a JSON object" "web garbage: last_error"
log "web garbage: last_error '$err'"
expect main /web/garbage/1 "$WEB_TOKEN" 200 none alice "web garbage: valid token on the last good keys"
assert_eq 2 "$(provider_keys main web)" "web garbage: key count (last good keys)"
errors2=$(fetch_errors_metric main)
((errors2 >= errors1 + 2)) ||
  fail "web garbage: portcullis_jwks_fetches_total{result=\"error\"} went $errors1 -> $errors2"

failures2=$(remote main web failures)
idp_mode web 500
until_ok 30 "web 500: failures grow by 2" remote_ge main web failures $((failures2 + 2))
assert_contains "$(remote main web last_error)" "answered HTTP 500" "web 500: last_error"
expect main /web/500/1 "$WEB_TOKEN" 200 none alice "web 500: valid token on the last good keys"

# A settings change while the IdP is still failing: the new key set starts from the last
# good keys of the same source, so nothing is lost.
sed -i '/^  web:/,/^  rot:/ s/fetch_timeout: 2s/fetch_timeout: 3s/' "$TEST_TMP/main.yaml"
grep -q 'fetch_timeout: 3s' "$TEST_TMP/main.yaml" || fail "could not change web's fetch_timeout"
admin_post "http://${P_ADMIN[main]}/reload"
assert_status 200 "web 500: POST /reload with a new fetch_timeout"
assert_contains "$HTTP_BODY" '"changed":true' "web 500: the new fetch_timeout is a new policy"
expect main /web/500/2 "$WEB_TOKEN" 200 none alice "web 500: valid token after a settings change"
readyz main
assert_eq 200 "$READY_STATUS" "web 500: /readyz after a settings change during the outage"

idp_mode web ok
web_ok() { [[ $(remote main web last_error) == "" ]]; }
until_ok 30 "web back: last_error cleared by a good fetch" web_ok
expect main /web/ok/1 "$WEB_TOKEN" 200 none alice "web back up"

# =========================================================================================
# Unknown-kid storm: 10 000 requests with kids the JWKS lacks cost one fetch per
# refresh_min_interval (2 s), all 401 key_not_found; portcullis stays healthy.
# =========================================================================================
# The storm's tokens are K1_TOKEN (a dropped key's, checked above) and FORGED_TOKEN.
# Start the storm when an unknown kid may trigger a fetch again (2 s after the last
# attempt, + 1 s: the limiter counts in whole seconds), so it must cause exactly that.
last=$(remote main rot last_attempt_ms)
wait_ms=$((last + 3100 - $(now_ms)))
((wait_ms <= 0)) || sleep "$((wait_ms / 1000)).$(printf '%03d' $((wait_ms % 1000)))"

storm_urls() { # storm_urls N: N curl config entries asking the main instance, output discarded
  awk -v n="$1" -v u="http://${P_AUTHZ[main]}/auth" \
    'BEGIN { for (i = 0; i < n; i++) printf "url = \"%s\"\noutput = \"/dev/null\"\n", u }'
}
# The storm: one curl, 16 keep-alive connections in parallel, exactly 10 000 requests
# (5 000 with each token), one "STATUS REASON" line written out per answer.
{
  echo 'header = "X-Original-URI: /storm/x"'
  echo 'header = "X-Original-Method: GET"'
  echo "header = \"Authorization: Bearer $FORGED_TOKEN\""
  echo 'write-out = "%{http_code} %header{x-portcullis-reason}\\n"'
  storm_urls 5000
  echo 'next'
  echo 'header = "X-Original-URI: /storm/y"'
  echo 'header = "X-Original-Method: GET"'
  echo "header = \"Authorization: Bearer $K1_TOKEN\""
  echo 'write-out = "%{http_code} %header{x-portcullis-reason}\\n"'
  storm_urls 5000
} >"$TEST_TMP/storm.curl"

AUDIT_FILE=${P_AUDIT[main]}
storm_lines_before=$(grep -c '"route":"storm"' "$AUDIT_FILE" || true)
authz_conns_before=$(metric "http://${P_ADMIN[main]}/metrics" 'portcullis_connections_accepted_total{listener="authz"}')
jwks_before=$(idp_jwks_fetches rot)
st_fetches_before=$(remote main rot fetches)
st_failures_before=$(remote main rot failures)
t_storm0=$(now_ms)
log "storm: starting, $((t_storm0 - last)) ms after rot's last fetch attempt"
timeout 400 curl -sS --no-progress-meter --noproxy '*' --max-time 60 --parallel --parallel-max 16 -K "$TEST_TMP/storm.curl" \
  >"$TEST_TMP/storm.answers" 2>"$TEST_TMP/storm.err" ||
  fail "storm: curl failed: $(head -c 1000 "$TEST_TMP/storm.err")"
t_storm1=$(now_ms)
sleep 0.5 # a fetch woken by the last requests reaches the fake within this
t_storm2=$(now_ms)
jwks_after=$(idp_jwks_fetches rot)
st_fetches_after=$(remote main rot fetches)
storm_ms=$((t_storm1 - t_storm0))
window_ms=$((t_storm2 - t_storm0))
authz_conns=$(($(metric "http://${P_ADMIN[main]}/metrics" 'portcullis_connections_accepted_total{listener="authz"}') - authz_conns_before))
log "storm: $(sort "$TEST_TMP/storm.answers" | uniq -c | tr -s ' \n' ' ') in ${storm_ms} ms over $authz_conns connection(s)"

answers=$(wc -l <"$TEST_TMP/storm.answers")
good=$(grep -cx '401 key_not_found' "$TEST_TMP/storm.answers" || true)
assert_eq 10000 "$answers" "storm: answers"
assert_eq 10000 "$good" "storm: answers that are 401 key_not_found ($(sort "$TEST_TMP/storm.answers" | uniq -c | tr -s ' \n' ' '))"
((authz_conns <= 32)) || fail "storm: $authz_conns connections for 10 000 requests: keep-alive is not working"

# One fetch per refresh_min_interval at most (+1: one may be due when the storm starts).
grown=$((jwks_after - jwks_before))
allowed=$(((window_ms + 1999) / 2000 + 1))
log "storm: the fake saw $grown JWKS fetch(es) in ${window_ms} ms (allowed $allowed); portcullis counted $((st_fetches_after - st_fetches_before))"
((grown <= allowed)) || fail "storm: $grown JWKS fetches in ${window_ms} ms, at most $allowed allowed (refresh_min_interval 2s)"
((grown >= 1)) || fail "storm: unknown kids triggered no refresh at all (the last attempt was > 3 s before the storm)"
assert_eq "$((st_fetches_after - st_fetches_before))" "$grown" "storm: portcullis' fetch count vs the fake's"
assert_eq "$st_failures_before" "$(remote main rot failures)" "storm: rot fetch failures"

# Every storm request is audited as key_not_found.
storm_audited() {
  local n
  n=$(grep -c '"route":"storm"' "$AUDIT_FILE" || true)
  ((n - storm_lines_before >= answers))
}
until_ok 60 "storm: $answers audit lines for route storm" storm_audited
grep '"route":"storm"' "$AUDIT_FILE" | tail -n "+$((storm_lines_before + 1))" >"$TEST_TMP/storm.audit"
assert_eq 10000 "$(wc -l <"$TEST_TMP/storm.audit")" "storm: audit lines"
assert_eq 10000 "$(grep -cF '"status":401,' "$TEST_TMP/storm.audit" || true)" "storm: audit lines with status 401"
other=$(grep -v '"reason":"key_not_found"' "$TEST_TMP/storm.audit" | head -n 3 || true)
[[ -z $other ]] || fail "storm: audit lines with another reason: $other"
n_forged=$(grep -F '"path":"/storm/x"' "$TEST_TMP/storm.audit" | grep -cF 'kid=nope-' || true)
n_dropped=$(grep -F '"path":"/storm/y"' "$TEST_TMP/storm.audit" | grep -cF "kid=$K1" || true)
assert_eq 5000 "$n_forged" "storm: audit lines for the forged kid"
assert_eq 5000 "$n_dropped" "storm: audit lines for the dropped kid $K1"
assert_eq 0 "$(metric "http://${P_ADMIN[main]}/metrics" portcullis_audit_dropped_total)" "storm: audit lines dropped"

# Healthy afterwards: alive, ready, and the current key still verifies.
http "http://${P_ADMIN[main]}/healthz"
assert_status 200 "after the storm: /healthz"
readyz main
assert_eq 200 "$READY_STATUS" "after the storm: /readyz"
expect main /storm/after "$K3_TOKEN" 200 none rita "after the storm: a valid token"
expect main /web/after "$WEB_TOKEN" 200 none alice "after the storm: another provider"

stop_bg main
assert_eq 0 "$BG_STATUS" "main: exit status on SIGTERM"

# =========================================================================================
# ca_file rotation: the file is watched and part of the policy's content hash, so replacing
# it with the CA that did sign the fake's certificate and reloading must let the keys load.
# =========================================================================================
cp "$CERTS/ca.pem" "$TEST_TMP/ca_rot.pem.new"
mv -f "$TEST_TMP/ca_rot.pem.new" "$TEST_TMP/ca_rot.pem"
admin_post "http://${P_ADMIN[broken]}/reload"
assert_status 200 "broken: POST /reload after the ca_file changed"
assert_contains "$HTTP_BODY" '"changed":true' "broken: the new ca_file content is a new policy version"
ca_rot_loaded() { [[ $(remote broken ca_rot loaded) == true ]]; }
within 6 ca_rot_loaded ||
  fail "ca_rot: no keys 6 s after its ca_file was replaced by the right CA and the policy reloaded
  (/status: failures $(remote broken ca_rot failures), last_error '$(remote broken ca_rot last_error)')"
expect broken /ca-rot/b "$TLS_TOKEN" 200 none tara "ca_file rotated to the right CA"
stop_bg broken
assert_eq 0 "$BG_STATUS" "broken: exit status on SIGTERM"

for n in web rot late tls; do
  stop_bg "idp_$n"
done
