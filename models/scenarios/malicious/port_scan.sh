#!/usr/bin/env bash
# Family: port_scan — internal network discovery from a foothold (MITRE T1046) with living-off-
# the-land tools, as post-exploitation scripts do when nmap is absent: a bash /dev/tcp connect
# sweep, `nc -z` range scans, banner grabbing on what answered, and a python connect_ex scanner
# of common service ports over IPv6 loopback.
#
# Targets are ONLY 127.0.0.1 and ::1, ports 1-2000. `setup` starts a few listeners (random ports
# in that range, some with service banners) so the scan finds something open.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init port_scan

TARGET=127.0.0.1
TARGET6=::1

do_setup() {
    need_pkg netcat-openbsd
    kill_all_pidfiles
    local n p ports=()
    n=$(rand_int 3 6)
    while ((${#ports[@]} < n)); do
        p=$(free_port 20 2000)
        [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
    done
    echo "${ports[*]}" >"$W/ports"
    cat >"$W/services.py" <<'EOF'
# A few fake services on loopback: some greet with a banner, some stay silent. Exits after 30 min.
import socket, selectors, sys, time
banners = [b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", b"220 ftp.local FTP server ready\r\n",
           b"", b"+OK POP3 ready\r\n", b"", b"* OK IMAP4rev1 ready\r\n"]
sel = selectors.DefaultSelector()
ports = [int(p) for p in sys.argv[1:]]
for i, port in enumerate(ports):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(64); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, banners[i % len(banners)])
# the first service also on ::1
s6 = socket.socket(socket.AF_INET6); s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s6.bind(("::1", ports[0])); s6.listen(16); s6.setblocking(False)
sel.register(s6, selectors.EVENT_READ, banners[0])
end = time.time() + 1800
while time.time() < end:
    for key, _ in sel.select(timeout=1.0):
        try:
            c, _ = key.fileobj.accept()
            if key.data: c.sendall(key.data)
            c.close()
        except OSError:
            pass
EOF
    start_daemon services "$PY" "$W/services.py" "${ports[@]}"
    for p in "${ports[@]}"; do wait_port 127.0.0.1 "$p" 10; done
}

do_run() {
    local p open=() order
    assert_loopback "$TARGET"; assert_loopback "$TARGET6"
    cd "$W"
    # 1. bash-only connect sweep, 1-2000 (sequential or shuffled order, like different scanners)
    if ((RANDOM % 2)); then order=$(seq 1 2000); else order=$(shuf -i 1-2000); fi
    for p in $order; do
        (echo >"/dev/tcp/$TARGET/$p") >/dev/null 2>&1 && open+=("$p")
    done
    log "bash sweep: open ${open[*]:-none}"
    jitter 400
    # 2. nc -z range scan (connect scan, 1 s timeout per port), verbose output parsed for "succeeded"
    timeout 20 nc -z -v -w 1 "$TARGET" 1-2000 2>&1 | grep -i succeeded || true
    # 3. banner grabbing on the open ports
    for p in "${open[@]}"; do
        timeout 3 nc -w 1 "$TARGET" "$p" </dev/null 2>/dev/null | head -n 1 || true
    done
    jitter 400
    # 4. python connect_ex scanner: common service ports over IPv6 loopback, plus what we found
    timeout 15 "$PY" - "$TARGET6" "${open[@]}" <<'EOF'
import socket, sys
host = sys.argv[1]
ports = sorted({21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 443, 445, 993, 995, 1433, 1521,
                1723, 1883, *[int(p) for p in sys.argv[2:]]})
for p in ports:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.settimeout(0.3)
    if s.connect_ex((host, p, 0, 0)) == 0:
        try: banner = s.recv(64)
        except OSError: banner = b""
        print("[::1]:%d open %r" % (p, banner[:40]))
    s.close()
EOF
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
