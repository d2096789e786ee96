#!/usr/bin/env bash
# The SPOE agent on a unix socket (`listeners.spoe: unix:/path`) behind HAProxy 2.6:
# portcullis refuses a path that holds another kind of file, replaces a stale socket, makes
# the socket mode 0660 and removes it at exit; `portcullis haproxy-config` points HAProxy's
# agent backend at `unix@/path`, and HAProxy's decisions come over it. A route whose
# function takes 1.2 s gets its answer: the generated `timeout processing` covers the
# function's timeout (a fixed 1 s failed such routes closed).
#
#   bash tests/integration/haproxy_unix_test.sh PORTCULLIS_BINARY SOURCE_DIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$1" "$2"

command -v haproxy >/dev/null || fail "haproxy is not installed (Debian: haproxy)"
command -v nginx >/dev/null || fail "nginx is not installed (Debian: nginx-light)"
command -v python3 >/dev/null || fail "python3 is needed to leave a stale socket behind"
HAPROXY=$(command -v haproxy)
SOCK="$TEST_TMP/agent.sock"

# A slow Lambda authorizer: examples' bash runtime, with a handler that takes 1.2 s.
mkdir -p "$TEST_TMP/slow"
cp "$SRC/examples/functions/lambda/bash/bootstrap" "$TEST_TMP/slow/"
cat >"$TEST_TMP/slow/slow.sh" <<'SH'
handler() { sleep 1.2; printf '{"isAuthorized":true,"context":{"speed":"slow"}}'; }
SH

config="$TEST_TMP/portcullis.yaml"
cat >"$config" <<YAML
version: 1
workers: 2
listeners:
  spoe: unix:$SOCK
  admin: 127.0.0.1:0
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $SRC/examples/keys/demo-jwks.json
    audiences: [orders-api]
    claims_to_headers: { X-User: sub }
