#!/usr/bin/env bash
# End-to-end benchmark of nginx `auth_request` with portcullis as the external auth server,
# beside the physical floor of an external auth server (a second nginx answering 204), all
# in one run on the same machine (issue #12: portcullis authz, audit on, at ≥ 0.85× the
# floor's req/s).
#
#   bench/nginx/run.sh [BUILD_DIR | path-to-portcullis]      (default: build/portcullis)
#
# Every client request is the same: GET /orders/7 with `Authorization: Bearer <RS256 JWT>`
# (minted once: portcullis token --key examples/keys/demo.jwk --sub alice --aud orders-api
# --scope read:orders --ttl 2h), sent by `wrk -t1 -c$BENCH_CONNECTIONS --latency` to the
# front nginx. Rows, one after another (each: start, check, warm-up, measured run, stop):
#   1. nginx plain                                  front nginx proxying straight to the
#                                                   backend, no auth (context)
#   2. auth_request -> internal 204                 `auth_request /_auth;` with
#                                                   `location = /_auth { internal; return 204; }`
#   3. auth_request -> nginx 204 (floor)            /_auth proxied to a SECOND nginx (its own
#                                                   process, one worker) whose `location /`
#                                                   answers 204: an external auth server
#                                                   doing nothing, the floor
#   4. auth_request -> portcullis (audit file)      /_auth proxied to `portcullis serve`'s
#                                                   authz listener: workers: 1, one RS256
#                                                   provider, one route /orders/** GET needing
#                                                   read:orders with `cache: { ttl: 300s }`
#                                                   (warm: every measured request is a cache
#                                                   hit), authz.style nginx, watch off,
#                                                   audit: { sink: file:<work>/audit.jsonl }
#   5. auth_request -> portcullis (audit none)      only with BENCH_AUDIT_NONE=1: the same
#                                                   with audit: { sink: none }
#
# Every row's front nginx has the very same configuration except the /_auth hop: one worker,
# `access_log off`, `keepalive_requests 1000000`, upstream blocks with `keepalive 32`,
# `proxy_http_version 1.1; proxy_set_header Connection "";`. The backend (the application)
# is a second `server` block of the front nginx itself (its own port, `return 200 "ok\n"`),
# reached through `upstream backend` over keep-alive: the same worker, the same proxying
# cost in every row, no extra process. Rows 3-5 use the same /_auth location (the
# conventions of examples/nginx/nginx.conf.template: proxy_pass_request_body off,
# Content-Length "", X-Original-URI/-Method/-Host/-Proto; the client's Authorization header
# goes with the subrequest) and differ only in which server the `auth` upstream names.
# (The template's X-Forwarded-For, X-Real-IP and X-Request-Id are left out of every row.)
#
# Pinning: every server process (both nginx masters and workers, portcullis and its
# threads) on BENCH_SERVER_CPU (0), wrk on BENCH_CLIENT_CPU (1). The CPU time of the whole
# server side of a row (utime+stime from /proc/PID/stat of each process) is divided by the
# requests wrk completed. Before a row is measured it is checked through the front nginx:
# the token gets 200 "ok" from the backend; for the portcullis rows a request without a
# token gets 401. Non-2xx answers count as errors (wrk's status errors: the front nginx
# here can only answer 200, 401, 403 or 5xx, so every non-2xx is ≥ 400). After the
# audit-file row, the audit file must hold about one line per request sent (checks,
# warm-up, measured). The summary gives each row's req/s, p50/p99, server-side CPU
# µs/request and busy %, errors; then portcullis / floor and internal / floor ratios with
# the #12 target (portcullis ≥ 0.85× the floor's req/s: met / not met), and a WARNING line
# for each row that looks disturbed (another process on the server CPU, wrk-bound, errors,
# audit lines missing). Every wait is bounded; only the PIDs started here are signalled;
# the work directory (mktemp -d) is removed at exit. Shared helpers: bench/lib.sh.
#
# Knobs (environment): BENCH_DURATION (10s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (32),
# BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1), BENCH_AUDIT_NONE=1 (adds row 5),
# BENCH_KEEP=1 keeps the work directory (configurations, logs, raw wrk output, audit file).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"
arg=${1:-$root/build/portcullis}
[[ $arg == /* ]] || arg=$PWD/$arg
if [[ -d $arg ]]; then bin=$arg/portcullis; else bin=$arg; fi
jwks=$root/examples/keys/demo-jwks.json
key=$root/examples/keys/demo.jwk
target_ratio=0.85

bench_init nginx 10s 3s wrk nginx taskset curl timeout awk sha256sum
[[ -r $jwks && -r $key ]] || die "demo keys not found under $root/examples/keys"
nginx -V 2>&1 | grep -q -- --with-http_auth_request_module ||
  die "this nginx has no auth_request module (nginx-light, -core and -full have it)"

# ---- inputs -------------------------------------------------------------------------------
bench_copy_binary "$bin"
token=$("$bin" token --key "$key" --sub alice --aud orders-api --scope 'read:orders' --ttl 2h)
export BENCH_TOKEN=$token

bench_bearer_wrk_script

# ---- nginx ----------------------------------------------------------------------------------
declare -A role=()      # PID -> what it is, for the per-process CPU lines
declare -A NGX_KIDS=()  # nginx master PID -> its worker PIDs

# nginx_head DIR: the part every nginx configuration here starts with (main context, and the
# first lines of `http {`; the caller closes the block).
nginx_head() {
  cat <<NGINX
worker_processes 1;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 1000000;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
NGINX
}

# start_nginx DIR ROLE PORT…: nginx on DIR/nginx.conf (written by the caller), pinned to the
# server CPU, until it listens on every PORT and its worker exists (bounded: 10 s per port,
# 5 s for the worker). Sets NGX_PID (the master) and NGX_PIDS (master and workers). Returns 1,
# with nginx stopped again, if it did not come up (a port was taken meanwhile, say).
start_nginx() {
  local dir=$1 what=$2 port pid i kids=''
  shift 2
  taskset -c "$server_cpu" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
    >"$dir/stdout.log" 2>&1 &
  NGX_PID=$!
  started+=("$NGX_PID")
  for port; do
    if ! wait_port "$port" "$NGX_PID"; then
      stop_nginx "$NGX_PID"
      return 1
    fi
  done
  for ((i = 0; i < 50; i++)); do
    kids=$(children "$NGX_PID")
    [[ -n $kids ]] || kids=$(ps -o pid= --ppid "$NGX_PID" 2>/dev/null || true)
    [[ -n $kids ]] && break
    sleep 0.1
  done
  [[ -n $kids ]] || { stop_nginx "$NGX_PID"; return 1; }
  # shellcheck disable=SC2206  # a space-separated list of PIDs
  NGX_PIDS=("$NGX_PID" $kids)
  role[$NGX_PID]="$what-master"
  for pid in $kids; do role[$pid]="$what-worker"; done
  NGX_KIDS[$NGX_PID]=$kids
}
stop_nginx() {  # stop_nginx MASTER: TERM (bounded, then KILL); its workers go with it
  local master=$1 pid
  stop_pid "$master"
  forget "$master"
  for pid in ${NGX_KIDS[$master]:-}; do  # normally gone with the master
    if kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == nginx ]]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  unset 'NGX_KIDS[$master]'
}
nginx_problems() {  # nginx_problems DIR: lines at [error] or worse in its error log
  grep -cE '\[(error|crit|alert|emerg)\]' "$1/error.log" 2>/dev/null || true
}

# start_floor: the second nginx, `return 204` on every path. Sets FLOOR_PID FLOOR_PIDS
# FLOOR_ADDR.
start_floor() {
  local dir=$work/nginx-floor port
  mkdir -p "$dir"
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    {
      nginx_head "$dir"
      cat <<NGINX
  server {
    listen 127.0.0.1:$port;
    location / { return 204; }
  }
}
NGINX
    } >"$dir/nginx.conf"
    if start_nginx "$dir" floor "$port"; then
      FLOOR_PID=$NGX_PID
      FLOOR_PIDS=("${NGX_PIDS[@]}")
      FLOOR_ADDR=127.0.0.1:$port
      return 0
    fi
  done
  die "the floor nginx did not start: $(tail -3 "$dir/error.log" 2>/dev/null)"
}

# start_front DIR KIND [AUTH_ADDR]: the front nginx (KIND: plain, internal or upstream, the
# last with `upstream auth` = AUTH_ADDR) and its backend server block. Sets FRONT_PID
# FRONT_PIDS FRONT_URL.
start_front() {
  local dir=$1 kind=$2 auth=${3:-} port backend_port auth_line='' auth_location='' auth_upstream=''
  mkdir -p "$dir"
  case $kind in
    plain) ;;
    internal)
      auth_line="      auth_request /_auth;"
      auth_location="    location = /_auth {
      internal;
      return 204;
    }" ;;
    upstream)
      auth_upstream="  upstream auth {
    server $auth;
    keepalive 32;
    keepalive_requests 1000000;
  }"
      auth_line="      auth_request /_auth;"
      auth_location="    location = /_auth {
      internal;
      proxy_pass http://auth;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_pass_request_body off;
      proxy_set_header Content-Length \"\";
      proxy_set_header X-Original-URI \$request_uri;
      proxy_set_header X-Original-Method \$request_method;
      proxy_set_header X-Original-Host \$host;
      proxy_set_header X-Original-Proto \$scheme;
      proxy_connect_timeout 1s;
      proxy_read_timeout 2s;
    }" ;;
    *) die "start_front: unknown kind $kind" ;;
  esac
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    backend_port=$(free_port)
    [[ $port != "$backend_port" ]] || continue
    {
      nginx_head "$dir"
      cat <<NGINX
  upstream backend {
    server 127.0.0.1:$backend_port;
    keepalive 32;
    keepalive_requests 1000000;
  }
$auth_upstream
  server {
    listen 127.0.0.1:$port;
    location / {
$auth_line
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
$auth_location
  }
  # The backend (the application): the same in every row.
  server {
    listen 127.0.0.1:$backend_port;
    location / { return 200 "ok\n"; }
  }
}
NGINX
    } >"$dir/nginx.conf"
    if start_nginx "$dir" front "$port" "$backend_port"; then
      FRONT_PID=$NGX_PID
      FRONT_PIDS=("${NGX_PIDS[@]}")
      FRONT_URL=http://127.0.0.1:$port/orders/7
      return 0
    fi
  done
  die "the front nginx did not start: $(tail -3 "$dir/error.log" 2>/dev/null)"
}

# ---- portcullis -----------------------------------------------------------------------------
write_policy() {  # write_policy FILE SINK
  cat >"$1" <<YAML
# Generated by bench/nginx/run.sh: one RS256 provider, one cached route, one worker.
version: 1
workers: 1
listeners:
  authz: 127.0.0.1:0
  admin: 127.0.0.1:0
authz: { style: nginx }
watch: { enabled: false }
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $jwks
    audiences: [orders-api]
    algorithms: [RS256]
routes:
  - name: orders-read
    match: { paths: [/orders/**], methods: [GET] }
    authenticate: [demo]
    require: { scopes: [read:orders] }
    cache: { ttl: 300s }
default: deny
audit: { sink: $2 }
YAML
}
metric() {  # metric FILE NAME-AND-LABELS
  awk -v k="$2" 'index($0, k " ") == 1 { print $NF; found = 1 } END { if (!found) print "-" }' "$1"
}
requests_of() {  # requests_of WRK-OUTPUT: the requests= of its RESULT line (0 if none)
  local n
  n=$(field requests "$1" 2>/dev/null || true)
  echo "${n:-0}"
}

# ---- checks and measuring -------------------------------------------------------------------
http_code() {  # http_code URL [CURL ARGS…]
  local url=$1
  shift
  curl -s --noproxy '*' --max-time 5 -o /dev/null -w '%{http_code}' "$@" "$url" || true
}
# check NAME URL WANT_401: the token gets 200 "ok" from the backend; with WANT_401=1, no
# token gets 401. Sets CHECKS (requests sent).
check() {
  local name=$1 url=$2 want_401=$3 body code
  body=$(curl -s --noproxy '*' --max-time 5 -H "Authorization: Bearer $token" "$url" || true)
  code=$(http_code "$url" -H "Authorization: Bearer $token")
  [[ $code == 200 && $body == ok ]] ||
    die "$name: a valid token got $code '$body', expected 200 'ok' from the backend"
  CHECKS=2
  if [[ $want_401 == 1 ]]; then
    code=$(http_code "$url")
    [[ $code == 401 ]] || die "$name: a request without a token got $code, expected 401"
    CHECKS=3
  fi
}

rows=()      # "name|rps|p50_us|p99_us|cpu_us_per_req|server_util%|cpu0_busy%|cpu1_busy%|errors"
warnings=()  # "name|text"
warn() {  # warn NAME TEXT…: a WARNING line for the row NAME, printed after the table
  local n=$1
  shift
  warnings+=("$n|$*")
}

# measure NAME URL AUTH_PID PID…: warm-up, then the measured run with CPU accounting of
# every PID (AUTH_PID: the auth server's main process among them, or "-").
measure() {
  local name=$1 url=$2 auth_pid=$3
  shift 3
  local tag=${name//[^a-zA-Z0-9]/_}
  local out=$work/wrk-$tag.txt
  bench_warmup "$url" "$tag"
  WARM_REQUESTS=$(requests_of "$work/warmup-$tag.txt")
  bench_measure "$url" "$out" "$@"
  echo "== $name: wrk -t1 -c$conns -d$duration --latency $url"
  sed 's/^/   /' "$out"
  echo "   server side CPU: $M_TICKS ticks (CLK_TCK $hz) over ${M_SECS}s = $M_CPU_US us/request," \
    "${M_UTIL}% of one CPU"
  local split="" i=0 pid auth_us=
  for pid; do
    split+=" ${role[$pid]:-?}($pid)=${M_EACH[i]}"
    [[ $pid == "$auth_pid" ]] && auth_us=${M_EACH[i]}
    i=$((i + 1))
  done
  echo "   per process, us/request:$split"
  echo "   CPU $server_cpu (server side) ${M_SBUSY}% busy, CPU $client_cpu (wrk) ${M_CBUSY}% busy, from /proc/stat"
  rows+=("$name|$M_RPS|$M_P50|$M_P99|$M_CPU_US|$M_UTIL%|$M_SBUSY%|$M_CBUSY%|$M_ERRS")
  if ((M_ERRS > 0)); then
    warn "$name" "$M_ERRS error(s) (socket errors or non-2xx answers): this row does not count"
  fi
  if ((M_SBUSY - M_UTIL > 4)); then
    warn "$name" "the server side used $M_UTIL% of CPU $server_cpu, which was $M_SBUSY% busy:" \
      "another process probably shared it; rerun on a quiet machine"
  elif ((M_UTIL < 90 && M_CBUSY < 90)); then
    warn "$name" "neither the server side ($M_UTIL%) nor wrk ($M_CBUSY%) saturated its CPU;" \
      "something else limited this run"
  elif ((M_UTIL < 90)); then
    warn "$name" "wrk saturated CPU $client_cpu ($M_CBUSY%) while the server side used $M_UTIL%:" \
      "req/s is the client's limit here; compare CPU per request"
  fi
  # The auth server must really have been asked (a main process with no CPU at all did not).
  if [[ -n $auth_us ]] && awk -v u="$auth_us" 'BEGIN { exit !(u < 0.5) }'; then
    warn "$name" "the auth server used $auth_us us/request: it was hardly asked"
  fi
}

# ---- the rows -------------------------------------------------------------------------------
row_front_only() {  # row_front_only NAME MODE: a row served by the front nginx alone
  local name=$1 mode=$2
  start_front "$work/nginx-$mode" "$mode"
  check "$name" "$FRONT_URL" 0
  measure "$name" "$FRONT_URL" - "${FRONT_PIDS[@]}"
  stop_nginx "$FRONT_PID"
  echo "   nginx error log: $(nginx_problems "$work/nginx-$mode") line(s) at [error] or worse"
  echo
}

row_floor() {
  local name="auth_request -> nginx 204 (floor)"
  start_floor
  start_front "$work/nginx-front-floor" upstream "$FLOOR_ADDR"
  check "$name" "$FRONT_URL" 0
  # The floor's worker is the auth server that does the work.
  measure "$name" "$FRONT_URL" "${FLOOR_PIDS[1]}" "${FRONT_PIDS[@]}" "${FLOOR_PIDS[@]}"
  stop_nginx "$FRONT_PID"
  stop_nginx "$FLOOR_PID"
  echo "   nginx error logs: front $(nginx_problems "$work/nginx-front-floor")," \
    "floor $(nginx_problems "$work/nginx-floor") line(s) at [error] or worse"
  echo
}

row_portcullis() {  # row_portcullis NAME SINK
  local name=$1 sink=$2 tag=${1//[^a-zA-Z0-9]/_}
  local policy=$work/policy-$tag.yaml ready=$work/ready-$tag.json log=$work/portcullis-$tag.log
  local dir=$work/nginx-front-$tag
  write_policy "$policy" "$sink"
  "$bin" check -c "$policy" >/dev/null || die "policy rejected: $policy"
  bench_serve "$policy" "$ready" "$log"
  local pid=$SERVE_PID admin=$SERVE_ADMIN
  role[$pid]=portcullis
  [[ -n $SERVE_AUTHZ ]] || die "portcullis reported no authz listener: $(cat "$ready")"
  start_front "$dir" upstream "$SERVE_AUTHZ"
  check "$name" "$FRONT_URL" 1
  local checks=$CHECKS
  measure "$name" "$FRONT_URL" "$pid" "${FRONT_PIDS[@]}" "$pid"
  local sent=$((checks + WARM_REQUESTS + M_REQUESTS)) measured=$M_REQUESTS
  local m=$work/metrics-$tag.txt
  curl -s --noproxy '*' --max-time 5 "http://$admin/metrics" >"$m" || true
  local dropped
  dropped=$(metric "$m" portcullis_audit_dropped_total)
  echo "   metrics: allow=$(metric "$m" 'portcullis_decisions_total{route="orders-read",outcome="allow"}')" \
    "deny=$(metric "$m" 'portcullis_decisions_total{route="orders-read",outcome="deny"}')" \
    "error=$(metric "$m" 'portcullis_decisions_total{route="orders-read",outcome="error"}')" \
    "cache-hits=$(metric "$m" 'portcullis_cache_lookups_total{result="hit"}')" \
    "cache-misses=$(metric "$m" 'portcullis_cache_lookups_total{result="miss"}')" \
    "conns-accepted=$(metric "$m" 'portcullis_connections_accepted_total{listener="authz"}')" \
    "bad-requests=$(metric "$m" 'portcullis_http_bad_requests_total{listener="authz"}')" \
    "audit-lines=$(metric "$m" portcullis_audit_lines_total)" \
    "audit-dropped=$dropped"
  stop_nginx "$FRONT_PID"
  stop_pid "$pid"  # flushes the audit file
  forget "$pid"
  echo "   nginx error log: $(nginx_problems "$dir") line(s) at [error] or worse"
  local problems
  problems=$(grep -ciE '\[(warning|error|critical)\]' "$log" || true)
  echo "   portcullis log: $(wc -l <"$log") line(s), $problems warning/error line(s)"
  if ((problems > 0)); then grep -iE '\[(warning|error|critical)\]' "$log" | head -5 | sed 's/^/     /'; fi
  if [[ $dropped =~ ^[0-9]+$ ]] && ((dropped > 0)); then
    warn "$name" "portcullis dropped $dropped audit line(s)"
  fi
  if [[ $sink == file:* ]]; then
    local file=${sink#file:} lines
    lines=$(wc -l <"$file" 2>/dev/null || echo 0)
    # wrk stops with up to $conns requests in flight, twice (warm-up, measured run): those
    # may reach portcullis without being counted by wrk.
    local lo=$((sent - sent / 100)) hi=$((sent + 2 * conns + sent / 100))
    echo "   audit file: $lines line(s), $(du -h "$file" | cut -f1), for $sent request(s) sent" \
      "($checks checks + $WARM_REQUESTS warm-up + $measured measured)"
    if ((lines < lo || lines > hi)); then
      warn "$name" "the audit file has $lines line(s) for $sent request(s) sent (expected $lo-$hi)"
    fi
    [[ ${BENCH_KEEP:-0} == 1 ]] || rm -f "$file"  # can be large; the count is what matters
  fi
  echo
}

# ---- the run --------------------------------------------------------------------------------
bench_header "nginx auth_request benchmark: portcullis against the floor"
note "$(nginx -v 2>&1 | head -1); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
note "portcullis: $bin_src ($("$bin" version 2>/dev/null | head -1), sha256 $(sha256sum "$bin" | cut -c1-12))"
note "server side (front nginx 1 worker + backend server block, floor nginx 1 worker, portcullis" \
  "workers 1) on CPU $server_cpu, wrk on CPU $client_cpu"
note "warm-up $warmup, measured $duration, $conns connections, GET /orders/7 with one RS256 token"
echo

row_front_only "nginx plain" plain
row_front_only "auth_request -> internal 204" internal
row_floor
row_portcullis "auth_request -> portcullis (audit file)" "file:$work/audit.jsonl"
if [[ ${BENCH_AUDIT_NONE:-0} == 1 ]]; then
  row_portcullis "auth_request -> portcullis (audit none)" none
fi

# ---- summary --------------------------------------------------------------------------------
note "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-40s %9s %8s %8s %10s %7s %6s %6s %7s\n' target req/s p50_ms p99_ms us/request server \
  "cpu$server_cpu" "cpu$client_cpu" errors
declare -A rps_of=() cpu_of=()
for row in "${rows[@]}"; do
  IFS='|' read -r name rps p50 p99 cpu util sbusy cbusy errs <<<"$row"
  rps_of[$name]=$rps
  cpu_of[$name]=$cpu
  printf '%-40s %9.0f %8.3f %8.3f %10s %7s %6s %6s %7s\n' "$name" "$rps" \
    "$(awk -v u="$p50" 'BEGIN { print u / 1000 }')" "$(awk -v u="$p99" 'BEGIN { print u / 1000 }')" \
    "$cpu" "$util" "$sbusy" "$cbusy" "$errs"
done
echo "us/request: CPU time (utime+stime) of the whole server side per request (front nginx"
echo "master+worker; floor nginx master+worker; portcullis, all threads); server: that CPU time"
echo "as a share of one CPU; cpu$server_cpu (server side) and cpu$client_cpu (wrk): how busy each CPU"
echo "was, all causes (cpu$client_cpu near 100% = wrk-bound); errors: wrk socket errors + non-2xx answers."
echo

floor="auth_request -> nginx 204 (floor)"
disturbed() {  # disturbed NAME…: whether any of these rows has a WARNING
  local w n
  for w in "${warnings[@]}"; do
    for n; do [[ ${w%%|*} == "$n" ]] && return 0; done
  done
  return 1
}
ratio() {  # ratio LABEL NAME [TARGET]: NAME against the floor, req/s and CPU per request
  local label=$1 name=$2 target=${3:-} r c verdict=""
  r=$(awk -v a="${rps_of[$name]}" -v b="${rps_of[$floor]}" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
  c=$(awk -v a="${cpu_of[$name]}" -v b="${cpu_of[$floor]}" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
  if [[ -n $target ]]; then
    if awk -v r="$r" -v t="$target" 'BEGIN { exit !(r >= t) }'; then verdict=met; else verdict="not met"; fi
    verdict="   target >= ${target}x req/s: $verdict"
    if disturbed "$name" "$floor"; then verdict+=" (disturbed run: see WARNING lines)"; fi
  fi
  printf '%-34s req/s %6.3fx   CPU/request %6.3fx%s\n' "$label" "$r" "$c" "$verdict"
}
ratio "portcullis (audit file) / floor" "auth_request -> portcullis (audit file)" "$target_ratio"
if [[ ${BENCH_AUDIT_NONE:-0} == 1 ]]; then
  ratio "portcullis (audit none) / floor" "auth_request -> portcullis (audit none)" "$target_ratio"
fi
ratio "internal / floor" "auth_request -> internal 204"
ratio "plain / floor" "nginx plain"

for w in "${warnings[@]}"; do
  echo "WARNING: ${w%%|*}: ${w#*|}"
done
