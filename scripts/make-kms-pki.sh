#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# A throwaway PKI for a self-run KMIP server and one nbdcrypt client, for demos and tests:
#   scripts/make-kms-pki.sh DIR [CLIENT-CN] [DAYS]
# writes into DIR (created, mode 0700):
#   ca.pem, ca.key          a CA (EC P-256) that signs both certificates below
#   server.pem, server.key  the KMIP server: CN=localhost, SAN IP:127.0.0.1 and DNS:localhost,
#                           extendedKeyUsage serverAuth
#   client.pem, client.key  nbdcrypt's access certificate: CN=CLIENT-CN (default
#                           nbdcrypt-client), extendedKeyUsage clientAuth
# Keys are mode 0600. For a real KMS, see docs/operations.md: OKMS issues the client
# certificate (or signs your CSR) and its server certificate chains to a public CA.
set -eu
dir=${1:?usage: make-kms-pki.sh DIR [CLIENT-CN] [DAYS]}
cn=${2:-nbdcrypt-client}
days=${3:-30}
umask 077
mkdir -p "$dir"
cd "$dir"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -keyout ca.key -out ca.pem -subj "/O=nbdcrypt/CN=nbdcrypt throwaway CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null

# cert NAME CN EXTENSIONS
cert () {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "/O=nbdcrypt/CN=$2" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
    -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
cert server localhost "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
cert client "$cn" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
rm -f ca.srl
chmod 644 ca.pem server.pem client.pem
