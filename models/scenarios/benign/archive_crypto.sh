#!/usr/bin/env bash
# Workload: archive_crypto — backup and certificate chores of an administrator: tar a directory
# tree with gzip and xz, list and test the archives, checksum them (sha256sum -c), extract and
# compare, make a private key, CSR and self-signed certificate with openssl and inspect them,
# and an encrypt/decrypt round trip of one file (a backup sent off-site).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init archive_crypto

do_setup() {
    local D="$W/data" i n
    rm -rf "$D" "${W:?}/out"
    mkdir -p "$D"/{etc,www/static,db} "$W/out"
    n=$(rand_int 40 120)
    for ((i = 0; i < n; i++)); do
        case $((i % 3)) in
            0) seq 1 $((RANDOM % 2000 + 10)) | sed "s/^/config line /" >"$D/etc/conf_$i.ini" ;;
            1) head -c $((RANDOM % 30000 + 500)) /dev/urandom | base64 >"$D/www/static/asset_$i.js" ;;
            2) head -c $((RANDOM % 20000 + 500)) /dev/urandom >"$D/db/chunk_$i.bin" ;;
        esac
    done
}

do_run() {
    local O="$W/out" stamp
    stamp=$(date +%Y%m%d)
    cd "$W"
    # backups: tar.gz and tar.xz, list, test, checksum
    tar -czf "$O/backup-$stamp.tar.gz" -C "$W" data
    tar -cJf "$O/backup-$stamp.tar.xz" -C "$W" data
    tar -tzf "$O/backup-$stamp.tar.gz" | wc -l
    tar -tvJf "$O/backup-$stamp.tar.xz" | upto 5
    gzip -t "$O/backup-$stamp.tar.gz"
    xz -t "$O/backup-$stamp.tar.xz"
    (cd "$O" && sha256sum backup-* >SHA256SUMS && sha256sum -c SHA256SUMS)
    ls -la "$O"
    # restore into a scratch dir and compare
    mkdir -p "$O/restore"
    tar -xzf "$O/backup-$stamp.tar.gz" -C "$O/restore"
    diff -r "$W/data" "$O/restore/data" && echo "restore identical"
    # single-file compression round trip
    cp "$W/data/etc/conf_0.ini" "$O/conf.ini"
    gzip -9 -k "$O/conf.ini" && gunzip -c "$O/conf.ini.gz" | cmp - "$O/conf.ini"
    xz -k "$O/conf.ini" && xz -dc "$O/conf.ini.xz" | cmp - "$O/conf.ini"
    # TLS: key, CSR, self-signed cert, inspect, verify key matches
    openssl genrsa -out "$O/server.key" 2048 2>/dev/null
    openssl req -new -key "$O/server.key" -subj "/C=DE/O=Example/CN=localhost" -out "$O/server.csr"
    openssl req -in "$O/server.csr" -noout -verify
    openssl x509 -req -in "$O/server.csr" -signkey "$O/server.key" -days 365 -sha256 -out "$O/server.crt" 2>/dev/null
    openssl x509 -in "$O/server.crt" -noout -subject -issuer -dates -fingerprint -sha256
    [[ $(openssl x509 -in "$O/server.crt" -noout -modulus | sha256sum) == $(openssl rsa -in "$O/server.key" -noout -modulus | sha256sum) ]] && echo "key matches cert"
    openssl verify -CAfile "$O/server.crt" "$O/server.crt"
    # encrypted off-site copy of one archive, then decrypt and compare
    openssl rand -base64 32 >"$O/backup.pass"
    openssl enc -aes-256-cbc -pbkdf2 -salt -in "$O/backup-$stamp.tar.gz" -out "$O/backup.enc" -pass "file:$O/backup.pass"
    openssl enc -d -aes-256-cbc -pbkdf2 -in "$O/backup.enc" -out "$O/backup.dec" -pass "file:$O/backup.pass"
    cmp "$O/backup.dec" "$O/backup-$stamp.tar.gz" && echo "roundtrip ok"
    openssl dgst -sha256 -sign "$O/server.key" -out "$O/backup.sig" "$O/backup-$stamp.tar.gz"
    openssl dgst -sha256 -verify <(openssl x509 -in "$O/server.crt" -pubkey -noout) -signature "$O/backup.sig" "$O/backup-$stamp.tar.gz"
    # rotate: keep only the newest archive set
    rm -rf "$O/restore" "$O/backup.dec" "$O/backup.pass"
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
