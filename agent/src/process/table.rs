//! The process table: one entry per process, keyed by identity that survives pid reuse, kept
//! current by exec/fork/exit events. Single owner (the pipeline's process stage), so no locks.

use foldhash::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_common::{ExecEvent, ExitEvent, ForkEvent};
use tracing::debug;

use super::error::ProcessError;
use super::info::{EXIT_CODE_UNKNOWN, ProcessInfo, ProcessSource, ProcessState};
use super::key::ProcessKey;
use super::proc_seed::{self, KTHREADD_PID};

/// `clone(2)`'s CLONE_PARENT: the child's parent is the caller's parent.
const CLONE_PARENT: u64 = 0x0000_8000;

#[derive(Clone, Debug)]
pub struct TableConfig {
    /// Upper bound on entries, running and exited together.
    pub max_entries: usize,
    /// How long an exited process stays resolvable for events that arrive after its exit.
    pub exit_grace: Duration,
    /// Upper bound on exited entries kept for their grace period; past it the oldest exits go
    /// first. An exec storm turns entries over at its own rate, so without this bound memory
    /// would grow with the rate: ~2 KB an entry with its sequence, 13,800 entries (+26 MiB)
    /// after 10 s at 1,400 exec/s.
    pub max_exited: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        Self {
            max_entries: 65_536,
            // What arrives after an exit (reordered tokens, a hash, the scorer's last verdict)
            // lags by milliseconds, seconds when a stage is backed up; every entry kept costs
            // memory on exec-heavy hosts (1000 exits/s keep 10,000 entries).
            exit_grace: Duration::from_secs(10),
            // 400 exits/s keep every exit for the whole grace period.
            max_exited: 4096,
        }
    }
}

#[derive(Debug)]
pub struct ProcessTable {
    pub(super) config: TableConfig,
    /// Generations of each tgid, ordered by start time. Usually one; more only while a recycled
    /// pid's predecessor is still within its exit grace period.
    pub(super) by_tgid: HashMap<u32, Vec<ProcessInfo>>,
    pub(super) len: usize,
    pub(super) expired_total: u64,
    pub(super) evicted_total: u64,
    pub(super) evicted_running_total: u64,
}

