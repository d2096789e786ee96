# shellcheck shell=bash
# Shared by the end-to-end benchmark scripts (bench/authz/run.sh, bench/functions/run.sh,
# bench/haproxy/run.sh): knobs, the work directory, processes, ports, wrk and CPU accounting.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
#   bench_init NAME DEFAULT_DURATION DEFAULT_WARMUP TOOL…
#
# bench_init reads the knobs every script has (environment): BENCH_DURATION, BENCH_WARMUP
# (whole seconds, e.g. 8s), BENCH_CONNECTIONS (32), BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU
# (1), BENCH_KEEP=1 (keep the work directory); checks the tools and the two CPUs; makes the
# work directory and sets the exit trap. It sets: duration warmup conns server_cpu
# client_cpu ncpu hz work started (the PIDs this script started: the only ones it ever
# signals, from stop_pid or the trap).
#
# Then:
#   bench_copy_binary BIN   a private copy in $work (a rebuild of the shared build directory
#                           mid-run cannot swap binaries); sets bin (the copy), bin_src
#   bench_header TITLE      the "# …" lines every run starts with: date, host, load
#   bench_serve POLICY READY LOG [ARGS…]  portcullis pinned to the server CPU, until ready;
#                           sets SERVE_PID SERVE_AUTHZ SERVE_ADMIN
#   stop_pid PID; forget PID; port_in_use PORT; free_port; wait_port PORT PID; children PID
#   cpu_ticks PID…; cpu_stat CPU; busy_pct "B0 I0" "B1 I1"; field NAME FILE
#   wrk_run URL DURATION OUTFILE         wrk pinned to the client CPU, with $work/request.lua
#   bench_warmup URL TAG                 a warm-up run, then a short pause
#   bench_measure URL OUTFILE PID…       the measured run with CPU accounting of the PIDs;
#       results in M_REQUESTS M_SECS M_RPS M_P50 M_P99 M_ERRS M_TICKS M_CPU_US M_UTIL
#       M_SBUSY M_CBUSY and M_EACH (per PID: CPU µs per request)
#   bench_wrk_script <<'LUA' … LUA   writes $work/request.lua: the request (wrk.method,
#       wrk.path, wrk.headers…) from stdin, then the done() hook that prints the line
#   RESULT requests=N duration_s=S rps=R p50_us=… p90_us=… p99_us=… p999_us=… max_us=…
#   mean_us=… stdev_us=… err_connect=… err_read=… err_write=… err_status=… err_timeout=…
#       which bench_measure reads.

bench_init() {
  BENCH_NAME=$1
  local default_duration=$2 default_warmup=$3
  shift 3
  duration=${BENCH_DURATION:-$default_duration}
  warmup=${BENCH_WARMUP:-$default_warmup}
  conns=${BENCH_CONNECTIONS:-32}
  server_cpu=${BENCH_SERVER_CPU:-0}
  client_cpu=${BENCH_CLIENT_CPU:-1}
  [[ $duration =~ ^[0-9]+s$ && $warmup =~ ^[0-9]+s$ ]] ||
    die "BENCH_DURATION/BENCH_WARMUP: whole seconds, e.g. $default_duration"
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "'$tool' is not installed"
  done
  ncpu=$(nproc)
  ((server_cpu < ncpu && client_cpu < ncpu && server_cpu != client_cpu)) ||
    die "need two distinct CPUs (server $server_cpu, client $client_cpu; this machine has $ncpu)"
  hz=$(getconf CLK_TCK)
  work=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench-${BENCH_NAME//\//-}.XXXXXX")
  chmod 0711 "$work"   # nginx workers (user nobody) reach their files under it
  started=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

die() { echo "bench/${BENCH_NAME:-?}: $*" >&2; exit 1; }
note() { echo "# $*"; }

# ---- processes ----------------------------------------------------------------------------

# bench_serve POLICY READY LOG [SERVE ARGS…]: `$bin serve` on POLICY, pinned to the server
# CPU, until its ready file names its listeners (bounded: 10 s). Sets SERVE_PID (added to
# `started`, so it is stopped on exit), SERVE_AUTHZ and SERVE_ADMIN (IP:PORT, or empty).
bench_serve() {
  local policy=$1 ready=$2 log=$3 i
  shift 3
  taskset -c "$server_cpu" "$bin" serve -c "$policy" --ready-file "$ready" "$@" >"$log" 2>&1 &
  SERVE_PID=$!
  started+=("$SERVE_PID")
  for ((i = 0; i < 100; i++)); do
    [[ -s $ready ]] && break
    kill -0 "$SERVE_PID" 2>/dev/null || die "portcullis exited: $(tail -5 "$log")"
    sleep 0.1
  done
  [[ -s $ready ]] || die "portcullis did not become ready in 10 s"
  SERVE_AUTHZ=$(sed -n 's/.*"authz":"\([^"]*\)".*/\1/p' "$ready")
  SERVE_ADMIN=$(sed -n 's/.*"admin":"\([^"]*\)".*/\1/p' "$ready")
}
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
forget() {  # drop a PID from the started list once it is stopped
  local keep=() p
  for p in "${started[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  started=("${keep[@]}")
}
bench_cleanup() {
  local pid
  for pid in "${started[@]}"; do stop_pid "$pid"; done
  started=()
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "# work directory kept: $work"; else rm -rf "$work"; fi
}
children() { cat "/proc/$1/task/$1/children" 2>/dev/null || true; }

# ---- ports --------------------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {  # a loopback port with nobody listening on it, below the ephemeral range
  local p i low=32768   # (an outgoing connection could take an ephemeral one before the bind)
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  ((low > 21000)) || low=32768
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % (low - 20000)))
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

