//! `quarantine()`: pin the process, record, contain, then make it durable: create a frozen
//! cgroup, cut the network, move the process tree in, verify the freeze, end the containment,
//! vault evidence. Each step is persisted before it runs; any failure after the record exists
//! is rolled back and leaves a `Failed` record.
//!
//! Containment comes first because it is cheap: a tgid network entry and a SIGSTOP through the
//! pidfd cost microseconds per process, while every `cgroup.procs` write waits for an RCU grace
//! period (milliseconds). Stopped, the tree can neither run, fork nor connect while the cgroup
//! work is done; once the frozen cgroup holds it, SIGCONT only moves each task from the stop
//! into the freezer trap, and the cgroup's network entry replaces the tgid ones.
//!
//! The cgroup is frozen when it is created, before anything enters: a process moved in stops at
//! once and cannot fork a child that escapes while its descendants are still being found.
//! What remains racy is a not-yet-moved descendant that double-forks so that its child is
//! reparented away (to init or a subreaper) between two scans; the ppid walk cannot see that.

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::cgroup::{Cgroup, SETTLE_TIMEOUT};
use super::clock::Utc;
use super::error::{QuarantineError, is_gone};
use super::evidence::{Evidence, ExeCopy, copy_exe};
use super::manager::{NetworkCut, QuarantineManager};
use super::pidfd::PidFd;
use super::procfs;
use super::protect::{Target, check_target};
use super::record::{QState, QuarantineRecord, QuarantineRequest};
use super::vault::{EVIDENCE_FILE, EXE_FILE};

/// Scans for descendants before giving up on a tree that keeps growing (a fork bomb outruns
/// any scan; what was caught stays frozen).
const MAX_MOVE_PASSES: usize = 64;

/// How long containment waits for its SIGSTOPs to take effect (each thread stopped, or in an
/// uninterruptible sleep it leaves only to stop). Past it the capture goes on and says so: the
/// frozen cgroup follows anyway.
const CONTAIN_WAIT: Duration = Duration::from_millis(100);

/// What has been done so far, so a rollback undoes only that.
#[derive(Debug, Default)]
struct Progress {
    /// Processes the containment SIGSTOPped, pinned (SIGCONT reaches them or nothing), with
    /// their start times.
    stopped: Vec<(PidFd, u64)>,
    /// tgids the containment put in the network map.
    cut_tgids: Vec<u32>,
    cgroup_created: bool,
    cut_attempted: bool,
}

impl QuarantineManager {
    pub fn quarantine(
        &mut self,
        req: QuarantineRequest,
        net: &mut dyn NetworkCut,
    ) -> Result<QuarantineRecord, QuarantineError> {
        // 1. Refusals happen before anything is written: no action, no record (the caller
        // journals its own decision and our error).
        let target = check_target(req.pid, req.start_ticks)?;
        let original = procfs::v2_cgroup(req.pid).map_err(|e| gone_or_io(req.pid, e))?;
        if self.is_quarantine_path(&original) {
            return Err(QuarantineError::AlreadyQuarantined {
                pid: req.pid,
                cgroup: original,
            });
        }

        // 2. The record, Pending. Written (atomically) before anything is done, but fsynced only
        // with the `contained:` step: the fsync guards against a power loss, and nothing the
        // containment does survives one (stopped processes and BPF map entries die with the
        // kernel), while a vigil crash keeps the unsynced write in the page cache. So the fsync
        // can follow containment instead of delaying it, and still precedes the cgroup work.
        let id = self.vault.create_entry(Utc::now())?;
        let cgroup = self.cfg.cgroup_parent.join(&id);
        let mut record = QuarantineRecord::pending(id, cgroup, &req, target.stat.start_ticks);
        self.step_as(
            &mut record,
            format!(
                "pending: pid {} ({}) start_ticks {} in {original}; reason: {}",
                req.pid, target.stat.comm, target.stat.start_ticks, req.reason
            ),
            false,
        )?;

        let mut progress = Progress::default();
        let result = self
            .contain(&mut record, &req, &target, net, &mut progress)
            .and_then(|()| self.capture(&mut record, &req, &target, &original, net, &mut progress));
        match result {
            Ok(()) => {
                info!(id = %record.id, pid = req.pid, pids = ?record.pids, "quarantined");
                Ok(record)
            }
            Err(e) => {
                self.roll_back(&mut record, net, &mut progress, &e);
                Err(e)
            }
        }
    }