impl ProcessTable {
    pub fn new(config: TableConfig) -> Self {
        Self {
            config,
            by_tgid: HashMap::default(),
            len: 0,
            expired_total: 0,
            evicted_total: 0,
            evicted_running_total: 0,
        }
    }

    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries not yet exited. Walks the table: meant for metrics, not per event.
    pub fn running(&self) -> usize {
        self.iter().filter(|p| p.is_running()).count()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ProcessInfo> {
        self.by_tgid.values().flatten()
    }

    /// The newest process with this tgid (running, or exited within the grace period).
    pub fn get(&self, tgid: u32) -> Option<&ProcessInfo> {
        self.by_tgid.get(&tgid)?.last()
    }

    /// The process `key` names, compared at clock-tick granularity.
    pub fn get_key(&self, key: &ProcessKey) -> Option<&ProcessInfo> {
        self.by_tgid
            .get(&key.tgid)?
            .iter()
            .find(|p| p.key.same_process(key))
    }

    /// Marks the process as just seen, if the table knows it.
    pub fn touch(&mut self, key: &ProcessKey, now: Instant) {
        if let Some(p) = self.get_key_mut(key) {
            p.last_seen = now;
        }
    }

    fn get_key_mut(&mut self, key: &ProcessKey) -> Option<&mut ProcessInfo> {
        self.by_tgid
            .get_mut(&key.tgid)?
            .iter_mut()
            .find(|p| p.key.same_process(key))
    }

    /// Records the image's digest, unless the process has exec'd again since `execs` was read
    /// (the digest would then describe the previous image). Returns whether it was stored.
    pub fn set_exe_sha256(&mut self, key: &ProcessKey, execs: u32, sha256: &Arc<str>) -> bool {
        match self.get_key_mut(key) {
            Some(p) if p.execs == execs => {
                p.exe_sha256 = Some(Arc::clone(sha256));
                true
            }
            _ => false,
        }
    }

    /// Names the image by an absolute path when the exec named it relative to its cwd
    /// (`./tool`): rules match absolute paths, and `cd /usr/bin && ./bash` is still bash.
    pub fn resolve_relative_exe(&mut self, key: &ProcessKey, execs: u32, running: &str) {
        if let Some(p) = self.get_key_mut(key)
            && p.execs == execs
            && !p.exe.starts_with('/')
            && running.starts_with('/')
        {
            p.exe = running.into();
        }
    }

    pub fn on_exec(&mut self, ev: &ExecEvent, now: Instant) -> &ProcessInfo {
        let key = ProcessKey::from_event_header(&ev.header);
        let (info, _) = self.slot(key, now, || {
            ProcessInfo::minimal(key, ProcessSource::Exec, now)
        });
        // Events carry the exact start time; this upgrades a tick-rounded seeded key.
        info.key = key;
        info.ppid = ev.ppid;
        info.parent_start_ns = nonzero(ev.parent_start_ns);
        // A memfd is named as /proc/PID/exe names it, not by the fd path the exec went through.
        info.exe = ev.memfd_image().unwrap_or_else(|| ev.filename()).into();
        info.cmdline = ev.argv().into();
        info.comm = ev.comm().into();
        info.uid = ev.uid;
        info.euid = ev.euid;
        info.gid = ev.gid;
        info.egid = ev.egid;
        info.cgroup_id = nonzero(ev.cgroup_id);
        info.exe_sha256 = None;
        info.execs = info.execs.saturating_add(1);
        info.last_exec_ktime_ns = Some(ev.header.ktime_ns);
        // A kernel thread that execs (a usermode helper such as modprobe) is a user process now.
        info.kernel_thread = false;
        info.last_seen = now;
        info
    }

    /// A new process (not a thread: those are ignored) inherits its parent's image and ids.
    pub fn on_fork(&mut self, ev: &ForkEvent, now: Instant) -> Option<&ProcessInfo> {
        if ev.child_pid != ev.child_tgid {
            return None;
        }
        let parent_key = ProcessKey::from_event_header(&ev.header);
        let child_key = ProcessKey::new(ev.child_tgid, ev.child_start_ns);
        let parent = self.get_key_mut(&parent_key).map(|p| {
            p.key = parent_key;
            p.last_seen = now;
            p.clone()
        });
        let (ppid, parent_start_ns) = match &parent {
            Some(p) if ev.clone_flags & CLONE_PARENT != 0 => (p.ppid, p.parent_start_ns),
            _ => (parent_key.tgid, Some(parent_key.start_ns)),
        };
        let (child, created) = self.slot(child_key, now, || {
            let mut c = match parent {
                Some(p) => ProcessInfo {
                    key: child_key,
                    state: ProcessState::Running,
                    execs: 0,
                    source: ProcessSource::Fork,
                    last_exec_ktime_ns: None,
                    kernel_thread: p.kernel_thread || parent_key.tgid == KTHREADD_PID,
                    last_seen: now,
                    ..p
                },
                None => {
                    let mut c = ProcessInfo::minimal(child_key, ProcessSource::Fork, now);
                    c.kernel_thread = parent_key.tgid == KTHREADD_PID;
                    c
                }
            };
            c.ppid = ppid;
            c.parent_start_ns = parent_start_ns;
            c
        });
        if !created {
            // The child's exec (or an ensure) got here first and knows the image better; only
            // supply the lineage if it lacks one.
            if child.parent_start_ns.is_none() {
                child.ppid = ppid;
                child.parent_start_ns = parent_start_ns;
            }
            child.key = child_key;
            child.last_seen = now;
        }
        Some(child)
    }

    /// Marks the process exited; it stays resolvable until the grace period ends.
    pub fn on_exit(&mut self, ev: &ExitEvent, now: Instant) -> Option<&ProcessInfo> {
        let key = ProcessKey::from_event_header(&ev.header);
        let Some(info) = self.get_key_mut(&key) else {
            debug!(tgid = key.tgid, "exit of a process the table does not know");
            return None;
        };
        info.key = key;
        info.state = ProcessState::Exited {
            exit_code: ev.exit_code,
            at: now,
        };
        info.last_seen = now;
        Some(info)
    }

    /// The entry for `key`, creating it if the table has not seen the process (it started
    /// before seeding finished, seeding missed it, or it was evicted). The new entry is filled
    /// from `/proc` when the process there is still the one `key` names; otherwise the process
    /// is gone and the entry is a minimal, already-exited one.
    pub fn ensure(&mut self, key: ProcessKey, proc_root: &Path, now: Instant) -> &ProcessInfo {
        let (info, _) = self.slot(key, now, || lazy_info(key, proc_root, now));
        info.last_seen = now;
        info
    }

    /// Adds every process under `proc_root` the table does not already know. A process that
    /// vanishes mid-read is skipped. Returns how many entries were added.
    pub fn seed_from_proc(&mut self, proc_root: &Path) -> Result<usize, ProcessError> {
        let now = Instant::now();
        let mut added = 0;
        let mut vanished = 0;
        for pid in proc_seed::list_pids(proc_root)? {
            match proc_seed::read_process(proc_root, pid) {
                Ok(Some(snap)) => {
                    let key = snap.key();
                    // An event may have got here first: it knows more than /proc did.
                    if self.get_key(&key).is_some() {
                        continue;
                    }
                    let (_, created) =
                        self.slot(key, now, || snap.into_info(ProcessSource::Seeded, now));
                    added += usize::from(created);
                }
                Ok(None) => vanished += 1,
                Err(e) => debug!(pid, error = %e, "skipping process while seeding"),
            }
        }
        self.link_parents();
        debug!(added, vanished, root = %proc_root.display(), "seeded process table");
        Ok(added)
    }

    /// The entry for `key`, created by `make` if absent, and whether it was created. Only the
    /// newest generation of a tgid can be running: a newer one retires older ones (their exit
    /// was missed), and an older one created late is retired on arrival.
    fn slot(
        &mut self,
        key: ProcessKey,
        now: Instant,
        make: impl FnOnce() -> ProcessInfo,
    ) -> (&mut ProcessInfo, bool) {
        let exists = self.get_key(&key).is_some();
        if !exists {
            self.make_room();
        }
        let gens = self.by_tgid.entry(key.tgid).or_default();
        let idx = match gens.iter().position(|p| p.key.same_process(&key)) {
            Some(i) => i,
            None => {
                let mut info = make();
                let pos = gens.partition_point(|p| p.key.start_ns < key.start_ns);
                if pos < gens.len() {
                    retire(&mut info, now);
                }
                for older in &mut gens[..pos] {
                    retire(older, now);
                }
                gens.insert(pos, info);
                self.len += 1;
                pos
            }
        };
        (&mut gens[idx], !exists)
    }
}

/// Marks a process whose pid now belongs to another as exited, exit code unknown.
fn retire(info: &mut ProcessInfo, now: Instant) {
    if info.is_running() {
        debug!(
            tgid = info.key.tgid,
            "pid reused: retiring the previous process"
        );
        info.state = ProcessState::Exited {
            exit_code: EXIT_CODE_UNKNOWN,
            at: now,
        };
    }
}

fn lazy_info(key: ProcessKey, proc_root: &Path, now: Instant) -> ProcessInfo {
    match proc_seed::read_process(proc_root, key.tgid) {
        Ok(Some(snap)) if snap.key().same_process(&key) => {
            let mut info = snap.into_info(ProcessSource::Lazy, now);
            info.key = key;
            info
        }
        // /proc has no such process, or the pid now names a later one: ours has exited.
        Ok(_) => {
            let mut info = ProcessInfo::minimal(key, ProcessSource::Lazy, now);
            retire(&mut info, now);
            info
        }
        Err(e) => {
            debug!(tgid = key.tgid, error = %e, "could not read /proc for an unknown process");
            ProcessInfo::minimal(key, ProcessSource::Lazy, now)
        }
    }
}

/// The kernel writes 0 for "not available".
fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}
