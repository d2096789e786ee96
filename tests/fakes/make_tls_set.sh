#!/usr/bin/env bash
# make_tls_set.sh DIR — throwaway certificates for the TLS tests (valid 2 days).
#
#   ca.pem ca.key          a test CA (its key is kept: the tests sign OCSP answers with it)
#   a.pem a.key            server: DNS:a.test, DNS:localhost, IP:127.0.0.1 (RSA 2048)
#   b.pem b.key            server: DNS:b.test, DNS:*.b.test (ECDSA P-256)
#   a.ocsp.der             a "good" OCSP response for a.pem, signed by the CA
#   client.pem client.key  client: CN=agent-1,O=portcullis tests, URI:spiffe://test/agent-1
#   rogue.pem rogue.key    client with the same names, signed by another CA
# Needs only the openssl CLI (3.x).
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
mkdir -p -- "$dir"
cd -- "$dir"

q() {
  local out
  if ! out=$(openssl "$@" 2>&1); then
    echo "make_tls_set.sh: openssl $1 failed:" >&2
    echo "$out" >&2
    exit 1
  fi
}

ca() {  # ca NAME CN
  q req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 2 -keyout "$1.key" -out "$1.pem" \
    -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
}

leaf() {  # leaf NAME CA SUBJECT EXTENSIONS KEYOPTS...
  local name=$1 issuer=$2 subject=$3 ext=$4
  shift 4
  q req -new "$@" -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject"
  printf '%s\n' "$ext" >"$name.ext"
  q x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 2 -sha256 -extfile "$name.ext" -out "$name.pem"
  rm -f "$name.csr" "$name.ext"
}

ca ca "portcullis TLS test CA"
ca rogue-ca "someone else's CA"
server_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth'
client_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=URI:spiffe://test/agent-1'
leaf a ca "/CN=a.test" "$server_ext
subjectAltName=DNS:a.test,DNS:localhost,IP:127.0.0.1" -newkey rsa:2048
leaf b ca "/CN=b.test" "$server_ext
subjectAltName=DNS:b.test,DNS:*.b.test" -newkey ec -pkeyopt ec_paramgen_curve:P-256
leaf client ca "/O=portcullis tests/CN=agent-1" "$client_ext" -newkey rsa:2048
leaf rogue rogue-ca "/O=portcullis tests/CN=agent-1" "$client_ext" -newkey rsa:2048

# An OCSP answer for a.pem, as a responder would staple it (the CA signs it itself).
serial=$(openssl x509 -in a.pem -noout -serial | cut -d= -f2)
expiry=$(date -u -d '+2 days' +%y%m%d%H%M%SZ)
printf 'V\t%s\t\t%s\tunknown\t/CN=a.test\n' "$expiry" "$serial" >index.txt
q ocsp -issuer ca.pem -cert a.pem -reqout a.ocsp-req.der -no_nonce
q ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -reqin a.ocsp-req.der \
  -respout a.ocsp.der -ndays 1
rm -f a.ocsp-req.der index.txt
q verify -CAfile ca.pem a.pem b.pem client.pem
