#!/usr/bin/env bash
# `runtime: lambda` end to end: `portcullis serve` invokes Lambda authorizers through the
# AWS Lambda Invoke API, SigV4-signed, against the fake Invoke API
# (tests/fakes/lambda/invoke_server.js, which checks every signature with its own code),
# through the authz endpoint: allow with context in an upstream header, deny, a missing
# identity source (401, no invocation), function errors and throttling under
# `on_error: deny` (503) and `on_error: allow` (200; not for throttling: overload), timeouts, credentials from `${env:…}`
# and from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, keep-alive reuse, and a wrong secret
# (503, InvalidSignatureException in the log) — and no secret in any log or audit line.
#
#   bash tests/integration/lambda_remote_test.sh PORTCULLIS_BINARY SOURCE_DIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"
command -v node >/dev/null || fail "node is not installed"
AUDIT_FILE="$TEST_TMP/audit.jsonl"

# ---- credentials: two keys the fake knows, and a secret it does not ----------------------
KEY_ID=AKIDINTEGRATIONTEST
SECRET="config-secret-$RANDOM$RANDOM-$(date +%s%N)"
ENV_KEY_ID=AKIDFROMENVIRONMENT
ENV_SECRET="environment-secret-$RANDOM$RANDOM-$(date +%s%N)"
WRONG="wrong-secret-$RANDOM$RANDOM-$(date +%s%N)"

# ---- the fake Lambda Invoke API ---------------------------------------------------------
start_bg fake node "$SRC/tests/fakes/lambda/invoke_server.js" --port 0 --state-dir "$TEST_TMP/fake" \
  --region eu-west-1 --account 123456789012 \
  --credentials "$KEY_ID:$SECRET" --credentials "$ENV_KEY_ID:$ENV_SECRET"
wait_for_file "$TEST_TMP/fake/ready.json" 10 fake
FAKE="127.0.0.1:$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$TEST_TMP/fake/ready.json")"
LIB_LOGS+=("$TEST_TMP/fake.err")
stat_of() {  # stat_of NAME: a counter from the fake's /control/stats
  "${CURL[@]}" -s "http://$FAKE/control/stats" | sed -n "s/.*\"$1\":\\([0-9]*\\).*/\\1/p"
}
log "fake Lambda Invoke API on $FAKE"

cat >"$TEST_TMP/portcullis.yaml" <<YAML
version: 1
listeners: { authz: 127.0.0.1:0, admin: 127.0.0.1:0 }
functions:
  authorizer:                  # tests/fakes/lambda/handlers/index.js: X-Mode picks its answer
    runtime: lambda
    function: arn:aws:lambda:eu-west-1:123456789012:function:index
    endpoint: http://$FAKE
    credentials:
      access_key_id: \${env:LAMBDA_KEY_ID}
      secret_access_key: \${env:LAMBDA_SECRET}
    timeout: 1s
  from-env:                    # no credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
    runtime: lambda
    function: allow
    region: eu-west-1
    endpoint: http://$FAKE
    connections: 2
  failing:                     # answers with X-Amz-Function-Error: Unhandled
    runtime: lambda
    function: error
    region: eu-west-1
    endpoint: http://$FAKE
    credentials: { access_key_id: "\${env:LAMBDA_KEY_ID}", secret_access_key: "\${env:LAMBDA_SECRET}" }
  throttled:                   # answers 429 TooManyRequestsException
    runtime: lambda
    function: throttle
    region: eu-west-1
    endpoint: http://$FAKE
    credentials: { access_key_id: "\${env:LAMBDA_KEY_ID}", secret_access_key: "\${env:LAMBDA_SECRET}" }
  wrong-secret:
    runtime: lambda
    function: allow
    region: eu-west-1
    endpoint: http://$FAKE
    credentials: { access_key_id: "\${env:LAMBDA_KEY_ID}", secret_access_key: "\${env:WRONG_SECRET}" }
