#!/usr/bin/env bash
# Who may talk to a `lambda-local` function's Runtime API, through the real binary (as root,
# as in CI): only the function's own processes. Another local user (nobody, through
# `setpriv`) who finds the port — here in a file the test function writes its
# AWS_LAMBDA_RUNTIME_API to — and polls `invocation/next` or posts an answer is refused.
#
#   bash tests/integration/lambda_peer_test.sh PORTCULLIS_BINARY SOURCE_DIR
#
# Checked:
#   1. nobody's `GET …/invocation/next` (started before a request, so that a listener that
#      let it in would hand it the event with the caller's Authorization) → 403 at once,
#      without the event; nobody's `POST …/invocation/ID/response` → 403; the request in
#      between is decided by the real function (200, its pid, audit allow with the
#      function's outcome), which keeps running (no restart)
#   2. portcullis_lambda_runtime_api_refused_total{reason="other_user"} counts both, and
#      portcullis logs the refusals (uid 65534, other_user) without the caller's token
#   3. `user: nobody` + `group: nogroup`: the function runs as 65534:65534 (the uid it
#      reports in its context → X-Uid, /proc/PID/status), its own connections pass the
#      check (no refusal counted); `portcullis check` run by nobody refuses `user: root`
#      (exit 2, FILE:LINE:COL: … needs portcullis to run as root) and accepts
#      `user: nobody` (its own account: nothing to switch)
#   4. a reload (SIGHUP) to a policy without `as-nobody`: its process is stopped and reaped
#      (no policy, not even the one portcullis started with, keeps a dropped function's
#      pool alive), while `guarded`, unchanged, keeps its process
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"

[[ $(id -u) == 0 ]] || fail "this test runs as root (it switches to nobody with setpriv)"
command -v setpriv >/dev/null || fail "setpriv is not installed (Debian: util-linux)"
getent passwd nobody >/dev/null || fail "no user nobody"
getent group nogroup >/dev/null || fail "no group nogroup"
NOBODY_UID=$(id -u nobody)
NOGROUP_GID=$(getent group nogroup | cut -d: -f3)
AS_NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)

POLICY="$TEST_TMP/policy.yaml"
AUDIT_FILE="$TEST_TMP/audit.jsonl"
API_FILE="$TEST_TMP/guarded.api"
FAKES="$SRC/tests/fakes/lambda"
# A copy of the bash fake that nobody may read and run, with a policy nobody may read
# (TEST_TMP itself is private).
chmod 711 "$TEST_TMP"  # nobody may pass through, not list
PUBLIC="$TEST_TMP/public"
mkdir -m 755 "$PUBLIC"
install -m 755 "$FAKES/bash/bootstrap" "$PUBLIC/bootstrap"

cat >"$POLICY" <<EOF
version: 1
workers: 1
listeners:
  authz: 127.0.0.1:0
  admin: 127.0.0.1:0
watch: { enabled: false }
audit: { sink: "file:$AUDIT_FILE" }
authz: { style: nginx }
functions:
  guarded:
    runtime: lambda-local
    command: [$FAKES/bash/bootstrap]
    env: { FAKE_API_FILE: "$API_FILE" }
    timeout: 3s
  as-nobody:
    runtime: lambda-local
    command: [$PUBLIC/bootstrap]
    user: nobody
    group: nogroup
    timeout: 3s
