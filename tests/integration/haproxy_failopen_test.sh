#!/usr/bin/env bash
# HAProxy 2.6 with the agent DOWN: the generated fail-open rules must route a request the
# way portcullis' router does (first matching route, by hosts, paths, methods, in order)
# and let it through only when that route is open (`on_error: allow`, not `allow: false`).
#
#   bash tests/integration/haproxy_failopen_test.sh PORTCULLIS_BINARY SOURCE_DIR
#
# The expected answer of every request in the table comes from `portcullis eval` of the same
# policy (the real router names the route: routes named open-* are the open ones), so the
# test compares HAProxy's generated ACLs against the router itself. Only canonical paths
# (no %, //, dot segments, backslash) and plain Host headers may fail open: the table marks
# the rows that are not, and those must be denied even when the router picks an open route.
# The SPOE backend points at a port where nothing listens; nginx is the application.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$1" "$2"

command -v haproxy >/dev/null || fail "haproxy is not installed (Debian: haproxy)"
command -v nginx >/dev/null || fail "nginx is not installed (Debian: nginx-light)"
command -v python3 >/dev/null || fail "python3 is needed for a raw request"
HAPROXY=$(command -v haproxy)

policy() {  # policy DEFAULT: the policy, with `default: DEFAULT`
  cat <<YAML
version: 1
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $SRC/examples/keys/demo-jwks.json
    audiences: [orders-api]
routes:
  # An earlier fail-closed route, shadowing the later open catch-all for its paths.
  - name: closed-admin
    match: { paths: [/admin/**] }
    authenticate: [demo]
  - name: closed-deny
    match: { paths: [/deny/**] }
    allow: false
    on_error: allow                 # allow: false is never open
  - name: open-exact
    match: { paths: [/status, /a.b/c+d] }
    allow: true
    on_error: allow
  - name: closed-post
    match: { hosts: [api.example.com], paths: [/orders/*], methods: [POST] }
    authenticate: [demo]
  - name: open-star
    match: { paths: ["/orders/*", "/items/*/detail", "/tree/*/**", "/v1.0/*"], methods: [GET, HEAD] }
    authenticate: [demo]
    on_error: allow
  - name: open-trailing
    match: { paths: [/dir/] }
    allow: true
    on_error: allow
  - name: closed-internal
    match: { hosts: ["*.internal.example.com"] }
    authenticate: [demo]
  - name: open-wildhost
    match: { hosts: ["*.open.example.com", "[::1]"], paths: [/**] }
    allow: true
    on_error: allow
  - name: closed-put
    match: { methods: [PUT] }
    authenticate: [demo]
  - name: open-catchall
    match: { hosts: [Status.Example.com], paths: [/**] }
    allow: true
    on_error: allow
  - name: closed-public
    match: { paths: [/public/**] }
    allow: true
default: $1
audit: { sink: none }
YAML
}

# METHOD HOST PATH CANONICAL (0 = HAProxy must fail closed whatever the route)
TABLE=(
  "GET status.example.com /admin/x 1"          # the review's case: closed-admin, not the catch-all
  "GET status.example.com /admin 1"
  "GET other.example.com /admin/x 1"
  "GET status.example.com /anything 1"
  "GET status.example.com:8443 /anything 1"
  "GET STATUS.Example.COM /x/y/ 1"
  "GET status.example.com. /x 1"
  "GET status.example.com.:80 /x 1"
  "GET other.example.com /anything 1"          # catch-all is for one host: default
  "GET example.com /x 1"
  "GET status.example.com /deny/x 1"
  "GET other.example.com /status 1"
  "POST other.example.com /status 1"
  "GET other.example.com /status/ 1"
  "GET other.example.com /statusx 1"
  "GET other.example.com /a.b/c+d 1"
  "GET other.example.com /aXb/c+d 1"
  "GET api.example.com /orders/7 1"
  "get api.example.com /orders/7 1"
  "HEAD api.example.com /orders/7 1"
  "POST api.example.com /orders/7 1"
  "post api.example.com /orders/7 1"
  "POST other.example.com /orders/7 1"
  "DELETE api.example.com /orders/7 1"
  "GET api.example.com /orders/ 1"
  "GET api.example.com /orders/7/ 1"
  "GET api.example.com /orders/7/8 1"
  "GET other.example.com /items/a/detail 1"
  "GET other.example.com /items/a/b/detail 1"
  "GET other.example.com /v1.0/a 1"
  "GET other.example.com /v1x0/a 1"
  "GET other.example.com /tree/a 1"
  "GET other.example.com /tree/a/ 1"
  "GET other.example.com /tree/a/b/c 1"
  "GET other.example.com /tree 1"
  "GET other.example.com /dir/ 1"
  "GET other.example.com /dir 1"
  "GET x.internal.example.com /status 1"
  "GET internal.example.com /dir/ 1"
  "GET a.open.example.com /x 1"
  "GET a.b.open.example.com:8080 /admin/x 1"
  "GET open.example.com /x 1"
  "GET .open.example.com /x 1"
  "GET [::1]:8080 /x 1"
  "GET [::1] /public/x 1"
  "PUT status.example.com /x 1"
  "PUT status.example.com /status 1"
  "GET status.example.com /public/x 1"
  "GET other.example.com /public/x 1"
  "GET status.example.com /x/../admin/x 0"     # router: /admin/x, closed
  "GET status.example.com /x/../y 0"           # router: /y, open; HAProxy: not canonical
  "GET status.example.com //x 0"
  "GET status.example.com /%78 0"
  "GET other.example.com /./status 0"
)

# ---- the expected answers: what the router decides --------------------------------------
for def in deny allow; do policy "$def" >"$TEST_TMP/policy-$def.yaml"; done
out=$("$PORTCULLIS" check -c "$TEST_TMP/policy-deny.yaml" 2>&1) || fail "portcullis check: $out"
declare -a EXPECT=() ROUTE=()
for row in "${TABLE[@]}"; do
  read -r method host path canonical <<<"$row"
  eval_out=$("$PORTCULLIS" eval -c "$TEST_TMP/policy-deny.yaml" --method "$method" \
               --url "http://$host$path" 2>&1) || true
  route=$(sed -n 's/^route: //p' <<<"$eval_out")
  [[ -n $route ]] || fail "portcullis eval gave no route for '$row': $eval_out"
  ROUTE+=("$route")
  if [[ $route == open-* && $canonical == 1 ]]; then EXPECT+=(200); else EXPECT+=(503); fi
done
OPEN=$(grep -o 200 <<<"${EXPECT[*]}" | wc -l)
((OPEN >= 15 && OPEN <= ${#TABLE[@]} - 15)) || fail "the table should have many open and many closed rows: $OPEN open"

# ---- HAProxy with nobody listening on the agent's port ------------------------------------
start_echo_upstream
free_port DEAD_AGENT_PORT   # never listened on: every SPOE exchange fails

run_table() {  # run_table DEFAULT
  local def=$1 started=0 attempt i
  for attempt in 1 2 3; do
    free_port LISTEN_PORT
    gen=$("$PORTCULLIS" haproxy-config -c "$TEST_TMP/policy-$def.yaml" \
            --agent "127.0.0.1:$DEAD_AGENT_PORT" --bind "127.0.0.1:$LISTEN_PORT" \
            --upstream "127.0.0.1:$UPSTREAM_PORT" --out-dir "$TEST_TMP/haproxy-$def" 2>&1) ||
      fail "portcullis haproxy-config failed: $gen"
    "$HAPROXY" -c -f "$TEST_TMP/haproxy-$def/haproxy.cfg" >"$TEST_TMP/haproxy-c.log" 2>&1 ||
      fail "haproxy -c rejected the generated configuration: $(cat "$TEST_TMP/haproxy-c.log")"
    start_bg "haproxy-$def" "$HAPROXY" -db -f "$TEST_TMP/haproxy-$def/haproxy.cfg"
    if haproxy_serving "haproxy-$def" "http://127.0.0.1:$LISTEN_PORT/status"; then
      started=1
      break
    fi
  done
  ((started)) || fail "HAProxy could not bind a free port in 3 attempts"
  local wrong=0
  for i in "${!TABLE[@]}"; do
    read -r method host path canonical <<<"${TABLE[$i]}"
    local how=(-X "$method")
    [[ $method == HEAD ]] && how=(--head)
    code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' --path-as-is "${how[@]}" \
             -H "Host: $host" "http://127.0.0.1:$LISTEN_PORT$path" 2>/dev/null) || code=000
    # Forwarded: whatever the application answers (nginx refuses a lower-case method with
    # 400); refused: HAProxy's 503.
    local got=$code
    [[ ${EXPECT[$i]} == 200 && $code != 503 && $code != 000 ]] && got=200
    if [[ $got != "${EXPECT[$i]}" ]]; then
      log "WRONG (default: $def): $method $host $path: router route ${ROUTE[$i]}, expected ${EXPECT[$i]}, HAProxy $code"
      wrong=$((wrong + 1))
    fi
  done
  # Two different Host headers (curl sends one only: a raw request): never fail open.
  # (HAProxy 2.6 itself refuses them with 400, and merges identical ones.)
  code=$(python3 - "$LISTEN_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /x HTTP/1.1\r\nHost: other.example.com\r\nHost: status.example.com\r\n"
          b"Connection: close\r\n\r\n")
print(s.recv(64).split(b" ")[1].decode())
PY
  ) || code=000
  if [[ $code == 200 ]]; then
    log "WRONG (default: $def): two Host headers failed open"
    wrong=$((wrong + 1))
  fi
  stop_bg "haproxy-$def"
  ((wrong == 0)) || fail "default: $def: $wrong of ${#TABLE[@]} requests were not decided as the router routes them (see above)"
  log "default: $def: ${#TABLE[@]} requests ($OPEN forwarded, the others 503), every one as the router routes it"
}
run_table deny
run_table allow   # `default` is not a route: no answer, no access, whatever the default

log "ok"
