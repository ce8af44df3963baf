#!/usr/bin/env bash
# Workload: nginx_bench — a web server under load: nginx (master + workers, its own config, pid
# file, logs and temp dirs in the work dir) serving static files on 127.0.0.1, an `nginx -t`
# config test, a reload, and ApacheBench (`ab -n 2000 -c 8`, plus a keep-alive run) against it;
# then a graceful stop.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init nginx_bench

do_setup() {
    need_pkg nginx apache2-utils
    local port i
    port=8089
    port_listening "$port" && port=$(free_port 8090 8099)
    echo "$port" >"$W/port"
    rm -rf "${W:?}/html" "${W:?}/tmp" "${W:?}/logs"
    mkdir -p "$W/html/static" "$W/tmp" "$W/logs"
    printf '<!doctype html><title>bench</title><h1>It works</h1>\n' >"$W/html/index.html"
    for i in $(seq 1 "$(rand_int 5 20)"); do
        head -c $((RANDOM % 20000 + 200)) /dev/urandom | base64 >"$W/html/static/f$i.css"
    done
    cat >"$W/nginx.conf" <<EOF
worker_processes 2;
pid $W/nginx.pid;
error_log $W/logs/error.log warn;
daemon off;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    access_log $W/logs/access.log;
    client_body_temp_path $W/tmp/body;
    proxy_temp_path $W/tmp/proxy;
    fastcgi_temp_path $W/tmp/fastcgi;
    uwsgi_temp_path $W/tmp/uwsgi;
    scgi_temp_path $W/tmp/scgi;
    sendfile on;
    keepalive_timeout 5;
    gzip on;
    server {
        listen 127.0.0.1:$port;
        root $W/html;
        location / { try_files \$uri \$uri/ =404; }
        location /status { return 200 "ok\n"; }
    }
}
EOF
    chmod -R a+rX "$W"
}

do_run() {
    local port n pid
    port=$(cat "$W/port")
    n=$(rand_int 1800 2400)
    cd "$W"
    nginx -t -q -e "$W/logs/error.log" -c "$W/nginx.conf" -p "$W"
    # nginx as a foreground child (daemon off), stopped at the end
    nginx -e "$W/logs/error.log" -c "$W/nginx.conf" -p "$W" &
    pid=$!
    trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
    wait_port 127.0.0.1 "$port" 10
    timeout 20 ab -q -n "$n" -c 8 "http://127.0.0.1:$port/" | grep -E 'Requests per second|Failed requests|Complete requests'
    # reload config (SIGHUP: new workers), then a keep-alive run on a static file
    nginx -e "$W/logs/error.log" -c "$W/nginx.conf" -p "$W" -s reload
    sleep 0.5
    timeout 15 ab -q -k -n 1000 -c 4 "http://127.0.0.1:$port/static/f1.css" | grep -E 'Requests per second|Failed requests'
    timeout 5 ab -q -n 50 -c 2 "http://127.0.0.1:$port/missing" >/dev/null || true
    # graceful stop (SIGQUIT via -s quit)
    nginx -e "$W/logs/error.log" -c "$W/nginx.conf" -p "$W" -s quit
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid" 2>/dev/null || true
    trap - EXIT
    wc -l "$W/logs/access.log"
}

do_teardown() {
    [[ -f $W/nginx.pid ]] && kill "$(cat "$W/nginx.pid")" 2>/dev/null || true
    default_teardown
}

scenario_main "$@"
