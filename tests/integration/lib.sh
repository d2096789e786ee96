# shellcheck shell=bash
# Shared helpers for the integration tests (tests/integration/*_test.sh).
#
# A test is run by CTest as `bash SCRIPT PORTCULLIS_BINARY SOURCE_DIR` and starts with
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   lib_init "$@"
#
# which gives it:
#   PORTCULLIS, SRC      absolute paths of the binary and the source tree
#   TEST_TMP             a private temp dir (mktemp -d), removed on exit
#                        (kept when PORTCULLIS_KEEP_TMP=1, for debugging)
#   start_bg NAME CMD…   run CMD in the background, stdout/stderr in $TEST_TMP/NAME.{out,err};
#                        its PID is recorded (BG_PID, PID_OF[NAME]) and the exit trap stops it.
#   stop_bg NAME         TERM (then KILL after 10 s), reap, exit status in BG_STATUS
#   free_port VAR        a random unused TCP port from 20000 up to the ephemeral range, in VAR
#   wait_for_file, wait_http, http (curl into HTTP_STATUS / HTTP_BODY / header NAME),
#   assert_eq, assert_contains, assert_not_contains, assert_match, fail,
#   audit_last, wait_audit, json_get (no jq: grep/sed on the flat one-line audit JSON).
#   start_nginx NAME RENDER PROBE_PATH PORTVAR…   nginx in the foreground on free ports
#   haproxy_serving NAME URL   after start_bg of HAProxy: until URL is 200; 1 = ports taken
#   start_echo_upstream [LOCATIONS]      nginx as the application: echoes X-User, URI and
#                        X-Request-Id, logs each request in $TEST_TMP/app_access.log
#
# Only processes this test started are ever signalled (by PID, never by name), every loop
# is bounded in iterations and time, and all traffic goes to 127.0.0.1.

set -euo pipefail
shopt -s nullglob

declare -a LIB_PIDS=()          # every PID start_bg launched and has not reaped yet
declare -A LIB_PID_NAME=()      # PID -> name
declare -A PID_OF=()            # name -> PID
declare -A LIB_PORTS=()         # ports already handed out by free_port
declare -a LIB_LOGS=()          # extra files fail() shows the tail of
BG_PID=""
BG_STATUS=""
HTTP_STATUS=""
HTTP_BODY=""
AUDIT_FILE=""
AUDIT_LINE=""
CURL=(curl -sS --noproxy '*' --max-time 5)

# ---- set-up and tear-down ---------------------------------------------------------------

