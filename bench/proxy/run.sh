#!/usr/bin/env bash
# End-to-end benchmark of portcullis' built-in HTTP/1.1 reverse proxy (issue #13) beside
# nginx and HAProxy proxying to the same application, all on the same machine in one run,
# with one token signed with BENCH_ALG (RS256: examples/keys/demo.jwk; ES256:
# examples/keys/demo-es256.jwk). Every target proxies to the same application: one nginx
# (one worker) answering `return 200 "user=$http_x_user\n"`, over kept-alive connections.
#   (a) nginx `proxy_pass` (worker_processes = BENCH_WORKERS), `upstream` with keepalive 64,
#       proxy_http_version 1.1: no authentication (context)
#   (b) HAProxy plain proxying (nbthread = BENCH_WORKERS), http-reuse always: no
#       authentication — the goal's first reference
#   (c) HAProxy with its native JWT check (bench/lib.sh haproxy_jwt_rules, as in
#       bench/haproxy/run.sh): jwt_verify with BENCH_ALG and the demo key's public half as
#       PEM, iss, aud and exp checks, X-User from sub; http-reuse always — the second
#       reference
#   (d) portcullis `listeners.proxy` (workers = BENCH_WORKERS): one provider (RS256 and
#       ES256 allowed), one route `/**` with `cache: { ttl: 60s }` (warm: the warm-up makes
#       the one token a cache hit), claims_to_headers X-User: sub, upstream `app` with
#       max_idle 64, audit per BENCH_AUDIT (default: a file)
#   (e) only with BENCH_AUDIT_NONE=1: (d) with `audit: { sink: none }`
#
#   bench/proxy/run.sh [BUILD_DIR | path-to-portcullis]      (default: build)
#
# Pinning. BENCH_WORKERS=1 (default): the whole server side — the front (nginx, HAProxy or
# portcullis) and the application nginx — on one CPU (BENCH_SERVER_CPU, default 0), wrk on
# another (BENCH_CLIENT_CPU, default 1), as the other scripts here. BENCH_WORKERS=2: two
# workers need two CPUs, and a 2-CPU machine has no third for wrk, so the defaults become
# BENCH_SERVER_CPU=0-1 (the server side may use both CPUs) and BENCH_CLIENT_CPU=none (wrk
# unpinned, competing with the server side for the same two CPUs). Those figures are less
# clean: req/s is what the server side gets while sharing the machine with wrk, the busy
# column is the whole machine's, and no row can be told apart from one that another process
# disturbed. The CPU per request of the server side is still its own. On a machine with
# more CPUs, set BENCH_SERVER_CPU=0-1 BENCH_CLIENT_CPU=2.
#
# Each target: start, check, warm-up, `wrk -t1 -c32 -d8s --latency` with CPU accounting of
# the whole server side (front and application nginx, utime + stime from /proc), stop.
# Checked before it is measured (bench/lib.sh bench_check): a valid token, sent with
# X-User: mallory, gets 200 from the application; for (c), (d) and (e) the application
# saw X-User: alice, and no token, a bad signature and an expired token get 401. After each
# portcullis row: its /metrics (forwarded, upstream connections and reuse, upstream errors,
# cache hits and misses, audit lines and drops) and, with the audit file, its line count
# against the requests sent. At the end: the table (req/s, p50, p99, CPU µs per request),
# then issue #13's goal — (d)/(b) req/s ≥ 1.0 and (d)/(c) req/s ≥ 3.0 — each with met / not
# met, and the same ratios in CPU per request. Nothing runs longer than its bound; only the
# PIDs started here are signalled. Shared helpers: bench/lib.sh.
#
# BENCH_TLS=1: every front terminates TLS (a throwaway certificate: tests/fakes/make_tls_cert.sh)
# and offers HTTP/2: nginx `listen ssl http2`, HAProxy `bind ssl alpn h2,http/1.1`, portcullis
# `listeners.proxy_tls`. The wrk rows are then HTTP/1.1 over TLS (kept-alive connections: the
# handshakes are outside the measurement), and each front gets a second row with h2load: HTTP/2,
# BENCH_CONNECTIONS/4 connections with 4 streams each (as many requests in flight as wrk), for
# BENCH_DURATION, the same CPU accounting. The goal lines are stated for plain HTTP; under TLS they are context.
#
# Knobs (environment): BENCH_WORKERS (1 | 2; default 1), BENCH_ALG (RS256 | ES256; default
# RS256), BENCH_AUDIT (file | none; default file: `audit: { sink: "file:WORK/audit.jsonl" }`
# in (d)), BENCH_AUDIT_NONE=1 (adds row e), BENCH_DURATION (8s), BENCH_WARMUP (2s),
# BENCH_CONNECTIONS (32), BENCH_SERVER_CPU, BENCH_CLIENT_CPU (see Pinning), BENCH_KEEP=1
# keeps the work directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"
arg=${1:-$root/build}
[[ $arg == /* ]] || arg=$PWD/$arg
if [[ -d $arg ]]; then bin=$arg/portcullis; else bin=$arg; fi
jwks=$root/examples/keys/demo-jwks.json  # holds both demo public keys (RS256 and ES256)

workers=${BENCH_WORKERS:-1}
case $workers in
  1) ;;
  2) BENCH_SERVER_CPU=${BENCH_SERVER_CPU:-0-1} BENCH_CLIENT_CPU=${BENCH_CLIENT_CPU:-none} ;;
  *) echo "bench/proxy: BENCH_WORKERS: 1 or 2, not '$workers'" >&2; exit 1 ;;
esac
bench_init proxy 8s 2s haproxy wrk nginx openssl taskset curl timeout awk od base64 sha256sum
((server_ncpu >= workers)) ||
  die "BENCH_WORKERS=$workers needs as many server CPUs; BENCH_SERVER_CPU is $server_cpu"
alg=${BENCH_ALG:-RS256}
case $alg in
  RS256) key=$root/examples/keys/demo.jwk ;;
  ES256) key=$root/examples/keys/demo-es256.jwk ;;
  *) die "BENCH_ALG: RS256 or ES256, not '$alg'" ;;
esac
goal_plain=1.0 goal_jwt=3.0
audit=${BENCH_AUDIT:-file}
[[ $audit == file || $audit == none ]] || die "BENCH_AUDIT: file or none, not '$audit'"
[[ -r $jwks && -r $key ]] || die "demo keys not found under $root/examples/keys"
grep -q "\"alg\": *\"$alg\"" "$jwks" || die "$jwks has no $alg key"

# ---- inputs -------------------------------------------------------------------------------
bench_copy_binary "$bin"
bench_tokens "$key"
bench_jwt_pem "$key" "$alg" "$work/demo-pub.pem"

tls=${BENCH_TLS:-0}
if [[ $tls == 1 ]]; then
  command -v h2load >/dev/null || die "BENCH_TLS=1 needs h2load (Debian nghttp2-client)"
  BENCH_TLS_DIR=$work/tls
  "$root/tests/fakes/make_tls_cert.sh" "$BENCH_TLS_DIR" || die "could not make a certificate"
  cat "$BENCH_TLS_DIR/server.pem" "$BENCH_TLS_DIR/server.key" >"$BENCH_TLS_DIR/haproxy.pem"
  export CURL_CA_BUNDLE=$BENCH_TLS_DIR/ca.pem  # bench_check's curl verifies the chain
fi

bench_bearer_wrk_script

rows=()  # "target|rps|p50_us|p99_us|cpu_us_per_req|server_util|server_busy|client_busy|errors"
url_of() { if [[ $tls == 1 ]]; then echo "https://$1/orders/7"; else echo "http://$1/orders/7"; fi; }

# h2_row NAME URL PID…: with BENCH_TLS=1, the same front over HTTP/2 with h2load (pinned like
# wrk), CPU accounting as bench_row; a row "NAME (h2)".
h2_row() {
  [[ $tls == 1 ]] || return 0
  local name="$1 (h2)" url=$2 tag
  shift 2
  tag=${name//[^a-zA-Z0-9]/_}
  local out=$work/h2load-$tag.txt secs=${duration%s} t0 t1 s0 s1 c0 c1
  local -a pin=(taskset -c "$client_cpu")
  [[ $client_cpu == none ]] && pin=()
  # As many streams in flight as wrk has connections (BENCH_CONNECTIONS / 4 connections, 4
  # streams each): more would exceed the fronts' idle upstream pools (64) and measure
  # upstream connection churn instead of HTTP/2.
  local -a h2=(h2load -c $((conns / 4)) -m 4 -H "authorization: Bearer $token" "$url")
  timeout 60 "${pin[@]}" "${h2[@]}" -D "${warmup%s}" >"$work/h2load-warm-$tag.txt" 2>&1 || true
  s0=$(cpu_stat "$server_cpu")
  c0=$(cpu_stat "$client_cpu")
  t0=$(cpu_ticks "$@")
  timeout $((secs + 60)) "${pin[@]}" "${h2[@]}" -D "$secs" >"$out" 2>&1 ||
    die "h2load failed against $url: $(tail -3 "$out")"
  t1=$(cpu_ticks "$@")
  s1=$(cpu_stat "$server_cpu")
  c1=$(cpu_stat "$client_cpu")
  local done_n rps failed p50 cpu util warm_n
  done_n=$(awk '/^requests:/ { print $8 }' "$out")
  warm_n=$(awk '/^requests:/ { print $8 }' "$work/h2load-warm-$tag.txt")
  H2_SENT=$((${done_n:-0} + ${warm_n:-0}))
  failed=$(awk '/^requests:/ { print $10 + $12 + $14 }' "$out")
  rps=$(awk '/^finished in/ { gsub(",", "", $4); print $4 }' "$out")
  p50=$(awk '/^time for request:/ { print $6 }' "$out")
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$done_n" 'BEGIN { printf "%.1f", n ? d * 1e6 / hz / n : 0 }')
  util=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.0f", 100 * d / hz / s }')
  echo "== $name: h2load -c $((conns / 4)) -m 4 -H 'authorization: Bearer TOKEN' $url -D $secs"
  sed 's/^/   /' "$out" | grep -E 'finished in|requests:|status codes|time for request|TLS Protocol|Application'
  echo "   server side CPU: $((t1 - t0)) ticks = $cpu us/request; CPU(s) $server_cpu $(busy_pct "$s0" "$s1")% busy, client CPU $(busy_pct "$c0" "$c1")% busy"
  echo "   (h2load's mean time per request, 4 in flight per connection: $p50)"
  rows+=("$name|$rps|0|0|$cpu|$util%|$(busy_pct "$s0" "$s1")%|$(busy_pct "$c0" "$c1")%|$failed")
  echo
}

# ---- (a) nginx proxy_pass -------------------------------------------------------------------
row_nginx() {
  local name="a. nginx proxy_pass" dir=$work/nginx-front port
  mkdir -p "$dir"
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    nginx_proxy_front_conf "$dir" "$workers" "$port"
    bench_start_nginx "$dir" front-nginx "$port" && break
    port=
  done
  [[ -n $port ]] || die "nginx (the front) did not start: $(tail -3 "$dir/error.log" 2>/dev/null)"
  local front=$NGX_PID front_pids=("${NGX_PIDS[@]}")
  bench_check "$name" "$(url_of "127.0.0.1:$port")" plain
  bench_row "$name" "$(url_of "127.0.0.1:$port")" "${front_pids[@]}" "${APP_PIDS[@]}"
  h2_row "$name" "$(url_of "127.0.0.1:$port")" "${front_pids[@]}" "${APP_PIDS[@]}"
  stop_pid "$front"
  forget "$front"
  echo "   nginx error log: $(grep -cE '\[(error|crit|alert|emerg)\]' "$dir/error.log" || true) line(s) at [error] or worse"
  echo
}

# ---- (b), (c) HAProxy -----------------------------------------------------------------------
row_haproxy() {  # row_haproxy NAME TAG plain|auth FRONTEND-RULES
  local name=$1 tag=$2 mode=$3 rules=$4 port cfg=$work/haproxy-$2.cfg
  port=$(free_port)
  cat >"$cfg" <<CFG
global
    nbthread $workers
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:$port${BENCH_TLS_DIR:+ ssl crt $BENCH_TLS_DIR/haproxy.pem alpn h2,http/1.1}
$rules
    default_backend app
backend app
    http-reuse always
    server app 127.0.0.1:$APP_PORT
CFG
  haproxy -c -f "$cfg" >"$cfg.check" 2>&1 || die "haproxy rejected $cfg: $(cat "$cfg.check")"
  start_haproxy "$cfg"
  wait_port "$port" "$HAPROXY_PID" || die "haproxy ($tag) did not start: $(cat "$cfg.log")"
  bench_check "$name" "$(url_of "127.0.0.1:$port")" "$mode"
  bench_row "$name" "$(url_of "127.0.0.1:$port")" "$HAPROXY_PID" "${APP_PIDS[@]}"
  h2_row "$name" "$(url_of "127.0.0.1:$port")" "$HAPROXY_PID" "${APP_PIDS[@]}"
  stop_haproxy
  echo
}

# ---- (d), (e) portcullis --------------------------------------------------------------------
metric() {  # metric FILE NAME-AND-LABELS: its value, or -
  awk -v k="$2" 'index($0, k " ") == 1 { print $NF; found = 1 } END { if (!found) print "-" }' "$1"
}
row_portcullis() {  # row_portcullis NAME SINK (none | file)
  local name=$1 sink=$2 tag=${1//[^a-zA-Z0-9]/_} sink_line audit_file=
  local policy=$work/policy-$tag.yaml ready=$work/ready-$tag.json log=$work/portcullis-$tag.log
  if [[ $sink == file ]]; then
    audit_file=$work/audit-$tag.jsonl
    sink_line="\"file:$audit_file\""
  else
    sink_line=none
  fi
  local listener=proxy tls_block=""
  if [[ $tls == 1 ]]; then
    listener=proxy_tls
    tls_block="tls: { certificates: [{ cert: $BENCH_TLS_DIR/server.pem, key: $BENCH_TLS_DIR/server.key }] }"
  fi
  bench_proxy_policy "$policy" "$workers" "$sink_line" "$listener" "$tls_block"
  "$bin" check -c "$policy" >"$work/check-$tag.log" 2>&1 ||
    die "policy rejected (a binary without the built-in proxy of #13 rejects upstreams and listeners.proxy): $(tail -3 "$work/check-$tag.log")"
  bench_serve "$policy" "$ready" "$log"
  local pid=$SERVE_PID admin=$SERVE_ADMIN
  BENCH_ROLE[$pid]=portcullis
  local proxy_addr=$SERVE_PROXY
  [[ $tls == 1 ]] && proxy_addr=$(sed -n 's/.*"proxy_tls":"\([^"]*\)".*/\1/p' "$ready")
  [[ -n $proxy_addr ]] || die "portcullis reported no $listener listener: $(cat "$ready")"
  local url
  url=$(url_of "$proxy_addr")
  bench_check "$name" "$url" auth
  local checks=$CHECKS
  bench_row "$name" "$url" "$pid" "${APP_PIDS[@]}"
  local measured=$M_REQUESTS warm sent
  H2_SENT=0
  h2_row "$name" "$url" "$pid" "${APP_PIDS[@]}"
  warm=$(field requests "$work/warmup-$tag.txt")
  sent=$((checks + ${warm:-0} + measured + H2_SENT))
  local m=$work/metrics-$tag.txt
  curl -s --noproxy '*' --max-time 5 "http://$admin/metrics" >"$m" || true
  local misses dropped
  misses=$(metric "$m" 'portcullis_cache_lookups_total{result="miss"}')
  dropped=$(metric "$m" portcullis_audit_dropped_total)
  echo "   metrics: forwarded=$(metric "$m" portcullis_proxy_forwarded_total)" \
    "upstream-connections=$(metric "$m" portcullis_proxy_upstream_connections_total)" \
    "upstream-reused=$(metric "$m" portcullis_proxy_upstream_reused_total)" \
    "upstream-errors=$(awk '/^portcullis_proxy_upstream_errors_total/ { n += $NF } END { print n + 0 }' "$m")" \
    "cache-hits=$(metric "$m" 'portcullis_cache_lookups_total{result="hit"}')" \
    "cache-misses=$misses" \
    "audit-lines=$(metric "$m" portcullis_audit_lines_total) audit-dropped=$dropped"
  # A warm cache: the checks and each worker's first request miss, nothing else.
  if [[ $misses =~ ^[0-9]+$ ]] && ((misses > 20)); then
    echo "   WARNING: $misses cache misses: the measured run was not all cache hits"
  fi
  stop_pid "$pid"  # portcullis writes out its audit queue before it exits
  forget "$pid"
  local problems
  problems=$(grep -ciE '\[(warning|error|critical)\]' "$log" || true)
  echo "   portcullis log: $(wc -l <"$log") line(s), $problems warning/error line(s)"
  ((problems == 0)) || grep -iE '\[(warning|error|critical)\]' "$log" | head -5 | sed 's/^/     /'
  if [[ -n $audit_file ]]; then
    local lines=0
    [[ -f $audit_file ]] && lines=$(wc -l <"$audit_file")
    echo "   audit file: $lines line(s) for $sent request(s) sent ($checks checks + ${warm:-?}" \
      "warm-up + $measured measured + $H2_SENT over h2; wrk may leave up to $conns in flight at each stop)"
    if ((lines < sent - sent / 100 || lines > sent + 2 * conns + sent / 100)); then
      echo "   WARNING: the audit file does not hold one line per request"
    fi
    [[ ${BENCH_KEEP:-0} == 1 ]] || rm -f "$audit_file"  # can be large; the count is what matters
  fi
  if [[ $dropped =~ ^[0-9]+$ ]] && ((dropped > 0)); then
    echo "   WARNING: portcullis dropped $dropped audit line(s)"
  fi
  echo
}

# ---- the run --------------------------------------------------------------------------------
bench_header "portcullis built-in proxy benchmark (#13)"
note "$(nginx -v 2>&1 | head -1); $(haproxy -v | head -1); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
note "portcullis: $bin_src ($("$bin" version 2>/dev/null | head -1), sha256 $(sha256sum "$bin" | cut -c1-12))"
if [[ $client_cpu == none ]]; then
  note "workers $workers: server side (front with $workers workers/threads, application nginx 1 worker)" \
    "on CPUs $server_cpu, wrk unpinned (shares them: figures less clean)"
else
  note "workers $workers: server side (front with $workers worker(s)/thread(s), application nginx 1 worker)" \
    "on CPU(s) $server_cpu, wrk on CPU $client_cpu"
fi
note "warm-up $warmup, measured $duration, $conns connections, GET /orders/7 with one $alg token"
note "knobs: BENCH_WORKERS=$workers BENCH_ALG=$alg ($(basename "$key")) BENCH_AUDIT=$audit" \
  "BENCH_AUDIT_NONE=${BENCH_AUDIT_NONE:-0} BENCH_TLS=$tls"
[[ $tls == 1 ]] && note "TLS: $(openssl version); HTTP/2 rows with $(h2load --version 2>&1 | head -1)"
echo

bench_app_nginx
row_nginx
row_haproxy "b. haproxy plain" plain plain ""
row_haproxy "c. haproxy jwt_verify" jwt auth "$(haproxy_jwt_rules "$alg" "$work/demo-pub.pem")"
row_portcullis "d. portcullis proxy, audit $audit" "$audit"
if [[ ${BENCH_AUDIT_NONE:-0} == 1 ]]; then
  row_portcullis "e. portcullis proxy, audit none" none
fi
stop_pid "$APP_PID"
forget "$APP_PID"

# ---- summary ----------------------------------------------------------------------------------
note "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
bench_table "front + application nginx"

# ---- issue #13's goal: ratios from this run --------------------------------------------------
rps_a=$(row_field "a." 2) rps_b=$(row_field "b." 2) rps_c=$(row_field "c." 2) rps_d=$(row_field "d." 2)
cpu_a=$(row_field "a." 5) cpu_b=$(row_field "b." 5) cpu_c=$(row_field "c." 5) cpu_d=$(row_field "d." 5)
echo
echo "issue #13, proxy goal (this run: $workers worker(s), $alg, audit $audit; the goal is stated for RS256, audit on):"
goal_line "(d) portcullis / (b) haproxy plain, req/s" "$(ratio "$rps_d" "$rps_b")" "$goal_plain"
goal_line "(d) portcullis / (c) haproxy jwt_verify, req/s" "$(ratio "$rps_d" "$rps_c")" "$goal_jwt"
goal_line "(b) haproxy plain us / (d) portcullis us, CPU" "$(ratio "$cpu_b" "$cpu_d")" "$goal_plain"
goal_line "(c) haproxy jwt_verify us / (d) portcullis us, CPU" "$(ratio "$cpu_c" "$cpu_d")" "$goal_jwt"
printf '%-52s %6.2fx   req/s; CPU %.2fx (context, no goal)\n' "(d) portcullis / (a) nginx proxy_pass" \
  "$(ratio "$rps_d" "$rps_a")" "$(ratio "$cpu_a" "$cpu_d")"
echo "CPU lines: server side CPU per request, inverted so that higher is better like req/s (on"
echo "saturated server CPUs req/s = CPUs / CPU per request; the CPU ratio is less sensitive to other work)."
[[ $audit == file ]] || echo "NOTE: audit none; the goal is for audit on (BENCH_AUDIT=file)."
[[ $alg == RS256 ]] || echo "NOTE: $alg; the goal is for RS256 (BENCH_ALG=RS256)."
if [[ $client_cpu == none ]]; then
  echo "NOTE: wrk was unpinned and shared CPUs $server_cpu with the server side: req/s here is what"
  echo "the server side got beside wrk, and a disturbance by another process cannot be told apart."
fi
disturbed=$(bench_disturbed)
if [[ -n $disturbed ]]; then
  echo "NOTE: rows$disturbed shared CPU(s) $server_cpu with other processes (WARNING lines above): these"
  echo "ratios are not a clean measurement of the goal."
fi
