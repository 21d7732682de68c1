#!/bin/sh
# Makes the TLS test certificates in DIR (tests/unit/test_tls.c and
# tests/py/test_tls.py): a CA; server certificates for localhost/127.0.0.1
# (server.pem, a second one server2.pem, an expired one expired.pem); the key
# encrypted with the password "secret" (server-enc.key); a client certificate
# (client.pem, CN=alice) the CA signed and one it did not (stranger.pem).
# EC P-256 keys: fast to make. Usage: sh tests/tls_certs.sh DIR
set -e
d=$1
mkdir -p "$d"
cd "$d"
ossl() { openssl "$@" 2>/dev/null; }
key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
key ca.key
ossl req -x509 -new -key ca.key -out ca.pem -days 30 -subj "/O=Gallop Test/CN=gallop test CA"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
# sign NAME SUBJECT [EXT]: NAME.key, NAME.pem signed by the CA
sign() {
    key "$1.key"
    ossl req -new -key "$1.key" -out "$1.csr" -subj "$2"
    ossl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 30 ${3:+-extfile "$3"}
}
sign server "/O=Gallop Test/CN=localhost" san.ext
sign server2 "/O=Gallop Test/CN=localhost second" san.ext
sign client "/C=FR/O=Gallop Test/CN=alice"
ossl pkey -in server.key -aes256 -passout pass:secret -out server-enc.key
# a client certificate from a CA the server does not know
key other-ca.key
ossl req -x509 -new -key other-ca.key -out other-ca.pem -days 30 -subj "/CN=other CA"
key stranger.key
ossl req -new -key stranger.key -out stranger.csr -subj "/CN=mallory"
ossl x509 -req -in stranger.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -out stranger.pem -days 30
# expired: valid for one day in 2020 (openssl ca sets both dates)
key expired.key
ossl req -new -key expired.key -out expired.csr -subj "/CN=localhost"
: > index.txt
printf '1000\n' > serial
cat > ca.cnf <<CNF
[ca]
default_ca = d
[d]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = p
copy_extensions = none
[p]
commonName = supplied
CNF
ossl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem \
    -startdate 20200101000000Z -enddate 20200102000000Z -notext -extfile san.ext
