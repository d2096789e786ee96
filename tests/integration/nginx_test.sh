#!/usr/bin/env bash
# nginx auth_request in front of portcullis, end to end: examples/nginx/nginx.conf.template
# and examples/nginx/portcullis.yaml, run for real on loopback ports.
#
#   bash tests/integration/nginx_test.sh PORTCULLIS_BINARY SOURCE_DIR
#
# Every decision is checked three ways: what the client gets from nginx (status, headers),
# what the application behind nginx received (it echoes X-User), and portcullis' audit line
# for the same request (nginx's $request_id is the audit request_id).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"

command -v nginx >/dev/null || fail "nginx is not installed (Debian: nginx-light)"
EXAMPLE="$SRC/examples/nginx"
AUDIT_FILE="$TEST_TMP/audit.jsonl"

# ---- portcullis: the example policy on kernel-chosen ports, audit into a file -----------
config="$TEST_TMP/portcullis.yaml"
sed -e 's|^\(  authz:\) 127\.0\.0\.1:9191|\1 127.0.0.1:0|' \
    -e 's|^\(  admin:\) 127\.0\.0\.1:9901|\1 127.0.0.1:0|' \
    -e "s|jwks_file: \.\./keys/demo-jwks\.json|jwks_file: $SRC/examples/keys/demo-jwks.json|" \
    -e "s|^audit: { sink: stdout }|audit: { sink: \"file:$AUDIT_FILE\" }|" \
    "$EXAMPLE/portcullis.yaml" >"$config"
for want in "authz: 127.0.0.1:0" "admin: 127.0.0.1:0" "jwks_file: $SRC/" "file:$AUDIT_FILE"; do
  grep -qF -- "$want" "$config" ||
    fail "examples/nginx/portcullis.yaml changed: could not derive '$want' (see $config)"
done
check_out=$("$PORTCULLIS" check -c "$config" 2>&1) || fail "portcullis check failed: $check_out"

