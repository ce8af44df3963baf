//! Merging, matching, the kernel's share, loading and versioning.

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use super::users::UserDb;
use super::*;

/// Compile in-memory files with a fixed user table (root = 0, backup = 34).
pub(super) fn compile(files: &[(&str, &str)]) -> Result<Policy, PolicyError> {
    let users = UserDb::Table([("root".to_owned(), 0), ("backup".to_owned(), 34)].into());
    Policy::compile(&sources(files), &users)
}

pub(super) fn sources(files: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
        .collect()
}

fn one(text: &str) -> Policy {
    compile(&[("/etc/vigil/policy.d/10-test.toml", text)]).expect("valid policy")
}

fn exec<'a>(path: &'a str) -> ExecContext<'a> {
    ExecContext {
        path,
        sha256: None,
        parent_exe: None,
        stdio_socket: false,
        parent_stdio_socket: false,
        parent_accepted: false,
        image_changed_secs_ago: None,
        downloaded_by: None,
        cmdline: None,
    }
}

fn names(refs: &[RuleRef]) -> Vec<String> {
    refs.iter().map(|r| r.name.to_owned()).collect()
}

fn connect_names(p: &Policy, exe: &str, addr: &str, port: u16) -> Vec<String> {
    let addr: IpAddr = addr.parse().expect("address");
    names(&p.connect_rules(&ConnectContext { exe, addr, port }))
}

#[test]
fn nothing_set_means_defaults() {
    let p = one("");
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.thresholds, None);
    assert_eq!(p.model, ModelActions::default());
    assert_eq!(p.model.on_kill, Action::Kill);
    assert!(p.model.require_corroboration);
    assert_eq!(
        p.response,
        ResponseLimits {
            max_actions: 10,
            per_seconds: 60
        }
    );
    assert!(p.exec_rules(&exec("/usr/bin/ls")).is_empty());
}

#[test]
fn later_files_override_scalars_field_by_field_and_append_lists() {
    let first = r#"
mode = "monitor"
[thresholds]
alert = 0.5
quarantine = 0.6
kill = 0.7
[model]
on_kill = "quarantine"
require_corroboration = false
[response]
max_actions = 5
per_seconds = 30
[[rule.exec]]
name = "a"
action = "alert"
path = ["/tmp/**"]
[allow]
exe = ["/usr/bin/apt*"]
"#;
    let second = r#"
mode = "enforce"
[thresholds]
kill = 0.9
[response]
per_seconds = 120
[[rule.exec]]
name = "b"
action = "kill"
path = ["/tmp/x/**"]
[allow]
exe = ["/usr/bin/dpkg"]
"#;
    let p = compile(&[("/d/policy.toml", first), ("/e/20-site.toml", second)]).expect("valid");
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(
        p.thresholds,
        Some(Thresholds {
            alert: 0.5,
            quarantine: 0.6,
            kill: 0.9
        })
    );
    assert_eq!(p.model.on_kill, Action::Quarantine);
    assert_eq!(p.model.on_alert, Action::Alert);
    assert!(!p.model.require_corroboration);
    assert_eq!(
        p.response,
        ResponseLimits {
            max_actions: 5,
            per_seconds: 120
        }
    );
    assert_eq!(names(&p.exec_rules(&exec("/tmp/x/y"))), ["a", "b"]);
    assert!(p.allowlisted("/usr/bin/apt-get", None, 1000, None));
    assert!(p.allowlisted("/usr/bin/dpkg", None, 1000, None));
    assert_eq!(
        p.sources,
        [
            PathBuf::from("/d/policy.toml"),
            PathBuf::from("/e/20-site.toml")
        ]
    );
}