routes:
  - name: orders
    match: { paths: [/orders/**] }
    authenticate: [demo]
  - name: status
    match: { paths: [/status] }
    allow: true
  - name: slow
    match: { paths: [/slow] }
    functions: [slow-authorizer]
default: deny
functions:
  slow-authorizer:
    runtime: lambda-local
    command: [$TEST_TMP/slow/bootstrap]
    handler: slow.handler
    min: 1
    timeout: 5s
audit: { sink: none }
YAML

# ---- the socket path: never replace a file that is not a socket ------------------------
echo "not a socket" >"$SOCK"
if out=$("$PORTCULLIS" serve -c "$config" 2>&1); then
  fail "serve started over a regular file at $SOCK: $out"
fi
assert_contains "$out" "not a socket" "serve's refusal"
assert_eq "not a socket" "$(cat "$SOCK")" "the regular file at the socket path"
rm -f -- "$SOCK"

# A socket left behind by a process that is gone (nobody listening): replaced.
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$SOCK"
[[ -S $SOCK ]] || fail "could not leave a stale socket at $SOCK"
start_portcullis portcullis "$config"
assert_eq "unix:$SOCK" "$(json_string_field "$TEST_TMP/portcullis.ready.json" spoe)" "ready file's spoe"
[[ -S $SOCK ]] || fail "no socket at $SOCK"
assert_eq 660 "$(stat -c %a "$SOCK")" "the socket's mode"

# A second portcullis must not take over a socket that is in use.
if out=$(timeout 10 "$PORTCULLIS" serve -c "$config" 2>&1); then
  fail "a second serve started on the socket in use: $out"
fi
assert_contains "$out" "listening" "second serve's refusal"
[[ -S $SOCK ]] || fail "the second serve removed the socket in use"

# ---- HAProxy over the socket ----------------------------------------------------------------
start_echo_upstream
started=0
for attempt in 1 2 3; do
  free_port LISTEN_PORT
  gen=$("$PORTCULLIS" haproxy-config -c "$config" --bind "127.0.0.1:$LISTEN_PORT" \
          --upstream "127.0.0.1:$UPSTREAM_PORT" --out-dir "$TEST_TMP/haproxy" 2>&1) ||
    fail "portcullis haproxy-config failed: $gen"
  grep -q '^    timeout processing 5500ms$' "$TEST_TMP/haproxy/portcullis-spoe.conf" ||
    fail "timeout processing is not the slow route's 5s plus 500ms: $(grep 'timeout processing' "$TEST_TMP/haproxy/portcullis-spoe.conf")"
  grep -q "server portcullis unix@$SOCK " "$TEST_TMP/haproxy/haproxy.cfg" ||
    fail "haproxy.cfg does not point at unix@$SOCK: $(grep 'server portcullis' "$TEST_TMP/haproxy/haproxy.cfg")"
  "$HAPROXY" -c -f "$TEST_TMP/haproxy/haproxy.cfg" >"$TEST_TMP/haproxy-c.log" 2>&1 ||
    fail "haproxy -c rejected the generated configuration: $(cat "$TEST_TMP/haproxy-c.log")"
  start_bg haproxy "$HAPROXY" -db -f "$TEST_TMP/haproxy/haproxy.cfg"
  if haproxy_serving haproxy "http://127.0.0.1:$LISTEN_PORT/status"; then
    started=1
    break
  fi
done
((started)) || fail "HAProxy could not bind a free port in 3 attempts"
HAP="http://127.0.0.1:$LISTEN_PORT"

TOKEN=$(mint_token --sub alice --aud orders-api)
for i in 1 2 3 4; do   # several requests: the connections land on both workers
  http -H "Authorization: Bearer $TOKEN" "$HAP/orders/$i"
  assert_status 200 "a valid token over the unix socket (request $i)"
  assert_contains "$HTTP_BODY" "user=alice" "X-User set from the agent's answer"
done
http "$HAP/orders/1"
assert_status 401 "no token over the unix socket"
http -H "X-User: mallory" "$HAP/status"
assert_status 200 "a public route"
assert_contains "$HTTP_BODY" "user=" "public route"
assert_not_contains "$HTTP_BODY" "mallory" "a client's X-User never reaches the application"
http "$HAP/nowhere"
assert_status 403 "no route: default deny"
t0=$EPOCHREALTIME
http -H "X-Request-Id: hu-slow" -H "Authorization: Bearer any" "$HAP/slow"
slow_ms=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }')
assert_status 200 "a route whose function answers after 1.2 s"
((slow_ms >= 1200)) || fail "the slow route answered in ${slow_ms} ms, before its function could"
log "slow route: 200 after ${slow_ms} ms (timeout processing 5500ms)"
[[ $(metric "http://$ADMIN/metrics" portcullis_spoe_notify_total) -ge 8 ]] ||
  fail "portcullis counted fewer NOTIFYs than HAProxy's requests"

# --processing-timeout shorter than a route's budget: written as asked, with a warning.
out=$("$PORTCULLIS" haproxy-config -c "$config" --processing-timeout 1s 2>&1 >"$TEST_TMP/short.cfg") ||
  fail "haproxy-config --processing-timeout 1s failed: $out"
assert_contains "$out" "shorter than route slow's budget of 5000ms" "the warning"
grep -q '^    timeout processing 1s$' "$TEST_TMP/short.cfg" || fail "--processing-timeout 1s not written"
if out=$("$PORTCULLIS" haproxy-config -c "$config" --processing-timeout 1.5s 2>&1); then
  fail "haproxy-config accepted --processing-timeout 1.5s"
fi
assert_contains "$out" "expected a duration of whole milliseconds" "a bad --processing-timeout"

# ---- at exit, the socket file goes -------------------------------------------------------
stop_bg portcullis
assert_eq 0 "$BG_STATUS" "portcullis exit status"
[[ ! -e $SOCK ]] || fail "portcullis left its socket behind at exit"
# Until two health checks have failed, HAProxy waits out `timeout processing` (5.5 s here)
# for the agent that is gone, then fails closed.
http --max-time 60 -H "Authorization: Bearer $TOKEN" "$HAP/orders/1"
assert_status 503 "agent gone: fail closed"
stop_bg haproxy
log "ok"
