//! Harness for vigil's integration tests: runs the real `vigil` binary as a daemon with its own
//! control socket and JSON event file, and reads back what it saw. Tests filter every event on
//! the pids they created, because the kernel is shared with everything else on the host.

pub mod journal;

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Mutex, MutexGuard, mpsc},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The syscalls `vigil-scenario known` makes first, in order; tests look for them verbatim.
pub const MARKER: [i64; 7] = [
    libc::SYS_getppid,
    libc::SYS_getpgrp,
    libc::SYS_umask,
    libc::SYS_getuid,
    libc::SYS_getgid,
    libc::SYS_sched_yield,
    libc::SYS_getppid,
];

/// Tests that load programs run one at a time: a flood in one would disturb another's counters.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `false` (with the reason printed) when not root: loading eBPF needs it. CI runs as root.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED {test}: loading eBPF programs needs root (CI runs as root)");
        return false;
    }
    true
}

/// The vigil binary: `$VIGIL_BIN`, else `target/<profile>/vigil` next to this test's `deps/`.
pub fn vigil_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGIL_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("vigil");
    assert!(
        bin.exists(),
        "{} not found: build it first (`cargo xtask build`, which `cargo xtask test` runs), or set VIGIL_BIN",
        bin.display()
    );
    bin
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-test-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `vigil ARGS` against a daemon's control socket and returns (exit success, stdout, stderr).
pub fn vigil_cli(socket: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(vigil_bin())
        .args(args)
        .arg("--control-socket")
        .arg(socket)
        .output()
        .expect("run vigil");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `vigil run`.
pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    pub events_path: PathBuf,
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts vigil and waits until it prints `ready` (all programs attached). Without a
    /// `--model` among `extra`, it runs with `--no-model` (sensors only).
    /// Starts vigil with the shipped policy in monitor mode (unless the test names its own
    /// `--policy-dir`): sensor and model tests must not act on other processes of the host.
    pub fn start(tag: &str, extra: &[&str]) -> Daemon {
        Self::start_bin(&vigil_bin(), tag, extra)
    }

    /// [`Daemon::start`] with the shipped policy as shipped: enforce.
    pub fn start_enforcing(tag: &str, extra: &[&str]) -> Daemon {
        Self::launch(&vigil_bin(), tag, extra, true)
    }

    /// [`Daemon::start`] with another vigil binary (an installed one).
    pub fn start_bin(bin: &Path, tag: &str, extra: &[&str]) -> Daemon {
        Self::launch(bin, tag, extra, false)
    }

    fn launch(bin: &Path, tag: &str, extra: &[&str], enforce: bool) -> Daemon {
        let dir = scratch_dir(tag);
        let events_path = dir.join("events.jsonl");
        let socket = dir.join("control.sock");
        let log = fs::File::create(dir.join("vigil.log")).expect("log file");
        // The shipped default policy, with this test's own policy.d and state (action log,
        // quarantine vault) unless the test names its own.
        let mut response: Vec<String> = Vec::new();
        if !extra.contains(&"--no-response") {
            if !extra.contains(&"--policy") {
                response.extend([
                    "--policy".into(),
                    repo_root()
                        .join("packaging/policy.toml")
                        .display()
                        .to_string(),
                ]);
            }
            if !extra.contains(&"--policy-dir") {
                let policy_d = dir.join("policy.d");
                if !enforce {
                    fs::create_dir_all(&policy_d).expect("policy.d");
                    fs::write(policy_d.join("00-tests-monitor.toml"), "mode = \"monitor\"\n")
                        .expect("monitor policy");
                }
                response.extend(["--policy-dir".into(), policy_d.display().to_string()]);
            }
            if !extra.contains(&"--state-dir") {
                response.extend([
                    "--state-dir".into(),
                    dir.join("state").display().to_string(),
                ]);
            }
        }
        let mut child = Command::new(bin)
            .arg("run")
            .arg("--events-json")
            .arg(&events_path)
            .arg("--control-socket")
            .arg(&socket)
            .args(["--ready-line", "--batch-age-ms", "50"])
            .args(extra)
            .args(&response)
            .args(if extra.contains(&"--model") {
                &[][..]
            } else {
                &["--no-model"][..]
            })
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn vigil");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim() == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        let mut daemon = Daemon {
            child: Some(child),
            dir,
            events_path,
            socket,
        };
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let status = daemon
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "vigil did not become ready (exit: {status:?}); log:\n{}",
                daemon.log()
            );
        }
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("vigil.log")).unwrap_or_default()
    }

    /// `vigil status --json` against this daemon.
    pub fn status(&self) -> Value {
        let out = Command::new(vigil_bin())
            .args(["status", "--json", "--control-socket"])
            .arg(&self.socket)
            .output()
            .expect("run vigil status");
        assert!(
            out.status.success(),
            "vigil status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status is JSON")
    }

    /// Every event written so far (a partially written last line is ignored).
    pub fn events(&self) -> Vec<Value> {
        let text = fs::read_to_string(&self.events_path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Polls the event file until `pred` matches an event, or panics after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.events().into_iter().find(|e| pred(e)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; vigil log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, wait for a clean exit, and return every event it wrote.
    pub fn stop(mut self) -> (ExitStatus, Vec<Value>) {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait vigil") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "vigil did not stop within 30s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.events())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Events of one process (`pid` in vigil's JSON is the process id, i.e. the tgid).
pub fn of_pid<'a>(events: &'a [Value], pid: u32) -> impl Iterator<Item = &'a Value> + 'a {
    events.iter().filter(move |e| e["pid"] == pid)
}

pub fn of_type<'a>(
    events: impl Iterator<Item = &'a Value> + 'a,
    kind: &'a str,
) -> impl Iterator<Item = &'a Value> + 'a {
    events.filter(move |e| e["type"] == kind)
}

/// The syscall ids of `pid`'s batches, thread by thread in batch order, concatenated.
pub fn syscalls_of(events: &[Value], pid: u32) -> Vec<i64> {
    let mut batches: Vec<&Value> = of_type(of_pid(events, pid), "syscall_batch").collect();
    // A thread's batches may come from different CPUs (`seq` counts per CPU): order by when
    // each batch started, which for one thread is the order it made the calls.
    batches.sort_by_key(|b| (b["tid"].as_u64(), b["first_ns"].as_u64()));
    batches
        .iter()
        .flat_map(|b| {
            b["syscalls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
        })
        .collect()
}
