#!/usr/bin/env bash
# JWT verification throughput per algorithm, beside the bare OpenSSL verify and `openssl speed`,
# all in one run on one CPU.
#
#   bench/identity/run.sh [BUILD_DIR]        (default: build; needs BUILD_DIR/bench/jwt_bench)
#
# BUILD_DIR may also be the portcullis binary inside it (that is what bench/run-all passes).
# Steps, one at a time, each pinned to BENCH_CPU (default 0) with taskset:
#   1. jwt_bench (bench/identity/jwt_bench.cc), BENCH_REPETITIONS (3) repetitions, medians:
#      verifyJwt/<ALG> (the full path) and openssl/<ALG> (EVP_DigestVerifyInit+EVP_DigestVerify,
#      or EVP_MAC for HS256, on the same key and signature)
#   2. openssl speed -seconds BENCH_OPENSSL_SECONDS (2) rsa2048 ecdsap256 ed25519
#   3. openssl speed -seconds BENCH_OPENSSL_SECONDS (2) -evp sha256   (HS256: a loose estimate)
# Then one table: verifications/s of portcullis, of the bare primitive, of `openssl speed`,
# and portcullis as a percentage of `openssl speed`. BENCH_KEEP=1 keeps the raw outputs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
[[ -f $build ]] && build=$(dirname "$build")  # the portcullis binary: use its directory
cpu=${BENCH_CPU:-0}
reps=${BENCH_REPETITIONS:-3}
openssl_seconds=${BENCH_OPENSSL_SECONDS:-2}

die() { echo "bench/identity: $*" >&2; exit 1; }
note() { echo "# $*"; }

for tool in openssl taskset timeout awk; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
bench=$build/bench/jwt_bench
[[ -x $bench ]] || die "no $bench (cmake -S . -B build -G Ninja -DPORTCULLIS_BUILD_BENCH=ON && ninja -C build jwt_bench)"
((cpu < $(nproc))) || die "BENCH_CPU=$cpu but this machine has $(nproc) CPU(s)"

