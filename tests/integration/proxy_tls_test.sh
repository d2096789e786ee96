#!/usr/bin/env bash
# TLS termination by the built-in proxy end to end (docs/tls.md): curl and openssl s_client
# against `listeners.proxy_tls`, with throwaway certificates (tests/fakes/make_tls_set.sh).
#
#   bash tests/integration/proxy_tls_test.sh PORTCULLIS_BINARY SOURCE_DIR
#
# The chain verified by curl, SNI choosing among certificates (exact and wildcard), OCSP
# stapling, old protocol versions refused, client certificates (verified, refused, required by
# a route, their subject, SANs and fingerprint in identity headers), a certificate renewed on
# disk picked up without dropping a kept-alive connection, reloads under wrk over TLS, a
# handshake that never comes timed out, no fd growth after many handshakes.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"

command -v node >/dev/null || fail "node is not installed"
command -v openssl >/dev/null || fail "openssl is not installed"
command -v wrk >/dev/null || fail "wrk is not installed"
command -v nghttp >/dev/null || fail "nghttp (nghttp2-client) is not installed"
command -v h2load >/dev/null || fail "h2load (nghttp2-client) is not installed"
AUDIT_FILE="$TEST_TMP/audit.jsonl"
CERTS="$TEST_TMP/certs"
"$SRC/tests/fakes/make_tls_set.sh" "$CERTS" || fail "could not make the test certificates"

start_bg upstream node "$SRC/tests/fakes/proxy_upstream.js" "$TEST_TMP/upstream.port"
wait_for_file "$TEST_TMP/upstream.port" 15 upstream
UP=$(<"$TEST_TMP/upstream.port")
start_bg tls_upstream node "$SRC/tests/fakes/tls_upstream.js" "$TEST_TMP/tls_upstream.port" \
  "$CERTS/a.pem" "$CERTS/a.key" "$CERTS/ca.pem"
wait_for_file "$TEST_TMP/tls_upstream.port" 15 tls_upstream
UPS=$(<"$TEST_TMP/tls_upstream.port")

