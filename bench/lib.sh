# shellcheck shell=bash
# Shared by the end-to-end benchmark scripts (bench/authz/run.sh, bench/functions/run.sh,
# bench/haproxy/run.sh, bench/proxy/run.sh…): knobs, the work directory, processes, ports,
# wrk and CPU accounting; the application nginx, HAProxy, demo tokens and the jwt_verify
# rules that the HAProxy and proxy benchmarks share.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
#   bench_init NAME DEFAULT_DURATION DEFAULT_WARMUP TOOL…
#
# bench_init reads the knobs every script has (environment): BENCH_DURATION, BENCH_WARMUP
# (whole seconds, e.g. 8s), BENCH_CONNECTIONS (32), BENCH_SERVER_CPU (0; a taskset list such
# as 0-1 pins the server side to several CPUs), BENCH_CLIENT_CPU (1; `none` leaves wrk
# unpinned, sharing the machine with the server side), BENCH_KEEP=1 (keep the work
# directory); checks the tools and the CPUs (the client's must not be one of the server's);
# makes the work directory and sets the exit trap. It sets: duration warmup conns server_cpu
# server_ncpu client_cpu ncpu hz work started (the PIDs this script started: the only ones it
# ever signals, from stop_pid or the trap) and BENCH_ROLE (PID -> what it is, for the
# per-process CPU lines; a PID without a role is shown by its command name).
#
# Then:
#   bench_copy_binary BIN   a private copy in $work (a rebuild of the shared build directory
#                           mid-run cannot swap binaries); sets bin (the copy), bin_src
#   bench_header TITLE      the "# …" lines every run starts with: date, host, load
#   bench_serve POLICY READY LOG [ARGS…]  portcullis pinned to the server CPU, until ready;
#                           sets SERVE_PID SERVE_AUTHZ SERVE_ADMIN
#   stop_pid PID; forget PID; port_in_use PORT; free_port; wait_port PORT PID; children PID
#   cpu_ticks PID…; cpu_list LIST; cpu_stat LIST|none; busy_pct "B0 I0" "B1 I1"; field NAME FILE
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
#   bench_row NAME URL PID…   warm-up, measured run, printed, appended to `rows`;
#   bench_table LABEL         the table of `rows`; row_field, ratio, goal_line for the goals
#
# Shared targets and inputs (bench/haproxy/run.sh, bench/proxy/run.sh):
#   bench_tokens KEY [TOKEN ARGS…]   sets token expired bad_sig, exports BENCH_TOKEN
#   bench_jwt_pem KEY ALG OUT        the JWK's public half as PEM, for jwt_verify
#   haproxy_jwt_rules ALG PEM        the frontend's jwt_verify + iss/aud/exp rules
#   bench_start_nginx DIR WHAT PORT  nginx on DIR/nginx.conf, pinned; sets NGX_PID NGX_PIDS
#   bench_app_nginx                  the application: `return 200 "user=$http_x_user"`;
#                                    sets APP_PORT APP_PID APP_PIDS
#   start_haproxy CFG / stop_haproxy HAProxy pinned to the server side; sets HAPROXY_PID
#   bench_check NAME URL auth|plain  the checks before a target is measured

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
  local cpus c
  cpus=$(cpu_list "$server_cpu") || die "BENCH_SERVER_CPU: a CPU or a list (0, 0-1, 0,1), not '$server_cpu'"
  server_ncpu=0
  for c in $cpus; do
    ((c < ncpu)) || die "BENCH_SERVER_CPU $server_cpu: this machine has $ncpu CPU(s)"
    server_ncpu=$((server_ncpu + 1))
  done
  if [[ $client_cpu != none ]]; then
    if ! [[ $client_cpu =~ ^[0-9]+$ ]] || ((client_cpu >= ncpu)) || grep -qx "$client_cpu" <<<"$cpus"; then
      die "need two distinct CPUs (server $server_cpu, client $client_cpu; this machine has $ncpu)"
    fi
  fi
  hz=$(getconf CLK_TCK)
  work=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench-${BENCH_NAME//\//-}.XXXXXX")
  chmod 0711 "$work"   # nginx workers (user nobody) reach their files under it
  started=()
  declare -gA BENCH_ROLE=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

die() { echo "bench/${BENCH_NAME:-?}: $*" >&2; exit 1; }
note() { echo "# $*"; }

# ---- processes ----------------------------------------------------------------------------

# bench_serve POLICY READY LOG [SERVE ARGS…]: `$bin serve` on POLICY, pinned to the server
# CPU(s), until its ready file names its listeners (bounded: 10 s). Sets SERVE_PID (added to
# `started`, so it is stopped on exit), SERVE_AUTHZ, SERVE_PROXY and SERVE_ADMIN (IP:PORT, or
# empty).
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
  SERVE_PROXY=$(sed -n 's/.*"proxy":"\([^"]*\)".*/\1/p' "$ready")
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
# cpu_list LIST: the CPUs of a taskset-style list (0, 0-1, 0,2-3), one per line; fails on
# anything else.
cpu_list() {
  local part c
  local -a parts
  IFS=, read -ra parts <<<"$1"
  ((${#parts[@]} > 0)) || return 1
  for part in "${parts[@]}"; do
    if [[ $part =~ ^([0-9]{1,4})-([0-9]{1,4})$ ]]; then
      for ((c = 10#${BASH_REMATCH[1]}; c <= 10#${BASH_REMATCH[2]}; c++)); do echo "$c"; done
    elif [[ $part =~ ^[0-9]{1,4}$ ]]; then
      echo "$((10#$part))"
    else
      return 1
    fi
  done
}
# cpu_stat LIST: "BUSY IDLE" ticks of the CPUs of LIST from /proc/stat (busy = user nice
# system irq softirq steal); `none`: of the whole machine.
cpu_stat() {
  local want=cpu c
  if [[ $1 != none ]]; then
    want=
    for c in $(cpu_list "$1"); do want+=" cpu$c"; done
  fi
  awk -v w=" $want " 'index(w, " " $1 " ") { b += $2 + $3 + $4 + $7 + $8 + $9; i += $5 + $6 }
    END { print b + 0, i + 0 }' /proc/stat
}
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
# bench_bearer_wrk_script: the request of every token row here, GET /orders/7 with
# `Authorization: Bearer $BENCH_TOKEN` (bench_tokens), as bench_wrk_script's request.lua.
bench_bearer_wrk_script() {
  bench_wrk_script <<'LUA'
-- The client request of every row: each front sees exactly these bytes.
wrk.method = "GET"
wrk.path = "/orders/7"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
LUA
}
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" "$2" | tail -1; }
wrk_run() {  # wrk_run URL DURATION OUTFILE (wrk pinned to the client CPU, unless `none`)
  local secs=${2%s}
  local -a pin=(taskset -c "$client_cpu")
  [[ $client_cpu == none ]] && pin=()
  timeout $((secs + 30)) "${pin[@]}" \
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

# ---- one row, the table, the goals ----------------------------------------------------------
# bench_row NAME URL PID…: warm-up, then the measured run with CPU accounting of the PIDs
# (the whole server side); prints wrk's output, the CPU per request in total and per process
# (BENCH_ROLE[PID], else its command name) and how busy the CPUs were; appends
# "name|rps|p50_us|p99_us|cpu_us_per_req|server_util%|server_busy%|client_busy%|errors" to
# `rows` (which the caller declares).
bench_row() {
  local name=$1 url=$2
  shift 2
  local tag=${name//[^a-zA-Z0-9]/_}
  local out="$work/wrk-$tag.txt"
  bench_warmup "$url" "$tag"
  bench_measure "$url" "$out" "$@"
  echo "== $name: wrk -t1 -c$conns -d$duration --latency $url"
  sed 's/^/   /' "$out"
  echo "   server side CPU: $M_TICKS ticks (CLK_TCK $hz) over ${M_SECS}s = $M_CPU_US us/request," \
    "${M_UTIL}% of one CPU"
  local split="" i=0 pid what
  for pid; do
    what=${BENCH_ROLE[$pid]:-$(cat "/proc/$pid/comm" 2>/dev/null || echo "?")}
    split+=" $what($pid)=${M_EACH[i]}"
    i=$((i + 1))
  done
  echo "   per process, us/request:$split"
  if [[ $client_cpu == none ]]; then
    echo "   CPU(s) $server_cpu (server side, and wrk unpinned) ${M_SBUSY}% busy, the whole machine ${M_CBUSY}% busy"
  else
    echo "   CPU(s) $server_cpu (server side) ${M_SBUSY}% busy, CPU $client_cpu (wrk) ${M_CBUSY}% busy, from /proc/stat"
    local extra=$((M_SBUSY - M_UTIL / server_ncpu))
    if ((extra > 5)); then
      echo "   WARNING: CPU(s) $server_cpu were $extra points busier than the server side: another process shared them"
    fi
  fi
  ((M_ERRS == 0)) || echo "   WARNING: $M_ERRS error(s) (socket errors or non-2xx answers)"
  rows+=("$name|$M_RPS|$M_P50|$M_P99|$M_CPU_US|$M_UTIL%|$M_SBUSY%|$M_CBUSY%|$M_ERRS")
}
# bench_table LABEL: the table of `rows`, then what its columns mean (LABEL: the server side's
# processes, e.g. "haproxy + portcullis + nginx").
bench_table() {
  local row name rps p50 p99 cpu util sbusy cbusy errs scol=cpu$server_cpu ccol=cpu$client_cpu
  [[ $client_cpu == none ]] && ccol=all
  printf '%-32s %10s %9s %9s %11s %7s %7s %7s %7s\n' target req/s p50_ms p99_ms us/request server \
    "$scol" "$ccol" errors
  for row in "${rows[@]}"; do
    IFS='|' read -r name rps p50 p99 cpu util sbusy cbusy errs <<<"$row"
    printf '%-32s %10.0f %9.3f %9.3f %11s %7s %7s %7s %7s\n' "$name" "$rps" \
      "$(awk -v u="$p50" 'BEGIN { print u / 1000 }')" "$(awk -v u="$p99" 'BEGIN { print u / 1000 }')" \
      "$cpu" "$util" "$sbusy" "$cbusy" "$errs"
  done
  echo "us/request: CPU time of the whole server side ($1) per request;"
  echo "server: that CPU time as a share of one CPU; $scol, $ccol: how busy those CPUs were,"
  if [[ $client_cpu == none ]]; then
    echo "all causes, wrk included (wrk is unpinned); errors: wrk socket errors + non-2xx/3xx answers."
  else
    echo "all causes ($ccol near 100% = wrk-bound); errors: wrk socket errors + non-2xx/3xx answers."
  fi
}
# bench_disturbed: the letters of the rows whose server CPUs another process shared (the
# WARNING of bench_row); nothing when wrk is unpinned (it shares them by design).
bench_disturbed() {
  local row name util sbusy out=""
  [[ $client_cpu == none ]] && return 0
  for row in "${rows[@]}"; do
    IFS='|' read -r name _ _ _ _ util sbusy _ _ <<<"$row"
    ((${sbusy%\%} - ${util%\%} / server_ncpu > 5)) && out+=" ${name%%.*}"
  done
  echo "$out"
}
# row_field PREFIX N: field N (1 name, 2 req/s, 5 us/request) of the row whose name starts
# with PREFIX (0 if none).
row_field() {
  local row
  for row in "${rows[@]}"; do
    [[ $row == "$1"* ]] && { cut -d'|' -f"$2" <<<"$row"; return 0; }
  done
  echo 0
}
goal_line() {  # goal_line LABEL RATIO GOAL
  awk -v l="$1" -v r="$2" -v g="$3" 'BEGIN {
    printf "%-52s %6.2fx   goal >= %.1fx   %s\n", l, r, g, ((r + 0 >= g + 0) ? "met" : "not met") }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", ((b + 0 > 0) ? a / b : 0) }'; }

# ---- shared targets and inputs --------------------------------------------------------------
# bench_tokens KEY [TOKEN ARGS…]: a token for alice and orders-api valid 2 h (`token`), the
# same expired an hour ago (`expired`) and the first with one signature character changed
# (`bad_sig`); exports BENCH_TOKEN for $work/request.lua. Needs $bin.
bench_tokens() {
  local key=$1 now sig r
  shift
  token=$("$bin" token --key "$key" --sub alice --aud orders-api "$@" --ttl 2h)
  now=$(date +%s)
  expired=$("$bin" token --key "$key" --sub alice --aud orders-api "$@" \
    --iat $((now - 7200)) --exp $((now - 3600)))
  sig=${token##*.}
  [[ ${sig:20:1} == A ]] && r=B || r=A
  bad_sig="${token%.*}.${sig:0:20}$r${sig:21}"
  export BENCH_TOKEN=$token
}

# bench_jwt_pem KEY ALG OUT: the demo key's public half as PEM, for jwt_verify: an ASN.1
# SubjectPublicKeyInfo built by openssl (no other tool needed) from the JWK's n and e
# (RS256) or x and y (ES256, P-256: the uncompressed point 04||x||y in the BIT STRING).
b64url_hex() {
  local s=$1
  s=${s//-/+}
  s=${s//_//}
  while ((${#s} % 4)); do s+="="; done
  printf '%s' "$s" | base64 -d | od -An -v -tx1 | tr -d ' \n'
}
bench_jwt_pem() {
  local key=$1 alg=$2 out=$3 ec_x ec_y
  jwk_field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" "$key" | head -1; }
  if [[ $alg == RS256 ]]; then
    cat >"$out.cnf" <<CNF
asn1=SEQUENCE:spki
[spki]
alg=SEQUENCE:rsa_alg
key=BITWRAP,SEQUENCE:rsapub
[rsa_alg]
oid=OID:rsaEncryption
null=NULL
[rsapub]
n=INTEGER:0x$(b64url_hex "$(jwk_field n)")
e=INTEGER:0x$(b64url_hex "$(jwk_field e)")
CNF
  else
    [[ $(jwk_field crv) == P-256 ]] || die "$key: not a P-256 key"
    ec_x=$(b64url_hex "$(jwk_field x)")
    ec_y=$(b64url_hex "$(jwk_field y)")
    ((${#ec_x} == 64 && ${#ec_y} == 64)) || die "$key: x and y must be 32 bytes each"
    cat >"$out.cnf" <<CNF
asn1=SEQUENCE:spki
[spki]
alg=SEQUENCE:ec_alg
key=FORMAT:HEX,BITSTRING:04$ec_x$ec_y
[ec_alg]
oid=OID:id-ecPublicKey
curve=OID:prime256v1
CNF
  fi
  openssl asn1parse -genconf "$out.cnf" -out "$out.der" -noout >/dev/null &&
    openssl pkey -pubin -inform DER -in "$out.der" -out "$out" &&
    openssl pkey -pubin -in "$out" -noout ||
    die "could not write the demo key as PEM"
}

# haproxy_jwt_rules ALG PEM: the `http-request` lines of a frontend that does HAProxy 2.6's
# own JWT check (http_auth_bearer, jwt_header_query, jwt_payload_query, jwt_verify): alg,
# iss portcullis-dev, aud orders-api, exp in the future, the signature; 401 otherwise; then
# X-User from sub (a client's X-User removed first) — the rules portcullis applies.
haproxy_jwt_rules() {
  cat <<CFG
    http-request del-header X-User
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
    http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('\$.iss')
    http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('\$.aud')
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
    http-request set-var(txn.now) date()
    http-request return status 401 hdr WWW-Authenticate 'Bearer realm="haproxy"' unless { var(txn.bearer) -m found }
    http-request return status 401 unless { var(txn.alg) -m str $1 }
    http-request return status 401 unless { var(txn.iss) -m str portcullis-dev }
    http-request return status 401 unless { var(txn.aud) -m str orders-api }
    http-request return status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
    http-request return status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"$2") -m int 1 }
    http-request set-header X-User %[var(txn.bearer),jwt_payload_query('\$.sub')]
CFG
}

# bench_start_nginx DIR WHAT PORT: nginx on DIR/nginx.conf (written by the caller, listening
# on PORT, logs under DIR), pinned to the server CPU(s), until it listens and its workers
# exist (bounded: 10 s and 5 s). Sets NGX_PID (the master, in `started`) and NGX_PIDS
# (master and workers, with roles WHAT-master / WHAT-worker). Returns 1, with nginx
# stopped again, if it did not come up (the port taken meanwhile, say).
bench_start_nginx() {
  local dir=$1 what=$2 port=$3 kids='' i pid
  taskset -c "$server_cpu" nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  NGX_PID=$!
  started+=("$NGX_PID")
  if wait_port "$port" "$NGX_PID"; then
    for ((i = 0; i < 50; i++)); do
      kids=$(children "$NGX_PID")
      [[ -n $kids ]] && break
      sleep 0.1
    done
  fi
  if [[ -z $kids ]]; then
    stop_pid "$NGX_PID"
    forget "$NGX_PID"
    return 1
  fi
  sleep 0.2  # all workers forked (worker_processes > 1)
  kids=$(children "$NGX_PID")
  # shellcheck disable=SC2206  # a space-separated list of PIDs
  NGX_PIDS=("$NGX_PID" $kids)
  BENCH_ROLE[$NGX_PID]=$what-master
  for pid in $kids; do BENCH_ROLE[$pid]=$what-worker; done
}
# nginx_conf_head DIR WORKERS: the first lines of an nginx configuration with everything
# under DIR (the caller writes the servers and closes `http {`).
nginx_conf_head() {
  cat <<NGINX
worker_processes $2;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
  keepalive_requests 1000000;
NGINX
}

# nginx_proxy_front_conf DIR WORKERS PORT: DIR/nginx.conf for nginx as a front, `proxy_pass`
# to the application on APP_PORT over kept-alive HTTP/1.1 connections (row (a) of
# bench/proxy/run.sh and its profile).
nginx_proxy_front_conf() {
  local dir=$1 workers=$2 port=$3
  {
    nginx_conf_head "$dir" "$workers"
    cat <<NGINX
  upstream app {
    server 127.0.0.1:$APP_PORT;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$port${BENCH_TLS_DIR:+ ssl http2};
${BENCH_TLS_DIR:+    ssl_certificate $BENCH_TLS_DIR/server.pem;
    ssl_certificate_key $BENCH_TLS_DIR/server.key;
    ssl_session_cache shared:tls:1m;}
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
  } >"$dir/nginx.conf"
}
# bench_app_nginx: the application every target proxies to: nginx, one worker, `return 200
# "user=$http_x_user\n"` (the body shows which X-User reached it). Sets APP_PORT APP_PID
# APP_PIDS (master and worker).
bench_app_nginx() {
  local dir=$work/nginx
  mkdir -p "$dir"
  for _ in 1 2 3 4 5; do
    APP_PORT=$(free_port)
    {
      nginx_conf_head "$dir" 1
      cat <<NGINX
  server {
    listen 127.0.0.1:$APP_PORT;
    location / { default_type text/plain; return 200 "user=\$http_x_user\n"; }
  }
}
NGINX
    } >"$dir/nginx.conf"
    if bench_start_nginx "$dir" upstream-nginx "$APP_PORT"; then
      APP_PID=$NGX_PID
      APP_PIDS=("${NGX_PIDS[@]}")
      return 0
    fi
  done
  die "nginx (the application) did not start: $(tail -3 "$dir/error.log" 2>/dev/null)"
}

# bench_proxy_policy FILE WORKERS SINK [LISTENER] [EXTRA]: row (d) of bench/proxy/run.sh as
# a policy: the built-in proxy in front of the application (bench_app_nginx), one provider
# (examples/keys/demo-jwks.json: RS256 and ES256), one route `/**` with a 60 s decision
# cache and X-User from sub, audit to SINK (`none` or `"file:PATH"`). LISTENER: proxy
# (default) or proxy_tls; EXTRA: more top-level YAML (a `tls:` block).
bench_proxy_policy() {
  local file=$1 workers=$2 sink=$3 listener=${4:-proxy} extra=${5:-}
  cat >"$file" <<YAML
# Generated by bench/lib.sh bench_proxy_policy: the proxy, one provider, one cached route.
version: 1
workers: $workers
listeners:
  $listener: 127.0.0.1:0
  admin: 127.0.0.1:0
watch: { enabled: false }
$extra
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $root/examples/keys/demo-jwks.json
    audiences: [orders-api]
    algorithms: [RS256, ES256]
    claims_to_headers: { X-User: sub }
upstreams:
  app: { servers: [127.0.0.1:$APP_PORT], max_idle: 64 }
routes:
  - name: api
    match: { paths: ["/**"] }
    authenticate: [demo]
    cache: { ttl: 60s }
    upstream: app
default: deny
audit: { sink: $sink }
YAML
}

start_haproxy() {  # start_haproxy CFG: HAProxy pinned to the server CPU(s); sets HAPROXY_PID
  taskset -c "$server_cpu" haproxy -db -f "$1" >"$1.log" 2>&1 &
  HAPROXY_PID=$!
  started+=("$HAPROXY_PID")
}
stop_haproxy() {
  stop_pid "$HAPROXY_PID"
  forget "$HAPROXY_PID"
}

# bench_check NAME URL auth|plain: a valid token (sent with X-User: mallory) gets 200 from the
# application. auth: the application saw X-User alice, and no token, a bad signature and an
# expired token get 401. plain: the application's answer, whatever X-User. Sets CHECKS (the
# requests sent).
bench_check() {
  local name=$1 url=$2 mode=$3 body code what t
  body=$(curl -s --noproxy '*' --max-time 5 -H "Authorization: Bearer $token" -H "X-User: mallory" "$url") ||
    die "$name: no answer from $url"
  code=$(curl -s --noproxy '*' --max-time 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$url")
  [[ $code == 200 ]] || die "$name: a valid token got $code, expected 200"
  CHECKS=2
  if [[ $mode == plain ]]; then
    [[ $body == user=* ]] || die "$name: the application's answer did not come back: '$body'"
    return 0
  fi
  [[ $body == "user=alice" ]] || die "$name: the application got '$body', expected user=alice"
  for what in none bad-signature expired; do
    case $what in
      none) t= ;;
      bad-signature) t=$bad_sig ;;
      expired) t=$expired ;;
    esac
    local -a auth=()
    [[ -n $t ]] && auth=(-H "Authorization: Bearer $t")
    code=$(curl -s --noproxy '*' --max-time 5 -o /dev/null -w '%{http_code}' "${auth[@]}" "$url")
    [[ $code == 401 ]] || die "$name: token $what got $code, expected 401"
    CHECKS=$((CHECKS + 1))
  done
}
