#!/usr/bin/env bash
# Family: module_load — loading a kernel rootkit (MITRE T1547.006 kernel modules, T1014
# rootkit), as Diamorphine/Reptile installers do: check the kernel, drop the .ko, install it into
# the modules tree and run depmod, insmod / modprobe it, try the raw finit_module and init_module
# syscalls, make it load at boot via /etc/modules, hide it (rmmod of a decoy, lsmod checks).
#
# This kernel has no module support: every load fails with ENOSYS, harmlessly. The .ko files are
# renamed copies of /bin/true; the modules tree and /etc/modules are under a fake root in $W.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init module_load

do_setup() {
    need_pkg kmod
    rm -rf "${W:?}/stage" "${W:?}/root"
    mkdir -p "$W/stage" "$W/root/etc"
    # the rootkit "build output" the dropper brings along
    cp /bin/true "$W/stage/diamorphine.ko"
    cp /bin/true "$W/stage/reptile_module.ko"
    printf '# /etc/modules: kernel modules to load at boot time.\n' >"$W/root/etc/modules"
}

do_run() {
    local kver R="$W/root" mdir
    kver=$(uname -r)
    mdir="$R/lib/modules/$kver/kernel/drivers/misc"
    cd "$W"
    # 1. recon: kernel version, is loading possible, what is loaded
    uname -r
    cat /proc/sys/kernel/modules_disabled 2>/dev/null || echo "no modules_disabled knob"
    cat /proc/sys/kernel/tainted 2>/dev/null || true
    lsmod 2>&1 | head -n 5 || true
    ls "/lib/modules/$kver" 2>&1 | head -n 3 || true
    grep -E 'CONFIG_MODULES|CONFIG_MODULE_SIG' "/boot/config-$kver" 2>/dev/null || true
    modinfo "$W/stage/diamorphine.ko" 2>&1 | head -n 3 || true
    # 2. direct insmod (init_module / finit_module)
    insmod "$W/stage/diamorphine.ko" 2>&1 || true
    # 3. install into a modules tree, depmod, modprobe by name (finit_module)
    mkdir -p "$mdir"
    cp "$W/stage/reptile_module.ko" "$mdir/"
    depmod -b "$R" "$kver" 2>/dev/null || true
    modprobe -d "$R" -v reptile_module 2>&1 || true
    modprobe diamorphine 2>&1 || true           # not in the real tree: fails at lookup
    # 4. the raw syscalls, as a loader binary would issue them (python ctypes)
    timeout 10 "$PY" - "$W/stage/diamorphine.ko" <<'EOF'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_init_module, SYS_finit_module, SYS_delete_module = 175, 313, 176
path = sys.argv[1]
fd = os.open(path, os.O_RDONLY)
r = libc.syscall(SYS_finit_module, fd, b"", 0)
print("finit_module ->", r, os.strerror(ctypes.get_errno()))
os.close(fd)
img = open(path, "rb").read()
buf = ctypes.create_string_buffer(img, len(img))
r = libc.syscall(SYS_init_module, buf, ctypes.c_ulong(len(img)), b"")
print("init_module ->", r, os.strerror(ctypes.get_errno()))
r = libc.syscall(SYS_delete_module, b"diamorphine", os.O_NONBLOCK)
print("delete_module ->", r, os.strerror(ctypes.get_errno()))
EOF
    # 5. persistence at boot + hiding attempts
    echo reptile_module >>"$R/etc/modules"
    printf 'install pcspkr /sbin/modprobe reptile_module\n' >"$R/etc/modprobe.d.conf"
    rmmod reptile_module 2>&1 || true            # delete_module
    # Diamorphine's magic signals (hooked kill(2)): 63 = toggle module visibility, 64 = give root.
    # Without the rootkit they are ordinary real-time signals, so send them to a throwaway child.
    sleep 10 &
    local c=$!
    kill -63 "$c" 2>/dev/null || true
    sleep 0.1
    kill -64 "$c" 2>/dev/null || true
    wait "$c" 2>/dev/null || true
    lsmod 2>&1 | grep -E 'diamorphine|reptile' || true
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