    /// Holds the target and its descendants at once: each is cut from the network by tgid,
    /// then SIGSTOPped through its pidfd. A stopped process cannot fork, so rescanning until a
    /// pass finds nothing new catches the tree. Protected processes (`spare`, vigil and its
    /// ancestors) are never stopped, and neither are their descendants. The `contained:` step
    /// is noted once the stops have taken effect.
    fn contain(
        &mut self,
        record: &mut QuarantineRecord,
        req: &QuarantineRequest,
        target: &Target,
        net: &mut dyn NetworkCut,
        progress: &mut Progress,
    ) -> Result<(), QuarantineError> {
        let cut = net.available();
        let pid = target.pidfd.pid;
        let mut notes = Vec::new();
        let pidfd = target
            .pidfd
            .try_clone()
            .map_err(|e| QuarantineError::io(format!("/proc/{pid}"), e))?;
        let held = hold(pidfd, &target.stat, cut, net, progress, &mut notes);
        held.map_err(|e| {
            if is_gone(&e) {
                QuarantineError::ProcessGone { pid }
            } else {
                QuarantineError::Signal { pid, source: e }
            }
        })?;

        let protected = procfs::self_and_ancestors();
        let mut members: BTreeSet<u32> = BTreeSet::from([pid]);
        let mut complete = false;
        for _ in 0..MAX_MOVE_PASSES {
            let mut found_new = false;
            for (child, pidfd, stat) in pinned_children(&members) {
                if protected.contains(&child) || req.spare.contains(&child) {
                    continue;
                }
                members.insert(child);
                found_new = true;
                match hold(pidfd, &stat, cut, net, progress, &mut notes) {
                    Err(e) if !is_gone(&e) => {
                        notes.push(format!("SIGSTOP of pid {child} failed: {e}"))
                    }
                    _ => {}
                }
            }
            if !found_new {
                complete = true;
                break;
            }
        }
        if !complete {
            notes.push(format!(
                "descendants still appearing after {MAX_MOVE_PASSES} passes; containing what was caught"
            ));
        }
        let (in_effect, states) = wait_held(&progress.stopped, CONTAIN_WAIT);
        if !in_effect {
            warn!(id = %record.id, states, "a contained task is still running");
            notes.push(format!(
                "not every stop in effect after {CONTAIN_WAIT:?}: {states}"
            ));
        }
        for n in notes {
            record.note(n);
        }
        record.stopped = progress
            .stopped
            .iter()
            .map(|(p, ticks)| (p.pid, *ticks))
            .collect();
        let pids: Vec<u32> = record.stopped.iter().map(|&(p, _)| p).collect();
        let network = if !cut {
            "network NOT cut: no network guards on this host".to_owned()
        } else if progress.cut_tgids.len() == members.len() {
            "network cut by tgid".to_owned()
        } else {
            format!(
                "network cut by tgid for {} of {}",
                progress.cut_tgids.len(),
                members.len()
            )
        };
        self.step_as(
            record,
            format!(
                "contained: {} process(es) stopped (SIGSTOP) {pids:?}, {network}",
                pids.len()
            ),
            true,
        )
    }

    /// Ends the containment: SIGCONT to every process it stopped, and its tgid network entries
    /// removed. After a successful capture they sit in the frozen cgroup, which keeps them
    /// from running and whose own network entry covers them; after a rollback they are free.
    fn uncontain(
        &mut self,
        record: &mut QuarantineRecord,
        net: &mut dyn NetworkCut,
        progress: &mut Progress,
    ) {
        for (pidfd, _) in progress.stopped.drain(..) {
            match pidfd.signal(libc::SIGCONT) {
                Err(e) if !is_gone(&e) => {
                    record.note(format!("SIGCONT of pid {} failed: {e}", pidfd.pid));
                }
                _ => {}
            }
        }
        record.stopped.clear();
        for tgid in progress.cut_tgids.drain(..) {
            if let Err(e) = net.restore_tgid(tgid) {
                record.note(format!(
                    "removing the network entry of tgid {tgid} failed: {e}"
                ));
            }
        }
    }

