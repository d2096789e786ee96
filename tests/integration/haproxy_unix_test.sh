#!/usr/bin/env bash
# The SPOE agent on a unix socket (`listeners.spoe: unix:/path`) behind HAProxy 2.6:
# portcullis refuses a path that holds another kind of file, replaces a stale socket, makes
# the socket mode 0660 and removes it at exit; `portcullis haproxy-config` points HAProxy's
# agent backend at `unix@/path`, and HAProxy's decisions come over it.
#
#   bash tests/integration/haproxy_unix_test.sh PORTCULLIS_BINARY SOURCE_DIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$1" "$2"

command -v haproxy >/dev/null || fail "haproxy is not installed (Debian: haproxy)"
command -v nginx >/dev/null || fail "nginx is not installed (Debian: nginx-light)"
command -v python3 >/dev/null || fail "python3 is needed to leave a stale socket behind"
HAPROXY=$(command -v haproxy)
SOCK="$TEST_TMP/agent.sock"

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
default: deny
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
[[ $(metric "http://$ADMIN/metrics" portcullis_spoe_notify_total) -ge 7 ]] ||
  fail "portcullis counted fewer NOTIFYs than HAProxy's requests"

# ---- at exit, the socket file goes -------------------------------------------------------
stop_bg portcullis
assert_eq 0 "$BG_STATUS" "portcullis exit status"
[[ ! -e $SOCK ]] || fail "portcullis left its socket behind at exit"
http -H "Authorization: Bearer $TOKEN" "$HAP/orders/1"
assert_status 503 "agent gone: fail closed"
stop_bg haproxy
log "ok"