# The served certificates are copies, so the test can renew one in place.
cp "$CERTS/a.pem" "$CERTS/a.key" "$CERTS/b.pem" "$CERTS/b.key" "$TEST_TMP/"
config="$TEST_TMP/portcullis.yaml"
# write_config CLIENT_CERTS (optional | required) [MARKER]: MARKER names one more route, so
# that a reload with it is a new policy (an unchanged one keeps the running snapshot).
write_config() {
  cat >"$config.tmp" <<YAML
version: 1
workers: 1
listeners:
  proxy_tls: 127.0.0.1:${TLS_PORT:-0}
  admin: 127.0.0.1:${ADMIN_PORT:-0}
watch: { interval: 200ms }
tls:
  certificates:
    - { cert: a.pem, key: a.key, ocsp: $CERTS/a.ocsp.der }
    - { cert: b.pem, key: b.key }
  client_ca: $CERTS/ca.pem
  client_certs: $1
  handshake_timeout: 500ms
upstreams:
  app: { servers: [127.0.0.1:$UP] }
  secure:
    servers: [127.0.0.1:$UPS]
    tls: { ca: $CERTS/ca.pem, cert: $CERTS/client.pem, key: $CERTS/client.key }
    health_check: { path: /healthz, interval: 200ms, fall: 1, rise: 1 }
  named:
    servers: [127.0.0.1:$UPS]
    tls: { ca: $CERTS/ca.pem, server_name: a.test }
  wrong_name:
    servers: [127.0.0.1:$UPS]
    tls: { ca: $CERTS/ca.pem, server_name: b.test }
    retries: 0
  untrusted:
    servers: [127.0.0.1:$UPS]
    tls: true
    retries: 0
routes:
  - name: secure
    match: { paths: [/secure/**] }
    allow: true
    strip_prefix: /secure
    upstream: secure
  - name: named
    match: { paths: [/named/**] }
    allow: true
    strip_prefix: /named
    upstream: named
  - name: wrong_name
    match: { paths: [/wrong/**] }
    allow: true
    upstream: wrong_name
  - name: untrusted
    match: { paths: [/untrusted/**] }
    allow: true
    upstream: untrusted
  - name: agents
    match: { paths: [/agents/**] }
    allow: true
    require:
      client_cert: { sans: ["URI:spiffe://test/agent-1"] }
    expose_reason: true
    on_allow:
      set_headers:
        X-Client-Subject: "\${request.client_cert_subject}"
        X-Client-Sans: "\${request.client_cert_sans}"
        X-Client-Fingerprint: "\${request.client_cert_fingerprint}"
    upstream: app
  - name: open
    match: { paths: [/echo, /echo/**, /h2raw/**] }
    allow: true
    upstream: app
  - name: big
    match: { paths: [/big-open/**] }
    allow: true
    strip_prefix: /big-open
    upstream: app
  - name: marker
    match: { paths: ["/marker-${2:-0}"] }
    allow: true
    upstream: app
default: deny
audit: { sink: "file:$AUDIT_FILE" }
YAML
  mv "$config.tmp" "$config"
}
write_config optional
check_out=$("$PORTCULLIS" check -c "$config" 2>&1) || fail "portcullis check failed: $check_out"
start_portcullis portcullis "$config"
TLS=$(json_string_field "$TEST_TMP/portcullis.ready.json" proxy_tls)
[[ -n $TLS ]] || fail "the ready file names no proxy_tls listener"
TLS_PORT=${TLS##*:}
ADMIN_PORT=${ADMIN##*:}
wait_http "http://$ADMIN/readyz" 30 portcullis
PID=${PID_OF[portcullis]}
fd_count() { ls "/proc/$PID/fd" | wc -l; }
upstream_field() {
  node -e 'const j=JSON.parse(require("fs").readFileSync(0,"utf8"));
           const v=process.argv[1].split(".").reduce((o,k)=>o==null?o:o[k],j);
           process.stdout.write(v===undefined?"<none>":String(v))' "$1" <<<"$HTTP_BODY"
}
# served NAME: the subject of the certificate served to SNI NAME ("" = no SNI).
served() {
  local sni=()
  [[ -n $1 ]] && sni=(-servername "$1")
  openssl s_client -connect "$TLS" "${sni[@]}" </dev/null 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null | sed 's/^subject= *//; s/ //g'
}
VERIFY=(--cacert "$CERTS/ca.pem")
head -c 1048576 /dev/urandom >"$TEST_TMP/1m"
want_1m=$(sha256sum "$TEST_TMP/1m" | cut -d' ' -f1)

# ---- the chain, verified by curl; the request as the upstream sees it -------------------
http "${VERIFY[@]}" -H 'X-Forwarded-Proto: http' "https://$TLS/echo"
assert_status 200 "https with the chain verified (IP SAN 127.0.0.1)"
assert_eq "https" "$(upstream_field headers.x-forwarded-proto)" "X-Forwarded-Proto is https"
assert_contains "$(upstream_field headers.forwarded)" "proto=https" "Forwarded proto=https"
RID=$(header X-Request-Id)
wait_audit "\"request_id\":\"$RID\""
assert_audit listener proxy_tls
http "https://$TLS/echo"
assert_status 000 "curl without the test CA refuses the chain"

# ---- SNI: the certificate for the name, exact or wildcard; the first one by default ------
assert_eq "CN=a.test" "$(served a.test)" "SNI a.test"
assert_eq "CN=b.test" "$(served b.test)" "SNI b.test"
assert_eq "CN=b.test" "$(served x.b.test)" "SNI x.b.test (wildcard *.b.test)"
assert_eq "CN=a.test" "$(served y.x.b.test)" "a wildcard covers one label only"
assert_eq "CN=a.test" "$(served "")" "no SNI: the first certificate"
http "${VERIFY[@]}" --resolve "b.test:$TLS_PORT:127.0.0.1" "https://b.test:$TLS_PORT/echo"
assert_status 200 "curl verifies b.test's certificate by name"
http "${VERIFY[@]}" --resolve "z.b.test:$TLS_PORT:127.0.0.1" "https://z.b.test:$TLS_PORT/echo"
assert_status 200 "curl verifies z.b.test against *.b.test"

# ---- OCSP stapling, protocol versions -----------------------------------------------------
ocsp=$(openssl s_client -connect "$TLS" -servername a.test -status </dev/null 2>/dev/null)
assert_contains "$ocsp" "OCSP Response Status: successful" "an OCSP response is stapled for a.test"
assert_contains "$ocsp" "Cert Status: good" "the stapled response"
ocsp=$(openssl s_client -connect "$TLS" -servername b.test -status </dev/null 2>/dev/null)
assert_contains "$ocsp" "OCSP response: no response sent" "b.test has no OCSP file: nothing stapled"
if openssl s_client -connect "$TLS" -tls1_1 </dev/null >/dev/null 2>&1; then
  fail "a TLS 1.1 handshake succeeded"
fi
openssl s_client -connect "$TLS" -tls1_2 </dev/null >/dev/null 2>&1 || fail "TLS 1.2 refused"

# ---- client certificates -------------------------------------------------------------------
http "${VERIFY[@]}" "https://$TLS/agents/1"
assert_status 403 "no client certificate on a client_cert route"
assert_contains "$HTTP_BODY" '"reason":"client_cert_required"' "the reason"
CLIENT=(--cert "$CERTS/client.pem" --key "$CERTS/client.key")
http "${VERIFY[@]}" "${CLIENT[@]}" -H 'X-Client-Subject: CN=admin' "https://$TLS/agents/1"
assert_status 200 "a verified client certificate"
assert_eq "CN=agent-1,O=portcullis tests" "$(upstream_field headers.x-client-subject)" \
  "the subject (RFC 2253), never the client's own header"
assert_eq "URI:spiffe://test/agent-1" "$(upstream_field headers.x-client-sans)" "the SANs"
want_fp=$(openssl x509 -in "$CERTS/client.pem" -noout -fingerprint -sha256 | cut -d= -f2 |
  tr -d ':' | tr 'A-F' 'a-f')
assert_eq "$want_fp" "$(upstream_field headers.x-client-fingerprint)" "the SHA-256 fingerprint"
failed_before=$(metric "http://$ADMIN/metrics" portcullis_proxy_tls_handshake_failures_total)
http "${VERIFY[@]}" --cert "$CERTS/rogue.pem" --key "$CERTS/rogue.key" "https://$TLS/echo"
assert_status 000 "a client certificate from another CA fails the handshake"
failed_after=$(metric "http://$ADMIN/metrics" portcullis_proxy_tls_handshake_failures_total)
((failed_after > failed_before)) || fail "the failed handshake was not counted ($failed_before → $failed_after)"

# ---- TLS to upstreams: verified, with a client certificate, by name, kept alive ---------
sleep 1  # a few active checks (over TLS) have run: a failing one would take the server out
declare -A up_conns=()
for ((i = 0; i < 5; i++)); do
  http "${VERIFY[@]}" "https://$TLS/secure/x?i=$i"
  assert_status 200 "TLS to the upstream (request $i)"
  up_conns[$(header X-Conn)]=1
done
assert_eq "/x?i=4" "$(upstream_field url)" "the target at the TLS upstream"
assert_eq "agent-1" "$(upstream_field client_cn)" "portcullis presented its client certificate"
assert_eq "true" "$(upstream_field client_verified)" "and the upstream verified it"
assert_eq "" "$(upstream_field servername)" "no SNI to an IP address"
((${#up_conns[@]} == 1)) || fail "5 requests used ${#up_conns[@]} TLS upstream connections"
http "${VERIFY[@]}" "https://$TLS/named/y"
assert_status 200 "server_name: a.test"
assert_eq "a.test" "$(upstream_field servername)" "SNI is server_name"
http "${VERIFY[@]}" "https://$TLS/wrong/z"
assert_status 502 "a certificate that is not for server_name"
http "${VERIFY[@]}" "https://$TLS/untrusted/z"
assert_status 502 "a chain the system's CAs do not know"
assert_contains "$(<"$TEST_TMP/portcullis.err")" "certificate verify failed" "the reason is logged"

# ---- HTTP/2 (ALPN h2): curl --http2, nghttp, h2load; the same decisions ----------------
H2=(--http2 "${VERIFY[@]}")
http "${H2[@]}" "https://$TLS/echo?via=h2"
assert_status 200 "curl --http2"
assert_eq "2" "$("${CURL[@]}" "${H2[@]}" -o /dev/null -w '%{http_version}' "https://$TLS/echo")" \
  "curl negotiated HTTP/2"
assert_eq "/echo?via=h2" "$(upstream_field url)" "the target at the upstream"
assert_eq "https" "$(upstream_field headers.x-forwarded-proto)" "X-Forwarded-Proto over h2"
RID=$(header X-Request-Id)
wait_audit "\"request_id\":\"$RID\""
assert_audit listener proxy_tls
http "${H2[@]}" "https://$TLS/agents/h2"
assert_status 403 "a deny over h2"
assert_contains "$HTTP_BODY" '"reason":"client_cert_required"' "the problem document over h2"
http "${H2[@]}" "${CLIENT[@]}" "https://$TLS/agents/h2"
assert_status 200 "a client certificate over h2"
assert_eq "CN=agent-1,O=portcullis tests" "$(upstream_field headers.x-client-subject)" \
  "the certificate's subject over h2"
http "${H2[@]}" -X POST --data-binary @"$TEST_TMP/1m" "https://$TLS/echo"
assert_eq "$want_1m" "$(upstream_field bodySha256)" "1 MiB up over h2 (content-length)"
http "${H2[@]}" -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$TEST_TMP/1m" \
  "https://$TLS/echo"
assert_eq "$want_1m" "$(upstream_field bodySha256)" "1 MiB up over h2 (no length: chunked upstream)"
assert_eq "chunked" "$(upstream_field headers.transfer-encoding)" "re-chunked for the upstream"
http "${H2[@]}" -H 'Cookie: a=1' -H 'Cookie: b=2' "https://$TLS/echo"
assert_eq "a=1; b=2" "$(upstream_field headers.cookie)" "cookie crumbs joined"
direct=$("${CURL[@]}" "http://127.0.0.1:$UP/big?bytes=67108864" | sha256sum)
via=$(curl -sS --max-time 120 "${H2[@]}" "https://$TLS/big-open/big?bytes=67108864" | sha256sum)
assert_eq "$direct" "$via" "64 MiB down over h2, intact"
http "${H2[@]}" -I "https://$TLS/echo"
assert_status 200 "HEAD over h2"
nghttp_out=$(nghttp -v "https://127.0.0.1:$TLS_PORT/echo?via=nghttp" 2>&1) || true
assert_contains "$nghttp_out" ":status: 200" "nghttp through h2"
h2load_out=$(h2load -n 2000 -c 2 -m 20 "https://$TLS/echo" 2>&1) || true
log "h2load: $(grep -E 'requests:|status codes' <<<"$h2load_out" | tr '\n' ' ')"
assert_contains "$h2load_out" "2000 succeeded, 0 failed" "2000 requests on 2 h2 connections, 20 streams each"
assert_contains "$h2load_out" "2000 2xx" "all answered 2xx"
# No fd or memory growth over many more h2 requests (memory bounded only without ASan,
# whose quarantine holds freed memory).
BOUND_MEMORY=1
asan_binary "$PORTCULLIS" && BOUND_MEMORY=0
fd0=$(fd_count)
rss0=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")
h2load_out=$(h2load -n 20000 -c 4 -m 10 "https://$TLS/echo" 2>&1) || true
assert_contains "$h2load_out" "20000 succeeded, 0 failed" "20000 more h2 requests"
sleep 0.5
fd1=$(fd_count)
rss1=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")
log "20000 h2 requests: fds $fd0 -> $fd1, RSS $rss0 -> $rss1 KiB"
((fd1 <= fd0 + 4)) || fail "open fds grew from $fd0 to $fd1 over 20000 h2 requests"
if ((BOUND_MEMORY)); then
  ((rss1 - rss0 < 8 * 1024)) || fail "RSS grew by $(((rss1 - rss0) / 1024)) MiB over 20000 h2 requests"
fi

# A browser: headless Chromium, trusting only the test certificate's key (pinned SPKI).
command -v chromium >/dev/null || fail "chromium is not installed (scripts/install-deps)"
spki=$(openssl x509 -in "$CERTS/a.pem" -pubkey -noout | openssl pkey -pubin -outform der |
  openssl dgst -sha256 -binary | base64)
browse() {  # browse URL: the page as Chromium rendered it
  timeout 60 chromium --headless=new --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$TEST_TMP/chromium" --ignore-certificate-errors-spki-list="$spki" \
    --dump-dom "$1" 2>>"$TEST_TMP/chromium.err" || true
}
streams_before=$(metric "http://$ADMIN/metrics" portcullis_proxy_h2_streams_total)
page=$(browse "https://$TLS/echo?via=browser")
assert_contains "$page" '"url":"/echo?via=browser"' "Chromium gets the upstream's answer"
assert_contains "$page" '"x-forwarded-proto":"https"' "over TLS"
page=$(browse "https://$TLS/agents/browser")
assert_contains "$page" "<h1>Forbidden</h1>" "a denied page in the browser (HTML: it asks for text/html)"
assert_contains "$page" "Reason: client_cert_required" "the page names the reason (expose_reason)"
streams_after=$(metric "http://$ADMIN/metrics" portcullis_proxy_h2_streams_total)
((streams_after > streams_before)) || fail "Chromium did not use HTTP/2 ($streams_before -> $streams_after streams)"

# A stream the client cancels mid-answer: the connection goes on.
reset_out=$(node "$SRC/tests/fakes/h2_client.js" reset "$TLS_PORT" "$CERTS/ca.pem" \
  "/big-open/big?bytes=268435456" /echo)
assert_contains "$reset_out" '"after":200' "a request after RST_STREAM on the same connection"
# A client that stops reading: what the proxy holds for it stays bounded, and the answer
# then completes.
rss_before=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")
node "$SRC/tests/fakes/h2_client.js" stall "$TLS_PORT" "$CERTS/ca.pem" \
  "/big-open/big?bytes=268435456" 3 >"$TEST_TMP/stall.json" 2>/dev/null &
STALL=$!
sleep 2
rss_stalled=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")
wait "$STALL" || fail "the stalled h2 client failed: $(<"$TEST_TMP/stall.json")"
assert_contains "$(<"$TEST_TMP/stall.json")" '"received":268435456' "the whole answer after the stall"
log "RSS before a stalled 256 MiB answer ${rss_before} KiB, during ${rss_stalled} KiB"
((rss_stalled - rss_before < 32768)) || fail "RSS grew by $((rss_stalled - rss_before)) KiB while a client did not read"

# Crafted frames no client library sends: each stream is reset, and none is decided on.
node "$SRC/tests/fakes/h2_raw.js" "$TLS_PORT" "$CERTS/ca.pem" >"$TEST_TMP/h2raw.jsonl"
assert_contains "$(<"$TEST_TMP/h2raw.jsonl")" '{"case":"control","outcome":"headers"' "the control request is answered"
wait_audit '"path":"/h2raw/control"'
while IFS= read -r line; do
  [[ $line == *'"case":"control"'* ]] && continue
  assert_contains "$line" '"outcome":"rst"' "a crafted stream is reset"
  path=$(sed 's/.*"path":"\([^"]*\)".*/\1/' <<<"$line")
  [[ $line == *'"case":"length-mismatch"'* ]] && continue  # may be decided before its DATA
  [[ -z $(audit_last "\"path\":\"$path\"") ]] || fail "a crafted stream was decided on: $line"
done <"$TEST_TMP/h2raw.jsonl"

# Rapid reset (CVE-2023-44487): 2000 streams opened and reset at once on one connection.
# nghttp2's reset limit ends the connection; a stream reset before its exchange started is
# never decided (the exchange starts after nghttp2 has read what came with the head).
rapid=$(node "$SRC/tests/fakes/h2_raw.js" "$TLS_PORT" "$CERTS/ca.pem" rapid-reset)
log "rapid reset: $rapid"
assert_match "$rapid" '"outcome":"(goaway|closed)"' "2000 reset streams end the connection"
http "${H2[@]}" "https://$TLS/echo?after=rapid-reset"
assert_status 200 "the proxy serves on"
decided=$(grep -c '"path":"/h2raw/rapid-reset"' "$AUDIT_FILE" || true)
((decided < 100)) || fail "$decided of 2000 reset streams were decided on"

# ---- a handshake that never comes: closed after tls.handshake_timeout ---------------------
closed=$(node -e '
  const s = require("net").connect(Number(process.argv[1]), "127.0.0.1");
  const t0 = Date.now();
  s.on("close", () => { console.log("closed"); process.exit(0); });
  setTimeout(() => { console.log("open"); process.exit(0); }, 20000);
' "$TLS_PORT")
assert_eq "closed" "$closed" "a silent client is closed by the handshake timeout"

# ---- renewal on disk: new handshakes get the new certificate, open connections live on --
# A new certificate for the same names, signed by the same CA, moved into place (as certbot
# or a Kubernetes secret update would); the watcher reloads the policy.
openssl req -new -newkey rsa:2048 -nodes -keyout "$TEST_TMP/new.key" -out "$TEST_TMP/new.csr" \
  -subj "/CN=a.test" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:a.test,DNS:localhost,IP:127.0.0.1\n' \
  >"$TEST_TMP/new.ext"
openssl x509 -req -in "$TEST_TMP/new.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" \
  -set_serial 0x5eed -days 2 -sha256 -extfile "$TEST_TMP/new.ext" -out "$TEST_TMP/new.pem" \
  2>/dev/null || fail "could not sign the renewed certificate"
node "$SRC/tests/fakes/tls_keepalive.js" "$TLS_PORT" "$CERTS/ca.pem" a.test /echo 20 \
  >"$TEST_TMP/keepalive.json" &
KA=$!
sleep 1
cp "$TEST_TMP/new.key" "$TEST_TMP/a.key.tmp" && cp "$TEST_TMP/new.pem" "$TEST_TMP/a.pem.tmp"
mv "$TEST_TMP/a.key.tmp" "$TEST_TMP/a.key" && mv "$TEST_TMP/a.pem.tmp" "$TEST_TMP/a.pem"
wait "$KA" || fail "the keep-alive client failed: $(<"$TEST_TMP/keepalive.json")"
ka=$(<"$TEST_TMP/keepalive.json")
log "keep-alive across the renewal: $ka"
new_fp=$(openssl x509 -in "$TEST_TMP/new.pem" -noout -fingerprint -sha256 | cut -d= -f2)
assert_contains "$ka" "\"new_fingerprint\":\"$new_fp\"" "new handshakes get the renewed certificate"
assert_contains "$ka" '"second_status":200' "the open connection still serves"
assert_contains "$ka" '"reused":true' "on the same connection"

# ---- reloads under load over TLS: nothing fails; no fd growth after many handshakes ----
served0=$(policies_served)
wrk -t1 -c8 -d4s --timeout 5s "https://$TLS/echo" >"$TEST_TMP/wrk.txt" 2>&1 &
WRK=$!
for ((i = 0; i < 10; i++)); do
  reload_changed "$config"  # new TLS contexts each time
  sleep 0.3
done
wait "$WRK" || fail "wrk failed: $(<"$TEST_TMP/wrk.txt")"
served=$(($(policies_served) - served0))
log "wrk over TLS with 10 reloads ($served new policies served): $(tr '\n' ' ' <"$TEST_TMP/wrk.txt")"
((served >= 3)) || fail "only $served of 10 reloads under load published a new policy"
requests=$(awk '/requests in/ { print $1 }' "$TEST_TMP/wrk.txt")
((requests > 0)) || fail "wrk completed no request"
assert_not_contains "$(<"$TEST_TMP/wrk.txt")" "Socket errors" "no socket errors across reloads"
assert_not_contains "$(<"$TEST_TMP/wrk.txt")" "Non-2xx" "no failed request across reloads"
sleep 0.5
fds_before=$(fd_count)  # with the upstream connections wrk's load left in the pool
for ((i = 0; i < 100; i++)); do
  "${CURL[@]}" "${VERIFY[@]}" -o /dev/null "https://$TLS/echo" || fail "handshake $i failed"
done
sleep 0.5
fds_after=$(fd_count)
((fds_after <= fds_before + 4)) || fail "fds grew from $fds_before to $fds_after over 100 handshakes"

# ---- session resumption across a reload: the ticket keys outlive the contexts -----------
# s_client saves the session of a first connection, a new policy (SIGHUP) brings new TLS
# contexts, and a second connection offering that session resumes it (TLS 1.2 and TLS 1.3
# tickets).
ok_reloads() { metric "http://$ADMIN/metrics" 'portcullis_reloads_total{result="ok"}'; }
reloaded_since() { (($(ok_reloads) > $1)); }
for version in -tls1_2 -tls1_3; do
  printf 'GET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n' |
    timeout 10 openssl s_client -connect "$TLS" -servername a.test "$version" \
      -CAfile "$CERTS/ca.pem" -sess_out "$TEST_TMP/session$version.pem" -ign_eof \
      >"$TEST_TMP/first$version.txt" 2>&1 || true
  assert_contains "$(<"$TEST_TMP/first$version.txt")" "New, TLSv1" "a first $version session"
  [[ -s $TEST_TMP/session$version.pem ]] || fail "s_client saved no $version session"
  before=$(ok_reloads)
  write_config optional "resume$version"  # a new policy: new TLS contexts, same client certificates
  kill -HUP "$PID"
  wait_until 10 reloaded_since "$before" || fail "no reload after SIGHUP"
  printf 'GET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n' |
    timeout 10 openssl s_client -connect "$TLS" -servername a.test "$version" \
      -CAfile "$CERTS/ca.pem" -sess_in "$TEST_TMP/session$version.pem" -ign_eof \
      >"$TEST_TMP/second$version.txt" 2>&1 || true
  assert_contains "$(<"$TEST_TMP/second$version.txt")" "Reused, TLSv1" \
    "the $version session resumed after the reload"
  assert_contains "$(<"$TEST_TMP/second$version.txt")" "HTTP/1.1 200" "and served"
done

# ---- client_certs: required, by a reload ---------------------------------------------------
write_config required
kill -HUP "$PID"
wait_until 10 bash -c "! curl -sS --max-time 2 --cacert '$CERTS/ca.pem' https://$TLS/echo -o /dev/null 2>/dev/null" ||
  fail "a handshake without a client certificate still succeeds after client_certs: required"
http "${VERIFY[@]}" "${CLIENT[@]}" "https://$TLS/echo"
assert_status 200 "with a client certificate"

# ---- SIGTERM: a request in flight on an HTTP/2 connection finishes, then the process exits
# (the connection gets GOAWAY once its last stream is done).
assert_sigterm_drains h2-drain-probe '%{http_code} %{http_version}' "200 2" "${H2[@]}" \
  "${CLIENT[@]}" "https://$TLS/big-open/slow?ms=1500"

log "all TLS checks passed"