# lib_init BINARY SOURCE_DIR [BUDGET_SECONDS]
# The budget bounds a hang, not a speed: 540 s is about 10x the slowest test's time against
# the ASan binary on an idle 2-core machine (CTest's own timeout, 600 s, comes after it).
lib_init() {
  if [[ $# -lt 2 ]]; then
    echo "usage: $0 PORTCULLIS_BINARY SOURCE_DIR" >&2
    exit 2
  fi
  TEST_NAME=$(basename "$0" .sh)
  PORTCULLIS=$(realpath -e -- "$1" 2>/dev/null) || { echo "$TEST_NAME: no binary at $1" >&2; exit 2; }
  SRC=$(realpath -e -- "$2" 2>/dev/null) || { echo "$TEST_NAME: no source dir at $2" >&2; exit 2; }
  [[ -x $PORTCULLIS ]] || { echo "$TEST_NAME: $PORTCULLIS is not executable" >&2; exit 2; }
  local budget=${3:-${PORTCULLIS_TEST_BUDGET:-540}}
  LIB_T0=$EPOCHREALTIME
  LIB_MAIN_PID=$BASHPID
  TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-$TEST_NAME.XXXXXX")
  trap lib_cleanup EXIT
  trap 'lib_on_signal INT' INT
  trap 'lib_on_signal TERM' TERM
  lib_watchdog "$budget"
  log "binary $PORTCULLIS, sources $SRC, temp $TEST_TMP"
}

# A background watchdog that TERMs this test (whose trap then stops everything it started)
# when the test overruns its budget, well before CTest's own timeout.
lib_watchdog() {
  local budget=$1 main=$LIB_MAIN_PID
  (
    trap - EXIT INT TERM
    for ((i = 0; i < budget * 5; i++)); do
      sleep 0.2
      kill -0 "$main" 2>/dev/null || exit 0
    done
    echo "[$TEST_NAME] watchdog: the test ran over its ${budget}s budget" >&2
    kill -TERM "$main" 2>/dev/null
  ) </dev/null &
  LIB_WATCHDOG_PID=$!
}

lib_on_signal() {
  trap - INT TERM
  lib_show_context "interrupted by SIG$1"
  exit 1
}

lib_cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  lib_stop_all
  # Under make test the binary is the ASan + UBSan build: a report in any started
  # process's stderr fails the test, whatever it asserted.
  local report
  report=$(grep -s -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "${TEST_TMP:-/nonexistent}"/*.err)
  if [[ -n $report ]]; then
    for f in $report; do
      echo "[$TEST_NAME] sanitizer report in $f:" >&2
      sed -n '1,60p' "$f" >&2
    done
    [[ $rc != 0 ]] || rc=1
  fi
  if [[ -n ${LIB_WATCHDOG_PID:-} ]]; then
    kill -TERM "$LIB_WATCHDOG_PID" 2>/dev/null
    wait "$LIB_WATCHDOG_PID" 2>/dev/null
  fi
  if [[ ${PORTCULLIS_KEEP_TMP:-0} == 1 ]]; then
    echo "[$TEST_NAME] temp dir kept: $TEST_TMP"
  elif [[ -n ${TEST_TMP:-} && -d $TEST_TMP ]]; then
    rm -rf -- "$TEST_TMP"
  fi
  if [[ $rc == 0 ]]; then
    printf '[%s] PASS in %ss\n' "$TEST_NAME" "$(elapsed)"
  else
    printf '[%s] FAIL (exit %s) after %ss\n' "$TEST_NAME" "$rc" "$(elapsed)"
  fi
  exit "$rc"
}

# ---- logging ----------------------------------------------------------------------------

elapsed() {
  local now=$EPOCHREALTIME
  local us=$(( 10#${now//[.,]/} - 10#${LIB_T0//[.,]/} ))
  printf '%d.%01d' $((us / 1000000)) $(((us / 100000) % 10))
}

log() { printf '[%s +%ss] %s\n' "$TEST_NAME" "$(elapsed)" "$*"; }

# ---- processes --------------------------------------------------------------------------

# True while the background job PID is running (as far as this shell knows: a job that
# exited is never signalled again, even if the kernel recycles its PID).
pid_alive() {
  local pid=$1 p
  for p in $(jobs -rp); do
    [[ $p == "$pid" ]] && return 0
  done
  return 1
}

# wait_until SECONDS CMD [ARGS…]: polls CMD every 0.05 s until it succeeds (0) or SECONDS
# have passed (1). A bound for something that happens soon but not at once.
wait_until() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 20; i++)); do
    "$@" && return 0
    sleep 0.05
  done
  "$@"
}

# gone PID: the process exited and was reaped (a zombie still has its /proc entry).
gone() { [[ ! -e /proc/$1 ]]; }

# policies_served: how many times portcullis ($TEST_TMP/portcullis.err) began serving a new
# policy. A reload of an unchanged file keeps the running snapshot and is not one of them.
policies_served() { grep -c "now serving policy" "$TEST_TMP/portcullis.err" || true; }

# reload_changed CONFIG: SIGHUP after a change to CONFIG (one more comment line), so that
# the reload builds and publishes a new snapshot (contexts, cache and all), not a no-op.
reload_changed() {
  echo "# reload $((++RELOAD_MARK))" >>"$1"
  kill -HUP "$PID"
}
RELOAD_MARK=0

# assert_sigterm_drains ID FORMAT WANT CURL_ARGS…: a request (X-Request-Id: ID) to a route
# that answers "slow" after a while is in flight when portcullis ($PID) gets SIGTERM. It
# must still complete (curl's -w FORMAT printing WANT, the body intact), and portcullis
# must then exit 0 on its own.
assert_sigterm_drains() {
  local id=$1 format=$2 want=$3 curl_pid
  shift 3
  curl -sS --noproxy '*' --max-time 30 -H "X-Request-Id: $id" -o "$TEST_TMP/drain.body" \
    -w "$format" "$@" >"$TEST_TMP/drain.code" 2>&1 &
  curl_pid=$!
  wait_audit "\"request_id\":\"$id\""  # decided: it is on its way to the upstream
  kill -TERM "$PID"
  wait "$curl_pid" || true
  assert_eq "$want" "$(<"$TEST_TMP/drain.code")" "a request in flight at SIGTERM ($id)"
  assert_eq "slow" "$(<"$TEST_TMP/drain.body")" "its answer"
  wait_bg portcullis 20
  assert_eq "0" "$BG_STATUS" "exit status after draining"
}

# asan_binary PATH: PATH is built with AddressSanitizer (make test's binary): it calls
# __asan_init. Read from the file itself: `ldd PATH | grep -q libasan` under pipefail once
# took make test's ASan binary for a release one (proxy_tls_test then bounded its RSS, which
# ASan's quarantine grows by design), whether by ldd failing or by grep -q's early exit
# killing it with SIGPIPE.
asan_binary() { grep -qa -- __asan_init "$1"; }

# start_bg NAME CMD [ARGS…]: stdout to $TEST_TMP/NAME.out, stderr to $TEST_TMP/NAME.err.
start_bg() {
  local name=$1
  shift
  "$@" >"$TEST_TMP/$name.out" 2>"$TEST_TMP/$name.err" </dev/null &
  BG_PID=$!
  LIB_PIDS+=("$BG_PID")
  LIB_PID_NAME[$BG_PID]=$name
  PID_OF[$name]=$BG_PID
  log "started $name (pid $BG_PID): $*"
}

lib_forget_pid() {
  local pid=$1 p
  local -a keep=()
  for p in "${LIB_PIDS[@]}"; do
    [[ $p == "$pid" ]] || keep+=("$p")
  done
  LIB_PIDS=("${keep[@]}")
}

# wait_exit PID SECONDS: true when PID exited within SECONDS.
wait_exit() {
  local pid=$1 secs=${2:-10} i
  for ((i = 0; i < secs * 20; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.05
  done
  ! pid_alive "$pid"
}

# stop_bg NAME [SIGNAL]: signal one started process, wait (bounded), reap; BG_STATUS = exit code.
stop_bg() {
  local name=$1 sig=${2:-TERM}
  local pid=${PID_OF[$name]:-}
  [[ -n $pid ]] || fail "stop_bg: nothing started under the name '$name'"
  if pid_alive "$pid"; then
    kill -s "$sig" "$pid" 2>/dev/null || true
    if ! wait_exit "$pid" 10; then
      log "$name (pid $pid) ignored SIG$sig for 10s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  BG_STATUS=0
  wait "$pid" 2>/dev/null || BG_STATUS=$?
  lib_forget_pid "$pid"
  unset "PID_OF[$name]"
  log "stopped $name (pid $pid), exit status $BG_STATUS"
}

# wait_bg NAME SECONDS: wait for a started process to exit on its own; BG_STATUS = exit code.
wait_bg() {
  local name=$1 secs=${2:-10}
  local pid=${PID_OF[$name]:-}
  [[ -n $pid ]] || fail "wait_bg: nothing started under the name '$name'"
  wait_exit "$pid" "$secs" || fail "$name (pid $pid) still running after ${secs}s"
  BG_STATUS=0
  wait "$pid" 2>/dev/null || BG_STATUS=$?
  lib_forget_pid "$pid"
  unset "PID_OF[$name]"
}

lib_stop_all() {
  local pid i alive
  for pid in "${LIB_PIDS[@]}"; do
    pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null
  done
  for ((i = 0; i < 100; i++)); do
    alive=0
    for pid in "${LIB_PIDS[@]}"; do
      pid_alive "$pid" && alive=1
    done
    ((alive)) || break
    sleep 0.05
  done
  for pid in "${LIB_PIDS[@]}"; do
    if pid_alive "$pid"; then
      echo "[$TEST_NAME] ${LIB_PID_NAME[$pid]:-?} (pid $pid) did not stop on TERM: KILL" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
  done
  for pid in "${LIB_PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  LIB_PIDS=()
}

# ---- ports and readiness ----------------------------------------------------------------

# free_port VAR: a random port from 20000 up to the kernel's ephemeral range that no socket
# uses now (per `ss`) and that this test has not handed out before. Another process may still
# take it before we bind: callers that bind a fixed port should retry on "Address already in
# use".
free_port() {
  local var=$1 port tries low=32768
  # Below the kernel's ephemeral range: a port chosen there could be taken by an outgoing
  # connection (curl, nginx, HAProxy to its servers) between this check and the bind.
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  ((low > 21000)) || low=32768
  for ((tries = 0; tries < 200; tries++)); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % (low - 20000)))
    [[ -z ${LIB_PORTS[$port]:-} ]] || continue
    if [[ -z $(ss -Htan "( sport = :$port )" 2>/dev/null) ]]; then
      LIB_PORTS[$port]=1
      printf -v "$var" '%s' "$port"
      return 0
    fi
  done
  fail "free_port: no free port found in 200 tries"
}

# haproxy_serving NAME URL: after `start_bg NAME` of HAProxy, until URL answers 200 (bounded:
# 5 s). Returns 1 when HAProxy could not bind its ports (the caller picks new ones and
# starts it again); any other failure to come up fails the test.
haproxy_serving() {
  local name=$1 url=$2 code="" i
  for ((i = 0; i < 50; i++)); do
    pid_alive "${PID_OF[$name]}" || break
    code=$(curl -s --noproxy '*' --max-time 2 -o /dev/null -w '%{http_code}' "$url" 2>/dev/null) ||
      true
    [[ $code == 200 ]] && return 0
    sleep 0.1
  done
  stop_bg "$name"
  grep -qs "Address already in use\|cannot bind" "$TEST_TMP/$name.err" ||
    fail "HAProxy did not serve $url with 200 (last: $code)"
  return 1
}

# wait_for_file FILE [SECONDS=10] [NAME]: until FILE exists and is not empty; fails early
# when the process started as NAME exits first.
wait_for_file() {
  local file=$1 secs=${2:-10} name=${3:-} i
  for ((i = 0; i < secs * 20; i++)); do
    [[ -s $file ]] && return 0
    if [[ -n $name ]] && ! pid_alive "${PID_OF[$name]:-0}"; then
      fail "$name exited before writing $file"
    fi
    sleep 0.05
  done
  fail "timed out after ${secs}s waiting for $file"
}

# wait_http URL [SECONDS=10] [NAME]: until URL answers with any HTTP status.
wait_http() {
  local url=$1 secs=${2:-30} name=${3:-} i code
  for ((i = 0; i < secs * 10; i++)); do
    code=$(curl -s --noproxy '*' --max-time 1 -o /dev/null -w '%{http_code}' "$url" 2>/dev/null) || true
    [[ $code != 000 && -n $code ]] && return 0
    if [[ -n $name ]] && ! pid_alive "${PID_OF[$name]:-0}"; then
      fail "$name exited while waiting for $url"
    fi
    sleep 0.1
  done
  fail "timed out after ${secs}s waiting for $url to answer"
}

# ---- nginx ------------------------------------------------------------------------------

# start_nginx NAME RENDER PROBE_PATH PORTVAR [PORTVAR…]: nginx (Debian's) in the foreground
# as the started process NAME, with `-p $TEST_TMP -c $TEST_TMP/NAME.conf`. Up to 3 attempts:
# a free port in each PORTVAR, then RENDER (a function that writes $TEST_TMP/NAME.conf from
# those variables), `nginx -t`, start, and wait (bounded: 10 s) until
# http://127.0.0.1:${first PORTVAR}PROBE_PATH answers 200. When a port was taken meanwhile
# (EADDRINUSE in NAME.err or an *error.log of $TEST_TMP) it starts again on new ports;
# any other failure fails the test.
start_nginx() {
  local name=$1 render=$2 probe=$3
  shift 3
  local -a vars=("$@")
  command -v nginx >/dev/null || fail "nginx is not installed (Debian: nginx-light)"
  chmod 0711 "$TEST_TMP"   # nginx workers (user nobody) reach their files under it
  local conf="$TEST_TMP/$name.conf" attempt i v f code="" started=0 url
  local -a args=(-p "$TEST_TMP" -c "$conf" -g "daemon off; pid $TEST_TMP/$name.pid;")
  for attempt in 1 2 3; do
    for v in "${vars[@]}"; do free_port "$v"; done
    "$render"
    [[ -s $conf ]] || fail "start_nginx: $render wrote no $conf"
    nginx "${args[@]}" -t >"$TEST_TMP/$name-t.log" 2>&1 ||
      fail "nginx -t rejected $conf: $(cat "$TEST_TMP/$name-t.log")"
    start_bg "$name" nginx "${args[@]}"
    url="http://127.0.0.1:${!vars[0]}$probe"
    for ((i = 0; i < 100; i++)); do
      pid_alive "${PID_OF[$name]}" || break
      code=$(curl -s --noproxy '*' --max-time 1 -o /dev/null -w '%{http_code}' "$url" 2>/dev/null) || true
      [[ $code == 200 ]] && { started=1; break; }
      sleep 0.1
    done
    ((started)) && break
    stop_bg "$name"
    grep -qs "Address already in use" "$TEST_TMP/$name.err" "$TEST_TMP"/*error.log ||
      fail "nginx ($name) did not answer 200 on $url (last: ${code:-none})"
    log "$name: a port was taken meanwhile (attempt $attempt); new ports"
    mv -f "$TEST_TMP/$name.err" "$TEST_TMP/$name.err.$attempt"
    for f in "$TEST_TMP"/*error.log; do mv -f "$f" "$f.$attempt"; done
  done
  ((started)) || fail "nginx ($name) could not bind free ports in 3 attempts"
}

# start_echo_upstream [LOCATIONS]: the application behind a proxy under test, as the started
# process `nginx` on 127.0.0.1:$UPSTREAM_PORT. Every request is answered 200 with
#   user=<X-User>\nuri=<normalised URI>\nrid=<X-Request-Id>\n
# and logged as `rid=… uri=… user=…` in $TEST_TMP/app_access.log (APP_LOG). LOCATIONS:
# extra nginx `location` blocks for the server (e.g. a slow download).
start_echo_upstream() {
  ECHO_LOCATIONS=${1:-}
  APP_LOG="$TEST_TMP/app_access.log"
  start_nginx nginx lib_render_echo_upstream /up UPSTREAM_PORT
  LIB_LOGS+=("$APP_LOG")
  log "application (nginx echo) on 127.0.0.1:$UPSTREAM_PORT"
}
lib_render_echo_upstream() {
  cat >"$TEST_TMP/nginx.conf" <<NGINX
worker_processes 1;
error_log $TEST_TMP/nginx-error.log warn;
events { worker_connections 1024; }
http {
  log_format rid 'rid=\$http_x_request_id uri=\$uri user=\$http_x_user';
  access_log $APP_LOG rid;
  client_body_temp_path $TEST_TMP/ngx_body;
  proxy_temp_path $TEST_TMP/ngx_proxy;
  fastcgi_temp_path $TEST_TMP/ngx_fastcgi;
  uwsgi_temp_path $TEST_TMP/ngx_uwsgi;
  scgi_temp_path $TEST_TMP/ngx_scgi;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    $ECHO_LOCATIONS
    location / {
      default_type text/plain;
      return 200 "user=\$http_x_user\nuri=\$uri\nrid=\$http_x_request_id\n";
    }
  }
}
NGINX
}

# json_string_field FILE KEY: the value of "KEY":"…" in a one-line JSON file (ready file).
json_string_field() {
  sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" "$1" | head -n 1
}

# ---- HTTP -------------------------------------------------------------------------------

# http [CURL ARGS…] URL: HTTP_STATUS (000 on a connection error), HTTP_BODY, and the
# response headers in $TEST_TMP/last.headers (read them with `header NAME`).
http() {
  local out
  : >"$TEST_TMP/last.headers"
  : >"$TEST_TMP/last.body"
  out=$("${CURL[@]}" -o "$TEST_TMP/last.body" -D "$TEST_TMP/last.headers" -w '%{http_code}' "$@" \
        2>"$TEST_TMP/last.curl.err") || true
  HTTP_STATUS=${out:-000}
  HTTP_BODY=$(<"$TEST_TMP/last.body")
  LIB_LAST_REQUEST="curl $*"
}

# header NAME: the first value of response header NAME (case-insensitive) of the last `http`.
header() {
  local name=$1 line
  while IFS= read -r line; do
    line=${line%$'\r'}
    if [[ ${line,,} == "${name,,}:"* ]]; then
      line=${line#*:}
      line=${line#"${line%%[![:space:]]*}"}
      printf '%s' "$line"
      return 0
    fi
  done <"$TEST_TMP/last.headers"
  return 0
}

# header_count NAME: how many times header NAME came back in the last response.
header_count() {
  local name=$1 line n=0
  while IFS= read -r line; do
    [[ ${line,,} == "${1,,}:"* ]] && n=$((n + 1))
  done <"$TEST_TMP/last.headers"
  echo "$n"
}

# ---- the admin listener (docs/admin.md) --------------------------------------------------
# A test that configures `admin.token` sets ADMIN_TOKEN to it; admin calls then carry it.
ADMIN_TOKEN=${ADMIN_TOKEN:-}
admin_auth_args() {
  ADMIN_ARGS=()
  [[ -n $ADMIN_TOKEN ]] && ADMIN_ARGS=(-H "Authorization: Bearer $ADMIN_TOKEN")
  return 0
}
# admin_get URL [CURL ARGS…]: `http` with the admin token (when set).
admin_get() {
  local url=$1
  shift
  admin_auth_args
  http "${ADMIN_ARGS[@]}" "$@" "$url"
}
# admin_post URL [CURL ARGS…]: POST with the admin token (when set) and the header every
# admin POST needs (X-Portcullis-Admin: 1, which a browser cannot send cross-site).
admin_post() {
  local url=$1
  shift
  admin_auth_args
  http -X POST -H 'X-Portcullis-Admin: 1' "${ADMIN_ARGS[@]}" "$@" "$url"
}

# metric URL SERIES: the value of one Prometheus series (exact name{labels}) or "" if absent.
# URL is the admin listener's /metrics (the admin token is sent when ADMIN_TOKEN is set).
metric() {
  local body
  admin_auth_args
  body=$("${CURL[@]}" "${ADMIN_ARGS[@]}" "$1" 2>/dev/null) || true
  awk -v s="$2" '$1 == s { print $2; exit }' <<<"$body"
}

# ---- audit ------------------------------------------------------------------------------

# audit_last PATTERN [FILE]: the last audit line containing PATTERN (a fixed string).
audit_last() {
  grep -F -- "$1" "${2:-$AUDIT_FILE}" 2>/dev/null | tail -n 1 || true
}

# wait_audit PATTERN [SECONDS=5] [FILE]: the audit sink writes asynchronously; wait until a
# line containing PATTERN is there and put the last such line in AUDIT_LINE.
wait_audit() {
  local pattern=$1 secs=${2:-30} file=${3:-$AUDIT_FILE} i
  for ((i = 0; i < secs * 20; i++)); do
    AUDIT_LINE=$(audit_last "$pattern" "$file")
    [[ -n $AUDIT_LINE ]] && return 0
    sleep 0.05
  done
  fail "no audit line containing '$pattern' in $file after ${secs}s"
}

# json_get LINE KEY: a top-level scalar of a flat one-line JSON object; strings unquoted.
# (Values with escaped quotes are not needed here: reasons, statuses, ids are plain.)
json_get() {
  local m
  m=$(grep -o "\"$2\":\\(\"[^\"]*\"\\|[^,}]*\\)" <<<"$1" | head -n 1) || true
  m=${m#\""$2"\":}
  m=${m#\"}
  m=${m%\"}
  printf '%s' "$m"
}

# assert_audit KEY EXPECTED [WHAT]: checks a field of AUDIT_LINE.
assert_audit() {
  local got
  got=$(json_get "$AUDIT_LINE" "$1")
  [[ $got == "$2" ]] || fail "${3:-audit} : audit \"$1\" is '$got', expected '$2'
  audit line: $AUDIT_LINE"
}

# ---- assertions -------------------------------------------------------------------------

lib_show_context() {
  {
    echo "------------------------------------------------------------------------"
    echo "[$TEST_NAME] FAIL after $(elapsed)s: $1"
    if [[ -n ${LIB_LAST_REQUEST:-} && -n ${TEST_TMP:-} ]]; then
      echo "--- last request: $LIB_LAST_REQUEST"
      echo "--- status $HTTP_STATUS; headers:"
      sed 's/\r$//; s/^/    /' "$TEST_TMP/last.headers" 2>/dev/null | head -n 30
      echo "--- body:"
      head -c 2000 "$TEST_TMP/last.body" 2>/dev/null | sed 's/^/    /'
      [[ -s $TEST_TMP/last.curl.err ]] && sed 's/^/    curl: /' "$TEST_TMP/last.curl.err"
    fi
    local f
    if [[ -n ${TEST_TMP:-} && -d $TEST_TMP ]]; then
      for f in "$TEST_TMP"/*.err "$TEST_TMP"/*.out "$TEST_TMP"/*.log "$TEST_TMP"/*.jsonl "${LIB_LOGS[@]}"; do
        [[ -s $f ]] || continue
        echo "--- last lines of $f:"
        tail -n 15 "$f" | cut -c1-600 | sed 's/^/    /'
      done
    fi
    echo "------------------------------------------------------------------------"
  } >&2
}

# fail MESSAGE: print the context (last response, tails of the logs) and exit 1.
fail() {
  if [[ $BASHPID != "${LIB_MAIN_PID:-$BASHPID}" ]]; then
    # In a subshell (a background loop): report and exit that subshell only.
    echo "[$TEST_NAME] FAIL (in a background job): $*" >&2
    exit 1
  fi
  lib_show_context "$*"
  exit 1
}

assert_eq() {  # assert_eq EXPECTED ACTUAL [WHAT]
  [[ $2 == "$1" ]] || fail "${3:-value}: expected '$1', got '$2'"
}

assert_contains() {  # assert_contains HAYSTACK NEEDLE [WHAT]
  [[ $1 == *"$2"* ]] || fail "${3:-text}: expected to contain '$2', got:
$1"
}

assert_not_contains() {  # assert_not_contains HAYSTACK NEEDLE [WHAT]
  [[ $1 != *"$2"* ]] || fail "${3:-text}: expected NOT to contain '$2', got:
$1"
}

assert_match() {  # assert_match TEXT REGEX [WHAT]  (bash ERE)
  [[ $1 =~ $2 ]] || fail "${3:-text}: expected to match /$2/, got:
$1"
}

assert_status() {  # assert_status EXPECTED [WHAT]: HTTP_STATUS of the last `http`
  [[ $HTTP_STATUS == "$1" ]] || fail "${2:-request}: expected HTTP $1, got $HTTP_STATUS"
}

# ---- portcullis -------------------------------------------------------------------------

# mint_token [portcullis token ARGS…]: prints a token signed with the demo key.
mint_token() {
  "$PORTCULLIS" token --key "$SRC/examples/keys/demo.jwk" "$@"
}

# start_portcullis NAME CONFIG: serve CONFIG with a ready file; sets AUTHZ and ADMIN
# (IP:PORT) from the ready file once every listener is bound.
start_portcullis() {
  local name=$1 config=$2
  local ready="$TEST_TMP/$name.ready.json"
  rm -f -- "$ready"
  start_bg "$name" "$PORTCULLIS" serve -c "$config" --ready-file "$ready"
  wait_for_file "$ready" 15 "$name"
  AUTHZ=$(json_string_field "$ready" authz)
  ADMIN=$(json_string_field "$ready" admin)
  log "$name is serving: authz $AUTHZ, admin $ADMIN"
}
