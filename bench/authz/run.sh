#!/usr/bin/env bash
# End-to-end benchmark of the authz endpoint (nginx auth_request style) beside nginx's own
# `return 204` and the bare RSA-2048 verify cost, all in one run on the same machine.
#
#   bench/authz/run.sh [path-to-portcullis]        (default: build/portcullis)
#
# Every server under test is pinned to one CPU (BENCH_SERVER_CPU, default 0) and runs
# alone; wrk is pinned to another (BENCH_CLIENT_CPU, default 1). Steps, one at a time:
#   1. openssl speed -seconds 3 rsa2048            (pinned to the server CPU)
#   2. nginx, one worker, `return 204;`
#   3. portcullis authz, workers: 1, audit: { sink: none }
#   4. portcullis authz, workers: 1, audit: { sink: file:... }
# Each HTTP target gets a warm-up, then a measured wrk run; the server's CPU time
# (utime+stime from /proc/PID/stat, all its processes/threads) is divided by the measured
# requests. Nothing runs longer than its bound; only the PIDs started here are killed.
#
# Knobs (environment): BENCH_DURATION (10s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (32),
# BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1), BENCH_OPENSSL_SECONDS (3),
# BENCH_KEEP=1 keeps the work directory (policies, logs, raw wrk output, audit file).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/build/portcullis}
[[ $bin == /* ]] || bin=$PWD/$bin

duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-3s}
conns=${BENCH_CONNECTIONS:-32}
server_cpu=${BENCH_SERVER_CPU:-0}
client_cpu=${BENCH_CLIENT_CPU:-1}
openssl_seconds=${BENCH_OPENSSL_SECONDS:-3}
jwks=$root/examples/keys/demo-jwks.json
key=$root/examples/keys/demo.jwk

die() { echo "bench/authz: $*" >&2; exit 1; }
note() { echo "# $*"; }

[[ $duration =~ ^[0-9]+s$ && $warmup =~ ^[0-9]+s$ ]] || die "BENCH_DURATION/BENCH_WARMUP: whole seconds, e.g. 10s"

for tool in wrk nginx openssl taskset curl timeout awk; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
[[ -x $bin ]] || die "no portcullis binary at $bin (build it, or pass its path)"
[[ -r $jwks && -r $key ]] || die "demo keys not found under $root/examples/keys"
ncpu=$(nproc)
((server_cpu < ncpu && client_cpu < ncpu && server_cpu != client_cpu)) ||
  die "need two distinct CPUs (server $server_cpu, client $client_cpu; this machine has $ncpu)"

work=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench-authz.XXXXXX")
started=()  # every PID this script started; the only ones it ever signals

stop_pid() {  # TERM, wait up to 5 s, then KILL; reaps it if it is our child
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${started[@]}"; do stop_pid "$pid"; done
  started=()
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    echo "# work directory kept: $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() {  # drop a PID from the started list once it is stopped
  local keep=() p
  for p in "${started[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  started=("${keep[@]}")
}

# CPU time (clock ticks) of the given PIDs: utime + stime, fields 14 and 15 of /proc/PID/stat
# (counted after the ") " that ends the command name). A PID's total covers all its threads.
cpu_ticks() {
  local total=0 pid t
  for pid; do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null) || t=0
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

# "BUSY IDLE" ticks of one CPU from /proc/stat (busy = user nice system irq softirq steal).
cpu_stat() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
busy_pct() {  # busy_pct "BUSY0 IDLE0" "BUSY1 IDLE1"
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    d = (y[1] - x[1]) + (y[2] - x[2]); printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }'
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {  # a loopback port with nobody listening on it
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free loopback port found"
}

wait_port() {  # wait_port PORT PID: until something listens (bounded: 10 s)
  local i
  for ((i = 0; i < 100; i++)); do
    port_in_use "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# ---- inputs -------------------------------------------------------------------------
# Run a private copy: a rebuild of the shared build directory mid-run must not swap binaries.
cp "$bin" "$work/portcullis" || die "cannot copy $bin"
bin_src=$bin
bin=$work/portcullis
token=$("$bin" token --key "$key" --sub alice --aud orders-api --scope 'read:orders' --ttl 2h)
export BENCH_TOKEN=$token

cat >"$work/request.lua" <<'LUA'
-- The nginx auth_request subrequest as portcullis sees it; the same bytes go to nginx.
wrk.method = "GET"
wrk.path = "/"
wrk.headers["X-Original-URI"] = "/orders/7"
wrk.headers["X-Original-Method"] = "GET"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d " ..
    "max_us=%d mean_us=%.1f stdev_us=%.1f err_connect=%d err_read=%d err_write=%d " ..
    "err_status=%d err_timeout=%d\n",
    summary.requests, secs, summary.requests / secs, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
    latency.mean, latency.stdev, e.connect, e.read, e.write, e.status, e.timeout))
end
LUA

write_policy() {  # write_policy FILE SINK
  cat >"$1" <<YAML
# Generated by bench/authz/run.sh: one RS256 provider, one route, one worker.
version: 1
workers: 1
listeners:
  authz: 127.0.0.1:0
  admin: 127.0.0.1:0
watch: { enabled: false }
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $jwks
    audiences: [orders-api]
    algorithms: [RS256]
routes:
  - name: orders-read
    match: { paths: [/orders, /orders/*], methods: [GET, HEAD] }
    authenticate: [demo]
    require: { scopes: [read:orders] }
default: deny
audit: { sink: $2 }
YAML
}

# ---- measuring ------------------------------------------------------------------------
rows=()   # "target|rps|p50_us|p99_us|cpu_us_per_req|server_util|server_cpu_busy|client_cpu_busy|errors"

wrk_run() {  # wrk_run URL DURATION OUTFILE
  local secs=${2%s}
  timeout $((secs + 30)) taskset -c "$client_cpu" \
    wrk -t1 -c"$conns" -d"$2" --latency -s "$work/request.lua" "$1" >"$3" 2>&1 ||
    die "wrk failed against $1: $(tail -3 "$3")"
}

field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" "$2" | tail -1; }

# measure NAME URL PID...: warm-up, then the measured run with CPU accounting of the PIDs.
measure() {
  local name=$1 url=$2
  shift 2
  local out="$work/wrk-${name// /_}.txt"
  wrk_run "$url" "$warmup" "$work/warmup-${name// /_}.txt"
  sleep 0.5
  local t0 t1 s0 s1 c0 c1
  s0=$(cpu_stat "$server_cpu")
  c0=$(cpu_stat "$client_cpu")
  t0=$(cpu_ticks "$@")
  wrk_run "$url" "$duration" "$out"
  t1=$(cpu_ticks "$@")
  s1=$(cpu_stat "$server_cpu")
  c1=$(cpu_stat "$client_cpu")
  grep -q '^RESULT ' "$out" || die "no RESULT line from wrk against $url: $(tail -5 "$out")"
  local requests secs rps p50 p99 errs cpu_us util
  requests=$(field requests "$out")
  secs=$(field duration_s "$out")
  rps=$(field rps "$out")
  p50=$(field p50_us "$out")
  p99=$(field p99_us "$out")
  errs=$(($(field err_connect "$out") + $(field err_read "$out") + $(field err_write "$out") +
    $(field err_status "$out") + $(field err_timeout "$out")))
  cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", n ? d * 1e6 / hz / n : 0 }')
  util=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.0f%%", 100 * d / hz / s }')
  local sbusy cbusy
  sbusy=$(busy_pct "$s0" "$s1")
  cbusy=$(busy_pct "$c0" "$c1")
  echo "== $name: wrk -t1 -c$conns -d$duration --latency $url"
  sed 's/^/   /' "$out"
  echo "   server CPU: $((t1 - t0)) ticks (CLK_TCK $hz) over ${secs}s = $cpu_us us/request, $util of one CPU"
  echo "   CPU $server_cpu (server) ${sbusy}% busy, CPU $client_cpu (wrk) ${cbusy}% busy, from /proc/stat" \
    "(busy beyond the server's own share is softirq or another process)"
  rows+=("$name|$rps|$p50|$p99|$cpu_us|$util|$sbusy%|$cbusy%|$errs")
}

# ---- the run ----------------------------------------------------------------------------
note "portcullis authz benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
note "host: $(uname -srm), $ncpu CPU(s): $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
note "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
if awk '{ exit !($1 > 0.7) }' /proc/loadavg; then
  note "WARNING: 1-min load above 0.7: something else may be running; watch the cpu columns"
fi
note "binary: $bin_src ($("$bin" version 2>/dev/null | head -1), sha256 $(sha256sum "$bin" | cut -c1-12))"
note "server CPU $server_cpu, wrk CPU $client_cpu; warm-up $warmup, measured $duration, $conns connections"
echo

# 1. The bare crypto: OpenSSL's RSA-2048 verify (public-key operation only, no hashing).
echo "== openssl speed -seconds $openssl_seconds rsa2048 (CPU $server_cpu)"
taskset -c "$server_cpu" timeout $((openssl_seconds * 4 + 30)) \
  openssl speed -seconds "$openssl_seconds" rsa2048 >"$work/openssl.txt" 2>/dev/null ||
  die "openssl speed failed"
grep -E 'sign/s|^rsa' "$work/openssl.txt" | sed 's/^/   /'
# Find the verify/s column from the header (its layout differs between OpenSSL versions).
verify_s=$(awk '/verify\/s/ { for (i = 1; i <= NF; i++) if ($i == "verify/s") col = i + 3 }
                /^rsa +2048 +bits/ && col { print $col }' "$work/openssl.txt")
[[ -n $verify_s ]] || die "could not read verify/s from openssl speed"
verify_us=$(awk -v v="$verify_s" 'BEGIN { printf "%.1f", 1e6 / v }')
echo

# 2. nginx, one worker, `return 204;` — the floor for one HTTP request/response on this box.
ngx=$work/nginx
mkdir -p "$ngx/logs"
nginx_pid=
for _ in 1 2 3 4 5; do
  nginx_port=$(free_port)
  cat >"$ngx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
master_process on;
pid $ngx/nginx.pid;
error_log $ngx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $ngx/body;
  proxy_temp_path $ngx/proxy;
  fastcgi_temp_path $ngx/fastcgi;
  uwsgi_temp_path $ngx/uwsgi;
  scgi_temp_path $ngx/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { return 204; }
  }
}
NGINX
  taskset -c "$server_cpu" nginx -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/logs/error.log" \
    >"$ngx/logs/stdout.log" 2>&1 &
  nginx_pid=$!
  started+=("$nginx_pid")
  if wait_port "$nginx_port" "$nginx_pid"; then break; fi
  stop_pid "$nginx_pid"
  forget "$nginx_pid"
  nginx_pid=
done
[[ -n $nginx_pid ]] || die "nginx did not start: $(tail -3 "$ngx/logs/error.log")"
sleep 0.3
nginx_workers=$(cat "/proc/$nginx_pid/task/$nginx_pid/children" 2>/dev/null || true)
[[ -n $nginx_workers ]] || nginx_workers=$(ps -o pid= --ppid "$nginx_pid" 2>/dev/null || true)
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$nginx_port/")
[[ $status == 204 ]] || die "nginx answered $status, expected 204"
# shellcheck disable=SC2086  # the worker PIDs are a space-separated list
measure "nginx return 204" "http://127.0.0.1:$nginx_port/" "$nginx_pid" $nginx_workers
stop_pid "$nginx_pid"
forget "$nginx_pid"
for pid in $nginx_workers; do  # nginx's own children: normally gone with the master
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
done
echo

# 3./4. portcullis, one worker, full RS256 verification on every request (no cache yet).
metric() {  # metric FILE NAME-AND-LABELS
  awk -v k="$2" 'index($0, k " ") == 1 { print $NF; found = 1 } END { if (!found) print "-" }' "$1"
}

run_portcullis() {  # run_portcullis NAME SINK
  local name=$1 sink=$2 tag=${1// /_}
  local policy=$work/policy-$tag.yaml ready=$work/ready-$tag.json log=$work/portcullis-$tag.log
  write_policy "$policy" "$sink"
  "$bin" check -c "$policy" >/dev/null || die "policy rejected: $policy"
  taskset -c "$server_cpu" "$bin" serve -c "$policy" --ready-file "$ready" --log-level info \
    >"$log" 2>&1 &
  local pid=$! i
  started+=("$pid")
  for ((i = 0; i < 100; i++)); do
    [[ -s $ready ]] && break
    kill -0 "$pid" 2>/dev/null || die "portcullis exited: $(tail -5 "$log")"
    sleep 0.1
  done
  [[ -s $ready ]] || die "portcullis did not become ready in 10 s"
  local authz admin
  authz=$(sed -n 's/.*"authz":"\([^"]*\)".*/\1/p' "$ready")
  admin=$(sed -n 's/.*"admin":"\([^"]*\)".*/\1/p' "$ready")

  # The benchmark only means something if the request is really allowed (and a token-less
  # one really refused).
  local ok no
  ok=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Original-URI: /orders/7' \
    -H 'X-Original-Method: GET' -H "Authorization: Bearer $token" "http://$authz/")
  no=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Original-URI: /orders/7' \
    -H 'X-Original-Method: GET' "http://$authz/")
  [[ $ok == 200 && $no == 401 ]] || die "sanity check failed: with token $ok (want 200), without $no (want 401)"

  measure "$name" "http://$authz/" "$pid"
  curl -s "http://$admin/metrics" >"$work/metrics-$tag.txt" || true
  local m=$work/metrics-$tag.txt
  local dsum dcount
  dsum=$(metric "$m" portcullis_decision_duration_seconds_sum)
  dcount=$(metric "$m" portcullis_decision_duration_seconds_count)
  echo "   metrics: allow=$(metric "$m" 'portcullis_decisions_total{route="orders-read",outcome="allow"}')" \
    "deny=$(metric "$m" 'portcullis_decisions_total{route="orders-read",outcome="deny"}')" \
    "error=$(metric "$m" 'portcullis_decisions_total{route="orders-read",outcome="error"}')" \
    "default-deny=$(metric "$m" 'portcullis_decisions_total{route="(default)",outcome="deny"}')" \
    "conns-accepted=$(metric "$m" 'portcullis_connections_accepted_total{listener="authz"}')" \
    "conns-rejected=$(metric "$m" 'portcullis_connections_rejected_total{listener="authz"}')" \
    "bad-requests=$(metric "$m" 'portcullis_http_bad_requests_total{listener="authz"}')" \
    "audit-lines=$(metric "$m" portcullis_audit_lines_total)" \
    "audit-dropped=$(metric "$m" portcullis_audit_dropped_total)" \
    "mean-decision-us=$(awk -v s="$dsum" -v c="$dcount" 'BEGIN { if (c + 0 > 0) printf "%.1f", s * 1e6 / c; else print "-" }')"

  stop_pid "$pid"
  forget "$pid"
  local problems
  problems=$(grep -ciE '\[(warning|error|critical)\]' "$log" || true)
  echo "   portcullis log: $(wc -l <"$log") line(s), $problems warning/error line(s)"
  if ((problems > 0)); then grep -iE '\[(warning|error|critical)\]' "$log" | head -5 | sed 's/^/     /'; fi
  if [[ $sink == file:* ]]; then
    echo "   audit file: $(wc -l <"${sink#file:}") line(s), $(du -h "${sink#file:}" | cut -f1)"
    rm -f "${sink#file:}"  # can be large; the count is what matters
  fi
  echo
}

run_portcullis "portcullis audit=none" none
run_portcullis "portcullis audit=file" "file:$work/audit.jsonl"

# ---- summary ----------------------------------------------------------------------------
note "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-24s %10s %9s %9s %11s %7s %7s %7s %7s\n' target req/s p50_ms p99_ms us/request server \
  "cpu$server_cpu" "cpu$client_cpu" errors
for row in "${rows[@]}"; do
  IFS='|' read -r name rps p50 p99 cpu util sbusy cbusy errs <<<"$row"
  printf '%-24s %10.0f %9.3f %9.3f %11s %7s %7s %7s %7s\n' "$name" "$rps" \
    "$(awk -v u="$p50" 'BEGIN { print u / 1000 }')" "$(awk -v u="$p99" 'BEGIN { print u / 1000 }')" \
    "$cpu" "$util" "$sbusy" "$cbusy" "$errs"
done
printf '%-24s %10.0f %9s %9s %11s %7s %7s %7s %7s\n' "openssl rsa2048 verify" "$verify_s" - - "$verify_us" - - - -
echo "us/request: server CPU time (utime+stime) per request; openssl row: verify/s and us/verify."
echo "server: the server's CPU time as a share of one CPU; cpu$server_cpu (server) and cpu$client_cpu (wrk):"
echo "how busy each CPU was, all causes (cpu$client_cpu near 100% = wrk-bound); errors: wrk socket"
echo "errors + non-2xx/3xx responses."
for row in "${rows[@]}"; do  # flag runs another process probably disturbed
  IFS='|' read -r name _ _ _ _ util sbusy cbusy _ <<<"$row"
  util=${util%\%} sbusy=${sbusy%\%} cbusy=${cbusy%\%}
  if ((sbusy - util > 4)); then
    echo "WARNING: $name: the server used $util% of CPU $server_cpu, which was $sbusy% busy:" \
      "another process probably shared it; rerun on a quiet machine"
  elif ((util < 90 && cbusy < 90)); then
    echo "WARNING: $name: neither the server ($util%) nor wrk ($cbusy%) saturated its CPU;" \
      "something else limited this run"
  fi
done
