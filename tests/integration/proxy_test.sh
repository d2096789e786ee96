#!/usr/bin/env bash
# The built-in reverse proxy end to end (docs/proxy.md): curl, wrk and Node clients through
# portcullis to a Node application that reports what it received (tests/fakes/proxy_upstream.js).
#
#   bash tests/integration/proxy_test.sh PORTCULLIS_BINARY SOURCE_DIR
#
# Decisions (allow, 401/403 answered locally, identity headers), framing both ways (0 B,
# 1 MiB, 1 GiB with bounded memory — 256 MiB, memory reported only, under ASan —,
# Content-Length and chunked), keep-alive reuse counted at
# the upstream, 502/504, retries, a WebSocket echo, reloads under load, no fd or memory growth.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"

command -v node >/dev/null || fail "node is not installed"
command -v wrk >/dev/null || fail "wrk is not installed"
AUDIT_FILE="$TEST_TMP/audit.jsonl"

# ---- the application --------------------------------------------------------------------
start_bg upstream node "$SRC/tests/fakes/proxy_upstream.js" "$TEST_TMP/upstream.port"
wait_for_file "$TEST_TMP/upstream.port" 15 upstream
UP=$(<"$TEST_TMP/upstream.port")
free_port DEAD  # nothing listens there
# A server that accepts and never reads: a request body to it must not hang the proxy.
start_bg sink node -e '
  const fs = require("fs");
  const s = require("net").createServer((c) => c.pause());
  s.listen(0, "127.0.0.1", () => fs.writeFileSync(process.argv[1], String(s.address().port)));
' "$TEST_TMP/sink.port"
wait_for_file "$TEST_TMP/sink.port" 15 sink
SINK=$(<"$TEST_TMP/sink.port")
log "application on 127.0.0.1:$UP; a dead server on :$DEAD"

config="$TEST_TMP/portcullis.yaml"
cat >"$config" <<YAML
version: 1
workers: 1
listeners:
  proxy: 127.0.0.1:0
  admin: 127.0.0.1:0
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $SRC/examples/keys/demo-jwks.json
    audiences: [orders-api]
    algorithms: [RS256, ES256]
    claims_to_headers: { X-User: sub }
upstreams:
  app: { servers: [127.0.0.1:$UP] }
  down: { servers: [127.0.0.1:$DEAD], retries: 0 }
  mixed: { servers: [127.0.0.1:$DEAD, 127.0.0.1:$UP], retries: 1 }
  slowpoke: { servers: [127.0.0.1:$UP], read_timeout: 300ms }
  sink: { servers: [127.0.0.1:$SINK], read_timeout: 500ms, passive_health: { max_fails: 0 } }
  checked:
    servers: [127.0.0.1:$DEAD, 127.0.0.1:$UP]
    retries: 0
    passive_health: { max_fails: 0 }    # only the active checks may take the dead one out
    health_check: { path: /healthz, interval: 200ms, timeout: 1s, fall: 1, rise: 1 }
