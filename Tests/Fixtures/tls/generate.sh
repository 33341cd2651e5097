#!/bin/sh
# Regenerates the TLS test material used by the TLS tests and the https benchmark.
# Everything is valid until 2125 except `expired` (ended in 2001) and `notyetvalid` (starts 2120).
# Run from anywhere: sh Tests/Fixtures/tls/generate.sh   (needs /usr/bin/openssl)
set -eu
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/ca.cnf" <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = $work
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[ anything ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder
[ leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
[ root ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
touch "$work/index.txt"
echo 1000 > "$work/serial"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# The test CA (the bundle the tests trust).
key ca.key
openssl req -new -x509 -key ca.key -out ca.pem -subj "/CN=BatchKit Test CA" -days 36500 \
    -config "$work/ca.cnf" -extensions root -sha256

# leaf NAME SUBJECT-ALT-NAMES START END
leaf() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$1" -addext "subjectAltName=$2" -out "$work/$1.csr" \
        -config "$work/ca.cnf"
    openssl ca -batch -config "$work/ca.cnf" -cert ca.pem -keyfile ca.key -extensions leaf \
        -startdate "$3" -enddate "$4" -in "$work/$1.csr" -out "$work/$1.full" 2>/dev/null
    openssl x509 -in "$work/$1.full" -out "$1.pem"
}

leaf good "DNS:localhost,IP:127.0.0.1" 20250101000000Z 21250101000000Z
leaf expired "DNS:localhost,IP:127.0.0.1" 20000101000000Z 20010101000000Z
leaf notyetvalid "DNS:localhost,IP:127.0.0.1" 21200101000000Z 21250101000000Z
leaf otherhost "DNS:other.invalid,IP:192.0.2.1" 20250101000000Z 21250101000000Z

# A self-signed certificate for localhost that no bundle contains.
key selfsigned.key
openssl req -new -x509 -key selfsigned.key -out selfsigned.pem -subj "/CN=localhost" -days 36500 \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -config "$work/ca.cnf" -sha256

rm -f ca.srl
echo "generated in $(pwd)"
