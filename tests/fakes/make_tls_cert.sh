#!/usr/bin/env bash
# make_tls_cert.sh DIR — a throwaway CA and a server certificate for 127.0.0.1 / localhost.
#
# Writes DIR/ca.pem (the CA certificate: give it to clients as ca_file / curl --cacert),
# DIR/server.pem and DIR/server.key (for the server, e.g. oidc_server.js --tls-cert/--tls-key).
# The server certificate has subjectAltName IP:127.0.0.1, DNS:localhost, is valid for 2 days,
# and is signed by the CA. The CA's private key is deleted once it has signed.
# Needs only the openssl CLI (1.1.1 or 3.x).
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
mkdir -p -- "$dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/make_tls_cert.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

openssl_q() {
  local out
  if ! out=$(openssl "$@" 2>&1); then
    echo "make_tls_cert.sh: openssl $1 failed:" >&2
    echo "$out" >&2
    exit 1
  fi
}

# The CA: a self-signed certificate that may sign others.
cat >"$work/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = portcullis test CA (throwaway)
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
openssl_q req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 2 \
  -keyout "$work/ca.key" -out "$work/ca.pem" -config "$work/ca.cnf"

# The server: key, request, and a certificate signed by the CA with the SANs.
cat >"$work/server.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = 127.0.0.1
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
openssl_q req -new -newkey rsa:2048 -nodes -sha256 \
  -keyout "$work/server.key" -out "$work/server.csr" -config "$work/server.cnf"
openssl_q x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days 2 -sha256 \
  -extfile "$work/server.cnf" -extensions v3_server -out "$work/server.pem"

# Check the chain before handing it out.
openssl_q verify -CAfile "$work/ca.pem" "$work/server.pem"

install -m 0644 "$work/ca.pem" "$dir/ca.pem"
install -m 0644 "$work/server.pem" "$dir/server.pem"
install -m 0600 "$work/server.key" "$dir/server.key"
