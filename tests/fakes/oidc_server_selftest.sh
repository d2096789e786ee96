#!/usr/bin/env bash
# Self-test of the fake OIDC provider (tests/fakes/oidc_server.js), over HTTP and HTTPS.
#
#   bash tests/fakes/oidc_server_selftest.sh
#
# Needs node, curl and openssl. Starts the fake on port 0 on 127.0.0.1, talks to it with
# curl only on 127.0.0.1, and stops it by the PID it started (never by name). Every wait is
# bounded. Exit status 0 = all checks passed. PORTCULLIS_KEEP_TMP=1 keeps the temp dir.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SERVER=$HERE/oidc_server.js
TMP=$(mktemp -d "${TMPDIR:-/tmp}/oidc_selftest.XXXXXX")
SERVER_PID=""
CHECKS=0
CURL=(curl -sS --noproxy '*' --max-time 10)

stop_server() {
  if [[ -n $SERVER_PID ]]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

cleanup() {
  local rc=$?
  stop_server
  if [[ $rc -ne 0 ]]; then
    echo "--- server log (last 40 lines):" >&2
    tail -n 40 "$TMP"/*/server.err 2>/dev/null >&2 || true
  fi
  if [[ ${PORTCULLIS_KEEP_TMP:-0} == 1 ]]; then
    echo "kept $TMP" >&2
  else
    rm -rf -- "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() {
  CHECKS=$((CHECKS + 1))
  echo "  ok: $*"
}

# js EXPR: evaluates EXPR with `d` = the JSON parsed from stdin, prints the result.
js() {
  node -e '
    let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
      const d = JSON.parse(s);
      const r = (0, eval)("(d) => (" + process.argv[1] + ")")(d);
      process.stdout.write(typeof r === "string" ? r : JSON.stringify(r));
    });' "$1"
}

# req METHOD PATH [BODY]: sets STATUS, BODY (file $TMP/body), HEADERS (file); curl's exit in CURL_RC.
req() {
  local method=$1 path=$2 data=${3-}
  local args=("${CURL[@]}" "${TLS_ARGS[@]}" -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}')
  if [[ $method == HEAD ]]; then args+=(-I); else args+=(-X "$method"); fi
  if [[ $# -ge 3 ]]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$data")
  fi
  CURL_RC=0
  STATUS=$("${args[@]}" "$BASE$path" 2>"$TMP/curl.err") || CURL_RC=$?
  BODY=$(tr -d '\0' <"$TMP/body" 2>/dev/null || true)
}

expect_status() {
  [[ $CURL_RC -eq 0 ]] || fail "$1: curl failed ($CURL_RC): $(cat "$TMP/curl.err")"
  [[ $STATUS == "$2" ]] || fail "$1: status $STATUS, expected $2; body: $BODY"
}

header() {
  grep -i "^$1:" "$TMP/headers" | head -n 1 | sed 's/^[^:]*: *//; s/\r$//'
}

# verify_token TOKEN: the signature checks out against the key with the header's kid in the
# JWKS (read from $TMP/jwks.json); prints "ALG KID SIGLEN".
verify_token() {
  node -e '
    const crypto = require("crypto");
    const fs = require("fs");
    const [h, p, s] = process.argv[1].split(".");
    const dec = (x) => Buffer.from(x, "base64url");
    if (/[=+\/]/.test(process.argv[1])) throw new Error("not base64url without padding");
    const header = JSON.parse(dec(h));
    JSON.parse(dec(p));
    const jwks = JSON.parse(fs.readFileSync(process.argv[2]));
    const jwk = jwks.keys.find((k) => k.kid === header.kid);
    if (!jwk) { console.log("NOKEY " + header.kid); process.exit(0); }
    const key = crypto.createPublicKey({ key: jwk, format: "jwk" });
    const sig = dec(s);
    const data = Buffer.from(h + "." + p);
    const good = header.alg === "ES256"
      ? crypto.verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, sig)
      : crypto.verify("sha256", data, key, sig);
    console.log((good ? header.alg : "BADSIG") + " " + header.kid + " " + sig.length + " " + header.typ);
  ' "$1" "$TMP/jwks.json"
}

