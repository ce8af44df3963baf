//! What the table knows about one process.

use std::{sync::Arc, time::Instant};

use super::key::ProcessKey;

/// `exit_code` recorded when a process is known to be gone but its exit event was never seen
/// (its pid was recycled, or `/proc` no longer has it). Real wait statuses fit in 16 bits.
pub const EXIT_CODE_UNKNOWN: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    Running,
    /// Kept for the table's grace period so events that arrive late still resolve.
    Exited {
        /// wait(2) status form, or [`EXIT_CODE_UNKNOWN`].
        exit_code: u32,
        at: Instant,
    },
}

/// How the table first learned of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessSource {
    /// Read from `/proc` at startup.
    Seeded,
    Exec,
    Fork,
    /// Created by `ProcessTable::ensure` for an event about a process the table had not seen.
    Lazy,
}

#[derive(Clone, Debug)]
pub struct ProcessInfo {
    pub key: ProcessKey,
    pub ppid: u32,
    /// The parent's start time, when known, so the parent is named uniquely too.
    pub parent_start_ns: Option<u64>,
    /// Path of the image: the exec'd filename as the kernel saw it, or `/proc/PID/exe` when
    /// seeded (which may end in " (deleted)"). Empty for kernel threads and when unknown.
    /// The strings are shared with forked children (which run the parent's image until they
    /// exec): a fork storm leaves tens of thousands of entries for the exit grace period.
    pub exe: Arc<str>,
    pub cmdline: Arc<[String]>,
    pub comm: Arc<str>,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// cgroup v2 id; only kernel events carry it.
    pub cgroup_id: Option<u64>,
    /// Filled later by whoever hashes the image (see `ExeHashCache`), reset by exec.
    pub exe_sha256: Option<Arc<str>>,
    pub state: ProcessState,
    /// Exec events seen for this process; 0 for a forked child still running its parent's image.
    pub execs: u32,
    pub source: ProcessSource,
    /// `ktime_ns` of the most recent exec event.
    pub last_exec_ktime_ns: Option<u64>,
    pub kernel_thread: bool,
    /// When the table last had an event about it; the least recently seen are evicted first.
    pub last_seen: Instant,
}

impl ProcessInfo {
    /// A process the table knows only by key.
    pub fn minimal(key: ProcessKey, source: ProcessSource, now: Instant) -> Self {
        Self {
            key,
            ppid: 0,
            parent_start_ns: None,
            exe: "".into(),
            cmdline: Arc::new([]),
            comm: "".into(),
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            cgroup_id: None,
            exe_sha256: None,
            state: ProcessState::Running,
            execs: 0,
            source,
            last_exec_ktime_ns: None,
            kernel_thread: false,
            last_seen: now,
        }
    }

    pub fn is_running(&self) -> bool {
        self.state == ProcessState::Running
    }

    pub fn parent_key(&self) -> Option<ProcessKey> {
        self.parent_start_ns.map(|s| ProcessKey::new(self.ppid, s))
    }
}

/// One step of a process's ancestry. `exe` and `comm` are empty when the table does not know
/// the ancestor (evicted, or never seen).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ancestor {
    pub pid: u32,
    pub exe: String,
    pub comm: String,
}
