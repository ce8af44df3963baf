#!/usr/bin/env bash
# Workload: cron_job — a scheduled maintenance job as cron runs it (`/bin/sh -c 'job >> log 2>&1'`,
# three runs a little apart): take a lock (flock), rotate application logs (shift numbered
# copies, gzip, truncate), expire old rotated files and temp files with find -mtime, check disk
# space, write a status file. Between runs the "application" keeps appending to its logs.
# All files live in the work dir.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init cron_job

do_setup() {
    local A="$W/app" i
    rm -rf "$A" "${W:?}/bin"
    mkdir -p "$A/logs" "$A/tmp" "$A/state" "$W/bin"
    for f in access error worker; do
        seq 1 "$(rand_int 200 2000)" | sed "s/^/$(date +%F) $f entry /" >"$A/logs/$f.log"
    done
    # old rotated logs and stale temp files that the job should expire
    for i in 3 4 5 6; do
        printf 'old rotation %d\n' "$i" | gzip >"$A/logs/access.log.$i.gz"
    done
    for i in $(seq 1 "$(rand_int 5 25)"); do
        echo "tmp $i" >"$A/tmp/upload_$i.part"
        touch -d "$(rand_int 8 40) days ago" "$A/tmp/upload_$i.part"
    done
    touch -d '20 days ago' "$A/logs/access.log.5.gz" "$A/logs/access.log.6.gz"
    cat >"$W/bin/maintenance.sh" <<'EOF'
#!/bin/sh
# nightly maintenance for app: rotate logs, expire old files, report
set -eu
APP="$1"
LOCK="$APP/state/maintenance.lock"
exec 9>"$LOCK"
flock -n 9 || { echo "$(date '+%F %T') another run in progress"; exit 0; }
echo "$(date '+%F %T') start"
cd "$APP/logs"
for log in *.log; do
    [ -s "$log" ] || continue
    # shift log.N.gz -> log.N+1.gz (keep 5)
    for n in 4 3 2; do
        [ -f "$log.$n.gz" ] && mv -f "$log.$n.gz" "$log.$((n + 1)).gz"
    done
    [ -f "$log.1" ] && gzip -c "$log.1" >"$log.2.gz" && rm -f "$log.1"
    cp "$log" "$log.1" && : >"$log"        # copytruncate
    echo "rotated $log ($(wc -l <"$log.1") lines)"
done
# expire: rotated logs beyond .5 and older than 7 days, stale temp files
find "$APP/logs" -name '*.log.[6-9].gz' -delete
find "$APP/logs" -name '*.gz' -mtime +14 -print -delete
find "$APP/tmp" -type f -mtime +7 -print -delete | wc -l | sed 's/^/expired temp files: /'
# disk and size report
USED=$(df -P "$APP" | awk 'NR == 2 {print $5}')
SIZE=$(du -sk "$APP" | cut -f1)
cat >"$APP/state/status.json.tmp" <<EOS
{"job": "maintenance", "host": "$(hostname)", "finished": "$(date -Iseconds)", "disk_used": "$USED", "app_kb": $SIZE, "logs": $(ls "$APP/logs" | wc -l)}
EOS
mv -f "$APP/state/status.json.tmp" "$APP/state/status.json"
echo "$(date '+%F %T') done"
EOF
    chmod +x "$W/bin/maintenance.sh"
}

do_run() {
    local A="$W/app" i j f
    cd "$W"
    for i in 1 2 3; do
        # the application writing its logs between runs
        for f in access error worker; do
            for ((j = 0; j < $(rand_int 20 200); j++)); do echo "$(date +%T) $f event $i.$j"; done >>"$A/logs/$f.log"
        done
        # what crond does for "*/1 * * * * root /opt/app/bin/maintenance.sh /opt/app >> log 2>&1"
        timeout 20 /bin/sh -c "'$W/bin/maintenance.sh' '$A' >>'$A/state/cron.log' 2>&1"
        cat "$A/state/status.json"
        ((i < 3)) && sleep "1.$(rand_int 0 9)"
    done
    tail -n 6 "$A/state/cron.log"
    ls -la "$A/logs"
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
