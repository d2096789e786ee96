#!/usr/bin/env bash
# The command line: `check` and `serve` on bad configs (FILE:LINE:COL diagnostics, exit 2,
# nothing listening), `eval` (+ --explain), `test` on examples/quickstart_test.yaml and on a
# deliberately failing case file, `token`.
#
#   bash tests/integration/cli_test.sh PORTCULLIS_BINARY SOURCE_DIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"

JWKS="$SRC/examples/keys/demo-jwks.json"
QUICKSTART="$SRC/examples/quickstart.yaml"

# run_cli NAME ARGS…: runs portcullis in the foreground (bounded by `timeout`), output in
# $TEST_TMP/NAME.{out,err}; RC, OUT, ERR.
run_cli() {
  local name=$1
  shift
  RC=0
  timeout 20 "$PORTCULLIS" "$@" >"$TEST_TMP/$name.out" 2>"$TEST_TMP/$name.err" </dev/null || RC=$?
  [[ $RC != 124 ]] || fail "portcullis $* did not finish in 20s"
  OUT=$(<"$TEST_TMP/$name.out")
  ERR=$(<"$TEST_TMP/$name.err")
  LIB_LAST_REQUEST=""
}

# A valid policy; the cases below each break exactly one thing in a copy of it.
# (The listener port is fixed so that `serve` would visibly bind it.)
free_port SERVE_PORT
write_base() {
  cat >"$1" <<EOF
version: 1
workers: 1
listeners:
  authz: 127.0.0.1:$SERVE_PORT
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $JWKS
    audiences: [orders-api]
    leeway: 30s
    claims_to_headers: { X-User: sub }
routes:
  - name: health
    match: { paths: [/healthz] }
    allow: true
  - name: orders
    match: { paths: [/orders/**], methods: [GET] }
    authenticate: [demo]
    require: { scopes: [read:orders] }
default: deny
audit: { sink: none }
EOF
}

# ---- check: the base config is fine --------------------------------------------------------
base="$TEST_TMP/base.yaml"
write_base "$base"
run_cli check-base check -c "$base"
assert_eq 0 "$RC" "check on a valid config: exit status (stderr: $ERR)"
assert_match "$OUT" "^$base: ok, policy [0-9a-f]+: 2 route\\(s\\), 1 provider\\(s\\)" "check on a valid config"

run_cli check-quickstart check -c "$QUICKSTART"
assert_eq 0 "$RC" "check examples/quickstart.yaml: exit status (stderr: $ERR)"

# bad_config NAME SED-EXPR MARKER MESSAGE [COLUMN-TOKEN]
#   writes base.yaml edited by SED-EXPR to NAME.yaml; expects `check` and `serve` to exit 2
#   with exactly one diagnostic, `NAME.yaml:LINE:COL: …MESSAGE…`, where LINE is the line that
#   contains MARKER and (when COLUMN-TOKEN is given) COL is where COLUMN-TOKEN starts on it.
bad_config() {
  local name=$1 expr=$2 marker=$3 message=$4 token=${5:-}
  local file="$TEST_TMP/$name.yaml" line col text
  write_base "$file"
  sed -i -e "$expr" "$file"
  line=$(grep -nF -- "$marker" "$file" | head -n 1 | cut -d: -f1)
  [[ -n $line ]] || fail "$name: fixture has no line with '$marker'"
  text=$(sed -n "${line}p" "$file")

  run_cli "check-$name" check -c "$file"
  assert_eq 2 "$RC" "check $name: exit status"
  assert_eq "" "$OUT" "check $name: stdout"
  assert_eq 1 "$(grep -c . <<<"$ERR")" "check $name: number of diagnostics (got: $ERR)"
  assert_match "$ERR" "^$file:$line:[0-9]+: " "check $name: diagnostic points at line $line ('$text')"
  assert_contains "$ERR" "$message" "check $name: message"
  if [[ -n $token ]]; then
    col=$(awk -v t="$token" '{ print index($0, t) }' <<<"$text")
    assert_match "$ERR" "^$file:$line:$col: " "check $name: column of '$token'"
  fi
  log "check $name: $ERR"

  # serve refuses the same file: exit 2, the same diagnostic, no ready file, no listener.
  local ready="$TEST_TMP/$name.ready.json"
  start_bg "serve-$name" "$PORTCULLIS" serve -c "$file" --ready-file "$ready"
  wait_bg "serve-$name" 10
  assert_eq 2 "$BG_STATUS" "serve $name: exit status"
  [[ ! -e $ready ]] || fail "serve $name: wrote a ready file: $(cat "$ready")"
  [[ -z $(ss -Hltn "( sport = :$SERVE_PORT )") ]] || fail "serve $name: something listens on :$SERVE_PORT"
  local serr
  serr=$(<"$TEST_TMP/serve-$name.err")
  assert_match "$serr" "(^|"$'\n'")$file:$line:[0-9]+: " "serve $name: diagnostic"
  assert_contains "$serr" "not starting" "serve $name: stderr"
}

# (a) unknown keys: a typo in a provider, and at the top level
bad_config unknown-key 's/^    claims_to_headers:/    claim_to_headers:/' \
  "claim_to_headers:" "unknown key 'claim_to_headers' in identity.demo" claim_to_headers
bad_config unknown-top-key 's/^default: deny/defualt: deny/' \
  "defualt:" "unknown key 'defualt' in the config" defualt
# (b) a bad duration
bad_config bad-duration 's/^    leeway: 30s/    leeway: 5 parsecs/' \
  "leeway: 5 parsecs" "identity.demo.leeway must be a duration" "5 parsecs"
# (c) a route authenticating with a provider that does not exist
bad_config unknown-provider 's/^    authenticate: \[demo\]/    authenticate: [demo, corp]/' \
  "authenticate: [demo, corp]" "unknown provider 'corp'" corp
# (d) a YAML syntax error
bad_config yaml-syntax 's/^    allow: true/    allow: true: false/' \
  "allow: true: false" "YAML syntax error"

# (e) the admin listener off loopback without admin.token (docs/admin.md)
bad_config admin-without-token 's/^  authz: \(.*\)$/  authz: \1\n  admin: 0.0.0.0:0/' \
  "admin: 0.0.0.0:0" "listeners.admin: 0.0.0.0:0 is not a loopback address; set admin.token" \
  "0.0.0.0:0"

# The admin token is a secret: `check` and `eval --explain` never print it.
ADMIN_SECRET="cli-test-admin-token-$RANDOM$RANDOM$RANDOM"
with_token="$TEST_TMP/with-admin-token.yaml"
write_base "$with_token"
sed -i -e 's/^  authz: \(.*\)$/  authz: \1\n  admin: 0.0.0.0:0/' "$with_token"
printf 'admin: { token: "${env:CLI_TEST_ADMIN_TOKEN}" }\n' >>"$with_token"
export CLI_TEST_ADMIN_TOKEN=$ADMIN_SECRET
run_cli check-admin-token check -c "$with_token"
assert_eq 0 "$RC" "check with admin.token off loopback: exit status (stderr: $ERR)"
assert_not_contains "$OUT$ERR" "$ADMIN_SECRET" "check with admin.token: output"
run_cli eval-admin-token eval -c "$with_token" --url https://api.example.com/orders/7 --explain
assert_eq 1 "$RC" "eval --explain with admin.token: exit status (stderr: $ERR)"
assert_not_contains "$OUT$ERR" "$ADMIN_SECRET" "eval --explain with admin.token: output"
CLI_TEST_ADMIN_TOKEN=short
run_cli check-admin-short-token check -c "$with_token"
assert_eq 2 "$RC" "check with a short admin.token: exit status"
assert_contains "$ERR" "admin.token must be at least 16 characters" "check with a short admin.token"
unset CLI_TEST_ADMIN_TOKEN

# ---- eval --------------------------------------------------------------------------------
READER=$(mint_token --sub alice --aud orders-api --scope read:orders)
run_cli eval-allow eval -c "$QUICKSTART" --url https://api.example.com/orders/7 \
  -H "Authorization: Bearer $READER"
assert_eq 0 "$RC" "eval allow: exit status (stderr: $ERR)"
assert_eq "allow 200 none" "$(head -n 1 <<<"$OUT")" "eval allow: first line"
assert_contains "$OUT" $'route: orders-read\n' "eval allow"
assert_contains "$OUT" "upstream X-User: alice" "eval allow"
assert_not_contains "$OUT" "trace:" "eval without --explain"

run_cli eval-explain eval -c "$QUICKSTART" --url https://api.example.com/orders/7 \
  -H "Authorization: Bearer $READER" --explain
assert_eq 0 "$RC" "eval --explain: exit status"
assert_eq "allow 200 none" "$(head -n 1 <<<"$OUT")" "eval --explain: first line"
assert_contains "$OUT" $'\ntrace:\n' "eval --explain"
assert_match "$OUT" $'\n  route +orders-read' "eval --explain: route stage"
assert_match "$OUT" $'\n  authenticate +ok .*provider=demo sub=alice' "eval --explain: authenticate stage"
assert_match "$OUT" $'\n  require +pass' "eval --explain: require stage"
assert_match "$OUT" $'\n  decision +allow' "eval --explain: decision stage"

run_cli eval-deny eval -c "$QUICKSTART" -X DELETE --url https://api.example.com/orders/7 \
  -H "Authorization: Bearer $READER" --explain
assert_eq 1 "$RC" "eval deny: exit status"
assert_eq "deny 403 role_missing" "$(head -n 1 <<<"$OUT")" "eval deny: first line"
assert_match "$OUT" $'\n  require +fail' "eval deny --explain: require stage"

run_cli eval-badconfig eval -c "$TEST_TMP/yaml-syntax.yaml" --url https://api.example.com/healthz
assert_eq 2 "$RC" "eval on a broken config: exit status"
assert_contains "$ERR" "$TEST_TMP/yaml-syntax.yaml:" "eval on a broken config: diagnostic"

# ---- test --------------------------------------------------------------------------------
cases="$SRC/examples/quickstart_test.yaml"
run_cli test-quickstart test -c "$QUICKSTART" "$cases"
assert_eq 0 "$RC" "portcullis test examples/quickstart_test.yaml: exit status (output: $OUT $ERR)"
n=$(grep -c '^  - name:' "$cases")
((n >= 5)) || fail "examples/quickstart_test.yaml has only $n cases"
assert_match "$OUT" "(^|"$'\n'")$n passed, 0 failed$" "portcullis test: summary"
assert_not_contains "$OUT" "FAIL" "portcullis test examples/quickstart_test.yaml"
assert_eq "$n" "$(grep -c '^PASS ' <<<"$OUT")" "portcullis test: PASS lines"

# The Lua functions example: its cases fix `now`, so office hours decide the same any day.
lua_cases="$SRC/examples/lua_test.yaml"
run_cli test-lua test -c "$SRC/examples/lua.yaml" "$lua_cases"
assert_eq 0 "$RC" "portcullis test examples/lua_test.yaml: exit status (output: $OUT $ERR)"
n=$(grep -c '^  - name:' "$lua_cases")
((n >= 10)) || fail "examples/lua_test.yaml has only $n cases"
assert_match "$OUT" "(^|"$'\n'")$n passed, 0 failed$" "portcullis test (lua): summary"
run_cli eval-lua eval -c "$SRC/examples/lua.yaml" --method GET \
  --url https://api.example.com/orders/7 -H "X-Tenant: globex" --explain \
  -H "Authorization: Bearer $(mint_token --sub alice --aud orders-api --claim tenant=acme)"
assert_eq "deny 403 tenant_mismatch" "$(head -n 1 <<<"$OUT")" "eval with a Lua function: first line"
assert_match "$OUT" $'\n  function agent-scopes allow +— [0-9]+µs' "eval --explain: the first function"
assert_match "$OUT" $'\n  function tenant deny +— tenant_mismatch; [0-9]+µs' "eval --explain: the second"

failing="$TEST_TMP/failing_test.yaml"
cat >"$failing" <<EOF
tokens:
  reader:
    key: $SRC/examples/keys/demo.jwk
    claims: { iss: portcullis-dev, sub: alice, aud: orders-api, scope: "read:orders" }
cases:
  - name: passes
    request: { url: https://api.example.com/orders/7, token: reader }
    expect: { status: 200, headers: { X-User: alice } }
  - name: wrong on purpose
    request: { url: https://api.example.com/orders/7 }
    expect: { status: 200, reason: none, route: orders-read, headers: { X-User: alice } }
EOF
run_cli test-failing test -c "$QUICKSTART" "$failing"
assert_eq 1 "$RC" "a failing case file: exit status (output: $OUT $ERR)"
assert_contains "$OUT" $'PASS passes\n' "a failing case file"
assert_contains "$OUT" $'FAIL wrong on purpose\n' "a failing case file"
assert_contains "$OUT" "status: expected 200, got 401" "a failing case file: status diff"
assert_contains "$OUT" "reason: expected none, got token_missing" "a failing case file: reason diff"
assert_contains "$OUT" "header X-User: expected 'alice', got none" "a failing case file: header diff"
assert_not_contains "$OUT" "route: expected" "a failing case file: the route matched"
assert_match "$OUT" $'\n1 passed, 1 failed$' "a failing case file: summary"

broken="$TEST_TMP/broken_test.yaml"
cat >"$broken" <<'EOF'
cases:
  - name: names a token nobody defined
    request: { url: https://api.example.com/orders/7, token: ghost }
    expect: { status: 200 }
EOF
run_cli test-broken test -c "$QUICKSTART" "$broken"
assert_eq 2 "$RC" "a case file with an unknown token: exit status"
assert_match "$ERR" "^$broken:3:[0-9]+: unknown token 'ghost'" "a case file with an unknown token"

# ---- token -------------------------------------------------------------------------------
run_cli token token --key "$SRC/examples/keys/demo.jwk" --sub alice --aud orders-api --ttl 5m
assert_eq 0 "$RC" "token: exit status"
assert_match "$OUT" '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "token: a compact JWS"
run_cli token-badttl token --key "$SRC/examples/keys/demo.jwk" --sub alice --ttl soon
assert_eq 2 "$RC" "token --ttl soon: exit status"

# ---- serve: a port that another process already listens on is "cannot start" (exit 2) ------
# (Last, because it fails on the current build: see the message.) The listeners set
# SO_REUSEPORT to spread one process's connections over its workers; the same option also
# lets a second process join the port, and the kernel then splits clients (and admin
# POST /reload calls) between the two instances.
start_portcullis holder "$base"
assert_eq "127.0.0.1:$SERVE_PORT" "$AUTHZ" "the first serve binds the configured port"
second_ready="$TEST_TMP/second.ready.json"
start_bg second "$PORTCULLIS" serve -c "$base" --ready-file "$second_ready"
for ((i = 0; i < 60; i++)); do
  pid_alive "${PID_OF[second]}" || break
  [[ -s $second_ready ]] && break
  sleep 0.05
done
if pid_alive "${PID_OF[second]}"; then
  fail "portcullis bug: a second 'serve' on 127.0.0.1:$SERVE_PORT, already held by another portcullis (pid ${PID_OF[holder]}), did not exit 2 but started and shares the port (SO_REUSEPORT): $(cat "$second_ready" 2>/dev/null)"
fi
wait_bg second 5
assert_eq 2 "$BG_STATUS" "serve on a port already in use: exit status"
assert_contains "$(<"$TEST_TMP/second.err")" "127.0.0.1:$SERVE_PORT" "serve on a port already in use: stderr"
[[ ! -e $second_ready ]] || fail "serve on a port already in use wrote a ready file"
stop_bg holder
