#!/usr/bin/env bash
# Where the built-in proxy (#13) spends its CPU: portcullis `listeners.proxy` forwarding an
# RS256 token's requests (warm decision cache, audit per PROFILE_AUDIT, one worker pinned to
# CPU 0, with the application nginx `return 200` on the same CPU, as row (d) of
# bench/proxy/run.sh) under wrk (CPU 1), sampled by `perf record -e cpu-clock -g` for the
# middle of the run. Printed: the self time grouped by what the code does
# (categorize.awk), the hottest symbols, the time split between user space and each system
# call (syscalls.awk, from the kernel stacks), and the system calls made per request
# (`perf stat` on the syscall tracepoints, in a second run). PROFILE_TARGET=haproxy or
# nginx profiles, the same way, HAProxy plain proxying or nginx proxy_pass (rows b and a of
# bench/proxy/run.sh, one thread / worker) instead: the comparison for the split and the
# system calls. Not run by bench/run-all (it needs perf and the right to use it). The
# figures to compare are in bench/proxy/run.sh; this script says where the microseconds go.
#
#   bench/profile/proxy.sh [path-to-portcullis]       (default: build/portcullis)
#
# Knobs: PROFILE_TARGET (portcullis | haproxy | nginx; default portcullis), BENCH_DURATION
# (10s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (32), BENCH_SERVER_CPU, BENCH_CLIENT_CPU,
# PROFILE_SECONDS (6: how long perf samples), PROFILE_AUDIT (file, or none), BENCH_KEEP=1
# (keeps perf.data). Needs perf (Debian: linux-perf) and permission to profile the server
# (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"
bin=${1:-$root/build/portcullis}
[[ $bin == /* ]] || bin=$PWD/$bin
profile_seconds=${PROFILE_SECONDS:-6}
audit=${PROFILE_AUDIT:-file}
[[ $audit == none || $audit == file ]] || { echo "PROFILE_AUDIT: none or file" >&2; exit 2; }
target=${PROFILE_TARGET:-portcullis}
case $target in
  portcullis | haproxy | nginx) ;;
  *) echo "PROFILE_TARGET: portcullis, haproxy or nginx" >&2; exit 2 ;;
esac

bench_init profile-proxy 10s 3s wrk perf nginx haproxy taskset curl timeout awk
secs=${duration%s}
((profile_seconds + 2 <= secs)) || die "PROFILE_SECONDS must be at least 2 s shorter than BENCH_DURATION"
bench_copy_binary "$bin"
bench_tokens "$root/examples/keys/demo.jwk"
sink=none
[[ $audit == file ]] && sink="\"file:$work/audit.jsonl\""

bench_bearer_wrk_script

bench_header "built-in proxy profile: $target"
note "portcullis: $bin_src, audit: $audit, perf samples ${profile_seconds}s of the measured run"
bench_app_nginx
case $target in
  portcullis)
    bench_proxy_policy "$work/policy.yaml" 1 "$sink"
    bench_serve "$work/policy.yaml" "$work/ready.json" "$work/portcullis.log"
    pid=$SERVE_PID
    [[ -n $SERVE_PROXY ]] || die "portcullis reported no proxy listener: $(cat "$work/ready.json")"
    url="http://$SERVE_PROXY/orders/7"
    bench_check "proxy" "$url" auth
    ;;
  haproxy)  # as row (b) of bench/proxy/run.sh, one thread
    port=$(free_port)
    cat >"$work/haproxy.cfg" <<CFG
global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:$port
    default_backend app
backend app
    http-reuse always
    server app 127.0.0.1:$APP_PORT
CFG
    start_haproxy "$work/haproxy.cfg"
    pid=$HAPROXY_PID
    wait_port "$port" "$pid" || die "haproxy did not start: $(cat "$work/haproxy.cfg.log")"
    url="http://127.0.0.1:$port/orders/7"
    bench_check "haproxy" "$url" plain
    ;;
  nginx)  # as row (a) of bench/proxy/run.sh, one worker; perf follows the worker
    dir=$work/nginx-front
    mkdir -p "$dir"
    port=$(free_port)
    nginx_proxy_front_conf "$dir" 1 "$port"
    bench_start_nginx "$dir" front-nginx "$port" || die "nginx (the front) did not start"
    pid=${NGX_PIDS[1]}
    url="http://127.0.0.1:$port/orders/7"
    bench_check "nginx" "$url" plain
    ;;
esac
bench_warmup "$url" warmup

# perf record for PROFILE_SECONDS from 1 s into the measured run; then, in a second
# measured run, perf stat counts portcullis' system calls over the same span.
(sleep 1 && timeout $((profile_seconds + 30)) perf record -q -e cpu-clock -F 2999 -g -p "$pid" \
  -o "$work/perf.data" -- sleep "$profile_seconds" >"$work/perf.log" 2>&1) &
perf_job=$!
bench_measure "$url" "$work/wrk.txt" "$pid" "${APP_PIDS[@]}"
wait "$perf_job" || die "perf record failed: $(tail -3 "$work/perf.log")"
own_us=${M_EACH[0]}
scale() {  # percentages (first field) to us of own_us per request
  awk -v us="$own_us" '{ pct = $1; sub(/%/, "", pct); printf "%7s %6.2f us  ", $1, pct * us / 100; $1 = ""; print substr($0, 2) }'
}

echo "== wrk -t1 -c$conns -d$duration: $M_RPS req/s, p50 ${M_P50} us, p99 ${M_P99} us, errors $M_ERRS"
echo "== server side CPU: $M_CPU_US us/request ($M_UTIL% of CPU $server_cpu); $target's own:" \
  "$own_us us/request, the application nginx: the rest (the perf sampling adds a little)"
echo "== $target: where the time went (perf, ${profile_seconds}s, kernel stacks), us of its $own_us per request:"
perf script -i "$work/perf.data" -F ip,sym 2>/dev/null | awk -f "$here/syscalls.awk" | scale
echo "== $target self time by what the code does, us of its $own_us per request:"
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
  awk -f "$here/categorize.awk" | scale
echo "== the 30 hottest symbols (self):"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
  awk '!/^#/ && NF >= 3 && n++ < 30 { line = $0; gsub(/ +/, " ", line); print substr(line, 1, 140) }'
# System calls per request: a second run, counted by perf stat on the raw_syscalls and
# syscalls tracepoints (skipped if the kernel has none), with the recvfrom that found
# nothing to read (EAGAIN) counted apart.
events=$(perf list 2>/dev/null | awk '/syscalls:sys_enter_(recvfrom|sendto|read|write|writev|readv|epoll_wait|epoll_pwait|epoll_ctl|sendmsg|recvmsg|futex|poll|ppoll|accept4|connect|close|socket|clock_gettime|getsockopt|setsockopt)[[:space:]]/ { print $1 }' | paste -sd, -)
if [[ -n $events ]]; then
  (sleep 1 && timeout $((profile_seconds + 30)) perf stat -x, -e "raw_syscalls:sys_enter,$events" \
    -e syscalls:sys_exit_recvfrom --filter 'ret == -11' -p "$pid" \
    -o "$work/perf-stat.txt" -- sleep "$profile_seconds" >/dev/null 2>&1) &
  perf_job=$!
  wrk_run "$url" "$duration" "$work/wrk-stat.txt"
  wait "$perf_job" || die "perf stat failed"
  rps=$(field rps "$work/wrk-stat.txt")
  echo "== system calls per request (perf stat over ${profile_seconds}s at $rps req/s):"
  awk -F, -v n="$rps" -v s="$profile_seconds" '$1 ~ /^[0-9]+$/ && $1 > 0 {
    name = $3; if (name == "syscalls:sys_exit_recvfrom") name = "  of which recvfrom -> EAGAIN"
    printf "   %-40s %8.3f\n", name, $1 / (n * s) }' "$work/perf-stat.txt"
else
  echo "== system calls per request: skipped (no syscalls tracepoints in this kernel)"
fi
[[ ${BENCH_KEEP:-0} == 1 ]] && note "perf.data kept: $work/perf.data"
exit 0
