#!/usr/bin/env bash
# Workload: redis_bench — an in-memory database under load: redis-server on 127.0.0.1 (no
# persistence, dir in the work dir), redis-benchmark (`-n 20000 -q`), a few redis-cli admin and
# data commands (INFO, CONFIG GET, SET/GET, pipelined LPUSH, DBSIZE), then SHUTDOWN NOSAVE.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init redis_bench

do_setup() {
    need_pkg redis-server redis-tools
    local port=6390
    port_listening "$port" && port=$(free_port 6391 6399)
    echo "$port" >"$W/port"
    mkdir -p "$W/data"
}

do_run() {
    local port pid i
    port=$(cat "$W/port")
    cd "$W"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$W/data" \
        --daemonize no --logfile "$W/redis.log" --protected-mode yes &
    pid=$!
    trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
    wait_port 127.0.0.1 "$port" 10
    redis-cli -p "$port" PING
    timeout 25 redis-benchmark -h 127.0.0.1 -p "$port" -n 20000 -q \
        -t "$(shuf -n 1 -e 'set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange_100,mset' \
                          'set,get,incr,lpush,lpop,sadd,hset,zadd,lrange_100,lrange_300,mset' \
                          'ping_inline,ping_mbulk,set,get,incr,lpush,rpop,sadd,hset,spop,lrange_100,mset')" \
        2>&1 | tr '\r' '\n' | grep 'requests per second'
    # a bit of admin and data work
    redis-cli -p "$port" INFO server | grep -E 'redis_version|tcp_port'
    redis-cli -p "$port" CONFIG GET maxmemory
    redis-cli -p "$port" SET greeting "hello $RANDOM"
    redis-cli -p "$port" GET greeting
    for i in $(seq 1 "$(rand_int 100 400)"); do echo "LPUSH queue job-$i"; done | redis-cli -p "$port" --pipe
    redis-cli -p "$port" LLEN queue
    redis-cli -p "$port" DBSIZE
    redis-cli -p "$port" INFO stats | grep -E 'total_commands_processed|instantaneous_ops'
    redis-cli -p "$port" SHUTDOWN NOSAVE || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid" 2>/dev/null || true
    trap - EXIT
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
