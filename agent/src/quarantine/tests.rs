//! Real-kernel tests: they need root and the cgroup v2 freezer, and skip with a printed reason
//! otherwise. Each test works under its own cgroup parent and vault and only touches processes it
//! spawned; a drop guard SIGKILLs and removes whatever it left behind, even after a panic.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::cgroup::{CGROUP2_MOUNT, Cgroup};
use super::procfs;
use super::record::QuarantineRecord;
use super::vault::RECORD_FILE;
use super::*;

/// Records what the manager asked of the network instead of touching a BPF map.
#[derive(Debug, Default)]
struct RecordingNet {
    /// Cgroup cuts and restores, in order.
    calls: Vec<(&'static str, u64)>,
    /// Every tgid ever cut, in order.
    tgids_cut: Vec<u32>,
    /// tgid entries in the "map" now.
    tgids: BTreeSet<u32>,
    fail_cut: bool,
}

impl NetworkCut for RecordingNet {
    fn cut(&mut self, cgroup_id: u64) -> Result<(), String> {
        self.calls.push(("cut", cgroup_id));
        if self.fail_cut {
            return Err("test double refuses".into());
        }
        Ok(())
    }

    fn restore(&mut self, cgroup_id: u64) -> Result<(), String> {
        self.calls.push(("restore", cgroup_id));
        Ok(())
    }

    fn cut_tgid(&mut self, tgid: u32) -> Result<(), String> {
        self.tgids_cut.push(tgid);
        self.tgids.insert(tgid);
        Ok(())
    }