routes:
  - name: open
    match: { paths: [/echo, /echo/**, /big, /slow, /ws] }
    allow: true
    upstream: app
  - name: api
    match: { paths: [/api, /api/**] }
    authenticate: [demo]
    strip_prefix: /api
    upstream: app
  - name: dead
    match: { paths: [/dead/**] }
    allow: true
    strip_prefix: /dead
    upstream: down
  - name: mixed
    match: { paths: [/mixed/**] }
    allow: true
    strip_prefix: /mixed
    upstream: mixed
  - name: timeout
    match: { paths: [/timeout/**] }
    allow: true
    strip_prefix: /timeout
    upstream: slowpoke
  - name: sink
    match: { paths: [/sink] }
    allow: true
    upstream: sink
  - name: checked
    match: { paths: [/checked/**] }
    allow: true
    strip_prefix: /checked
    upstream: checked
default: deny
audit: { sink: "file:$AUDIT_FILE" }
YAML
check_out=$("$PORTCULLIS" check -c "$config" 2>&1) || fail "portcullis check failed: $check_out"
start_portcullis portcullis "$config"
PROXY=$(json_string_field "$TEST_TMP/portcullis.ready.json" proxy)
[[ -n $PROXY ]] || fail "the ready file names no proxy listener"
wait_http "http://$ADMIN/readyz" 30 portcullis
PX="http://$PROXY"
PID=${PID_OF[portcullis]}

# upstream_field KEY: a field of the application's JSON answer in HTTP_BODY.
upstream_field() {
  node -e 'const j=JSON.parse(require("fs").readFileSync(0,"utf8"));
           const v=process.argv[1].split(".").reduce((o,k)=>o==null?o:o[k],j);
           process.stdout.write(v===undefined?"<none>":String(v))' "$1" <<<"$HTTP_BODY"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }
fd_count() { ls "/proc/$PID/fd" | wc -l; }

# ---- allowed: forwarded with the proxy's own forwarding fields --------------------------
http -H 'X-User: mallory' -H 'X-Forwarded-For: 6.6.6.6' -H 'Connection: X-Hop' -H 'X-Hop: 1' \
  "$PX/echo?a=1"
assert_status 200 "open route"
RID=$(header X-Request-Id)
assert_match "$RID" '^[0-9a-f]{32}$' "X-Request-Id to the client"
assert_eq "/echo?a=1" "$(upstream_field url)" "target at the upstream"
assert_eq "<none>" "$(upstream_field headers.x-user)" "a client's X-User never reaches the upstream"
assert_eq "<none>" "$(upstream_field headers.x-hop)" "a field named by Connection is hop-by-hop"
assert_eq "127.0.0.1" "$(upstream_field headers.x-forwarded-for)" "an untrusted peer's XFF is replaced"
assert_eq "http" "$(upstream_field headers.x-forwarded-proto)" "X-Forwarded-Proto"
assert_eq "$RID" "$(upstream_field headers.x-request-id)" "the upstream sees the request id"
assert_contains "$(upstream_field headers.forwarded)" "for=127.0.0.1;host=" "Forwarded (RFC 7239)"
wait_audit "\"request_id\":\"$RID\""
assert_audit listener proxy
assert_audit decision allow
assert_audit route open

# ---- identity: the decision's headers, the route's prefix stripped -----------------------
TOKEN=$(mint_token --sub alice --aud orders-api --scope read:orders)
http -H "Authorization: Bearer $TOKEN" -H 'X-User: mallory' "$PX/api/echo/7?x=y"
assert_status 200 "api route with a token"
assert_eq "alice" "$(upstream_field headers.x-user)" "X-User from the token's sub"
assert_eq "/echo/7?x=y" "$(upstream_field url)" "strip_prefix: /api"

# ---- denied: answered here, never forwarded ---------------------------------------------
http "$PX/api/echo"
assert_status 401 "no token"
assert_contains "$(header WWW-Authenticate)" "Bearer" "401 challenge"
assert_contains "$(header Content-Type)" "application/problem+json" "problem document"
assert_contains "$HTTP_BODY" '"status":401' "problem status"
[[ -z $(header X-Conn) ]] || fail "a denied request reached the application"
http -H 'Accept: text/html,application/xhtml+xml' "$PX/nowhere"
assert_status 403 "no route, default deny"
assert_contains "$(header Content-Type)" "text/html" "a browser gets a page"
RID=$(header X-Request-Id)
wait_audit "\"request_id\":\"$RID\""
assert_audit decision deny
assert_audit reason no_route

# ---- bodies: 0 B, 1 MiB with Content-Length and chunked ----------------------------------
http -X POST --data-binary '' "$PX/echo"
assert_eq "0" "$(upstream_field bodyLength)" "empty POST"
assert_eq "0" "$(upstream_field headers.content-length)" "empty POST says Content-Length: 0"
head -c 1048576 /dev/urandom >"$TEST_TMP/1m"
want=$(sha256sum "$TEST_TMP/1m" | cut -d' ' -f1)
http -X POST --data-binary @"$TEST_TMP/1m" "$PX/echo"
assert_eq "$want" "$(upstream_field bodySha256)" "1 MiB with Content-Length"
assert_eq "1048576" "$(upstream_field headers.content-length)" "Content-Length kept"
http -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$TEST_TMP/1m" "$PX/echo"
assert_eq "$want" "$(upstream_field bodySha256)" "1 MiB chunked"
assert_eq "chunked" "$(upstream_field headers.transfer-encoding)" "re-chunked upstream"
http -X PUT -H 'Expect: 100-continue' --data-binary @"$TEST_TMP/1m" "$PX/echo"
assert_eq "$want" "$(upstream_field bodySha256)" "Expect: 100-continue"
assert_eq "<none>" "$(upstream_field headers.expect)" "Expect is answered here, not passed on"

# Answers: Content-Length and chunked relayed intact; HEAD keeps the length; HTTP/1.0.
direct=$("${CURL[@]}" "http://127.0.0.1:$UP/big?bytes=3000000&chunked=1" | sha256sum)
via=$("${CURL[@]}" "$PX/big?bytes=3000000&chunked=1" | sha256sum)
assert_eq "$direct" "$via" "a chunked answer relayed intact"
http -I "$PX/big?bytes=4242"
assert_status 200 "HEAD"
assert_eq "4242" "$(header Content-Length)" "HEAD keeps the upstream's Content-Length"
http -0 "$PX/big?bytes=5000&chunked=1"
assert_eq "5000" "${#HTTP_BODY}" "an HTTP/1.0 client gets the chunked answer until close"

# ---- keep-alive to the upstream: counted there -------------------------------------------
declare -A conns=()
for ((i = 0; i < 10; i++)); do
  http "$PX/echo/ka"
  conns[$(header X-Conn)]=1
done
((${#conns[@]} == 1)) || fail "10 sequential requests used ${#conns[@]} upstream connections: ${!conns[*]}"
assert_match "$(header X-Conn-Requests)" '^[0-9]+$' "requests per upstream connection"
(($(header X-Conn-Requests) >= 10)) || fail "the upstream connection carried only $(header X-Conn-Requests) requests"

# ---- upstream failures: 502, 504, a retry on the next server -----------------------------
http "$PX/dead/echo"
assert_status 502 "nothing listens"
assert_contains "$HTTP_BODY" '"title":"Bad Gateway"' "502 body"
http "$PX/timeout/slow?ms=3000"
assert_status 504 "read_timeout 300ms"
assert_contains "$HTTP_BODY" '"title":"Gateway Timeout"' "504 body"
for ((i = 0; i < 6; i++)); do
  http "$PX/mixed/echo"
  assert_status 200 "one of two servers dead, retries: 1 (request $i)"
done

# A server that stops reading the body: 504 after its read_timeout, not a hang.
head -c 16777216 /dev/zero >"$TEST_TMP/16m"
http --max-time 60 -X POST --data-binary @"$TEST_TMP/16m" "$PX/sink"
assert_status 504 "a server that never reads a 16 MiB body"

# Active health checks take the dead server out: then no request goes to it.
dead_down() {
  "${CURL[@]}" "http://$ADMIN/metrics" 2>/dev/null |
    grep -F 'portcullis_upstream_server_up{' | grep -F 'upstream="checked"' |
    grep -F "127.0.0.1:$DEAD" | grep ' 0$' >/dev/null
}
wait_until 20 dead_down || fail "the active health check never marked 127.0.0.1:$DEAD down"
for ((i = 0; i < 6; i++)); do
  http "$PX/checked/echo"
  assert_status 200 "a server marked down is not picked (request $i)"
done

# ---- WebSocket: 101 relayed, then bytes both ways ----------------------------------------
ws=$(node -e '
  const net = require("net");
  const [host, port] = process.argv[1].split(":");
  const s = net.connect(Number(port), host, () => s.write(
    "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nping-1"));
  let got = "", sent = false;
  s.on("data", (d) => {
    got += d;
    if (!sent && got.includes("ping-1")) { sent = true; s.write("ping-2"); }
    if (got.includes("ping-2")) { process.stdout.write(got); process.exit(0); }
  });
  setTimeout(() => { process.stdout.write(got); process.exit(1); }, 5000);
' "$PROXY") || fail "WebSocket echo did not complete: $ws"
assert_contains "$ws" "HTTP/1.1 101 Switching Protocols" "101 relayed"
assert_contains "$ws" "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" "the upstream's accept key"
assert_contains "$ws" "ping-2" "bytes echoed after the switch"

# ---- 1 GiB each way with bounded memory ---------------------------------------------------
# Under ASan (make test's binary) the streams are 256 MiB (1 GiB takes minutes there) and
# memory is reported, not bounded: ASan's quarantine holds freed memory by design. The
# release binary (make test-integration) streams 1 GiB each way and bounds its RSS growth.
if asan_binary "$PORTCULLIS"; then
  STREAM_BYTES=268435456
  BOUND_MEMORY=0
else
  STREAM_BYTES=1073741824
  BOUND_MEMORY=1
fi
rss0=$(rss_kib)
up_len=$(head -c "$STREAM_BYTES" /dev/zero |
  "${CURL[@]}" --max-time 300 -X POST -T - "$PX/echo" |
  node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(0,"utf8")).bodyLength))')
assert_eq "$STREAM_BYTES" "$up_len" "$STREAM_BYTES bytes uploaded"
down_len=$("${CURL[@]}" --max-time 300 -o /dev/null -w '%{size_download}' "$PX/big?bytes=$STREAM_BYTES")
assert_eq "$STREAM_BYTES" "$down_len" "$STREAM_BYTES bytes downloaded"
rss1=$(rss_kib)
log "RSS ${rss0} KiB before streaming $STREAM_BYTES bytes each way, ${rss1} KiB after"
if ((BOUND_MEMORY)); then
  ((rss1 - rss0 < 32 * 1024)) || fail "RSS grew by $(((rss1 - rss0) / 1024)) MiB over 2 GiB streamed"
fi

# ---- load: reloads under wrk, then no fd or memory growth ---------------------------------
# run_wrk SECONDS: 8 connections on one thread; fails on any socket error or non-2xx answer.
run_wrk() {
  wrk -t1 -c8 -d"$1"s --timeout 10s "$PX/echo/load" >"$TEST_TMP/wrk.out" 2>&1 &
  WRK_PID=$!
}
check_wrk() {
  wait "$WRK_PID" || fail "wrk failed: $(cat "$TEST_TMP/wrk.out")"
  WRK_REQUESTS=$(awk '/requests in/ { print $1 }' "$TEST_TMP/wrk.out")
  ((WRK_REQUESTS > 0)) || fail "wrk made no request: $(cat "$TEST_TMP/wrk.out")"
  if grep -qE 'Socket errors|Non-2xx' "$TEST_TMP/wrk.out"; then
    fail "$1: $(grep -E 'Socket errors|Non-2xx' "$TEST_TMP/wrk.out")"
  fi
}
served0=$(policies_served)
run_wrk 8
for ((i = 0; i < 50; i++)); do
  reload_changed "$config"
  sleep 0.1
done
check_wrk "requests failed across 50 reloads"
served=$(($(policies_served) - served0))
log "$WRK_REQUESTS requests, none failed, across 50 reloads ($served new policies served)"
# Signals that arrive while a reload runs may fold into one: at least a fifth took effect.
((served >= 10)) || fail "only $served of 50 reloads under load published a new policy"
# At least 100k requests (#13's acceptance) in rounds of 4 s, at most 10 rounds: the release
# binary gets there in a round or two; under ASan the count is reported, not required.
fd0=$(fd_count)
rss0=$(rss_kib)
load_requests=0
for ((round = 0; round < 10 && load_requests < 100000; round++)); do
  run_wrk 4
  check_wrk "requests failed under load"
  load_requests=$((load_requests + WRK_REQUESTS))
done
fd1=$(fd_count)
rss1=$(rss_kib)
log "$load_requests more requests: fds $fd0 -> $fd1, RSS $rss0 -> $rss1 KiB"
((fd1 <= fd0 + 2)) || fail "open fds grew from $fd0 to $fd1"
if ((BOUND_MEMORY)); then
  ((load_requests >= 100000)) || fail "only $load_requests requests in 10 rounds of 4 s"
  ((rss1 - rss0 < 8 * 1024)) || fail "RSS grew by $(((rss1 - rss0) / 1024)) MiB under load"
fi

# ---- SIGTERM: a request in flight finishes, then the process exits on its own ----------
assert_sigterm_drains drain-probe '%{http_code}' 200 "$PX/slow?ms=1500"
grep -q "waiting up to" "$TEST_TMP/portcullis.err" || fail "no drain in the log"

log "ok"