work=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench-identity.XXXXXX")
cleanup() {
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "# work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# A private copy: a rebuild of the shared build directory mid-run must not swap binaries.
cp "$bench" "$work/jwt_bench"

note "portcullis identity benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
note "host: $(uname -srm), $(nproc) CPU(s): $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
note "$(openssl version)"
note "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
if awk '{ exit !($1 > 1.0) }' /proc/loadavg; then
  note "WARNING: the machine is busy (1-min load above 1.0); numbers will be low and noisy"
fi
note "everything pinned to CPU $cpu; jwt_bench: $reps repetitions (medians); openssl speed: ${openssl_seconds}s per test"
echo

# ---- 1. jwt_bench -------------------------------------------------------------------------
echo "== jwt_bench (CPU $cpu)"
taskset -c "$cpu" timeout 600 "$work/jwt_bench" --benchmark_repetitions="$reps" \
  --benchmark_report_aggregates_only=true --benchmark_out="$work/jwt.csv" \
  --benchmark_out_format=csv 2>&1 | sed 's/^/   /' || die "jwt_bench failed"
[[ -s $work/jwt.csv ]] || die "jwt_bench wrote no results"
echo

# csv NAME COLUMN: a column of one benchmark's median row (its only row when BENCH_REPETITIONS
# is 1), from the CSV output.
csv() {
  awk -F, -v name="\"$1\"" -v median="\"$1_median\"" -v col="$2" '
    /^name,/ { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); idx[$i] = i }; next }
    !idx["name"] { next }
    $1 == median { m = $(idx[col]); found_m = 1 }
    $1 == name { p = $(idx[col]); found_p = 1 }
    END { v = found_m ? m : p; gsub(/"/, "", v); if (found_m || found_p) print v }' "$work/jwt.csv"
}

# ---- 2./3. openssl speed ------------------------------------------------------------------
echo "== openssl speed -seconds $openssl_seconds rsa2048 ecdsap256 ed25519 (CPU $cpu)"
taskset -c "$cpu" timeout $((openssl_seconds * 12 + 60)) \
  openssl speed -seconds "$openssl_seconds" rsa2048 ecdsap256 ed25519 >"$work/speed-pk.txt" 2>/dev/null ||
  die "openssl speed failed"
grep -E 'verify/s|bits' "$work/speed-pk.txt" | sed 's/^/   /'
echo
echo "== openssl speed -seconds $openssl_seconds -evp sha256 (CPU $cpu)"
taskset -c "$cpu" timeout $((openssl_seconds * 12 + 60)) \
  openssl speed -seconds "$openssl_seconds" -evp sha256 >"$work/speed-sha.txt" 2>/dev/null ||
  die "openssl speed -evp sha256 failed"
grep -E '^(type|sha256)' "$work/speed-sha.txt" | sed 's/^/   /'
echo

# speed_verify PATTERN: verify/s of the result line matching PATTERN. The header before each
# section names the columns; counting from the right copes with the words before the numbers.
speed_verify() {
  awk -v pat="$1" '
    /verify\/s/ { n = NF; for (i = 1; i <= NF; i++) if ($i == "verify/s") col = i; next }
    $0 ~ pat && col { print $(NF - (n - col)); exit }' "$work/speed-pk.txt"
}
rsa_speed=$(speed_verify '^rsa +2048 +bits')
p256_speed=$(speed_verify 'ecdsa \(nistp256\)')
ed_speed=$(speed_verify 'EdDSA \(Ed25519\)')
[[ -n $rsa_speed && -n $p256_speed && -n $ed_speed ]] || die "could not read verify/s from openssl speed"

# HS256, loosely: SHA-256 bytes/s at 1024-byte blocks (the 'k' numbers are 1000s of bytes/s)
# divided by the bytes one HMAC hashes: ipad block + signing input, opad block + inner digest.
sha_kbps=$(awk '/^type/ { for (i = 1; i <= NF; i++) if ($i == "1024") col = i / 2 + 1; next }
                /^sha256/ && col { v = $col; sub(/k$/, "", v); print v; exit }' "$work/speed-sha.txt")
[[ -n $sha_kbps ]] || die "could not read the sha256 1024-byte column from openssl speed"
hs_input=$(csv openssl/HS256 label | sed -n 's/.* over \([0-9]*\) bytes.*/\1/p')
hs_input=${hs_input:-548}
hs_speed=$(awk -v k="$sha_kbps" -v n="$hs_input" 'BEGIN { printf "%.0f", k * 1000 / (64 + n + 64 + 32) }')

note "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '| %-9s | %22s | %22s | %22s | %14s |\n' algorithm "portcullis verify/s" \
  "bare OpenSSL verify/s" "openssl speed verify/s" "% of speed"
printf '|%s|%s|%s|%s|%s|\n' ----------- -----------------------: -----------------------: \
  -----------------------: ---------------:
row() {  # row ALG SPEED [MARK]
  local full bare
  full=$(csv "verifyJwt/$1" items_per_second)
  bare=$(csv "openssl/$1" items_per_second)
  [[ -n $full && -n $bare ]] || die "no jwt_bench result for $1"
  awk -v a="$1" -v f="$full" -v b="$bare" -v s="$2" -v m="${3:-}" 'BEGIN {
    printf "| %-9s | %22.0f | %22.0f | %22s | %14s |\n", a, f, b, m sprintf("%.0f", s),
      m sprintf("%.0f%%", 100 * f / s) }'
}
row RS256 "$rsa_speed"
row PS256 "$rsa_speed"
row ES256 "$p256_speed"
row EdDSA "$ed_speed"
row HS256 "$hs_speed" "~"
echo
echo "portcullis: identity::verifyJwt, the whole path (base64url, strict JSON header and payload,"
echo "alg allow-list, key lookup by kid among 5 keys, signature, exp/nbf/iat, iss, aud) on an"
echo "11-claim token. bare OpenSSL: EVP_DigestVerifyInit + EVP_DigestVerify on the same key and"
echo "signature (HS256: EVP_MAC_init/update/final + CRYPTO_memcmp), including the init that"
echo "portcullis amortises with a per-thread copy of a pre-initialised context."
echo "openssl speed: RS256 and PS256 against rsa2048, ES256 against ecdsap256, EdDSA against"
echo "ed25519; it times the public-key operation alone on a short buffer (no SHA-256 of a"
echo "~550-byte signing input, no context set-up, no JWS). ~ HS256: there is no HMAC in"
echo "'openssl speed'; estimated as SHA-256 throughput at 1024-byte blocks ($sha_kbps k bytes/s)"
echo "divided by the $((64 + hs_input + 64 + 32)) bytes one HMAC of a $hs_input-byte input hashes;"
echo "a loose upper bound, not a measurement."
