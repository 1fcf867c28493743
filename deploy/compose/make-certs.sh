#!/usr/bin/env bash
# The compose stack's demo CA and RabbitMQ server certificate, made once
# into the `certs` volume (mounted at /certs), so the orders relay can
# reach RabbitMQ over verified TLS. A demo: in production the CA and the
# broker's certificate come from your PKI or the managed service.
set -euo pipefail
cd /certs
[ -s ca.pem ] && [ -s rabbitmq.pem ] && exit 0
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=outbox-relay demo CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -keyout ca.key -out ca.pem
openssl req -newkey rsa:2048 -nodes -subj "/CN=rabbitmq" -keyout rabbitmq.key -out rabbitmq.csr
printf 'subjectAltName=DNS:rabbitmq,DNS:localhost\nextendedKeyUsage=serverAuth\n' >san.ext
openssl x509 -req -in rabbitmq.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile san.ext -out rabbitmq.pem
rm -f rabbitmq.csr san.ext ca.srl ca.key
# RabbitMQ runs as its own user: the demo key is readable to it.
chmod 644 ca.pem rabbitmq.pem rabbitmq.key
