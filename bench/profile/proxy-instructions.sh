#!/usr/bin/env bash
# User-space instructions per proxied request of portcullis' built-in proxy (#13), counted
# by callgrind: row (d)'s setup of bench/proxy/run.sh (one worker, an RS256 token, a warm
# decision cache, audit to a file, the application nginx `return 200`), portcullis under
# `valgrind --tool=callgrind` with collection in the worker thread only, `wrk -c4` for
# BENCH_DURATION. Instructions do not depend on how busy the machine is, so this tells
# whether a change to the hot path did less work when wall-clock runs are too noisy to say.
# They are not time: cache misses and system calls do not show, and valgrind's CPU has no
# SHA extensions, so OpenSSL's SHA-256 counts several times what it costs on this machine.
#
#   bench/profile/proxy-instructions.sh [path-to-portcullis]     (default: build/portcullis)
#
# Printed: the requests decided (the audit file's lines), instructions per request, and the
# functions with the most instructions per request, inclusive and self (callgrind_annotate).
# Knobs: BENCH_DURATION (8s), BENCH_KEEP=1 (keeps callgrind.out). Needs valgrind.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"
real=${1:-$root/build/portcullis}
[[ $real == /* ]] || real=$PWD/$real

bench_init profile-proxy-instructions 8s 0s wrk nginx valgrind callgrind_annotate curl timeout awk
bench_copy_binary "$real"
bench_tokens "$root/examples/keys/demo.jwk"
bench_bearer_wrk_script

bench_header "built-in proxy, instructions per request (callgrind)"
note "portcullis: $bin_src"
bench_app_nginx
bench_proxy_policy "$work/policy.yaml" 1 "\"file:$work/audit.jsonl\""
# bench_serve runs $bin: a wrapper that runs the copied binary under callgrind.
cat >"$work/under-callgrind" <<SH
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \\
  --toggle-collect='*WorkerPool::start*' "$bin" "\$@"
SH
chmod +x "$work/under-callgrind"
bin=$work/under-callgrind
bench_serve "$work/policy.yaml" "$work/ready.json" "$work/portcullis.log"
pid=$SERVE_PID
[[ -n $SERVE_PROXY ]] || die "portcullis reported no proxy listener: $(cat "$work/ready.json")"
url="http://$SERVE_PROXY/orders/7"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BENCH_TOKEN" "$url")
[[ $code == 200 ]] || die "a valid token got $code, not 200"

pin=(taskset -c "$client_cpu")
[[ $client_cpu == none ]] && pin=()
timeout 60 "${pin[@]}" wrk -t1 -c4 -d"$duration" -s "$work/request.lua" "$url" \
  >"$work/wrk.txt" 2>&1 || die "wrk failed: $(tail -3 "$work/wrk.txt")"
stop_pid "$pid"
forget "$pid"
[[ -s $work/callgrind.out ]] || die "callgrind wrote nothing: $(tail -5 "$work/portcullis.log")"

requests=$(wc -l <"$work/audit.jsonl")
total=$(callgrind_annotate "$work/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
((requests > 0)) || die "no request was decided"
echo "== requests decided: $requests; instructions per request: $((total / requests))"
per_request() {
  awk -v r="$requests" 'NF > 1 && $1 ~ /^[0-9,]+$/ { ir = $1; gsub(",", "", ir); line = $0
    sub(/^ *[0-9,]+ *(\( *[0-9.]+%\))? */, "", line); printf "%8d  %s\n", ir / r, substr(line, 1, 150) }'
}
echo "== inclusive, instructions per request (the 40 largest):"
callgrind_annotate --inclusive=yes "$work/callgrind.out" 2>/dev/null | per_request | sed -n 1,40p
echo "== self, instructions per request (the 25 largest):"
callgrind_annotate "$work/callgrind.out" 2>/dev/null | per_request | sed -n 1,25p
[[ ${BENCH_KEEP:-0} == 1 ]] && note "callgrind output kept: $work/callgrind.out"
exit 0