# start_server NAME [ARGS…]: starts the fake, waits (bounded) for ready.json; sets BASE, ISSUER.
start_server() {
  local name=$1
  shift
  local dir=$TMP/$name
  mkdir -p "$dir/state"
  node "$SERVER" --port 0 --state-dir "$dir/state" "$@" >"$dir/server.out" 2>"$dir/server.err" &
  SERVER_PID=$!
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s $dir/state/ready.json ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited early: $(cat "$dir/server.err")"
    sleep 0.05
  done
  [[ -s $dir/state/ready.json ]] || fail "no ready.json after 10 s"
  PORT=$(js 'd.port' <"$dir/state/ready.json")
  ISSUER=$(js 'd.issuer' <"$dir/state/ready.json")
  [[ $PORT =~ ^[0-9]+$ && $PORT -gt 0 ]] || fail "bad port '$PORT'"
  [[ $(tr -d '\n' <"$dir/state/ready.json" | wc -l) -eq 0 ]] || fail "ready.json is not one line"
  local leftover
  for leftover in "$dir"/state/.*tmp "$dir"/state/*tmp; do
    [[ -e $leftover ]] && fail "temp file left in the state dir: $leftover"
  done
  SERVER_LOG=$dir/server.err
  echo "[$name] fake IdP pid $SERVER_PID port $PORT issuer $ISSUER"
}

run_suite() {
  local scheme=$1
  shift
  start_server "$scheme" "$@"
  BASE=$scheme://127.0.0.1:$PORT
  [[ $ISSUER == "$BASE" ]] || fail "issuer '$ISSUER', expected '$BASE'"
  ok "ready.json: port $PORT, issuer $ISSUER"

  # --- discovery and JWKS
  req POST /control/reset-stats
  expect_status reset-stats 200
  req GET /.well-known/openid-configuration
  expect_status discovery 200
  [[ $(js 'd.issuer' <<<"$BODY") == "$ISSUER" ]] || fail "discovery issuer: $BODY"
  [[ $(js 'd.jwks_uri' <<<"$BODY") == "$ISSUER/jwks" ]] || fail "discovery jwks_uri: $BODY"
  [[ -n $(js 'd.token_endpoint' <<<"$BODY") ]] || fail "no token_endpoint: $BODY"
  [[ $(js 'd.id_token_signing_alg_values_supported.join(",")' <<<"$BODY") == "RS256,ES256" ]] ||
    fail "algs: $BODY"
  [[ $(header Cache-Control) == "max-age=300" ]] || fail "discovery Cache-Control: $(header Cache-Control)"
  [[ $(header Content-Type) == application/json* ]] || fail "discovery Content-Type"
  ok "discovery document"

  req GET /jwks
  expect_status jwks 200
  cp "$TMP/body" "$TMP/jwks.json"
  [[ $(header Cache-Control) == "max-age=300" ]] || fail "jwks Cache-Control: $(header Cache-Control)"
  [[ $(js 'd.keys.length' <<<"$BODY") == 2 ]] || fail "expected 2 keys: $BODY"
  [[ $(js 'd.keys.map(k => k.kty + "/" + k.alg + "/" + k.use + "/" + (k.crv || "")).join(",")' <<<"$BODY") == \
    "RSA/RS256/sig/,EC/ES256/sig/P-256" ]] || fail "key shapes: $BODY"
  [[ $(js 'd.keys.every(k => k.kid && !k.d && !k.p) ? "yes" : "no"' <<<"$BODY") == yes ]] ||
    fail "keys without kid or with private parts: $BODY"
  local rsa1 ec1
  rsa1=$(js 'd.keys[0].kid' <<<"$BODY")
  ec1=$(js 'd.keys[1].kid' <<<"$BODY")
  ok "JWKS: $rsa1, $ec1"

  req HEAD /jwks
  [[ $STATUS == 200 ]] || fail "HEAD /jwks: $STATUS"

  req GET /control/stats
  expect_status stats 200
  [[ $(js 'd.discovery_fetches + "/" + d.jwks_fetches' <<<"$BODY") == "1/2" ]] || fail "stats: $BODY"
  ok "stats count discovery 1, jwks 2 (GET + HEAD)"

  # --- tokens
  req POST /control/token '{"sub":"alice","aud":"portcullis","groups":["eng"]}'
  expect_status token 200
  local tok v
  tok=$(js 'd.token' <<<"$BODY")
  v=$(verify_token "$tok")
  [[ $v == "RS256 $rsa1 256 JWT" ]] || fail "RS256 token verification: $v"
  local payload
  payload=$(cut -d. -f2 <<<"$tok" | node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>process.stdout.write(Buffer.from(s.trim(),"base64url").toString()))')
  [[ $(js 'd.iss' <<<"$payload") == "$ISSUER" ]] || fail "iss: $payload"
  [[ $(js 'd.exp - d.iat' <<<"$payload") == 3600 ]] || fail "exp-iat: $payload"
  [[ $(js 'd.sub + "," + d.aud + "," + d.groups[0] + "," + ("alg" in d)' <<<"$payload") == "alice,portcullis,eng,false" ]] ||
    fail "claims: $payload"
  ok "RS256 token verifies against the JWKS; iss/iat/exp added"

  req POST /control/token '{"sub":"bob","alg":"ES256","iss":"https://other","exp":123}'
  expect_status "ES256 token" 200
  tok=$(js 'd.token' <<<"$BODY")
  v=$(verify_token "$tok")
  [[ $v == "ES256 $ec1 64 JWT" ]] || fail "ES256 token verification: $v"
  payload=$(cut -d. -f2 <<<"$tok" | node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>process.stdout.write(Buffer.from(s.trim(),"base64url").toString()))')
  [[ $(js 'd.iss + "," + d.exp' <<<"$payload") == "https://other,123" ]] || fail "given claims kept: $payload"
  ok "ES256 token (raw r||s, 64 bytes) verifies; given iss/exp kept"

  req POST /control/token '{"sub":"carol","exp":null}'
  expect_status "token without exp" 200
  payload=$(js 'd.token' <<<"$BODY" | cut -d. -f2 | node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>process.stdout.write(Buffer.from(s.trim(),"base64url").toString()))')
  [[ $(js '"exp" in d' <<<"$payload") == false ]] || fail "exp:null should drop exp: $payload"
  ok "\"exp\": null leaves exp out"

  # --- rotation
  req POST /control/rotate
  expect_status rotate 200
  local rsa2
  rsa2=$(js 'd.kid' <<<"$BODY")
  [[ -n $rsa2 && $rsa2 != "$rsa1" ]] || fail "rotate kid: $BODY"
  req GET /jwks
  cp "$TMP/body" "$TMP/jwks.json"
  [[ $(js 'd.keys.map(k => k.kid).join(",")' <<<"$BODY") == "$rsa1,$ec1,$rsa2" ]] || fail "after rotate: $BODY"
  req POST /control/token '{"sub":"alice"}'
  v=$(verify_token "$(js 'd.token' <<<"$BODY")")
  [[ $v == "RS256 $rsa2 256 JWT" ]] || fail "token after rotate: $v"
  req POST /control/token "{\"sub\":\"alice\",\"kid\":\"$rsa1\"}"
  v=$(verify_token "$(js 'd.token' <<<"$BODY")")
  [[ $v == "RS256 $rsa1 256 JWT" ]] || fail "token with old kid: $v"
  ok "rotate: $rsa2 added and signing, $rsa1 still published and selectable by kid"

  req POST '/control/rotate?drop_old=1'
  expect_status "rotate drop_old" 200
  local rsa3
  rsa3=$(js 'd.kid' <<<"$BODY")
  [[ $(js 'd.dropped.join(",")' <<<"$BODY") == "$rsa1,$ec1,$rsa2" ]] || fail "dropped: $BODY"
  req GET /jwks
  cp "$TMP/body" "$TMP/jwks.json"
  [[ $(js 'd.keys.map(k => k.kid).join(",")' <<<"$BODY") == "$rsa3" ]] || fail "after drop_old: $BODY"
  req POST /control/token "{\"kid\":\"$rsa2\"}"
  expect_status "token with dropped kid" 200
  v=$(verify_token "$(js 'd.token' <<<"$BODY")")
  [[ $v == "NOKEY $rsa2" ]] || fail "dropped key should be absent from JWKS: $v"
  req POST /control/token '{"alg":"ES256"}'
  expect_status "ES256 after drop_old" 409
  req POST '/control/rotate?alg=ES256'
  expect_status "rotate ES256" 200
  req POST /control/token '{"alg":"ES256"}'
  expect_status "ES256 after rotate?alg=ES256" 200
  ok "rotate?drop_old=1 leaves only $rsa3; ES256 comes back with rotate?alg=ES256"

  # --- max-age
  req POST /control/max-age '{"seconds":7}'
  expect_status max-age 200
  req GET /jwks
  [[ $(header Cache-Control) == "max-age=7" ]] || fail "Cache-Control after max-age: $(header Cache-Control)"
  req GET /.well-known/openid-configuration
  [[ $(header Cache-Control) == "max-age=7" ]] || fail "discovery Cache-Control after max-age"
  ok "max-age 7"

  # --- failure modes
  req POST /control/reset-stats
  req POST /control/mode '{"mode":"down"}'
  expect_status "mode down" 200
  req GET /jwks
  [[ $CURL_RC -ne 0 ]] || fail "mode down: curl should fail, got status $STATUS"
  local down_rc=$CURL_RC down_err
  down_err=$(head -n 1 "$TMP/curl.err")
  [[ $down_err == *"reset by peer"* ]] || fail "mode down: expected a connection reset, curl said: $down_err"
  req GET /.well-known/openid-configuration
  [[ $CURL_RC -ne 0 ]] || fail "mode down: discovery should fail"
  req GET /control/stats
  expect_status "stats in mode down" 200
  [[ $(js 'd.discovery_fetches + "/" + d.jwks_fetches' <<<"$BODY") == "1/1" ]] || fail "stats in down: $BODY"
  ok "down: curl fails (exit $down_rc: $down_err); control still works; counted"

  req POST /control/mode '{"mode":"garbage"}'
  req GET /jwks
  expect_status "garbage jwks" 200
  if node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$TMP/body" 2>/dev/null; then
    fail "garbage body parsed as JSON"
  fi
  req GET /.well-known/openid-configuration
  expect_status "garbage discovery" 200
  ok "garbage: 200 with a body that is not JSON"

  req POST /control/mode '{"mode":"500"}'
  req GET /jwks
  expect_status "500 jwks" 500
  req GET /.well-known/openid-configuration
  expect_status "500 discovery" 500
  ok "500"

  req POST /control/mode '{"mode":"slow","delay_ms":1200}'
  expect_status "mode slow" 200
  local t0 t1
  t0=$EPOCHREALTIME
  req GET /jwks
  t1=$EPOCHREALTIME
  expect_status "slow jwks" 200
  node -e 'process.exit(process.argv[1] - process.argv[2] >= 1.1 ? 0 : 1)' "$t1" "$t0" ||
    fail "slow answer came too fast ($t0 → $t1)"
  req POST /control/mode '{"mode":"slow"}'
  CURL=(curl -sS --noproxy '*' --max-time 2)
  t0=$EPOCHREALTIME
  req GET /jwks
  CURL=(curl -sS --noproxy '*' --max-time 10)
  [[ $CURL_RC -eq 28 ]] || fail "default slow (5 s) should time out a 2 s client, curl exit $CURL_RC"
  req GET /control/stats
  expect_status "stats while slow" 200
  ok "slow: delay_ms 1200 honoured; default 5 s times out a 2 s client; control unaffected"

  req GET /control/stats
  [[ $(js 'd.discovery_fetches + "/" + d.jwks_fetches' <<<"$BODY") == "3/5" ]] || fail "stats across modes: $BODY"
  req POST /control/mode '{"mode":"ok"}'
  req GET /jwks
  expect_status "back to ok" 200
  ok "stats across modes 3/5; back to ok"

  # --- bad input never crashes it
  req POST /control/token '{not json'
  expect_status "bad JSON" 400
  req POST /control/token '[1,2]'
  expect_status "array body" 400
  req POST /control/token '{"alg":"HS256"}'
  expect_status "bad alg" 400
  req POST /control/token '{"kid":"nope"}'
  expect_status "unknown kid" 400
  req POST /control/mode '{"mode":"sideways"}'
  expect_status "bad mode" 400
  req POST /control/mode ''
  expect_status "empty mode body" 400
  req POST /control/max-age '{"seconds":-1}'
  expect_status "bad max-age" 400
  req POST /control/max-age '{"seconds":"7x"}'
  expect_status "bad max-age string" 400
  req POST /control/rotate?alg=XX
  expect_status "bad rotate alg" 400
  req POST /control/token '{"__proto__":{"x":1},"constructor":"c","sub":"z"}'
  expect_status "__proto__ claim" 200
  payload=$(js 'd.token' <<<"$BODY" | cut -d. -f2 | node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>process.stdout.write(Buffer.from(s.trim(),"base64url").toString()))')
  [[ $payload == *'"__proto__":{"x":1}'* ]] || fail "__proto__ claim lost: $payload"
  node -e 'process.stdout.write("[".repeat(30000) + "]".repeat(30000))' >"$TMP/deep"
  req POST /control/token "@$TMP/deep"
  expect_status "deeply nested body" 400
  node -e 'process.stdout.write("{\"a\":" + "[".repeat(15000) + "]".repeat(15000) + "}")' >"$TMP/deep"
  req POST /control/token "@$TMP/deep"
  [[ $CURL_RC -eq 0 && ($STATUS == 200 || $STATUS == 500) ]] || fail "deep claim: status $STATUS rc $CURL_RC"
  req GET /control/token
  expect_status "GET token" 405
  req POST /jwks
  expect_status "POST jwks" 405
  req GET /nope
  expect_status "unknown path" 404
  head -c 200000 /dev/zero | tr '\0' 'a' >"$TMP/big"
  req POST /control/token "@$TMP/big"
  [[ $STATUS == 413 || $CURL_RC -ne 0 ]] || fail "oversized body: status $STATUS"
  # Raw garbage on the socket.
  node -e '
    const net = require("net");
    const s = net.connect(Number(process.argv[1]), "127.0.0.1", () => s.end("\x00\x01GARBAGE\r\n\r\n"));
    s.on("data", () => {}); s.on("error", () => {}); s.on("close", () => process.exit(0));
    setTimeout(() => process.exit(0), 3000);' "$PORT"
  req GET /control/stats
  expect_status "alive after bad input" 200
  kill -0 "$SERVER_PID" 2>/dev/null || fail "server died"
  grep -q 'GET /jwks 200' "$SERVER_LOG" || fail "no request log lines in $SERVER_LOG"
  grep -q 'GET /jwks RESET' "$SERVER_LOG" || fail "no RESET log line"
  ok "bad input answered 400/404/405/413; still alive; one log line per request"

  stop_server
  ok "stopped"
}

command -v node >/dev/null || fail "node is not installed"
command -v curl >/dev/null || fail "curl is not installed"
command -v openssl >/dev/null || fail "openssl is not installed"

echo "== HTTP"
TLS_ARGS=()
run_suite http

echo "== HTTPS"
bash "$HERE/make_tls_cert.sh" "$TMP/certs"
for f in ca.pem server.pem server.key; do [[ -s $TMP/certs/$f ]] || fail "make_tls_cert.sh wrote no $f"; done
openssl x509 -in "$TMP/certs/server.pem" -noout -ext subjectAltName | grep -q 'IP Address:127.0.0.1' ||
  fail "server cert lacks IP:127.0.0.1"
TLS_ARGS=(--cacert "$TMP/certs/ca.pem")
run_suite https --tls-cert "$TMP/certs/server.pem" --tls-key "$TMP/certs/server.key"
# Without the CA the certificate must not be trusted (and it is checked for localhost too).
start_server https-noca --tls-cert "$TMP/certs/server.pem" --tls-key "$TMP/certs/server.key"
rc=0
"${CURL[@]}" -o /dev/null "https://127.0.0.1:$PORT/jwks" 2>/dev/null || rc=$?
[[ $rc -ne 0 ]] || fail "HTTPS without --cacert should fail verification"
"${CURL[@]}" -o /dev/null --cacert "$TMP/certs/ca.pem" --resolve "localhost:$PORT:127.0.0.1" \
  "https://localhost:$PORT/jwks" || fail "HTTPS to localhost name should verify"
stop_server
ok "HTTPS: untrusted without the CA; DNS:localhost verifies"

echo "== --issuer with a path and {port}"
TLS_ARGS=()
start_server issuer --issuer 'http://127.0.0.1:{port}/realms/test' --max-age 42
BASE=http://127.0.0.1:$PORT
[[ $ISSUER == "$BASE/realms/test" ]] || fail "issuer override: $ISSUER"
req GET /realms/test/.well-known/openid-configuration
expect_status "discovery under issuer path" 200
[[ $(js 'd.jwks_uri' <<<"$BODY") == "$BASE/realms/test/jwks" ]] || fail "jwks_uri: $BODY"
[[ $(header Cache-Control) == "max-age=42" ]] || fail "--max-age 42: $(header Cache-Control)"
req GET /realms/test/jwks
expect_status "jwks under issuer path" 200
stop_server
ok "--issuer with {port} and a path; --max-age"

echo "== bad command lines exit 2"
for args in "" "--port 0" "--port x --state-dir $TMP/x" "--port 0 --state-dir $TMP/x --tls-cert /nonexistent" \
  "--port 0 --state-dir $TMP/x --bogus 1" "--port 0 --state-dir $TMP/x --tls-cert /nonexistent --tls-key /nonexistent"; do
  rc=0
  # shellcheck disable=SC2086
  timeout 10 node "$SERVER" $args >/dev/null 2>&1 || rc=$?
  [[ $rc -eq 2 ]] || fail "args '$args': exit $rc, expected 2"
done
ok "usage errors"

echo "PASS: $CHECKS checks"