start_portcullis portcullis "$config"
AUTHZ_PORT=${AUTHZ##*:}
wait_http "http://$ADMIN/readyz" 30 portcullis

# ---- nginx: the example template, started in the foreground by this test ----------------
render_nginx() {
  sed -e "s/@LISTEN_PORT@/$LISTEN_PORT/g" -e "s/@AUTHZ_PORT@/$AUTHZ_PORT/g" \
      -e "s/@UPSTREAM_PORT@/$UPSTREAM_PORT/g" "$EXAMPLE/nginx.conf.template" >"$TEST_TMP/nginx.conf"
  if grep -n '@[A-Z_]*@' "$TEST_TMP/nginx.conf"; then
    fail "placeholders left in nginx.conf (see above)"
  fi
}
# Clients on LISTEN_PORT (GET /healthz goes through portcullis: the public route), the
# template's own echo application on UPSTREAM_PORT.
start_nginx nginx render_nginx /healthz LISTEN_PORT UPSTREAM_PORT
log "nginx: clients on :$LISTEN_PORT, application on :$UPSTREAM_PORT, portcullis on :$AUTHZ_PORT"
NGX="http://127.0.0.1:$LISTEN_PORT"

# via_nginx WHAT [CURL ARGS…] PATH: one request through nginx; RID = its request id, and
# AUDIT_LINE = portcullis' audit line for it.
via_nginx() {
  local what=$1
  shift
  local path=${*: -1}
  local -a args=("${@:1:$#-1}")
  http "${args[@]}" "$NGX$path"
  [[ $HTTP_STATUS != 000 ]] || fail "$what: no HTTP answer from nginx"
  RID=$(header X-Request-Id)
  [[ $RID =~ ^[0-9a-f]{32}$ ]] || fail "$what: no X-Request-Id from nginx (got '$RID')"
  wait_audit "\"request_id\":\"$RID\""
  log "$what: HTTP $HTTP_STATUS, audit $(json_get "$AUDIT_LINE" decision)/$(json_get "$AUDIT_LINE" reason)"
}

# The application (the echo server) must never have seen request RID.
assert_not_forwarded() {
  sleep 0.05
  if grep -qsF "rid=$RID" "$TEST_TMP/app_access.log"; then
    fail "$1: a denied request reached the application: $(grep -F "rid=$RID" "$TEST_TMP/app_access.log")"
  fi
}
assert_forwarded() {
  local i
  for ((i = 0; i < 40; i++)); do
    grep -qsF "rid=$RID" "$TEST_TMP/app_access.log" && return 0
    sleep 0.05
  done
  fail "$1: the application has no record of request $RID"
}

# ---- tokens -----------------------------------------------------------------------------
now=$(date +%s)
GOOD=$(mint_token --sub alice --aud orders-api --scope 'read:orders write:notes')
EXPIRED=$(mint_token --sub alice --aud orders-api --scope read:orders --iat $((now - 7200)) --exp $((now - 3600)))
WRONG_AUD=$(mint_token --sub alice --aud billing-api --scope read:orders)
NO_SCOPE=$(mint_token --sub alice --aud orders-api --scope 'write:orders')
# Bad signature: change one character in the middle of the signature (the last character
# may only carry padding bits, which would leave the signature intact).
sig=${GOOD##*.}
c=${sig:20:1}
[[ $c == A ]] && r=B || r=A
BAD_SIG="${GOOD%.*}.${sig:0:20}$r${sig:21}"
[[ $BAD_SIG != "$GOOD" && ${#BAD_SIG} == "${#GOOD}" ]] || fail "could not tamper with the signature"

# ---- allowed ----------------------------------------------------------------------------
via_nginx "valid token" -H "Authorization: Bearer $GOOD" /orders/7
assert_status 200 "valid token"
assert_contains "$HTTP_BODY" $'user=alice\n' "valid token: X-User seen by the application"
assert_contains "$HTTP_BODY" "request_id=$RID" "valid token: X-Request-Id seen by the application"
assert_forwarded "valid token"
assert_audit decision allow
assert_audit status 200
assert_audit reason none
assert_audit route orders-read
assert_audit sub alice
assert_audit iss portcullis-dev
assert_audit method GET
assert_audit path /orders/7
assert_audit host 127.0.0.1
assert_audit listener authz
assert_audit client_ip 127.0.0.1
assert_not_contains "$AUDIT_LINE" "${GOOD##*.}" "audit line must not carry the token"
[[ -z $(header X-User) ]] || fail "valid token: X-User leaked back to the client"

via_nginx "HEAD, valid token" -I -H "Authorization: Bearer $GOOD" /orders
assert_status 200 "HEAD /orders"
assert_audit method HEAD
assert_audit route orders-read
assert_audit path /orders

# ---- a target portcullis refuses: 400 to the client ---------------------------------------
# A servlet container would serve /public/..;/orders/7 as /orders/7 (docs/paths.md).
via_nginx "servlet ..;" --path-as-is /public/..\;/orders/7
assert_status 400 "a refused target (the template maps portcullis' 400 back to 400)"
assert_audit reason bad_request
assert_not_forwarded "servlet ..;"

# ---- forged identity headers ------------------------------------------------------------
via_nginx "valid token + forged X-User" -H "Authorization: Bearer $GOOD" -H "X-User: mallory" /orders/8
assert_status 200 "forged X-User with a valid token"
assert_contains "$HTTP_BODY" $'user=alice\n' "forged X-User with a valid token"
assert_not_contains "$HTTP_BODY" mallory "forged X-User with a valid token"

via_nginx "valid token + two forged x-user" -H "Authorization: Bearer $GOOD" \
  -H "x-user: mallory" -H "X-USER: eve" /orders/9
assert_status 200 "two forged x-user headers"
assert_contains "$HTTP_BODY" $'user=alice\n' "two forged x-user headers"
assert_not_contains "$HTTP_BODY" mallory "two forged x-user headers"
assert_not_contains "$HTTP_BODY" eve "two forged x-user headers"

# Anonymous route: portcullis allows without identity, so it sends no X-User, and nginx
# (proxy_set_header X-User "" = not sent) must drop the client's copy.
via_nginx "public + forged X-User/X-Forwarded-For/X-Real-IP" -H "X-User: mallory" \
  -H "X-Forwarded-For: 203.0.113.9" -H "X-Real-IP: 198.51.100.7" /public/info
assert_status 200 "public route"
assert_match "$HTTP_BODY" $'^user=\nuri=/public/info\n' "public route: the application got no X-User"
assert_not_contains "$HTTP_BODY" mallory "public route with a forged X-User"
assert_audit decision allow
assert_audit route public
assert_audit reason none
assert_audit sub null
assert_audit client_ip 127.0.0.1 "forged X-Forwarded-For / X-Real-IP must not become the client address"

via_nginx "forged X-User, no token" -H "X-User: mallory" /orders/7
assert_status 401 "forged X-User without a token"
assert_not_contains "$HTTP_BODY" mallory "forged X-User without a token"
assert_not_forwarded "forged X-User without a token"
assert_audit reason token_missing

# ---- denied -----------------------------------------------------------------------------
via_nginx "no token" /orders/7
assert_status 401 "no token"
www=$(header WWW-Authenticate)
assert_contains "$www" 'Bearer realm="portcullis"' "no token: WWW-Authenticate"
assert_not_contains "$www" "error=" "no token: WWW-Authenticate (RFC 6750: no error without a token)"
assert_eq 1 "$(header_count WWW-Authenticate)" "no token: number of WWW-Authenticate headers"
assert_eq "" "$(header X-Portcullis-Reason)" "expose_reason: false, yet a reason header"
assert_not_forwarded "no token"
assert_audit decision deny
assert_audit status 401
assert_audit reason token_missing
assert_audit route orders-read
assert_audit sub null

via_nginx "expired token" -H "Authorization: Bearer $EXPIRED" /orders/7
assert_status 401 "expired token"
assert_contains "$(header WWW-Authenticate)" 'error="invalid_token"' "expired token: WWW-Authenticate"
assert_not_forwarded "expired token"
assert_audit decision deny
assert_audit status 401
assert_audit reason token_expired

via_nginx "bad signature" -H "Authorization: Bearer $BAD_SIG" /orders/7
assert_status 401 "bad signature"
assert_contains "$(header WWW-Authenticate)" 'error="invalid_token"' "bad signature: WWW-Authenticate"
assert_not_forwarded "bad signature"
assert_audit status 401
assert_audit reason signature_invalid
assert_audit sub null

via_nginx "wrong audience" -H "Authorization: Bearer $WRONG_AUD" /orders/7
assert_status 401 "wrong audience"
assert_not_forwarded "wrong audience"
assert_audit status 401
assert_audit reason audience_mismatch

via_nginx "missing scope" -H "Authorization: Bearer $NO_SCOPE" /orders/7
assert_status 403 "missing scope"
www=$(header WWW-Authenticate)
assert_contains "$www" 'error="insufficient_scope"' "missing scope: WWW-Authenticate (via the 403 map)"
assert_contains "$www" 'scope="read:orders"' "missing scope: WWW-Authenticate"
assert_not_forwarded "missing scope"
assert_audit decision deny
assert_audit status 403
assert_audit reason scope_missing
assert_audit sub alice

via_nginx "no route (POST)" -X POST -H "Authorization: Bearer $GOOD" /orders/7
assert_status 403 "POST /orders/7 (no route, default deny)"
assert_eq "" "$(header WWW-Authenticate)" "403 no_route: WWW-Authenticate"
assert_not_forwarded "POST /orders/7"
assert_audit status 403
assert_audit reason no_route
assert_audit route ""

# nginx routes on the normalised path; portcullis must decide on the same path.
via_nginx "dot segments" --path-as-is /public/../orders/7
assert_status 401 "/public/../orders/7 without a token"
assert_not_forwarded "/public/../orders/7"
assert_audit path /orders/7
assert_audit reason token_missing

via_nginx "encoded dot segments" --path-as-is /public/%2e%2e/orders/7
assert_status 401 "/public/%2e%2e/orders/7 without a token"
assert_not_forwarded "/public/%2e%2e/orders/7"
assert_audit path /orders/7
assert_audit reason token_missing

via_nginx "empty segments" --path-as-is //orders//7
assert_status 401 "//orders//7 without a token"
assert_not_forwarded "//orders//7"
assert_audit path /orders/7
assert_audit reason token_missing

# ---- keep-alive between nginx and portcullis --------------------------------------------
# Allowed and denied checks (portcullis answers both with an empty body, which nginx needs
# to keep a connection after an auth subrequest) must reuse the pooled connection.
authz_accepted() {
  local v
  v=$(metric "http://$ADMIN/metrics" 'portcullis_connections_accepted_total{listener="authz"}')
  [[ $v =~ ^[0-9]+$ ]] || fail "no portcullis_connections_accepted_total{listener=\"authz\"} in /metrics"
  echo "$v"
}
before=$(authz_accepted)
for i in $(seq 1 10); do
  http -H "Authorization: Bearer $GOOD" "$NGX/orders/$i"
  assert_status 200 "keep-alive round, request $i"
done
after=$(authz_accepted)
log "authz connections accepted: $before before and $after after 10 allowed requests"
((after - before <= 1)) ||
  fail "keepalive: 10 allowed requests through nginx opened $((after - before)) new authz connections"
for i in $(seq 1 5); do
  http "$NGX/orders/$i"
  assert_status 401 "denied round, request $i"
done
after_denials=$(authz_accepted)
log "authz connections accepted after 5 denied requests: $after_denials"
((after_denials - after <= 1)) ||
  fail "keepalive: 5 denied requests through nginx opened $((after_denials - after)) new authz connections"

# ---- portcullis down: fail closed, and 503 (not auth_request's bare 500) ----------------
stop_bg portcullis
assert_eq 0 "$BG_STATUS" "portcullis exit status on SIGTERM"
http -H "Authorization: Bearer $GOOD" "$NGX/orders/7"
assert_status 503 "portcullis unreachable"
assert_eq 1 "$(header Retry-After)" "portcullis unreachable: Retry-After"
RID=$(header X-Request-Id)
assert_not_forwarded "portcullis unreachable"
assert_contains "$(tail -n 3 "$TEST_TMP/access.log")" "rid=$RID" "nginx access log"

stop_bg nginx
assert_eq 0 "$BG_STATUS" "nginx exit status on SIGTERM"
