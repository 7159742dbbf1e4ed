#!/usr/bin/env bash
# make-dev-certs.sh OUTDIR — development certificates for relais's TLS edge (never production):
#   ca.pem / ca.key            a dev CA
#   server.pem / server.key    server certificate for localhost, 127.0.0.1 and ::1, signed by ca
#   server2.pem / server2.key  a second server certificate from the same CA (certificate reload)
#   client.pem / client.key    a client certificate signed by ca (verify_clients, trunks)
#   rogue-ca.pem, rogue.pem / rogue.key  an unrelated CA and a certificate it signed (negative
#                              tests: a peer presenting it must not be trusted)
# Idempotent: files that exist are kept, so a running relais keeps the certificate it loaded.
# RSA keys on purpose: with an ECDSA certificate a static-RSA suite such as AES128-SHA could
# never be negotiated, so a test proving the cipher list refuses it would prove nothing.
set -euo pipefail

out=${1:?usage: make-dev-certs.sh OUTDIR}
mkdir -p "$out"
cd "$out"
umask 077

days=3650

# key NAME: a 2048-bit RSA private key in NAME.key unless present.
key() {
  [ -s "$1.key" ] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null
}

# ca NAME SUBJECT: a self-signed CA certificate.
ca() {
  [ -s "$1.pem" ] && return 0
  key "$1"
  openssl req -x509 -new -key "$1.key" -sha256 -days "$days" -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem"
}

# leaf NAME CA SUBJECT USAGE [SAN]: a certificate for NAME.key signed by CA.
leaf() {
  [ -s "$1.pem" ] && return 0
  key "$1"
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$4"
    [ -n "${5:-}" ] && echo "subjectAltName=$5"
  } >"$ext"
  openssl req -new -key "$1.key" -subj "$3" -out "$1.csr"
  # A random serial per certificate: the reload test tells the two server certificates apart.
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days "$days" -sha256 -extfile "$ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$ext"
}

san="DNS:localhost,IP:127.0.0.1,IP:::1"
ca ca "/O=Relais dev/CN=Relais dev CA"
leaf server ca "/O=Relais dev/CN=localhost" serverAuth "$san"
leaf server2 ca "/O=Relais dev/CN=localhost (second)" serverAuth "$san"
leaf client ca "/O=Relais dev/CN=relais dev client" clientAuth,serverAuth
ca rogue-ca "/O=Rogue/CN=Rogue CA"
leaf rogue rogue-ca "/O=Rogue/CN=localhost" serverAuth,clientAuth "$san"
chmod 644 ./*.pem
echo "dev certificates in $out"