    fn capture(
        &mut self,
        record: &mut QuarantineRecord,
        req: &QuarantineRequest,
        target: &Target,
        original: &str,
        net: &mut dyn NetworkCut,
        progress: &mut Progress,
    ) -> Result<(), QuarantineError> {
        // 3. The cgroup, frozen from birth.
        let cg = Cgroup::new(&record.cgroup);
        self.step(
            record,
            format!("create cgroup {} frozen", record.cgroup.display()),
        )?;
        fs::create_dir_all(&self.cfg.cgroup_parent)
            .map_err(|e| QuarantineError::io(&self.cfg.cgroup_parent, e))?;
        cg.create()?;
        progress.cgroup_created = true;
        cg.set_frozen(true)?;
        record.cgroup_id = cg.id()?;

        // 4. Network. Without guards the freeze still holds the process; the record says the
        // network was not cut rather than letting the process go.
        if net.available() {
            self.step(
                record,
                format!("cut network of cgroup id {}", record.cgroup_id),
            )?;
            progress.cut_attempted = true;
            net.cut(record.cgroup_id)
                .map_err(|message| QuarantineError::Network {
                    op: "cut",
                    cgroup_id: record.cgroup_id,
                    message,
                })?;
            record.network_cut = true;
        } else {
            self.step(record, "network NOT cut: no network guards on this host")?;
        }

        // 5. The process, then its descendants, then any contained process the descendant
        // scan no longer reaches.
        self.move_target(record, &cg, target, original)?;
        self.move_descendants(record, &cg, &req.spare)?;
        self.move_stragglers(record, &cg, progress)?;

        // 6. Verify the freeze.
        self.step(
            record,
            "verify freeze (cgroup.events frozen 1, no task running)",
        )?;
        cg.set_frozen(true)?;
        cg.wait_frozen(true, self.cfg.freeze_timeout)?;
        let (verified, states) = wait_tasks_stopped(&record.pids, self.cfg.freeze_timeout);
        record.frozen_verified = verified;
        if !verified {
            warn!(id = %record.id, states, "cgroup reports frozen but a task is still running");
        }
        record.note(format!("frozen 1; task states {states}"));

        // 7. The frozen cgroup holds the tree now: end the containment. A stopped task that
        // gets SIGCONT in a frozen cgroup goes from the stop straight into the freezer trap and
        // never reaches user space (and runs normally, not stopped, once thawed). The tgid
        // entries go now, not at release: pids are recycled.
        if !progress.stopped.is_empty() || !progress.cut_tgids.is_empty() {
            self.step(
                record,
                format!(
                    "end containment: SIGCONT {} process(es) inside the frozen cgroup, remove {} tgid network entries",
                    progress.stopped.len(),
                    progress.cut_tgids.len()
                ),
            )?;
            self.uncontain(record, net, progress);
        }

        // 8. Evidence.
        self.step(record, format!("vault evidence of pid {}", req.pid))?;
        self.vault_evidence(record, req)?;

        // 9. Done.
        record.state = QState::Active;
        self.step(
            record,
            format!(
                "active: {} process(es) frozen, network cut",
                record.pids.len()
            ),
        )
    }

    fn move_target(
        &mut self,
        record: &mut QuarantineRecord,
        cg: &Cgroup,
        target: &Target,
        original: &str,
    ) -> Result<(), QuarantineError> {
        let pid = target.pidfd.pid;
        self.step(record, format!("move pid {pid} from {original}"))?;
        cg.add_pid(pid).map_err(|e| gone_or_io(pid, e))?;
        // The number could have been recycled between the checks and the write; the pidfd
        // cannot. The rollback moves whatever was moved back out.
        if !target.pidfd.is_alive() {
            return Err(QuarantineError::ProcessGone { pid });
        }
        record.pids.push(pid);
        record.original_cgroups.push((pid, original.to_owned()));
        Ok(())
    }