# ---- CPU accounting -----------------------------------------------------------------------
# CPU time (clock ticks) of PIDs: utime + stime, fields 14 and 15 of /proc/PID/stat (counted
# after the ") " that ends the command name). A PID's total covers all its threads.
cpu_ticks() {
  local total=0 pid t
  for pid; do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null) || t=0
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
# "BUSY IDLE" ticks of one CPU from /proc/stat (busy = user nice system irq softirq steal).
cpu_stat() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
busy_pct() {  # busy_pct "BUSY0 IDLE0" "BUSY1 IDLE1"
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    d = (y[1] - x[1]) + (y[2] - x[2]); printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }'
}

# ---- inputs and output --------------------------------------------------------------------
bench_copy_binary() {
  [[ -x $1 ]] || die "no portcullis binary at $1 (build it, or pass its path)"
  cp "$1" "$work/portcullis" || die "cannot copy $1"
  bin_src=$1
  bin=$work/portcullis
}
bench_header() {  # bench_header TITLE
  note "$1, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  note "host: $(uname -srm), $ncpu CPU(s): $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  note "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  if awk '{ exit !($1 > 0.7) }' /proc/loadavg; then
    note "WARNING: the machine is busy (1-min load above 0.7); numbers will be low and noisy"
  fi
}

# ---- wrk ----------------------------------------------------------------------------------
bench_wrk_script() {
  {
    cat
    cat <<'LUA'

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
  } >"$work/request.lua"
}
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" "$2" | tail -1; }
wrk_run() {  # wrk_run URL DURATION OUTFILE
  local secs=${2%s}
  timeout $((secs + 30)) taskset -c "$client_cpu" \
    wrk -t1 -c"$conns" -d"$2" --latency -s "$work/request.lua" "$1" >"$3" 2>&1 ||
    die "wrk failed against $1: $(tail -3 "$3")"
}
bench_warmup() {  # bench_warmup URL TAG
  wrk_run "$1" "$warmup" "$work/warmup-$2.txt"
  sleep 0.5
}
bench_measure() {  # bench_measure URL OUTFILE PID…
  local url=$1 out=$2
  shift 2
  local t0 t1 s0 s1 c0 c1 pid i
  local -a each0=() each1=()
  s0=$(cpu_stat "$server_cpu")
  c0=$(cpu_stat "$client_cpu")
  for pid; do each0+=("$(cpu_ticks "$pid")"); done
  t0=$(cpu_ticks "$@")
  wrk_run "$url" "$duration" "$out"
  t1=$(cpu_ticks "$@")
  for pid; do each1+=("$(cpu_ticks "$pid")"); done
  s1=$(cpu_stat "$server_cpu")
  c1=$(cpu_stat "$client_cpu")
  grep -q '^RESULT ' "$out" || die "no RESULT line from wrk against $url: $(tail -5 "$out")"
  M_REQUESTS=$(field requests "$out")
  M_SECS=$(field duration_s "$out")
  M_RPS=$(field rps "$out")
  M_P50=$(field p50_us "$out")
  M_P99=$(field p99_us "$out")
  M_ERRS=$(($(field err_connect "$out") + $(field err_read "$out") + $(field err_write "$out") +
    $(field err_status "$out") + $(field err_timeout "$out")))
  M_TICKS=$((t1 - t0))
  M_CPU_US=$(awk -v d="$M_TICKS" -v hz="$hz" -v n="$M_REQUESTS" 'BEGIN { printf "%.1f", n ? d * 1e6 / hz / n : 0 }')
  M_UTIL=$(awk -v d="$M_TICKS" -v hz="$hz" -v s="$M_SECS" 'BEGIN { printf "%.0f", 100 * d / hz / s }')
  M_SBUSY=$(busy_pct "$s0" "$s1")
  M_CBUSY=$(busy_pct "$c0" "$c1")
  M_EACH=()
  for ((i = 0; i < ${#each0[@]}; i++)); do
    M_EACH+=("$(awk -v d=$((each1[i] - each0[i])) -v hz="$hz" -v n="$M_REQUESTS" 'BEGIN { printf "%.1f", n ? d * 1e6 / hz / n : 0 }')")
  done
}