routes:
  - name: orders
    match: { paths: [/orders/**] }
    functions: [authorizer]
    on_allow: { set_headers: { X-Tenant: "\${ctx.tenant}" } }
    expose_reason: true
  - name: env
    match: { paths: [/env/**] }
    functions: [from-env]
    on_allow: { set_headers: { X-Tenant: "\${ctx.tenant}" } }
  - name: error-closed
    match: { paths: [/error/**] }
    functions: [failing]
    expose_reason: true
  - name: error-open
    match: { paths: [/error-open/**] }
    functions: [failing]
    on_error: allow
  - name: throttle-closed
    match: { paths: [/throttle/**] }
    functions: [throttled]
    expose_reason: true
  - name: throttle-open
    match: { paths: [/throttle-open/**] }
    functions: [throttled]
    on_error: allow
  - name: throttle-opt-in
    match: { paths: [/throttle-opt-in/**] }
    functions: [throttled]
    on_error: allow
    on_overload: allow
  - name: wrong
    match: { paths: [/wrong/**] }
    functions: [wrong-secret]
audit: { sink: "file:$AUDIT_FILE" }
watch: { enabled: false }
YAML

export LAMBDA_KEY_ID=$KEY_ID LAMBDA_SECRET=$SECRET WRONG_SECRET=$WRONG
export AWS_ACCESS_KEY_ID=$ENV_KEY_ID AWS_SECRET_ACCESS_KEY=$ENV_SECRET
unset AWS_SESSION_TOKEN

# ---- the policy compiles; its output names no secret -------------------------------------
"$PORTCULLIS" check -c "$TEST_TMP/portcullis.yaml" >"$TEST_TMP/check.out" 2>&1 ||
  fail "portcullis check failed: $(cat "$TEST_TMP/check.out")"

# Without credentials anywhere, the function without a `credentials` key is a located error.
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$PORTCULLIS" check -c "$TEST_TMP/portcullis.yaml" \
  >"$TEST_TMP/check-nocreds.out" 2>&1 && fail "check passed without AWS_ACCESS_KEY_ID"
assert_match "$(cat "$TEST_TMP/check-nocreds.out")" \
  "portcullis\\.yaml:[0-9]+:[0-9]+: functions\\.from-env has no 'credentials'" "missing credentials"

start_portcullis portcullis "$TEST_TMP/portcullis.yaml"
wait_http "http://$ADMIN/readyz" 30 portcullis

ask() {  # ask PATH REQUEST-ID [curl args…]
  local path=$1 rid=$2
  shift 2
  http -H "X-Original-URI: $path" -H "X-Request-Id: $rid" "$@" "http://$AUTHZ/"
}

# ---- allow: the function's context reaches an upstream header ------------------------------
before=$(stat_of invocations)
ask /orders/1 allow1 -H "Authorization: Bearer tok-1" -H "X-Mode: allow" -H "X-Tenant: initech"
assert_status 200 "the authorizer allows"
assert_eq initech "$(header X-Tenant)" "X-Tenant from the function's context"
wait_audit '"request_id":"allow1"'
assert_audit decision allow
assert_audit route orders
assert_match "$AUDIT_LINE" '"functions":\[\{"name":"authorizer","outcome":"allow","ms":[0-9.]+\}\]' "functions in the audit line"
assert_eq 1 $(($(stat_of invocations) - before)) "invocations for one request"

# ---- deny -------------------------------------------------------------------------------------
ask /orders/2 deny1 -H "Authorization: Bearer tok-1" -H "X-Mode: deny"
assert_status 403 "the authorizer denies"
assert_eq function_denied "$(header X-Portcullis-Reason)" "reason header"
wait_audit '"request_id":"deny1"'
assert_audit reason function_denied
assert_match "$AUDIT_LINE" '"functions":\[\{"name":"authorizer","outcome":"deny","ms":[0-9.]+\}\]' "deny in the audit line"

# ---- no Authorization header: 401 without an invocation -------------------------------------
before=$(stat_of invocations)
ask /orders/3 noauth -H "X-Mode: allow"
assert_status 401 "no identity source"
assert_eq "$before" "$(stat_of invocations)" "no invocation without the identity source"

# ---- function errors and throttling: on_error decides ---------------------------------------
ask /error/1 err-closed -H "Authorization: Bearer tok-1"
assert_status 503 "function error, on_error: deny"
assert_eq function_error "$(header X-Portcullis-Reason)" "function error reason"
wait_audit '"request_id":"err-closed"'
assert_audit reason function_error
assert_match "$AUDIT_LINE" '"functions":\[\{"name":"failing","outcome":"error","ms":[0-9.]+\}\]' "error in the audit line"
assert_contains "$AUDIT_LINE" "Unhandled: Error" "the function's error type in the detail"
assert_not_contains "$AUDIT_LINE" "told to fail" "the error document stays out of the audit line"

ask /error-open/1 err-open -H "Authorization: Bearer tok-1"
assert_status 200 "function error, on_error: allow"
wait_audit '"request_id":"err-open"'
assert_audit on_error allow
assert_audit would_deny true

ask /throttle/1 thr-closed -H "Authorization: Bearer tok-1"
assert_status 503 "throttled, on_error: deny"
assert_eq function_overloaded "$(header X-Portcullis-Reason)" "throttling reason"
wait_audit '"request_id":"thr-closed"'
assert_audit reason function_overloaded
assert_contains "$AUDIT_LINE" "TooManyRequestsException" "AWS's error type in the detail"

# Throttling is overload, which a client can cause: on_error: allow does not open it
# (the review got 31 of 40 requests allowed by flooding a function); on_overload: allow does.
ask /throttle-open/1 thr-open -H "Authorization: Bearer tok-1"
assert_status 503 "throttled, on_error: allow: overload is not failed open"
assert_eq 1 "$(header Retry-After)" "throttled: Retry-After"
wait_audit '"request_id":"thr-open"'
assert_audit reason function_overloaded
assert_audit decision deny
ask /throttle-opt-in/1 thr-opt-in -H "Authorization: Bearer tok-1"
assert_status 200 "throttled, on_overload: allow"
wait_audit '"request_id":"thr-opt-in"'
assert_audit on_overload allow
assert_audit would_deny true

# ---- a function slower than its timeout (1s) --------------------------------------------------
t0=$(date +%s%N)
ask /orders/4 slow -H "Authorization: Bearer tok-1" -H "X-Mode: sleep" -H "X-Sleep-Ms: 20000"
ms=$((($(date +%s%N) - t0) / 1000000))
assert_status 503 "a function over its timeout"
assert_eq function_timeout "$(header X-Portcullis-Reason)" "timeout reason"
log "a 20 s function answered 503 after ${ms} ms (timeout 1s)"
# Answered by the 1 s timeout, not by the function (20 s): a bound with room for a busy machine.
((ms < 10000)) || fail "the function timeout was not applied (${ms} ms)"
ask /orders/5 after-slow -H "Authorization: Bearer tok-1" -H "X-Mode: allow"
assert_status 200 "the next call after a timeout"

# ---- credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; keep-alive reuse ------------
ask /env/1 env1 -H "Authorization: Bearer tok-2" -H "X-Tenant: globex"
assert_status 200 "function with environment credentials"
assert_eq globex "$(header X-Tenant)" "X-Tenant via the environment-credentials function"
conns_before=$(stat_of invoke_connections)
for i in $(seq 1 20); do
  ask /env/$i "env-loop-$i" -H "Authorization: Bearer tok-2"
  assert_status 200 "environment-credentials request $i"
done
conns=$(($(stat_of invoke_connections) - conns_before))
log "20 sequential invocations opened $conns new connection(s)"
((conns <= 1)) || fail "keep-alive: $conns new connections for 20 sequential invocations"

# ---- a wrong secret: 503, InvalidSignatureException in the log, never the secret --------------
ask /wrong/1 wrong1 -H "Authorization: Bearer tok-3"
assert_status 503 "a wrong secret"
wait_audit '"request_id":"wrong1"'
assert_audit reason function_error
assert_contains "$AUDIT_LINE" "InvalidSignatureException" "the audit detail names AWS's error"
for i in $(seq 1 50); do
  grep -q InvalidSignatureException "$TEST_TMP/portcullis.err" && break
  sleep 0.1
done
grep -q 'lambda remote allow: invocation failed: HTTP 403 InvalidSignatureException' "$TEST_TMP/portcullis.err" ||
  fail "no log line names InvalidSignatureException"

# `portcullis eval --explain` runs the same function offline: the trace names the error, not
# the secret.
"$PORTCULLIS" eval -c "$TEST_TMP/portcullis.yaml" --method GET --url http://api.example.com/wrong/2 \
  -H 'Authorization: Bearer tok-4' --explain >"$TEST_TMP/eval.out" 2>&1 && fail "eval allowed with a wrong secret"
assert_contains "$(cat "$TEST_TMP/eval.out")" "detail: function wrong-secret: HTTP 403 InvalidSignatureException" \
  "eval --explain names the error"

# ---- metrics ----------------------------------------------------------------------------------
ok_series='portcullis_lambda_remote_invocations_total{function="arn:aws:lambda:eu-west-1:123456789012:function:index",outcome="ok"}'
[[ -n $(metric "http://$ADMIN/metrics" "$ok_series") ]] || fail "no $ok_series in /metrics"
assert_eq 3 "$(metric "http://$ADMIN/metrics" 'portcullis_lambda_remote_invocations_total{function="throttle",outcome="throttled"}')" \
  "throttled invocations counted (three routes)"

# ---- no secret anywhere ------------------------------------------------------------------------
stop_bg portcullis
for f in "$AUDIT_FILE" "$TEST_TMP/portcullis.err" "$TEST_TMP/portcullis.out" "$TEST_TMP/check.out" \
  "$TEST_TMP/check-nocreds.out" "$TEST_TMP/eval.out" "$TEST_TMP/fake.err"; do
  for secret in "$SECRET" "$ENV_SECRET" "$WRONG"; do
    grep -qF -- "$secret" "$f" && fail "a secret appeared in $f"
  done
done
grep -q 'Bearer tok-' "$AUDIT_FILE" && fail "a token appeared in the audit log"
log "PASS"