    /// Moves every descendant of the moved set, pass after pass, until a pass finds nothing
    /// new. A child forked after its parent moved is born inside and needs no move.
    /// `spare`: protected processes (the caller's list) stay where they are, with their own
    /// descendants: a target that started an sshd does not take sshd down with it.
    fn move_descendants(
        &mut self,
        record: &mut QuarantineRecord,
        cg: &Cgroup,
        spare: &[u32],
    ) -> Result<(), QuarantineError> {
        let mut spared: BTreeSet<u32> = BTreeSet::new();
        let inside = format!(
            "/{}",
            cg.path
                .strip_prefix(&self.cgroup_root)
                .unwrap_or(&cg.path)
                .display()
        );
        let mut members: BTreeSet<u32> = record.pids.iter().copied().collect();
        for _ in 0..MAX_MOVE_PASSES {
            let mut found_new = false;
            for (pid, pidfd, stat) in pinned_children(&members) {
                if spare.contains(&pid) {
                    if spared.insert(pid) {
                        record.note(format!(
                            "pid {pid} ({}) is protected: left out, with its descendants",
                            stat.comm
                        ));
                    }
                    continue;
                }
                let Ok(from) = procfs::v2_cgroup(pid) else {
                    continue;
                };
                members.insert(pid);
                found_new = true;
                record.pids.push(pid);
                if from == inside {
                    record.note(format!("pid {pid} ({}) was born inside", stat.comm));
                    continue;
                }
                self.step(
                    record,
                    format!(
                        "move pid {pid} ({}, child of {}) from {from}",
                        stat.comm, stat.ppid
                    ),
                )?;
                self.move_in(record, cg, &pidfd, from)?;
            }
            if !found_new {
                return Ok(());
            }
        }
        warn!(id = %record.id, "descendants still appearing; keeping what was caught");
        record.note(format!(
            "descendants still appearing after {MAX_MOVE_PASSES} passes; keeping what was caught"
        ));
        Ok(())
    }

    /// Moves in every contained process the descendant scan did not reach (its parent died
    /// and it was reparented away): whatever was stopped ends up frozen, so that the SIGCONT
    /// that ends the containment cannot set it free.
    fn move_stragglers(
        &mut self,
        record: &mut QuarantineRecord,
        cg: &Cgroup,
        progress: &Progress,
    ) -> Result<(), QuarantineError> {
        for (pidfd, _) in &progress.stopped {
            let pid = pidfd.pid;
            if record.pids.contains(&pid) || !pidfd.is_alive() {
                continue;
            }
            let Ok(from) = procfs::v2_cgroup(pid) else {
                continue;
            };
            record.pids.push(pid);
            self.step(
                record,
                format!("move pid {pid} (contained, no longer a descendant) from {from}"),
            )?;
            self.move_in(record, cg, pidfd, from)?;
        }
        Ok(())
    }

    /// Writes `pidfd`'s pid (already listed in `record.pids`) to `cg`, and keeps the record
    /// true to the outcome.
    fn move_in(
        &mut self,
        record: &mut QuarantineRecord,
        cg: &Cgroup,
        pidfd: &PidFd,
        from: String,
    ) -> Result<(), QuarantineError> {
        let pid = pidfd.pid;
        match cg.add_pid(pid) {
            Ok(()) if pidfd.is_alive() => {
                record.original_cgroups.push((pid, from));
            }
            Ok(()) => {
                // Exited and the number was recycled mid-move: put the stranger back.
                record.pids.retain(|&p| p != pid);
                record.note(format!("pid {pid} exited during the move; moving it back"));
                if let Err(e) = self.cgroup_at(&from).add_pid(pid) {
                    record.note(format!("moving pid {pid} back failed: {e}"));
                }
            }
            Err(e) if is_gone(&e) => {
                record.pids.retain(|&p| p != pid);
                record.note(format!("pid {pid} exited before the move"));
            }
            Err(e) => return Err(QuarantineError::io(cg.path.join("cgroup.procs"), e)),
        }
        Ok(())
    }

