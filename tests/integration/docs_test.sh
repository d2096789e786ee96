#!/usr/bin/env bash
# Every YAML example in README.md and docs/ that is a whole policy (starts with
# `version: 1`) must compile with `portcullis check`. Examples refer to files relative to
# examples/ (keys/demo-jwks.json, functions/lua/tenant.lua, …) or to certs/ (made here), so
# each one is checked from a folder that has those beside it.
set -euo pipefail
bin=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$src/examples/keys" "$work/keys"
ln -s "$src/examples/functions" "$work/functions"
# TLS examples (docs/tls.md) name certs/…: throwaway ones, made now (they expire).
"$src/tests/fakes/make_tls_set.sh" "$work/tlsset" >/dev/null
mkdir "$work/certs"
cp "$work/tlsset/a.pem" "$work/certs/example.pem"
cp "$work/tlsset/a.key" "$work/certs/example.key"
cp "$work/tlsset/a.ocsp.der" "$work/certs/example.ocsp.der"
cp "$work/tlsset/b.pem" "$work/certs/internal.pem"
cp "$work/tlsset/b.key" "$work/certs/internal.key"
cp "$work/tlsset/ca.pem" "$work/certs/clients-ca.pem"
cp "$work/tlsset/ca.pem" "$work/certs/internal-ca.pem"
cp "$work/tlsset/client.pem" "$work/certs/portcullis-client.pem"
cp "$work/tlsset/client.key" "$work/certs/portcullis-client.key"

checked=0
failed=0
for doc in "$src/README.md" "$src"/docs/*.md "$src"/docs/*/*.md; do
  [ -f "$doc" ] || continue
  # Split the ```yaml blocks into numbered files.
  awk -v out="$work/block" '
    /^```yaml[[:space:]]*$/ { inside = 1; n++; file = out "-" n ".yaml"; printf "" > file; next }
    /^```[[:space:]]*$/ && inside { inside = 0; close(file); next }
    inside { print >> file }
  ' "$doc"
  for block in "$work"/block-*.yaml; do
    [ -f "$block" ] || continue
    if head -n 1 "$block" | grep -q '^version: 1'; then
      checked=$((checked + 1))
      # Secrets that examples take from the environment get a placeholder (≥ 32 bytes).
      env_args=()
      for name in $(grep -o '\${env:[A-Za-z_][A-Za-z0-9_]*}' "$block" | sed 's/^\${env:\(.*\)}$/\1/' | sort -u); do
        env_args+=("$name=docs-test-placeholder-secret-0123456789")
      done
      if ! env "${env_args[@]}" "$bin" check -c "$block" >"$work/out" 2>&1; then
        failed=$((failed + 1))
        echo "FAIL: an example in ${doc#$src/} does not compile:"
        sed 's/^/    /' "$work/out"
      fi
    fi
    rm -f "$block"
  done
done
echo "checked $checked policy example(s) in the docs"
[ "$checked" -gt 0 ] || { echo "FAIL: found no policy example to check"; exit 1; }
[ "$failed" -eq 0 ]
