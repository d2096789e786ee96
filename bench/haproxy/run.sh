#!/usr/bin/env bash
# End-to-end benchmark of HAProxy 2.6 with portcullis as its SPOE agent, beside HAProxy on
# its own, all on the same machine in one run, with one token signed with BENCH_ALG
# (RS256: examples/keys/demo.jwk; ES256: examples/keys/demo-es256.jwk):
#   (a) HAProxy proxying to nginx `return 200` (no authentication: the floor)
#   (b) HAProxy's native JWT check: `http-request` rules with jwt_verify (BENCH_ALG, the demo
#       key's public half as a PEM file) plus iss, aud and exp checks — the same token
#       rules, no agent
#   (c) HAProxy + portcullis SPOE (the `portcullis haproxy-config` output), no decision
#       cache on the route: every request is a full signature verification in portcullis
#   (d) the same with `cache: { ttl: 60s }` on the route: warm cache, one token
#   (e) the same policy, configuration generated with `--haproxy-cache`: HAProxy keeps the
#       allow in its stick table and answers the repeat token without asking the agent
#       (warm: after the warm-up, the agent has seen the token once)
#
#   bench/haproxy/run.sh [BUILD_DIR | path-to-portcullis]      (default: build)
#
# The whole server side — HAProxy (nbthread 1), portcullis (workers: 1, audit per
# BENCH_AUDIT) and nginx (one worker) — is pinned to one CPU (BENCH_SERVER_CPU, default 0);
# wrk is pinned to another (BENCH_CLIENT_CPU, default 1): `wrk -t1 -c32 -d8s --latency`
# after a warm-up. Every target is checked before it is measured (a valid token gets 200
# and the right X-User upstream; no token, a bad signature and an expired token get 401;
# for (e), the agent must have been asked only a handful of times). With BENCH_AUDIT=file,
# each portcullis row (c, d, e) prints the audit file's line count beside its request
# counts (the file also holds the warm-up's and the checks' decisions; in (e) only the
# agent's few misses). At the end: the table, then the ratios behind issue #12's SPOE goal
# — (d)/(b) req/s ≥ 2.0 for RS256, ≥ 3.0 for ES256; (d)/(a) ≥ 0.7 — each with met/not
# met, and the same ratios in CPU µs per request. Nothing runs longer than its bound;
# only the PIDs started here are signalled. Shared helpers, the application nginx, the
# tokens, the checks and the jwt_verify rules (shared with bench/proxy/run.sh): bench/lib.sh.
#
# Knobs (environment): BENCH_ALG (RS256 | ES256; default RS256), BENCH_AUDIT (none | file:
# `audit: { sink: "file:WORK/audit.jsonl" }` in the portcullis policies; default none),
# BENCH_DURATION (8s), BENCH_WARMUP (2s), BENCH_CONNECTIONS (32), BENCH_SERVER_CPU (0),
# BENCH_CLIENT_CPU (1), BENCH_KEEP=1 keeps the work directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"
arg=${1:-$root/build}
[[ $arg == /* ]] || arg=$PWD/$arg
if [[ -d $arg ]]; then bin=$arg/portcullis; else bin=$arg; fi
jwks=$root/examples/keys/demo-jwks.json  # holds both demo public keys (RS256 and ES256)

bench_init haproxy 8s 2s haproxy wrk nginx openssl taskset curl timeout awk od base64
alg=${BENCH_ALG:-RS256}
case $alg in
  RS256) key=$root/examples/keys/demo.jwk goal_jwt=2.0 ;;
  ES256) key=$root/examples/keys/demo-es256.jwk goal_jwt=3.0 ;;
  *) die "BENCH_ALG: RS256 or ES256, not '$alg'" ;;
esac
goal_plain=0.7
audit=${BENCH_AUDIT:-none}
case $audit in
  none) audit_sink=none audit_file= ;;
  file) audit_file=$work/audit.jsonl audit_sink="\"file:$audit_file\"" ;;
  *) die "BENCH_AUDIT: none or file, not '$audit'" ;;
esac
[[ -r $jwks && -r $key ]] || die "demo keys not found under $root/examples/keys"
grep -q "\"alg\": *\"$alg\"" "$jwks" || die "$jwks has no $alg key"

# ---- inputs -------------------------------------------------------------------------------
bench_copy_binary "$bin"
bench_tokens "$key" --scope read:orders
bench_jwt_pem "$key" "$alg" "$work/demo-pub.pem"

bench_bearer_wrk_script

# ---- nginx: the application, `return 200 "user=$http_x_user"` (bench/lib.sh) -------------------
bench_app_nginx

# ---- measuring ------------------------------------------------------------------------------
# Each row: bench_check, then bench_row (warm-up, measured run; bench/lib.sh).
rows=()  # "target|rps|p50_us|p99_us|cpu_us_per_req|server_util|cpu0_busy|cpu1_busy|errors"

common_global="global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
"

# ---- the run --------------------------------------------------------------------------------
bench_header "HAProxy + portcullis SPOE benchmark"
note "$(haproxy -v | head -1)"
note "portcullis: $bin_src (sha256 $(sha256sum "$bin" | cut -c1-12))"
note "server side (haproxy nbthread 1, portcullis workers 1, nginx 1 worker) on CPU $server_cpu, wrk on CPU $client_cpu"
note "warm-up $warmup, measured $duration, $conns connections, GET /orders/7 with one $alg token"
note "knobs: BENCH_ALG=$alg ($(basename "$key")), BENCH_AUDIT=$audit (portcullis audit: { sink: $audit_sink })"
echo

# (a) plain proxying.
port=$(free_port)
cat >"$work/plain.cfg" <<CFG
$common_global
frontend fe
    bind 127.0.0.1:$port
    default_backend app
backend app
    server app 127.0.0.1:$APP_PORT
CFG
start_haproxy "$work/plain.cfg"
wait_port "$port" "$HAPROXY_PID" || die "haproxy (plain) did not start: $(cat "$work/plain.cfg.log")"
bench_check "a. haproxy plain" "http://127.0.0.1:$port/orders/7" plain
bench_row "a. haproxy plain" "http://127.0.0.1:$port/orders/7" "$HAPROXY_PID" "${APP_PIDS[@]}"
stop_haproxy
echo

# (b) HAProxy's own JWT verification (2.6: http_auth_bearer, jwt_header_query,
# jwt_payload_query, jwt_verify).
port=$(free_port)
cat >"$work/jwt.cfg" <<CFG
$common_global
frontend fe
    bind 127.0.0.1:$port
$(haproxy_jwt_rules "$alg" "$work/demo-pub.pem")
    default_backend app
backend app
    server app 127.0.0.1:$APP_PORT
CFG
haproxy -c -f "$work/jwt.cfg" >"$work/jwt-c.log" 2>&1 || die "haproxy rejected the jwt_verify config: $(cat "$work/jwt-c.log")"
start_haproxy "$work/jwt.cfg"
wait_port "$port" "$HAPROXY_PID" || die "haproxy (jwt) did not start: $(cat "$work/jwt.cfg.log")"
bench_check "b. haproxy jwt_verify" "http://127.0.0.1:$port/orders/7" auth
bench_row "b. haproxy jwt_verify" "http://127.0.0.1:$port/orders/7" "$HAPROXY_PID" "${APP_PIDS[@]}"
stop_haproxy
echo

# (c)/(d) HAProxy + portcullis SPOE, the generated configuration.
write_policy() {  # write_policy FILE SPOE_PORT CACHE_LINE
  cat >"$1" <<YAML
# Generated by bench/haproxy/run.sh: one $alg provider, one route, one worker.
version: 1
workers: 1
listeners:
  spoe: 127.0.0.1:$2
  admin: 127.0.0.1:0
watch: { enabled: false }
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $jwks
    audiences: [orders-api]
    algorithms: [$alg]
    claims_to_headers: { X-User: sub }
routes:
  - name: orders-read
    match: { paths: [/orders, /orders/*], methods: [GET, HEAD] }
    authenticate: [demo]
    require: { scopes: [read:orders] }
$3
default: deny
audit: { sink: $audit_sink }
YAML
}
run_spoe() {  # run_spoe NAME CACHE_LINE [HAPROXY-CONFIG ARGS…]
  local name=$1 cache_line=$2 tag=${1//[^a-zA-Z0-9]/_} spoe_port port
  shift 2
  spoe_port=$(free_port)
  port=$(free_port)
  local policy=$work/policy-$tag.yaml ready=$work/ready-$tag.json log=$work/portcullis-$tag.log
  write_policy "$policy" "$spoe_port" "$cache_line"
  "$bin" check -c "$policy" >/dev/null || die "policy rejected: $policy"
  bench_serve "$policy" "$ready" "$log"
  local pid=$SERVE_PID admin=$SERVE_ADMIN
  "$bin" haproxy-config -c "$policy" --bind "127.0.0.1:$port" --upstream "127.0.0.1:$APP_PORT" \
    --out-dir "$work/haproxy-$tag" "$@" 2>"$work/haproxy-config-$tag.log" ||
    die "portcullis haproxy-config $* failed: $(cat "$work/haproxy-config-$tag.log")"
  local cfg=$work/haproxy-$tag/haproxy.cfg
  # One thread, like the other targets; the rest is the generated configuration as is.
  sed -i 's|^global$|global\n    nbthread 1|' "$cfg"
  haproxy -c -f "$cfg" >"$work/haproxy-$tag-c.log" 2>&1 || die "haproxy rejected $cfg: $(cat "$work/haproxy-$tag-c.log")"
  start_haproxy "$cfg"
  wait_port "$port" "$HAPROXY_PID" || die "haproxy (spoe) did not start: $(cat "$cfg.log")"
  for ((i = 0; i < 50; i++)); do  # until the agent answers through HAProxy
    [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/orders/7") == 200 ]] && break
    sleep 0.1
  done
  bench_check "$name" "http://127.0.0.1:$port/orders/7" auth
  bench_row "$name" "http://127.0.0.1:$port/orders/7" "$HAPROXY_PID" "$pid" "${APP_PIDS[@]}"
  local m=$work/metrics-$tag.txt notify
  curl -s "http://$admin/metrics" >"$m" || true
  notify=$(awk '$1 == "portcullis_spoe_notify_total" { print $2 }' "$m")
  if [[ " $* " == *" --haproxy-cache "* ]]; then
    grep -q 'portcullis-decisions' "$cfg" || die "$name: the configuration has no decision table"
    # The checks send a handful of requests to the agent (the misses and the 401s); the
    # warm-up and the measured run must not.
    [[ $notify =~ ^[0-9]+$ ]] && ((notify <= 20)) ||
      die "$name: the agent received $notify NOTIFY frames: HAProxy did not serve the repeat token from its table"
  fi
  echo "   agent: notify=$notify" \
    "connections=$(awk '$1 == "portcullis_spoe_connections_total" { print $2 }' "$m")" \
    "protocol-errors=$(awk '$1 == "portcullis_spoe_protocol_errors_total" { print $2 }' "$m")" \
    "cache-hits=$(awk '$1 == "portcullis_cache_lookups_total{result=\"hit\"}" { print $2 }' "$m")" \
    "cache-misses=$(awk '$1 == "portcullis_cache_lookups_total{result=\"miss\"}" { print $2 }' "$m")"
  local measured=$M_REQUESTS
  stop_haproxy
  stop_pid "$pid"  # portcullis writes out its audit queue before it exits
  forget "$pid"
  if [[ -n $audit_file ]]; then
    local lines=0 warm
    [[ -f $audit_file ]] && lines=$(wc -l <"$audit_file")
    warm=$(field requests "$work/warmup-$tag.txt")
    echo "   audit file: $lines line(s) for $measured measured request(s)" \
      "(+ ${warm:-?} in the warm-up, + the checks); /metrics before the stop:" \
      "audit-lines=$(awk '$1 == "portcullis_audit_lines_total" { print $2 }' "$m")" \
      "audit-dropped=$(awk '$1 == "portcullis_audit_dropped_total" { print $2 }' "$m")"
    rm -f "$audit_file"  # can be large; the next row starts with none
  fi
  echo
}
run_spoe "c. spoe, no cache" ""
run_spoe "d. spoe, warm cache" "    cache: { ttl: 60s }"
run_spoe "e. spoe + haproxy-cache" "    cache: { ttl: 60s }" --haproxy-cache

stop_pid "$APP_PID"
forget "$APP_PID"

# ---- summary ----------------------------------------------------------------------------------
note "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
bench_table "haproxy + portcullis + nginx"

# ---- issue #12's SPOE goal: ratios from this run -------------------------------------------
rps_a=$(row_field "a." 2) rps_b=$(row_field "b." 2) rps_d=$(row_field "d." 2)
cpu_a=$(row_field "a." 5) cpu_b=$(row_field "b." 5) cpu_d=$(row_field "d." 5)
echo
echo "issue #12, SPOE goal (this run: $alg, audit $audit; the goal is stated for audit on):"
goal_line "(d) spoe warm cache / (b) jwt_verify, req/s" "$(ratio "$rps_d" "$rps_b")" "$goal_jwt"
goal_line "(d) spoe warm cache / (a) haproxy plain, req/s" "$(ratio "$rps_d" "$rps_a")" "$goal_plain"
goal_line "(b) jwt_verify us / (d) spoe warm cache us, CPU" "$(ratio "$cpu_b" "$cpu_d")" "$goal_jwt"
goal_line "(a) haproxy plain us / (d) spoe warm cache us, CPU" "$(ratio "$cpu_a" "$cpu_d")" "$goal_plain"
echo "CPU lines: server side CPU per request, inverted so that higher is better like req/s (on one"
echo "saturated core req/s = 1 / CPU per request; the CPU ratio is less sensitive to other work on the core)."
[[ $audit == file ]] || echo "NOTE: audit none; the goal is for audit on (BENCH_AUDIT=file)."
disturbed=$(bench_disturbed)
if [[ -n $disturbed ]]; then
  echo "NOTE: rows$disturbed shared CPU $server_cpu with other processes (WARNING lines above): these ratios"
  echo "are not a clean measurement of the goal."
fi