    fn vault_evidence(
        &mut self,
        record: &mut QuarantineRecord,
        req: &QuarantineRequest,
    ) -> Result<(), QuarantineError> {
        let dest = self.vault.dir(&record.id).join(EXE_FILE);
        // A missing copy weakens the evidence but is no reason to let the process go, so copy
        // failures are noted rather than failing the quarantine.
        match copy_exe(req.pid, &dest, self.cfg.max_exe_bytes) {
            Ok(ExeCopy::Copied {
                path,
                sha256,
                bytes,
            }) => {
                record.note(format!("copied executable: {bytes} bytes, sha256 {sha256}"));
                if let Some(reported) = &req.sha256
                    && !reported.eq_ignore_ascii_case(&sha256)
                {
                    warn!(id = %record.id, reported, sha256, "executable digest differs from the caller's");
                    record.note(format!(
                        "sha256 differs: caller reported {reported}, vaulted copy is {sha256}"
                    ));
                }
                record.sha256 = Some(sha256);
                record.exe_copy = Some(path);
            }
            Ok(ExeCopy::TooLarge { bytes }) => record.note(format!(
                "executable not copied: {bytes} bytes exceeds the {} byte bound",
                self.cfg.max_exe_bytes
            )),
            Err(e) => record.note(format!("executable not copied: {e}")),
        }
        let mut evidence = Evidence::new(&record.id, req, record.start_ticks);
        evidence.exe_sha256 = record.sha256.as_deref();
        evidence.pids = &record.pids;
        evidence.original_cgroups = &record.original_cgroups;
        let path = self
            .vault
            .write_json(&record.id, EVIDENCE_FILE, &evidence)?;
        record.evidence = Some(path);
        Ok(())
    }

    /// Best-effort undo of whatever `progress` says was done, then `Failed`.
    fn roll_back(
        &mut self,
        record: &mut QuarantineRecord,
        net: &mut dyn NetworkCut,
        progress: &mut Progress,
        error: &QuarantineError,
    ) {
        warn!(id = %record.id, %error, "quarantine failed; rolling back");
        self.step_best_effort(record, format!("failed: {error}; rolling back"));
        let cg = Cgroup::new(&record.cgroup);
        if progress.cgroup_created {
            self.step_best_effort(record, "thaw");
            if let Err(e) = cg.set_frozen(false) {
                record.note(format!("thaw failed: {e}"));
            }
            if let Err(e) = self.move_all_out(record, &cg, false) {
                record.note(format!("moving processes back failed: {e}"));
            }
        }
        if progress.cut_attempted {
            self.step_best_effort(
                record,
                format!("restore network of cgroup id {}", record.cgroup_id),
            );
            match net.restore(record.cgroup_id) {
                Ok(()) => record.network_cut = false,
                Err(e) => record.note(format!("network restore failed: {e}")),
            }
        }
        if progress.cgroup_created {
            self.step_best_effort(record, "remove cgroup");
            if let Err(e) = cg.remove(SETTLE_TIMEOUT) {
                record.note(format!("removing the cgroup failed: {e}"));
            }
        }
        // Last, once out of the cgroup: SIGCONT and the tgid entries.
        if !progress.stopped.is_empty() || !progress.cut_tgids.is_empty() {
            self.step_best_effort(
                record,
                format!(
                    "end containment: SIGCONT {} process(es), remove {} tgid network entries",
                    progress.stopped.len(),
                    progress.cut_tgids.len()
                ),
            );
            self.uncontain(record, net, progress);
        }
        record.state = QState::Failed(error.to_string());
        self.step_best_effort(record, "rolled back");
    }
}