    fn restore_tgid(&mut self, tgid: u32) -> Result<(), String> {
        self.tgids.remove(&tgid);
        Ok(())
    }
}

/// `/proc/PID/stat` state of every thread of `pid`.
fn states(pid: u32) -> Vec<char> {
    procfs::thread_states(pid)
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

fn stopped(pid: u32) -> bool {
    states(pid).contains(&'T')
}

/// A writer that has written, then stopped with SIGSTOP by someone other than vigil.
fn spawn_stopped_writer(env: &TestEnv, out: &Path) -> Spawned {
    let child = env.spawn_writer(out, None);
    wait_for("the writer", || len(out) > 0);
    signal(child.pid(), nix::sys::signal::Signal::SIGSTOP);
    wait_for("the stop", || stopped(child.pid()));
    child
}

/// After a rollback or release: no stop left on record or on `pid`, and its writer runs on.
fn assert_running_again(record: &QuarantineRecord, pid: u32, out: &Path) {
    assert!(record.stopped.is_empty(), "still recorded as stopped: {:?}", record.stopped);
    assert!(!stopped(pid), "pid {pid} left stopped: {:?}", states(pid));
    assert!(grows(out), "pid {pid}'s writer did not resume");
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

/// The index of the first event containing each of `steps`, each after the one before;
/// panics naming the first step missing.
fn in_order(record: &QuarantineRecord, steps: &[&str]) -> Vec<usize> {
    let mut at = 0;
    let mut found = Vec::new();
    for step in steps {
        at += record.events[at..]
            .iter()
            .position(|e| e.contains(step))
            .unwrap_or_else(|| panic!("no {step:?} after event {at}: {:#?}", record.events));
        found.push(at);
    }
    found
}

/// One test's cgroup parent and vault, removed on drop.
struct TestEnv {
    parent: PathBuf,
    /// Where the test's processes start, so "back where it came from" is not just the root.
    origin: Cgroup,
    vault: tempfile::TempDir,
    files: tempfile::TempDir,
}

impl TestEnv {
    /// None (after printing why) when this machine cannot run quarantine tests.
    fn new(test: &str) -> Option<Self> {
        static N: AtomicUsize = AtomicUsize::new(0);
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping {test}: needs root");
            return None;
        }
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("vigil-test-{}-{n}", std::process::id());
        let env = Self {
            parent: Path::new(CGROUP2_MOUNT).join(&name),
            origin: Cgroup::new(Path::new(CGROUP2_MOUNT).join(format!("{name}-origin"))),
            vault: tempfile::tempdir().unwrap(),
            files: tempfile::tempdir().unwrap(),
        };
        match QuarantineManager::open(env.config()) {
            Ok(_) => {
                env.origin.create().unwrap();
                Some(env)
            }
            Err(
                e @ (QuarantineError::Cgroup2Unavailable(_)
                | QuarantineError::FreezerUnavailable { .. }),
            ) => {
                eprintln!("skipping {test}: {e}");
                None
            }
            Err(e) => panic!("{test}: opening the manager failed: {e}"),
        }
    }

    fn config(&self) -> QuarantineConfig {
        QuarantineConfig {
            cgroup_parent: self.parent.clone(),
            vault: self.vault.path().join("quarantine"),
            freeze_timeout: Duration::from_secs(2),
            ..QuarantineConfig::default()
        }
    }

    fn open(&self) -> QuarantineManager {
        QuarantineManager::open(self.config()).unwrap()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    /// The origin cgroup as `/proc/PID/cgroup` shows it.
    fn origin_path(&self) -> String {
        format!(
            "/{}",
            self.origin
                .path
                .strip_prefix(CGROUP2_MOUNT)
                .unwrap()
                .display()
        )
    }

    /// `sh` appending to `out` every 50 ms, optionally with a child shell of its own doing the
    /// same to `inner_out` (writing its pid to `inner_pid`): the grandchild of the test. The
    /// shell moves itself into the origin cgroup before it forks anything.
    /// A writer with a writing child: (its output, the child's output, it, the child's pid),
    /// once both write.
    fn spawn_tree(&self) -> (PathBuf, PathBuf, Spawned, u32) {
        let (out, inner_out, inner_pid) = (self.file("out"), self.file("inner"), self.file("inner.pid"));
        let child = self.spawn_writer(&out, Some((&inner_out, &inner_pid)));
        wait_for("both writers", || len(&out) > 0 && len(&inner_out) > 0);
        let grandchild: u32 = fs::read_to_string(&inner_pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (out, inner_out, child, grandchild)
    }

    fn spawn_writer(&self, out: &Path, inner: Option<(&Path, &Path)>) -> Spawned {
        let inner = inner.map_or(String::new(), |(inner_out, inner_pid)| {
            format!(
                "sh -c \"echo \\$\\$ > {}; while :; do echo y >> {}; sleep 0.05; done\" & ",
                inner_pid.display(),
                inner_out.display()
            )
        });
        let script = format!(
            "echo $$ > {}/cgroup.procs; {inner}while :; do echo x >> {}; sleep 0.05; done",
            self.origin.path.display(),
            out.display()
        );
        Spawned(Some(
            Command::new("sh").arg("-c").arg(script).spawn().unwrap(),
        ))
    }

    fn vault_entries(&self) -> Vec<String> {
        dir_names(&self.config().vault, "q-")
    }

    fn cgroups(&self) -> Vec<String> {
        dir_names(&self.parent, "")
            .into_iter()
            .filter(|n| self.parent.join(n).is_dir())
            .collect()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for name in self.cgroups() {
            let cg = Cgroup::new(self.parent.join(name));
            let _ = cg.kill_all();
            let _ = cg.wait_empty(Duration::from_secs(5));
            let _ = cg.remove(Duration::from_secs(5));
        }
        let _ = fs::remove_dir(&self.parent);
        let _ = self.origin.kill_all();
        let _ = self.origin.wait_empty(Duration::from_secs(5));
        let _ = self.origin.remove(Duration::from_secs(5));
    }
}

/// A spawned process that is killed and reaped if the test ends without doing so.
struct Spawned(Option<Child>);

impl Spawned {
    fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    fn take(&mut self) -> Child {
        self.0.take().unwrap()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn dir_names(dir: &Path, prefix: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && !n.starts_with("cgroup.") && !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20));
    }
}

fn len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Whether `path` grows within 400 ms (the writers append every 50 ms).
fn grows(path: &Path) -> bool {
    let before = len(path);
    sleep(Duration::from_millis(400));
    len(path) > before
}

fn request(pid: u32) -> QuarantineRequest {
    QuarantineRequest {
        pid,
        start_ticks: procfs::read_stat(pid).unwrap().start_ticks,
        reason: "test".into(),
        score: Some(0.97),
        exe: "/bin/sh".into(),
        cmdline: vec!["sh".into(), "-c".into(), "...".into()],
        ancestry: vec![(std::process::id(), "test".into())],
        recent_tokens: vec!["open".into(), "write".into()],
        scores: vec![0.5, 0.97],
        policy_version: "test-1".into(),
        ..QuarantineRequest::default()
    }
}

fn on_disk(env: &TestEnv, id: &str) -> QuarantineRecord {
    let text = fs::read(env.config().vault.join(id).join(RECORD_FILE)).unwrap();
    serde_json::from_slice(&text).unwrap()
}

fn events_frozen(cgroup: &Path) -> bool {
    fs::read_to_string(cgroup.join("cgroup.events"))
        .unwrap()
        .contains("frozen 1")
}

fn sha256_hex(path: &Path) -> String {
    let digest = Sha256::digest(fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn quarantine_freezes_the_tree_and_release_restores_it() {
    let Some(env) = TestEnv::new("quarantine_freezes_the_tree_and_release_restores_it") else {
        return;
    };
    let (out, inner_out, child, grandchild) = env.spawn_tree();
    let original = procfs::v2_cgroup(child.pid()).unwrap();
    assert_eq!(original, env.origin_path());
    let exe_digest = sha256_hex(Path::new(&format!("/proc/{}/exe", child.pid())));

    let mut manager = env.open();
    let mut net = RecordingNet::default();
    let mut req = request(child.pid());
    req.sha256 = Some("00".repeat(32));
    let record = manager.quarantine(req, &mut net).unwrap();

    assert_eq!(record.state, QState::Active);
    assert_eq!(record.pids[0], child.pid());
    assert!(
        record.pids.contains(&grandchild),
        "grandchild {grandchild} not in {:?}",
        record.pids
    );
    assert!(record.frozen_verified, "{:#?}", record.events);
    assert!(record.network_cut);
    assert_eq!(
        record.cgroup_id,
        fs::metadata(&record.cgroup).unwrap().ino()
    );
    assert_eq!(net.calls, [("cut", record.cgroup_id)]);
    assert!(events_frozen(&record.cgroup));
    // Contained by tgid first, then the tgid entries went with the containment's end.
    assert_eq!(net.tgids_cut[0], child.pid());
    assert!(net.tgids_cut.contains(&grandchild), "{:?}", net.tgids_cut);
    assert!(net.tgids.is_empty(), "stale tgid entries: {:?}", net.tgids);
    assert!(record.stopped.is_empty());
    // SIGCONT moved them from the stop into the freezer: frozen, not stopped.
    for pid in [child.pid(), grandchild] {
        assert!(!stopped(pid), "pid {pid} left stopped: {:?}", states(pid));
    }
    assert!(!grows(&out), "the quarantined shell kept writing");
    assert!(
        !grows(&inner_out),
        "the quarantined grandchild kept writing"
    );
    let inside = procfs::v2_cgroup(child.pid()).unwrap();
    assert!(
        record.cgroup.ends_with(inside.trim_start_matches('/')),
        "{inside}"
    );
    assert_eq!(manager.active_cgroup_ids(), [record.cgroup_id]);
    let again = manager
        .quarantine(request(grandchild), &mut net)
        .unwrap_err();
    assert!(
        matches!(again, QuarantineError::AlreadyQuarantined { .. }),
        "{again}"
    );

    let disk = on_disk(&env, &record.id);
    assert_eq!(disk.state, QState::Active);
    assert_eq!(disk.pid, child.pid());
    assert_eq!(disk, record);
    // The vaulted image is the real one; the caller's wrong digest is kept and called out.
    assert_eq!(record.sha256.as_deref(), Some(exe_digest.as_str()));
    assert_eq!(record.reported_sha256, Some("00".repeat(32)));
    assert!(record.events.iter().any(|e| e.contains("sha256 differs")));
    let exe_copy = record.exe_copy.clone().unwrap();
    assert_eq!(fs::metadata(&exe_copy).unwrap().mode() & 0o777, 0o400);
    assert_eq!(sha256_hex(&exe_copy), exe_digest);
    let evidence = record.evidence.clone().unwrap();
    assert_eq!(fs::metadata(&evidence).unwrap().mode() & 0o777, 0o600);
    let evidence: serde_json::Value = serde_json::from_slice(&fs::read(evidence).unwrap()).unwrap();
    assert_eq!(
        evidence["recent_tokens"],
        serde_json::json!(["open", "write"])
    );
    let dir_mode = fs::metadata(env.config().vault.join(&record.id))
        .unwrap()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    // Each step was written before it ran, in order; containment before the cgroup work.
    let at = in_order(
        &record,
        &[
            "pending",
            "contained: ",
            "create cgroup",
            "cut network",
            "move pid",
            "verify freeze",
            "end containment",
            "vault evidence",
            "active",
        ],
    );
    // The shell, its child shell and whatever `sleep` each had running.
    let contained = &record.events[at[1]];
    for pid in [child.pid(), grandchild] {
        assert!(contained.contains(&pid.to_string()), "{contained}");
    }
    assert!(contained.contains("stopped (SIGSTOP)"), "{contained}");

    let released = manager.release(&record.id, &mut net).unwrap();
    assert_eq!(released.state, QState::Released);
    assert_eq!(net.calls.last(), Some(&("restore", record.cgroup_id)));
    assert!(!record.cgroup.exists(), "the cgroup was not removed");
    assert!(grows(&out), "the released shell did not resume");
    assert!(grows(&inner_out), "the released grandchild did not resume");
    for pid in [child.pid(), grandchild] {
        assert!(
            !stopped(pid),
            "pid {pid} stopped after release: {:?}",
            states(pid)
        );
    }
    assert_eq!(procfs::v2_cgroup(child.pid()).unwrap(), original);
    assert_eq!(procfs::v2_cgroup(grandchild).unwrap(), original);
    assert_eq!(on_disk(&env, &record.id).state, QState::Released);
    assert!(exe_copy.exists(), "evidence stays after release");
    assert!(manager.active_cgroup_ids().is_empty());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(grandchild as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[test]
fn kill_ends_every_process_and_removes_the_cgroup() {
    let Some(env) = TestEnv::new("kill_ends_every_process_and_removes_the_cgroup") else {
        return;
    };
    let out = env.file("out");
    let mut child = env.spawn_writer(&out, None);
    wait_for("the writer", || len(&out) > 0);
    let mut manager = env.open();
    let mut net = RecordingNet::default();
    let record = manager.quarantine(request(child.pid()), &mut net).unwrap();

    let killed = manager.kill(&record.id, &mut net).unwrap();
    assert_eq!(killed.state, QState::Killed);
    let status = child.take().wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(!record.cgroup.exists());
    assert_eq!(
        net.calls,
        [("cut", record.cgroup_id), ("restore", record.cgroup_id)]
    );
    assert_eq!(on_disk(&env, &record.id).state, QState::Killed);
    // Done is done.
    assert!(matches!(
        manager.release(&record.id, &mut net),
        Err(QuarantineError::InvalidState { .. })
    ));
}

#[test]
fn a_reused_pid_is_refused_before_anything_is_written() {
    let Some(env) = TestEnv::new("a_reused_pid_is_refused_before_anything_is_written") else {
        return;
    };
    let out = env.file("out");
    let child = env.spawn_writer(&out, None);
    let mut manager = env.open();
    let mut net = RecordingNet::default();
    let mut req = request(child.pid());
    req.start_ticks += 1;
    let err = manager.quarantine(req, &mut net).unwrap_err();
    assert!(matches!(err, QuarantineError::PidReused { .. }), "{err}");
    // Decision: a refusal performs nothing, so it leaves nothing; the caller journals it.
    assert!(env.vault_entries().is_empty());
    assert!(env.cgroups().is_empty());
    assert!(net.calls.is_empty());
    assert!(manager.list().is_empty());
    assert!(grows(&out));
}

#[test]
fn protected_processes_are_refused() {
    let Some(env) = TestEnv::new("protected_processes_are_refused") else {
        return;
    };
    let mut manager = env.open();
    let mut net = RecordingNet::default();
    for pid in [1, 2, std::process::id()] {
        let err = manager.quarantine(request(pid), &mut net).unwrap_err();
        assert!(
            matches!(err, QuarantineError::Protected { .. }),
            "pid {pid}: {err}"
        );
    }
    assert!(env.vault_entries().is_empty());
    assert!(net.calls.is_empty());
}

#[test]
fn a_failed_step_rolls_back_and_leaves_a_failed_record() {
    let Some(env) = TestEnv::new("a_failed_step_rolls_back_and_leaves_a_failed_record") else {
        return;
    };
    let out = env.file("out");
    let child = env.spawn_writer(&out, None);
    wait_for("the writer", || len(&out) > 0);
    let original = procfs::v2_cgroup(child.pid()).unwrap();
    let mut manager = env.open();
    let mut net = RecordingNet {
        fail_cut: true,
        ..RecordingNet::default()
    };
    let err = manager
        .quarantine(request(child.pid()), &mut net)
        .unwrap_err();
    assert!(
        matches!(err, QuarantineError::Network { op: "cut", .. }),
        "{err}"
    );
    let [record] = manager.list().try_into().unwrap();
    assert!(
        matches!(record.state, QState::Failed(_)),
        "{:?}",
        record.state
    );
    assert_eq!(on_disk(&env, &record.id), record);
    assert!(!record.cgroup.exists());
    assert_eq!(net.calls.last(), Some(&("restore", record.cgroup_id)));
    assert_eq!(procfs::v2_cgroup(child.pid()).unwrap(), original);
    // The containment was undone too, after the cgroup: resumed, and no tgid entry left.
    in_order(
        &record,
        &[
            "contained: ",
            "failed: ",
            "remove cgroup",
            "end containment",
            "rolled back",
        ],
    );
    assert_eq!(net.tgids_cut[0], child.pid());
    assert!(net.tgids.is_empty(), "stale tgid entries: {:?}", net.tgids);
    assert_running_again(&record, child.pid(), &out);
}

#[test]
fn a_spared_descendant_is_neither_stopped_nor_moved() {
    let Some(env) = TestEnv::new("a_spared_descendant_is_neither_stopped_nor_moved") else {
        return;
    };
    let (out, inner_out, child, grandchild) = env.spawn_tree();
    let mut manager = env.open();
    let mut net = RecordingNet::default();
    let mut req = request(child.pid());
    req.spare = vec![grandchild];
    let record = manager.quarantine(req, &mut net).unwrap();

    assert_eq!(record.state, QState::Active);
    assert!(!record.pids.contains(&grandchild), "{:?}", record.pids);
    assert!(!net.tgids_cut.contains(&grandchild), "{:?}", net.tgids_cut);
    assert!(!stopped(grandchild));
    assert!(grows(&inner_out), "the spared grandchild was stopped");
    assert!(!grows(&out), "the quarantined shell kept writing");
    manager.release(&record.id, &mut net).unwrap();
    assert!(grows(&out));
    signal(grandchild, nix::sys::signal::Signal::SIGKILL);
}

#[test]
fn a_process_stopped_by_someone_else_stays_stopped_after_release() {
    let Some(env) = TestEnv::new("a_process_stopped_by_someone_else_stays_stopped_after_release")
    else {
        return;
    };
    let out = env.file("out");
    let child = spawn_stopped_writer(&env, &out);
    let mut manager = env.open();
    let mut net = RecordingNet::default();
    let record = manager.quarantine(request(child.pid()), &mut net).unwrap();
    assert_eq!(record.state, QState::Active);
    assert!(
        record
            .events
            .iter()
            .any(|e| e.contains("was already stopped")),
        "{:#?}",
        record.events
    );
    manager.release(&record.id, &mut net).unwrap();
    // vigil did not stop it, so vigil does not continue it.
    assert!(stopped(child.pid()), "{:?}", states(child.pid()));
    assert!(!grows(&out));
    signal(child.pid(), nix::sys::signal::Signal::SIGCONT);
    assert!(grows(&out));
}

#[test]
fn releasing_a_capture_interrupted_after_containment_resumes_its_processes() {
    let Some(env) =
        TestEnv::new("releasing_a_capture_interrupted_after_containment_resumes_its_processes")
    else {
        return;
    };
    let out = env.file("out");
    // As a capture that died right after its `contained:` step leaves things: stopped, listed,
    // no cgroup yet.
    let child = spawn_stopped_writer(&env, &out);
    let req = request(child.pid());
    let id = "q-20250101-000000-0000";
    let mut record =
        QuarantineRecord::pending(id.into(), env.parent.join(id), &req, req.start_ticks);
    record.stopped.push((child.pid(), req.start_ticks));
    let dir = env.config().vault.join(id);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(RECORD_FILE), serde_json::to_vec(&record).unwrap()).unwrap();

    let mut manager = env.open();
    assert_eq!(manager.get(id).unwrap().state, QState::Interrupted);
    assert!(!grows(&out));
    let released = manager.release(id, &mut RecordingNet::default()).unwrap();
    assert_eq!(released.state, QState::Released);
    assert!(
        released
            .events
            .iter()
            .any(|e| e.contains("resume (SIGCONT) pid")),
        "{:#?}",
        released.events
    );
    assert_running_again(&released, child.pid(), &out);
}

#[test]
fn a_reopened_manager_still_knows_the_quarantine() {
    let Some(env) = TestEnv::new("a_reopened_manager_still_knows_the_quarantine") else {
        return;
    };
    let out = env.file("out");
    let child = env.spawn_writer(&out, None);
    wait_for("the writer", || len(&out) > 0);
    let mut net = RecordingNet::default();
    let record = {
        let mut manager = env.open();
        manager.quarantine(request(child.pid()), &mut net).unwrap()
    };

    let mut manager = env.open();
    let [listed] = manager.list().try_into().unwrap();
    assert_eq!(listed.id, record.id);
    assert_eq!(listed.state, QState::Active);
    assert_eq!(manager.active_cgroup_ids(), [record.cgroup_id]);
    assert!(!grows(&out));

    // The original cgroup is gone by release time (everything in it was moved out): the
    // processes go to the root instead.
    env.origin.remove(Duration::from_secs(1)).unwrap();
    let released = manager.release(&record.id, &mut net).unwrap();
    assert!(grows(&out));
    assert_eq!(procfs::v2_cgroup(child.pid()).unwrap(), "/");
    assert!(
        released.events.iter().any(|e| e.contains("using the root")),
        "{:#?}",
        released.events
    );
}

#[test]
fn records_are_reconciled_at_open() {
    let Some(env) = TestEnv::new("records_are_reconciled_at_open") else {
        return;
    };
    let out = env.file("out");
    let child = env.spawn_writer(&out, None);
    wait_for("the writer", || len(&out) > 0);
    let original = procfs::v2_cgroup(child.pid()).unwrap();
    let vault = env.config().vault;
    let write = |record: &QuarantineRecord| {
        let dir = vault.join(&record.id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(RECORD_FILE), serde_json::to_vec(record).unwrap()).unwrap();
    };
    let req = request(child.pid());

    // Died after writing Pending, before creating the cgroup.
    let early = QuarantineRecord::pending(
        "q-20250101-000000-0000".into(),
        env.parent.join("q-20250101-000000-0000"),
        &req,
        1,
    );
    write(&early);
    // Died after moving the process into a frozen cgroup, before its id reached disk.
    let late_id = "q-20250101-000000-0001";
    let late_cg = Cgroup::new(env.parent.join(late_id));
    fs::create_dir_all(&env.parent).unwrap();
    late_cg.create().unwrap();
    late_cg.set_frozen(true).unwrap();
    late_cg.add_pid(child.pid()).unwrap();
    late_cg.wait_frozen(true, Duration::from_secs(2)).unwrap();
    let mut late = QuarantineRecord::pending(late_id.into(), late_cg.path.clone(), &req, 1);
    late.pids.push(child.pid());
    late.original_cgroups.push((child.pid(), original.clone()));
    write(&late);
    // Active, but its cgroup is gone (as after a reboot).
    let mut gone = QuarantineRecord::pending(
        "q-20250101-000000-0002".into(),
        env.parent.join("q-20250101-000000-0002"),
        &req,
        1,
    );
    gone.state = QState::Active;
    gone.cgroup_id = 12_345;
    write(&gone);

    let mut manager = env.open();
    let early = manager.get(&early.id).unwrap();
    assert_eq!(early.state, QState::Interrupted);
    assert!(
        early
            .events
            .iter()
            .any(|e| e.contains("stopped mid-quarantine"))
    );
    assert_eq!(on_disk(&env, &early.id).state, QState::Interrupted);
    let late = manager.get(late_id).unwrap();
    assert_eq!(late.state, QState::Interrupted);
    assert_eq!(late.cgroup_id, late_cg.id().unwrap());
    assert_eq!(manager.get(&gone.id).unwrap().state, QState::Vanished);
    // Only the one whose cgroup still exists keeps its network cut.
    assert_eq!(manager.active_cgroup_ids(), [late.cgroup_id]);
    assert_eq!(
        manager
            .list()
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        [early.id.as_str(), late_id, gone.id.as_str()]
    );

    // Both interrupted ones can be finished.
    let mut net = RecordingNet::default();
    assert_eq!(
        manager.release(&early.id, &mut net).unwrap().state,
        QState::Released
    );
    assert!(
        net.calls.is_empty(),
        "nothing was cut for a cgroup never created"
    );
    assert!(!grows(&out));
    assert_eq!(
        manager.release(late_id, &mut net).unwrap().state,
        QState::Released
    );
    assert_eq!(net.calls, [("restore", late.cgroup_id)]);
    assert!(!late_cg.path.exists());
    assert_eq!(procfs::v2_cgroup(child.pid()).unwrap(), original);
    assert!(grows(&out));
    assert!(matches!(
        manager.kill(&gone.id, &mut net),
        Err(QuarantineError::InvalidState { .. })
    ));
}
