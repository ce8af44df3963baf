#!/usr/bin/env bash
# Workload: shell_session — an administrator's interactive shell session: look around (ls, cd,
# stat, file), inspect processes and disks (ps, top -b, free, df, du, uptime), search (grep,
# find), edit config files without an editor (sed -i), page through logs (head/tail), text
# pipelines (awk, cut, sort | uniq -c, tr, xargs, tee, diff), environment and PATH lookups.
# Pauses between commands imitate a person typing.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init shell_session

do_setup() {
    local H="$W/home" i n
    rm -rf "$H"
    mkdir -p "$H/app/conf" "$H/app/logs" "$H/app/src" "$H/notes"
    printf 'listen = 8080\nworkers = 4\nlog_level = info\ncache_dir = /var/cache/app\n' >"$H/app/conf/app.conf"
    n=$(rand_int 500 3000)
    awk -v n="$n" -v seed="$RANDOM" 'BEGIN {
        srand(seed)
        split("ERROR WARN WARN INFO INFO INFO INFO INFO INFO INFO", lvl, " ")
        split("GET POST PUT", m, " "); split("users orders items login", ep, " ")
        for (i = 0; i < n; i++)
            printf "2025-11-%02d 10:%02d:%02d %s %s /api/%s %d\n", i % 28 + 1, i % 60, int(rand() * 60),
                lvl[int(rand() * 10) + 1], m[int(rand() * 3) + 1], ep[int(rand() * 4) + 1], int(rand() * 500)
    }' >"$H/app/logs/app.log"
    for i in 1 2 3 4 5; do printf 'def handler_%d(req):\n    # TODO: validate\n    return %d\n' "$i" "$i" >"$H/app/src/h$i.py"; done
    printf 'meeting notes\n- rotate logs\n- bump workers\n' >"$H/notes/todo.txt"
}

pause() { jitter 250; }

do_run() {
    local H="$W/home"
    cd "$H"
    ls; pause
    ls -la app; pause
    cd app/conf
    cat app.conf; pause
    cp app.conf app.conf.bak
    # "vi" edits: bump workers, change log level, add a line
    sed -i 's/^workers = .*/workers = 8/' app.conf
    sed -i 's/^log_level = info/log_level = debug/' app.conf
    sed -i '$a timeout = 30' app.conf
    diff app.conf.bak app.conf || true; pause
    cd ../logs
    head -n 5 app.log; pause
    tail -n 5 app.log; pause
    grep -c ERROR app.log
    grep ERROR app.log | tail -n 3; pause
    awk '{print $3}' app.log | sort | uniq -c | sort -rn
    awk '$3 == "ERROR" {n[$5]++} END {for (k in n) print n[k], k}' app.log | sort -rn | upto 5
    cut -d' ' -f4,5 app.log | sort | uniq -c | sort -rn | upto 5; pause
    awk '{s += $6} END {printf "avg latency %.1f ms\n", s / NR}' app.log
    wc -l app.log; pause
    cd "$H"
    find . -name '*.py' -print0 | xargs -0 grep -n TODO | upto 5
    find . -type f -newer app/conf/app.conf.bak -print
    find . -type f -size +1k -exec ls -lh {} \; | upto 5; pause
    grep -rn "workers" app/conf
    stat app/conf/app.conf | upto 3
    file app/logs/app.log app/src/h1.py; pause
    # system state
    ps aux --sort=-%mem | cut -c1-160 | upto 8
    ps -ef | wc -l
    top -b -n 1 | upto 12; pause
    free -m
    df -h / | tail -n 1
    du -sh "$H"/* | sort -h
    uptime; pause
    id; hostname; whoami
    env | sort | grep -E '^(HOME|PATH|SHELL|LANG|TERM)=' || true
    echo "$PATH" | tr ':' '\n' | upto 5
    type ls cd; command -v grep sed awk; pause
    date; cal 2>/dev/null | upto 3 || true
    # rotate the log by hand, like one would before a deploy
    cd app/logs
    mv app.log app.log.1 && gzip app.log.1 && : >app.log
    ls -la | tee "$H/notes/logs-listing.txt"
    tail -n 2 "$H/notes/todo.txt"
    echo "- rotated logs $(date +%F)" >>"$H/notes/todo.txt"
    cd ~- 2>/dev/null || cd "$H"
    sort "$H/notes/todo.txt" | uniq | upto 5
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