/// Cuts one process's network by tgid, then SIGSTOPs it through `pidfd`. A process already
/// stopped (job control, a debugger) gets the SIGSTOP too but is not recorded as stopped by the
/// containment, so the SIGCONT that ends it leaves that stop to whoever made it. The error is
/// the signal's; a failed tgid entry only becomes a note (the stop holds the network anyway).
fn hold(
    pidfd: PidFd,
    stat: &procfs::Stat,
    cut: bool,
    net: &mut dyn NetworkCut,
    progress: &mut Progress,
    notes: &mut Vec<String>,
) -> std::io::Result<()> {
    let pid = pidfd.pid;
    if cut {
        match net.cut_tgid(pid) {
            Ok(()) => progress.cut_tgids.push(pid),
            Err(e) => notes.push(format!("network cut of tgid {pid} failed: {e}")),
        }
    }
    pidfd.signal(libc::SIGSTOP)?;
    if stat.state == 'T' {
        notes.push(format!(
            "pid {pid} ({}) was already stopped: no SIGCONT will follow from vigil",
            stat.comm
        ));
    } else {
        progress.stopped.push((pidfd, stat.start_ticks));
    }
    Ok(())
}

/// Waits until no thread of the stopped processes can still run user code: each is stopped
/// (`T`, `t`), in an uninterruptible sleep it leaves only to stop (`D`), or dead. A SIGSTOP
/// lands within microseconds, so this rarely loops. Returns whether it held and, when it did
/// not, a `tid=state` summary of the rest.
fn wait_held(stopped: &[(PidFd, u64)], timeout: Duration) -> (bool, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let running: Vec<(u32, char)> = stopped
            .iter()
            .flat_map(|(p, _)| procfs::thread_states(p.pid))
            .filter(|&(_, s)| !matches!(s, 'T' | 't' | 'D' | 'Z' | 'X'))
            .collect();
        if running.is_empty() {
            return (true, String::new());
        }
        if Instant::now() >= deadline {
            let summary = running
                .iter()
                .map(|(tid, s)| format!("{tid}={s}"))
                .collect::<Vec<_>>()
                .join(" ");
            return (false, summary);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn gone_or_io(pid: u32, e: std::io::Error) -> QuarantineError {
    if is_gone(&e) {
        QuarantineError::ProcessGone { pid }
    } else {
        QuarantineError::io(format!("/proc/{pid}"), e)
    }
}

/// Pids whose parent is in `members` and which are not members yet: the per-task `children`
/// files first (cheap), then a scan of every ppid, since `children` can miss a child that is
/// being reparented.
/// The processes [`children_of`] finds, each pinned by a pidfd and then re-read, so the parent
/// link checked belongs to the process the pidfd holds; kernel threads left out.
fn pinned_children(members: &BTreeSet<u32>) -> Vec<(u32, PidFd, procfs::Stat)> {
    children_of(members)
        .into_iter()
        .filter_map(|pid| {
            let pidfd = PidFd::open(pid).ok()?;
            let stat = procfs::read_stat(pid).ok()?;
            (members.contains(&stat.ppid) && !stat.is_kernel_thread()).then_some((pid, pidfd, stat))
        })
        .collect()
}

fn children_of(members: &BTreeSet<u32>) -> BTreeSet<u32> {
    let me = std::process::id();
    let mut found: BTreeSet<u32> = members
        .iter()
        .flat_map(|&p| procfs::task_children(p))
        .collect();
    for pid in procfs::list_pids().unwrap_or_default() {
        if found.contains(&pid) || members.contains(&pid) {
            continue;
        }
        if procfs::read_stat(pid).is_ok_and(|s| members.contains(&s.ppid)) {
            found.insert(pid);
        }
    }
    // Never vigil itself, even if a racing read made it look like a descendant.
    found.retain(|p| !members.contains(p) && *p != me);
    found
}

/// Waits for every thread of `pids` to leave the running state. On the v2 freezer a frozen task
/// sleeps in a freezer trap (`S`, or `D` if it froze in the kernel); `cgroup.events` is the
/// authority, this is the second opinion. Returns whether it held and a `pid=state` summary.
fn wait_tasks_stopped(pids: &[u32], timeout: Duration) -> (bool, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let states: Vec<(u32, char)> = pids
            .iter()
            .flat_map(|&p| procfs::thread_states(p))
            .collect();
        let running = states.iter().any(|&(_, s)| s == 'R');
        if !running || Instant::now() >= deadline {
            let summary = states
                .iter()
                .map(|(tid, s)| format!("{tid}={s}"))
                .collect::<Vec<_>>()
                .join(" ");
            return (!running, summary);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