routes:
  - name: guarded
    match: { paths: [/guarded/**] }
    functions: [guarded]
    on_allow: { set_headers: { X-Tenant: "\${ctx.tenant}", X-Pid: "\${ctx.pid}" } }
    expose_reason: true
  - name: as-nobody
    match: { paths: [/nobody/**] }
    functions: [as-nobody]
    on_allow: { set_headers: { X-Uid: "\${ctx.uid}", X-Pid: "\${ctx.pid}" } }
    expose_reason: true
default: deny
EOF

check_out=$("$PORTCULLIS" check -c "$POLICY" 2>&1) || fail "portcullis check failed: $check_out"
start_portcullis portcullis "$POLICY"
wait_http "http://$ADMIN/readyz" 30 portcullis
M="http://$ADMIN/metrics"
m() { metric "$M" "$1"; }
refused() { m "portcullis_lambda_runtime_api_refused_total{function=\"$1\",reason=\"$2\"}"; }

N=0
# decide PATH AUTH: one authz GET with a fresh request id RID; HTTP_STATUS and the headers.
decide() {
  local path=$1 auth=$2 out
  N=$((N + 1))
  RID="peer-test-$N"
  : >"$TEST_TMP/last.headers"
  out=$("${CURL[@]}" -o /dev/null -D "$TEST_TMP/last.headers" -w '%{http_code}' \
        -H "X-Original-URI: $path" -H "X-Request-Id: $RID" -H "Authorization: $auth" \
        "http://$AUTHZ/" 2>"$TEST_TMP/last.curl.err") || true
  HTTP_STATUS=${out:-000}
  LIB_LAST_REQUEST="GET $path (request $RID)"
}

wait_for_file "$API_FILE" 15 portcullis
API=$(<"$API_FILE")
assert_match "$API" '^127\.0\.0\.1:[0-9]+$' "AWS_LAMBDA_RUNTIME_API of the function"
log "guarded's Runtime API: $API"

# ---- 1. another user polls `next` and posts an answer ---------------------------------------
decide /guarded/0 "Bearer warm-up"
assert_status 200 "guarded, before the attempts"
FUNCTION_PID=$(header X-Pid)
assert_match "$FUNCTION_PID" '^[0-9]+$' "guarded reports its pid"

# The poll runs in the background while a request is decided: had it been let in, it would
# have been handed that request's event.
# (Its output goes through this root shell: nobody may not write in TEST_TMP.)
"${AS_NOBODY[@]}" curl -sS --noproxy '*' --max-time 10 -w '\n%{http_code}' \
  "http://$API/2018-06-01/runtime/invocation/next" >"$TEST_TMP/stolen.out" 2>"$TEST_TMP/stolen.err" &
THIEF=$!
decide /guarded/1 "Bearer alice-secret-token"
assert_status 200 "guarded, while nobody polls next"
assert_eq bash "$(header X-Tenant)" "the real function decided"
assert_eq "$FUNCTION_PID" "$(header X-Pid)" "the same process decided"
wait_audit "\"request_id\":\"$RID\""
assert_audit decision allow "guarded while nobody polls"
assert_match "$AUDIT_LINE" '"functions":\[\{"name":"guarded","outcome":"allow"' "audit functions"
wait "$THIEF" || true
STOLEN=$(<"$TEST_TMP/stolen.out")
assert_eq 403 "${STOLEN##*$'\n'}" "nobody's invocation/next"
assert_not_contains "$STOLEN" "alice-secret-token" "nobody got no event"
assert_contains "$STOLEN" "AccessDenied" "nobody's answer"

code=$("${AS_NOBODY[@]}" curl -sS --noproxy '*' --max-time 10 -o /dev/null -w '%{http_code}' \
  -X POST -d '{"isAuthorized":true}' \
  "http://$API/2018-06-01/runtime/invocation/0123abcd-0000-4000-8000-000000000000/response") || true
assert_eq 403 "$code" "nobody's invocation/ID/response"

decide /guarded/2 "Bearer bob-token"
assert_status 200 "guarded, after the attempts"
assert_eq "$FUNCTION_PID" "$(header X-Pid)" "the same process still decides"
wait_audit "\"request_id\":\"$RID\""
assert_audit decision allow "guarded after the attempts"

# ---- 2. counted and logged ---------------------------------------------------------------
assert_eq 2 "$(refused guarded other_user)" "refusals counted (other_user)"
assert_eq 0 "$(refused guarded other_process)" "no other_process refusal"
assert_eq 0 "$(m 'portcullis_lambda_process_restarts_total{function="guarded",reason="exit"}')" \
  "guarded was never restarted"
LOG=$(cat "$TEST_TMP/portcullis.err" "$TEST_TMP/portcullis.out")
assert_match "$LOG" "lambda guarded: refused a Runtime API connection to process $FUNCTION_PID from 127\.0\.0\.1:[0-9]+ \(uid $NOBODY_UID\): other_user" \
  "the refusal is logged"
assert_not_contains "$LOG" "alice-secret-token" "no token in the log"

# ---- 3. user: nobody, group: nogroup -----------------------------------------------------
decide /nobody/1 "Bearer carol-token"
assert_status 200 "as-nobody"
assert_eq "$NOBODY_UID" "$(header X-Uid)" "the function's uid (from its context)"
NOBODY_PID=$(header X-Pid)
STATUS=$(cat "/proc/$NOBODY_PID/status")
assert_match "$STATUS" $'Uid:\t'"$NOBODY_UID"$'\t'"$NOBODY_UID" "/proc: uid"
assert_match "$STATUS" $'Gid:\t'"$NOGROUP_GID"$'\t'"$NOGROUP_GID" "/proc: gid"
assert_eq 0 "$(refused as-nobody other_user)" "its own connections pass the check"
assert_eq 0 "$(refused as-nobody other_process)" "its own connections pass the check"

# Checked by a user other than root: a function that would run as another account is an
# error at its entry; one that runs as that same account is fine (nothing to switch).
# write_policy USER: a policy nobody may read, with one function run as USER.
write_policy() {
  cat >"$PUBLIC/policy.yaml" <<EOF
version: 1
functions:
  fn:
    runtime: lambda-local
    command: [$PUBLIC/bootstrap]
    user: $1
routes:
  - name: r
    match: { paths: [/x] }
    functions: [fn]
default: deny
EOF
  chmod 644 "$PUBLIC/policy.yaml"
}
write_policy root
rc=0
out=$("${AS_NOBODY[@]}" "$PORTCULLIS" check -c "$PUBLIC/policy.yaml" 2>&1) || rc=$?
assert_eq 2 "$rc" "check as nobody of user: root: exit status"
assert_contains "$out" "policy.yaml:6:11: functions.fn.user: running the function as root:root" \
  "check as nobody: located error"
assert_contains "$out" "needs portcullis to run as root (it runs as uid $NOBODY_UID)" \
  "check as nobody: why"
write_policy nobody
rc=0
out=$("${AS_NOBODY[@]}" "$PORTCULLIS" check -c "$PUBLIC/policy.yaml" 2>&1) || rc=$?
assert_eq 0 "$rc" "check as nobody of user: nobody: $out"

# ---- 4. a reload drops a function: its processes go ---------------------------------------
sed -e '/^  as-nobody:$/,/^    timeout: 3s$/d' -e '/^  - name: as-nobody$/,/^    expose_reason: true$/d' \
  "$POLICY" >"$POLICY.next"
assert_not_contains "$(<"$POLICY.next")" "as-nobody" "the next policy has no as-nobody"
mv "$POLICY.next" "$POLICY"
kill -HUP "${PID_OF[portcullis]}"
reloaded() { [[ $(m 'portcullis_reloads_total{result="ok"}') == 1 ]]; }
wait_until 30 reloaded || fail "the SIGHUP reload was not counted within 30 s"
decide /nobody/2 "Bearer carol-token"
assert_status 403 "as-nobody's route is gone: the default denies"
wait_until 30 gone "$NOBODY_PID" || fail "as-nobody's process $NOBODY_PID still exists 30 s after the reload"
decide /guarded/3 "Bearer bob-token"
assert_status 200 "guarded after the reload"
assert_eq "$FUNCTION_PID" "$(header X-Pid)" "guarded's process is the same after the reload"
log "4. reload without as-nobody: its process $NOBODY_PID is gone; guarded kept $FUNCTION_PID"

log "ok"
