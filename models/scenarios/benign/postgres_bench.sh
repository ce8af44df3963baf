#!/usr/bin/env bash
# Workload: postgres_bench — a relational database life cycle under load: initdb a fresh cluster
# (as the postgres user), start it with pg_ctl on 127.0.0.1 and a unix socket in the work dir,
# create and fill the pgbench schema (`pgbench -i`), run a timed TPC-B-like load
# (`pgbench -T 8`), a few psql queries and a VACUUM ANALYZE, then a fast shutdown.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init postgres_bench

pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n $d ]] || { echo "postgresql binaries not found" >&2; return 1; }
    echo "$d"
}

as_pg() { runuser -u postgres -- "$@"; }

do_setup() {
    need_pkg postgresql
    local port=5439
    port_listening "$port" && port=$(free_port 5440 5449)
    echo "$port" >"$W/port"
    rm -rf "${W:?}/pg"
    mkdir -p "$W/pg/sock"
    chown -R postgres:postgres "$W/pg"
    chmod 755 "$W"
}

do_run() {
    local port B D="$W/pg/data" S="$W/pg/sock" scale clients secs
    port=$(cat "$W/port")
    B=$(pg_bindir)
    scale=$(rand_int 1 3)
    clients=$(rand_int 2 6)
    secs=8
    cd "$W/pg"
    stop_pg() { as_pg "$B/pg_ctl" -D "$D" -m fast -w -t 20 stop >/dev/null 2>&1 || true; }
    trap stop_pg EXIT
    # 1. new cluster, trust auth on the local socket, no fsync wait at init (-N)
    as_pg "$B/initdb" -D "$D" -A trust -U postgres -E UTF8 --locale=C.UTF-8 -N >/dev/null
    # 2. start: TCP on loopback only, socket in the work dir, no fsync (throwaway data)
    as_pg "$B/pg_ctl" -D "$D" -l "$W/pg/server.log" -w -t 30 \
        -o "-p $port -k $S -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c shared_buffers=64MB" \
        start >/dev/null
    as_pg "$B/psql" -h "$S" -p "$port" -X -q -c "CREATE DATABASE bench;"
    # 3. schema + data, then the timed load
    as_pg "$B/pgbench" -h "$S" -p "$port" -i -s "$scale" -q bench 2>&1 | tail -n 2
    as_pg "$B/pgbench" -h "$S" -p "$port" -T "$secs" -c "$clients" -j 2 -P 4 bench 2>&1 | grep -E '^(tps|latency|number of transactions actually)' || true
    # 4. a little DBA work over TCP
    as_pg "$B/psql" -h 127.0.0.1 -p "$port" -X -d bench -c "SELECT count(*) AS accounts FROM pgbench_accounts;"
    as_pg "$B/psql" -h "$S" -p "$port" -X -d bench -c "SELECT relname, n_tup_upd FROM pg_stat_user_tables ORDER BY 2 DESC LIMIT 3;"
    as_pg "$B/psql" -h "$S" -p "$port" -X -d bench -q -c "VACUUM ANALYZE;"
    as_pg "$B/psql" -h "$S" -p "$port" -X -d bench -At -c "SELECT pg_size_pretty(pg_database_size('bench'));"
    # 5. clean shutdown
    stop_pg
    trap - EXIT
}

do_teardown() {
    local B
    if [[ -f $W/pg/data/postmaster.pid ]] && B=$(pg_bindir); then
        runuser -u postgres -- "$B/pg_ctl" -D "$W/pg/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    fi
    default_teardown
}

scenario_main "$@"