#[test]
fn star_stays_in_one_directory_and_double_star_spans_them() {
    let p = one(r#"
[[rule.exec]]
name = "one-level"
action = "alert"
path = ["/tmp/*"]
[[rule.exec]]
name = "tree"
action = "alert"
path = ["/tmp/**"]
[[rule.exec]]
name = "anywhere"
action = "alert"
path = ["**/nc"]
"#);
    assert_eq!(names(&p.exec_rules(&exec("/tmp/a"))), ["one-level", "tree"]);
    assert_eq!(names(&p.exec_rules(&exec("/tmp/a/b"))), ["tree"]);
    assert!(p.exec_rules(&exec("/tmpx/a")).is_empty());
    assert_eq!(names(&p.exec_rules(&exec("/usr/bin/nc"))), ["anywhere"]);
    assert!(p.exec_rules(&exec("/usr/bin/ncat")).is_empty());
}

#[test]
fn changed_within_matches_images_changed_that_recently_and_only_those() {
    let p = one(
        r#"
[[rule.exec]]
name = "fresh-in-tmp"
action = "alert"
path = ["/tmp/**"]
changed_within = 300
"#,
    );
    let aged = |secs| ExecContext { image_changed_secs_ago: secs, ..exec("/tmp/x/.bot") };
    assert_eq!(names(&p.exec_rules(&aged(Some(0)))), ["fresh-in-tmp"]);
    assert_eq!(names(&p.exec_rules(&aged(Some(300)))), ["fresh-in-tmp"]);
    assert!(p.exec_rules(&aged(Some(301))).is_empty());
    // Unknown age (the exec could not read the inode): not recent.
    assert!(p.exec_rules(&aged(None)).is_empty());
    assert!(p.exec_rules(&ExecContext { image_changed_secs_ago: Some(1), ..exec("/usr/bin/x") }).is_empty());
    assert_eq!(p.max_changed_within(), Some(300));
    assert!(p.kernel_exec_denies().is_empty(), "the kernel cannot tell an image's age");
}

#[test]
fn cmdline_patterns_match_anywhere_in_the_command_line_with_the_other_conditions() {
    let p = one(
        r#"
[[rule.exec]]
name = "miner"
action = "kill"
path = ["/tmp/**"]
cmdline = ['stratum\+tcp://', '^(\S*/)?xmrig( |$)']
"#,
    );
    let run = |path, cmdline| ExecContext { cmdline, ..exec(path) };
    assert_eq!(names(&p.exec_rules(&run("/tmp/m", Some("./m -o stratum+tcp://h:3333")))), ["miner"]);
    assert_eq!(names(&p.exec_rules(&run("/tmp/xmrig", Some("/tmp/xmrig --cpu-max 50")))), ["miner"]);
    // Every condition must hold: the path, and one of the patterns.
    assert!(p.exec_rules(&run("/opt/m", Some("./m -o stratum+tcp://h:3333"))).is_empty());
    assert!(p.exec_rules(&run("/tmp/m", Some("cat /tmp/xmrig"))).is_empty());
    // No command line (an exec the kernel could not copy argv of): no match.
    assert!(p.exec_rules(&run("/tmp/m", None)).is_empty());
    assert!(p.kernel_exec_denies().is_empty(), "the kernel does not see the command line");
    assert_eq!(
        p.summary()["rules"][0]["conditions"]["cmdline"],
        serde_json::json!([r"stratum\+tcp://", r"^(\S*/)?xmrig( |$)"])
    );
}

#[test]
fn downloaded_matches_programs_a_network_client_wrote_bar_the_excepted() {
    let p = one(
        r#"
[[rule.exec]]
name = "fetched"
action = "alert"
downloaded = true
except_downloader = ["/usr/bin/apt*"]

[[rule.exec]]
name = "fetched-into-tmp"
action = "kill"
path = ["/tmp/**"]
downloaded = true
"#,
    );
    let by = |path, who| ExecContext { downloaded_by: who, ..exec(path) };
    assert_eq!(names(&p.exec_rules(&by("/opt/x", Some("/usr/bin/curl")))), ["fetched"]);
    assert_eq!(names(&p.exec_rules(&by("/tmp/x", Some("/usr/bin/curl")))), ["fetched", "fetched-into-tmp"]);
    // The exception is the first rule's only; the second names no exception.
    assert_eq!(names(&p.exec_rules(&by("/tmp/x", Some("/usr/bin/apt-get")))), ["fetched-into-tmp"]);
    assert!(p.exec_rules(&by("/tmp/x", None)).is_empty());
    assert!(p.kernel_exec_denies().is_empty(), "the kernel cannot tell who wrote an image");
    assert_eq!(
        p.summary()["rules"][0]["conditions"],
        serde_json::json!({"downloaded": true, "except_downloader": ["/usr/bin/apt*"]})
    );
}

#[test]
fn except_cmdline_keeps_a_rule_from_matching_and_is_no_condition_of_its_own() {
    let p = one(
        r#"
[[rule.exec]]
name = "shells-under-db"
action = "kill"
path = ["/bin/sh"]
except_cmdline = ['^sh -c locale -a$', 'pg_archive']
"#,
    );
    let with = |cmdline| ExecContext { cmdline, ..exec("/bin/sh") };
    assert_eq!(names(&p.exec_rules(&with(Some("sh -c id")))), ["shells-under-db"]);
    assert!(p.exec_rules(&with(Some("sh -c locale -a"))).is_empty());
    assert!(p.exec_rules(&with(Some("sh -c cp x /pg_archive/x"))).is_empty());
    // Unknown command line: nothing excepts it.
    assert_eq!(names(&p.exec_rules(&with(None))), ["shells-under-db"]);
    assert!(p.kernel_exec_denies().is_empty(), "the kernel cannot read the exception");
    assert_eq!(
        p.summary()["rules"][0]["conditions"]["except_cmdline"],
        serde_json::json!(["^sh -c locale -a$", "pg_archive"])
    );
    let only = Policy::from_sources(&[(
        "t.toml".into(),
        "[[rule.exec]]\nname = \"r\"\naction = \"alert\"\nexcept_cmdline = ['x']\n".into(),
    )]);
    assert!(only.is_err(), "except_cmdline alone names no process");
}

#[test]
fn exec_rule_needs_every_condition_it_names() {
    let hash = "AB".repeat(32);
    let p = one(&format!(
        r#"
[[rule.exec]]
name = "web-shell"
action = "quarantine"
parent = ["/usr/sbin/nginx", "**/redis-server"]
path = ["/bin/sh"]
[[rule.exec]]
name = "known-bad"
action = "kill"
sha256 = ["{hash}"]
[[rule.exec]]
name = "socket-shell"
action = "quarantine"
path = ["/bin/sh"]
stdio_socket = true
"#
    ));
    let lower = "ab".repeat(32);
    let ctx = |parent, sha256, stdio_socket| ExecContext {
        path: "/bin/sh",
        sha256,
        parent_exe: parent,
        stdio_socket,
        parent_stdio_socket: false,
        parent_accepted: false,
        image_changed_secs_ago: None,
        downloaded_by: None,
        cmdline: None,
    };
    assert!(p.exec_rules(&ctx(None, None, false)).is_empty());
    assert_eq!(
        names(&p.exec_rules(&ctx(Some("/usr/sbin/nginx"), None, false))),
        ["web-shell"]
    );
    assert_eq!(
        names(&p.exec_rules(&ctx(Some("/opt/redis/bin/redis-server"), None, false))),
        ["web-shell"]
    );
    assert!(
        p.exec_rules(&ctx(Some("/usr/sbin/sshd"), None, false))
            .is_empty()
    );
    // Stored lowercase, matched whatever case the caller hands in.
    assert_eq!(
        names(&p.exec_rules(&ctx(None, Some(&lower), false))),
        ["known-bad"]
    );
    assert_eq!(
        names(&p.exec_rules(&ctx(None, Some(&hash), false))),
        ["known-bad"]
    );
    let all = p.exec_rules(&ctx(Some("/usr/sbin/nginx"), Some(&lower), true));
    assert_eq!(names(&all), ["web-shell", "known-bad", "socket-shell"]);
    assert_eq!(all[1].action, Action::Kill);
    assert_eq!(all.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn connect_rules_match_networks_addresses_ports_and_exe() {
    let p = one(r#"
[[rule.connect]]
name = "lan"
action = "alert"
addr = ["10.0.0.0/8", "192.0.2.7"]
[[rule.connect]]
name = "doc-v6"
action = "deny"
addr = ["2001:db8::/32"]
ports = [443, 8443]
[[rule.connect]]
name = "stratum"
action = "deny"
ports = [3333]
[[rule.connect]]
name = "shell"
action = "quarantine"
exe = ["/usr/bin/bash"]
"#);
    assert_eq!(connect_names(&p, "/usr/bin/curl", "10.1.2.3", 80), ["lan"]);
    assert_eq!(connect_names(&p, "/usr/bin/curl", "192.0.2.7", 80), ["lan"]);
    assert!(connect_names(&p, "/usr/bin/curl", "192.0.2.8", 80).is_empty());
    assert!(connect_names(&p, "/usr/bin/curl", "11.0.0.1", 80).is_empty());
    assert_eq!(
        connect_names(&p, "/usr/bin/curl", "2001:db8:1::5", 8443),
        ["doc-v6"]
    );
    assert!(connect_names(&p, "/usr/bin/curl", "2001:db8:1::5", 80).is_empty());
    assert!(connect_names(&p, "/usr/bin/curl", "2001:db9::5", 443).is_empty());
    assert_eq!(connect_names(&p, "/usr/bin/curl", "::1", 3333), ["stratum"]);
    assert_eq!(
        connect_names(&p, "/usr/bin/bash", "10.0.0.1", 3333),
        ["lan", "stratum", "shell"]
    );
    // A dual-stack socket reaching an IPv4 host through a mapped address.
    assert_eq!(
        connect_names(&p, "/usr/bin/curl", "::ffff:10.9.9.9", 80),
        ["lan"]
    );
    let hits = p.connect_rules(&ConnectContext {
        exe: "/x",
        addr: "2001:db8::1".parse().expect("addr"),
        port: 443,
    });
    // Connect rules are numbered after the exec rules (none here).
    assert_eq!(
        hits,
        [RuleRef {
            name: "doc-v6",
            action: Action::Deny,
            index: 1
        }]
    );
    assert_eq!(p.rule_name(1), Some("doc-v6"));
    assert_eq!(p.rule_action(1), Some(Action::Deny));
    assert_eq!(p.rule_name(4), None);
}

#[test]
fn kernel_exec_denies_take_only_path_only_kill_rules_and_simple_globs() {
    let text = r#"
[[rule.exec]]
name = "paths"
action = "kill"
path = ["/dev/shm/**", "/usr/local/bin/miner", "/tmp/*.sh", "/opt/**/x", "/var/tmp/*/**", "/**", "**/xmrig"]
[[rule.exec]]
name = "quarantined"
action = "quarantine"
path = ["/run/user/**"]
[[rule.exec]]
name = "socket"
action = "kill"
path = ["/srv/**"]
stdio_socket = true
[[rule.exec]]
name = "by-parent"
action = "kill"
path = ["/srv/a"]
parent = ["/usr/sbin/nginx"]
[[rule.exec]]
name = "memfd"
action = "kill"
path = ["/memfd:*"]
[[rule.connect]]
name = "c"
action = "alert"
ports = [1]
[[rule.exec]]
name = "late"
action = "kill"
path = ["/home/*/.cache/x", "/mnt/evil"]
"#;
    let p = one(text);
    assert_eq!(
        p.kernel_exec_denies(),
        [
            (KernelExecMatch::Prefix(b"/dev/shm/".to_vec()), 0),
            (KernelExecMatch::Exact(b"/usr/local/bin/miner".to_vec()), 0),
            (KernelExecMatch::Exact(b"/mnt/evil".to_vec()), 5),
        ]
    );
    assert_eq!(p.rule_name(0), Some("paths"));
    assert_eq!(p.rule_name(5), Some("late"));
    assert_eq!(p.rule_name(6), Some("c"));
    // Monitor never acts, in the kernel either.
    let monitor = compile(&[("/a.toml", text), ("/b.toml", "mode = \"monitor\"")]).expect("valid");
    assert!(monitor.kernel_exec_denies().is_empty());
}

#[test]
fn kernel_exec_denies_leave_exemptible_paths_to_user_space() {
    let p = one(r#"
[[rule.exec]]
name = "shm"
action = "kill"
path = ["/dev/shm/**", "/opt/app/bin/**", "/usr/sbin/sshd", "/usr/lib/systemd/**", "/srv/tool"]
[allow]
exe = ["/dev/shm/vendor-agent/*"]
[protected]
exe = ["/opt/**"]
"#);
    // /dev/shm/** holds an allowlisted glob, /opt/app/bin/** lies under a protected one, and
    // /usr/sbin/sshd is a built-in protected path, as are paths under /usr/lib/systemd/.
    assert_eq!(
        p.kernel_exec_denies(),
        [(KernelExecMatch::Exact(b"/srv/tool".to_vec()), 0)]
    );
}

#[test]
fn kernel_connect_denies_are_the_cross_product_of_deny_rules() {
    let p = one(r#"
[[rule.exec]]
name = "e"
action = "alert"
path = ["/x"]
[[rule.connect]]
name = "nets"
action = "deny"
addr = ["10.1.2.3/8", "2001:db8::1"]
ports = [80, 443]
[[rule.connect]]
name = "alert-only"
action = "alert"
addr = ["192.0.2.0/24"]
[[rule.connect]]
name = "stratum"
action = "deny"
ports = [3333]
[[rule.connect]]
name = "host"
action = "deny"
addr = ["198.51.100.1"]
"#);
    let net = |s: &str| s.parse::<IpNet>().expect("net");
    assert_eq!(
        p.kernel_connect_denies(),
        [
            (net("10.0.0.0/8"), Some(80), 1),
            (net("10.0.0.0/8"), Some(443), 1),
            (net("2001:db8::1/128"), Some(80), 1),
            (net("2001:db8::1/128"), Some(443), 1),
            (net("0.0.0.0/0"), Some(3333), 3),
            (net("::/0"), Some(3333), 3),
            (net("198.51.100.1/32"), None, 4),
        ]
    );
    assert_eq!(p.rule_name(3), Some("stratum"));
}

#[test]
fn allowlist_by_user_name_uid_exe_digest_and_cgroup() {
    let hash = "0f".repeat(32);
    let p = one(&format!(
        r#"
[allow]
users = ["backup", 1001]
exe = ["/usr/bin/apt*"]
sha256 = ["{}"]
cgroups = ["/system.slice/backup.service", "/user.slice/*/app-*.scope"]
"#,
        hash.to_uppercase()
    ));
    assert!(p.allowlisted("/bin/x", None, 34, None));
    assert!(p.allowlisted("/bin/x", None, 1001, None));
    assert!(!p.allowlisted("/bin/x", None, 1000, None));
    assert!(p.allowlisted("/usr/bin/apt-get", None, 1000, None));
    assert!(!p.allowlisted("/usr/bin/x/apt", None, 1000, None));
    assert!(p.allowlisted("/bin/x", Some(&hash), 1000, None));
    assert!(p.allowlisted("/bin/x", None, 1000, Some("/system.slice/backup.service")));
    assert!(p.allowlisted(
        "/bin/x",
        None,
        1000,
        Some("/user.slice/user-1000.slice/app-foo.scope")
    ));
    assert!(!p.allowlisted("/bin/x", None, 1000, Some("/system.slice/nginx.service")));
}

#[test]
fn user_names_resolve_from_a_passwd_file() {
    let table = super::users::parse_passwd(
        "root:x:0:0:root:/root:/bin/bash\n# comment\nbackup:x:34:34:backup:/var/backups:/usr/sbin/nologin\nbroken\n+nis::::::\n",
    );
    assert_eq!(table.get("root"), Some(&0));
    assert_eq!(table.get("backup"), Some(&34));
    assert_eq!(table.len(), 2);
    // root exists on every host this runs on, and resolving it must not need anything else.
    let p = Policy::from_sources(&sources(&[("/p.toml", "[allow]\nusers = [\"root\"]\n")]))
        .expect("root resolves");
    assert!(p.allowlisted("/bin/x", None, 0, None));
}

#[test]
fn built_in_protection_cannot_be_removed() {
    // The built-in globs themselves compile (GlobList::builtin would panic otherwise).
    let bare = one("");
    for exe in [
        "/usr/sbin/sshd",
        "/usr/lib/systemd/systemd",
        "/usr/lib/systemd/systemd-journald",
        "/sbin/init",
        "/usr/sbin/vigil",
        "/usr/lib/openssh/sshd-session",
    ] {
        assert!(bare.protected(exe, "x"), "{exe}");
    }
    // A comm or a base name proves nothing: anyone can call a binary sshd.
    for comm in BUILTIN_PROTECTED_COMM {
        assert!(!bare.protected("/x", comm), "{comm}");
    }
    assert!(!bare.protected("/dev/shm/sshd", "sshd"));
    assert!(!bare.protected("/tmp/systemd", "systemd"));
    assert!(!bare.protected("/usr/bin/bash", "bash"));
    // Whatever a policy lists, the built-ins stay; an empty list is not a reset.
    let p = one("[protected]\nexe = []\ncomm = []\n");
    assert!(p.protected("/usr/sbin/sshd", "x"));
    let p = one("[protected]\nexe = [\"/opt/db/bin/*\"]\ncomm = [\"postgres\"]\n");
    assert!(p.protected("/usr/sbin/sshd", "sshd"));
    assert!(p.protected("/opt/db/bin/server", "x"));
    assert!(p.protected("/x", "postgres"));
    let summary = p.summary();
    let exe = summary["protected"]["exe"].as_array().expect("list");
    assert_eq!(exe.len(), BUILTIN_PROTECTED_EXE.len() + 1);
    assert_eq!(
        exe[0],
        serde_json::json!({ "value": "/usr/lib/systemd/systemd", "builtin": true })
    );
    assert_eq!(
        exe[BUILTIN_PROTECTED_EXE.len()],
        serde_json::json!({ "value": "/opt/db/bin/*", "builtin": false })
    );
}

#[test]
fn version_follows_names_and_content_only() {
    let v = |files: &[(&str, &str)]| compile(files).expect("valid").version;
    let base = v(&[
        ("/usr/lib/vigil/policy.toml", "mode = \"enforce\""),
        ("/etc/vigil/policy.d/a.toml", ""),
    ]);
    assert_eq!(base.len(), 16);
    assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        base,
        v(&[
            ("/usr/lib/vigil/policy.toml", "mode = \"enforce\""),
            ("/etc/vigil/policy.d/a.toml", "")
        ])
    );
    // The directory does not count (the packaging source and the installed file agree)...
    assert_eq!(
        base,
        v(&[
            ("packaging/policy.toml", "mode = \"enforce\""),
            ("/tmp/a.toml", "")
        ])
    );
    // ...content, names and order do.
    assert_ne!(
        base,
        v(&[
            ("/usr/lib/vigil/policy.toml", "mode = \"enforce\" "),
            ("/etc/vigil/policy.d/a.toml", "")
        ])
    );
    assert_ne!(
        base,
        v(&[
            ("/usr/lib/vigil/policy.toml", "mode = \"enforce\""),
            ("/etc/vigil/policy.d/b.toml", "")
        ])
    );
    assert_ne!(
        base,
        v(&[
            ("/etc/vigil/policy.d/a.toml", ""),
            ("/usr/lib/vigil/policy.toml", "mode = \"enforce\"")
        ])
    );
}

#[test]
fn event_rules_match_the_event_and_exe_and_are_named_by_index() {
    let p = one(r#"
[[rule.exec]]
name = "e"
action = "alert"
path = ["/x"]
[[rule.event]]
name = "modules"
action = "alert"
event = ["module_load"]
[[rule.event]]
name = "injection"
action = "kill"
event = ["ptrace_attach", "memfd_create"]
exe = ["/tmp/**"]
[[rule.event]]
name = "relays"
action = "alert"
event = ["relay_shell"]
except_parent = ["/opt/runner/**"]
"#);
    let hits = |event, exe| names(&p.event_rules(&EventContext { event, exe, parent: "/usr/bin/bash" }));
    assert_eq!(hits(SecurityEvent::ModuleLoad, "/usr/sbin/insmod"), ["modules"]);
    assert_eq!(hits(SecurityEvent::PtraceAttach, "/tmp/x/inject"), ["injection"]);
    assert_eq!(hits(SecurityEvent::MemfdCreate, "/tmp/dropper"), ["injection"]);
    assert!(hits(SecurityEvent::PtraceAttach, "/usr/bin/gdb").is_empty());
    assert!(hits(SecurityEvent::GainedRoot, "/tmp/x").is_empty());
    // except_parent looks at the parent's executable, not the process's.
    assert_eq!(hits(SecurityEvent::RelayShell, "/usr/bin/sh"), ["relays"]);
    let under = |parent| names(&p.event_rules(&EventContext { event: SecurityEvent::RelayShell, exe: "/usr/bin/sh", parent }));
    assert!(under("/opt/runner/bin/agent").is_empty());
    assert_eq!(under(""), ["relays"], "an unknown parent is not excepted");
    let r = p.event_rules(&EventContext {
        event: SecurityEvent::PtraceAttach,
        exe: "/tmp/y",
        parent: "",
    });
    // Indices run on after the exec and connect rules, as the kernel's reports use them.
    assert_eq!((r[0].index, r[0].action), (2, Action::Kill));
    assert_eq!(p.rule_name(2), Some("injection"));
    assert_eq!(p.rule_action(1), Some(Action::Alert));
    assert_eq!(p.rule_name(0), Some("e"));
    assert_eq!(p.rule_name(3), Some("relays"));
    assert_eq!(p.rule_name(4), None);
}

#[test]
fn summary_lists_rules_with_their_conditions() {
    let p = one(r#"
[[rule.exec]]
name = "e"
action = "kill"
path = ["/dev/shm/**"]
stdio_socket = true
[[rule.connect]]
name = "c"
action = "deny"
addr = ["10.0.0.0/8"]
ports = [22]
[[rule.event]]
name = "v"
action = "alert"
event = ["ptrace_attach", "module_load"]
exe = ["/opt/**"]
[allow]
users = ["backup"]
"#);
    let s = p.summary();
    assert_eq!(s["mode"], "enforce");
    assert_eq!(s["version"], p.version.as_str());
    assert_eq!(s["thresholds"], serde_json::Value::Null);
    assert_eq!(s["model"]["on_quarantine"], "quarantine");
    assert_eq!(s["response"]["per_seconds"], 60);
    assert_eq!(
        s["rules"],
        serde_json::json!([
            { "index": 0, "name": "e", "kind": "exec", "action": "kill",
              "conditions": { "path": ["/dev/shm/**"], "stdio_socket": true } },
            { "index": 1, "name": "c", "kind": "connect", "action": "deny",
              "conditions": { "addr": ["10.0.0.0/8"], "ports": [22] } },
            { "index": 2, "name": "v", "kind": "event", "action": "alert",
              "conditions": { "event": ["ptrace_attach", "module_load"], "exe": ["/opt/**"] } },
        ])
    );
    assert_eq!(
        s["allow"]["users"],
        serde_json::json!([{ "user": "backup", "uid": 34 }])
    );
}

/// A scratch directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vigil-policy-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, text).expect("write");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_reads_default_then_toml_drop_ins_in_name_order() {
    let tmp = TempDir::new("load");
    let default = tmp.write("policy.toml", "mode = \"enforce\"\n");
    let dir = tmp.0.join("policy.d");
    fs::create_dir(&dir).expect("mkdir");
    let rule =
        |n: &str| format!("[[rule.exec]]\nname = \"{n}\"\naction = \"alert\"\npath = [\"/x\"]\n");
    fs::write(dir.join("20-b.toml"), rule("b")).expect("write");
    fs::write(
        dir.join("10-a.toml"),
        format!("mode = \"monitor\"\n{}", rule("a")),
    )
    .expect("write");
    fs::write(dir.join("README"), "not toml").expect("write");
    fs::write(dir.join("30.toml.bak"), "not toml").expect("write");
    fs::write(dir.join(".99-tmp.toml"), "half-written").expect("write");
    fs::create_dir(dir.join("sub.toml")).expect("mkdir");
    let p = Policy::load(&default, &dir).expect("load");
    assert_eq!(
        p.sources,
        [
            default.clone(),
            dir.join("10-a.toml"),
            dir.join("20-b.toml")
        ]
    );
    assert_eq!(p.mode, Mode::Monitor);
    assert_eq!(names(&p.exec_rules(&exec("/x"))), ["a", "b"]);

    // No drop-in directory: the default alone.
    let p = Policy::load(&default, &tmp.0.join("missing")).expect("load");
    assert_eq!(p.sources, std::slice::from_ref(&default));
    // No default: an error naming it.
    let missing = tmp.0.join("nope.toml");
    let err = Policy::load(&missing, &dir).expect_err("no default");
    assert!(
        err.to_string()
            .starts_with(&format!("reading {}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn check_files_validates_the_files_as_one_policy() {
    let tmp = TempDir::new("check");
    let a = tmp.write(
        "a.toml",
        "[[rule.exec]]\nname = \"x\"\naction = \"alert\"\npath = [\"/x\"]\n",
    );
    let b = tmp.write(
        "b.toml",
        "[[rule.exec]]\nname = \"x\"\naction = \"kill\"\npath = [\"/y\"]\n",
    );
    let p = check_files(std::slice::from_ref(&a)).expect("valid");
    assert_eq!(
        check_report(&p),
        format!(
            "ok: 1 file(s), 1 exec rule(s), 0 connect rule(s), 0 event rule(s), 0 file rule(s), mode enforce, version {}",
            p.version
        )
    );
    let err = check_files(&[a.clone(), b.clone()]).expect_err("duplicate");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:8: duplicate rule name `x`, first defined at {}:2:8; expected names unique across all policy files",
            b.display(),
            a.display()
        )
    );
    let err = check_files_with(Some(&a), std::slice::from_ref(&b)).expect_err("clash with default");
    assert!(matches!(err, PolicyError::DuplicateRule { .. }));
    assert!(matches!(check_files(&[]), Err(PolicyError::NoSources)));
    assert!(matches!(
        check_files(&[tmp.0.join("missing.toml")]),
        Err(PolicyError::Io { .. })
    ));
}

#[test]
fn validate_push_replaces_or_inserts_in_load_order() {
    let current = sources(&[
        ("/usr/lib/vigil/policy.toml", "mode = \"enforce\"\n"),
        ("/etc/vigil/policy.d/10-a.toml", "mode = \"monitor\"\n"),
        ("/etc/vigil/policy.d/30-c.toml", ""),
    ]);
    let p = validate_push("10-a.toml", "", &current).expect("valid");
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.sources.len(), 3);
    // A new file goes where the next load will read it: after 10-a, before 30-c.
    let p = validate_push("20-b.toml", "mode = \"enforce\"\n", &current).expect("valid");
    assert_eq!(
        p.sources,
        [
            "/usr/lib/vigil/policy.toml",
            "/etc/vigil/policy.d/10-a.toml",
            "/etc/vigil/policy.d/20-b.toml",
            "/etc/vigil/policy.d/30-c.toml"
        ]
        .map(PathBuf::from)
    );
    assert_eq!(p.mode, Mode::Enforce);
    // Same version as the daemon's load of the same files will have.
    let mut after = current.clone();
    after.insert(
        2,
        (
            PathBuf::from("/elsewhere/20-b.toml"),
            "mode = \"enforce\"\n".into(),
        ),
    );
    assert_eq!(
        p.version,
        Policy::from_sources(&after).expect("valid").version
    );
    let err = validate_push("20-b.toml", "mode = \"loud\"\n", &current).expect_err("invalid");
    assert!(
        err.to_string()
            .starts_with("/etc/vigil/policy.d/20-b.toml:1:8: "),
        "{err}"
    );
    assert!(matches!(
        validate_push("../x.toml", "", &current),
        Err(PolicyError::BadFileName { .. })
    ));
}

#[test]
fn safe_file_names() {
    for ok in ["10-web.toml", "a.toml", "A_b.c-9.toml"] {
        assert_eq!(safe_file_name(ok).expect(ok), ok);
    }
    for bad in [
        ".toml",
        ".hidden.toml",
        "a/b.toml",
        "../a.toml",
        "a.toml.bak",
        "a b.toml",
        "",
        "a.TOML",
        "é.toml",
    ] {
        let err = safe_file_name(bad).expect_err(bad);
        assert!(
            err.to_string()
                .starts_with(&format!("invalid policy file name `{bad}`: expected")),
            "{err}"
        );
    }
}
