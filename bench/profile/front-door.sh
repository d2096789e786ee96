#!/usr/bin/env bash
# Where the HTTP front door spends its CPU: portcullis authz answering a decision-cache hit
# (RS256 token, `audit: none`, one worker pinned to CPU 0) under wrk (CPU 1), sampled by
# `perf record` for the middle of the run, and grouped by what the code does
# (categorize.awk). Not run by bench/run-all (it needs perf and the right to use it). The figure to compare with nginx is in bench/authz/run.sh
# (BENCH_CACHE=1); this script says where the microseconds go.
#
#   bench/profile/front-door.sh [path-to-portcullis]       (default: build/portcullis)
#
# Knobs: BENCH_DURATION (10s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (32), BENCH_SERVER_CPU,
# BENCH_CLIENT_CPU, PROFILE_SECONDS (6: how long perf samples), PROFILE_AUDIT (none, or
# file: the audit line written to a file in the work directory), BENCH_KEEP=1 (keeps
# perf.data). Needs perf (Debian: linux-perf) and permission to profile the server
# (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"
bin=${1:-$root/build/portcullis}
[[ $bin == /* ]] || bin=$PWD/$bin
profile_seconds=${PROFILE_SECONDS:-6}
audit=${PROFILE_AUDIT:-none}
[[ $audit == none || $audit == file ]] || { echo "PROFILE_AUDIT: none or file" >&2; exit 2; }

bench_init profile 10s 3s wrk perf taskset curl timeout awk
bench_copy_binary "$bin"
token=$("$bin" token --key "$root/examples/keys/demo.jwk" --sub alice --aud orders-api \
  --scope 'read:orders' --ttl 2h)
export BENCH_TOKEN=$token
sink=none
[[ $audit == file ]] && sink="file:$work/audit.jsonl"

bench_wrk_script <<'LUA'
wrk.method = "GET"
wrk.path = "/"
wrk.headers["X-Original-URI"] = "/orders/7"
wrk.headers["X-Original-Method"] = "GET"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
LUA

cat >"$work/policy.yaml" <<YAML
version: 1
workers: 1
listeners: { authz: 127.0.0.1:0, admin: 127.0.0.1:0 }
watch: { enabled: false }
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $root/examples/keys/demo-jwks.json
    audiences: [orders-api]
    algorithms: [RS256]
routes:
  - name: orders-read
    match: { paths: [/orders, /orders/*], methods: [GET, HEAD] }
    authenticate: [demo]
    require: { scopes: [read:orders] }
    cache: { ttl: 300s }
default: deny
audit: { sink: "$sink" }
YAML

bench_header "portcullis HTTP front door profile"
note "binary: $bin_src, audit: $audit, perf samples ${profile_seconds}s of the measured run"
bench_serve "$work/policy.yaml" "$work/ready.json" "$work/portcullis.log"
pid=$SERVE_PID
url="http://$SERVE_AUTHZ/"
ok=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Original-URI: /orders/7' \
  -H "Authorization: Bearer $token" "$url")
[[ $ok == 200 ]] || die "sanity check: expected 200, got $ok"
bench_warmup "$url" warmup

secs=${duration%s}
((profile_seconds + 2 <= secs)) || die "PROFILE_SECONDS must be at least 2 s shorter than BENCH_DURATION"
(sleep 1 && timeout $((profile_seconds + 30)) perf record -q -F 2999 -g -p "$pid" \
  -o "$work/perf.data" -- sleep "$profile_seconds" >"$work/perf.log" 2>&1) &
perf_job=$!
bench_measure "$url" "$work/wrk.txt" "$pid"
wait "$perf_job" || die "perf record failed: $(tail -3 "$work/perf.log")"

echo "== wrk -t1 -c$conns -d$duration: $M_RPS req/s, p50 ${M_P50} us, p99 ${M_P99} us, errors $M_ERRS"
echo "== server CPU: $M_CPU_US us/request ($M_UTIL% of CPU $server_cpu; the perf sampling adds a little)"
echo "== self time by what the code does (perf, ${profile_seconds}s):"
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
  awk -f "$here/categorize.awk" |
  awk -v us="$M_CPU_US" '{ pct = $1; sub(/%/, "", pct); printf "%s  %5.2f us  ", $1, pct * us / 100; $1 = ""; print substr($0, 2) }'
echo "== the 25 hottest symbols:"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
  awk '!/^#/ && NF >= 3 && n++ < 25 { line = $0; gsub(/ +/, " ", line); print substr(line, 1, 120) }'
if [[ ${BENCH_KEEP:-0} == 1 ]]; then note "perf.data kept: $work/perf.data"; fi
