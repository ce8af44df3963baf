//! The quarantine manager's error type.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// The last line of defence: pid 1, kernel threads, vigil itself and its ancestors are never
    /// quarantined, whatever the caller's policy said.
    #[error("refusing to act on pid {pid}: {reason}")]
    Protected { pid: u32, reason: String },
    /// The pid now names a different process than the one the caller scored.
    #[error("pid {pid} was reused: expected start time {expected} ticks, found {found}")]
    PidReused { pid: u32, expected: u64, found: u64 },
    #[error("SIGKILL to pid {pid}: {source}")]
    Signal {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("pid {pid} exited")]
    ProcessGone { pid: u32 },
    #[error("pid {pid} is already quarantined in {cgroup}")]
    AlreadyQuarantined { pid: u32, cgroup: String },
    #[error("no quarantine record {id}")]
    NotFound { id: String },
    #[error("cannot {action} {id}: it is {state}")]
    InvalidState {
        id: String,
        state: String,
        action: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup v2 is unavailable: {0}")]
    Cgroup2Unavailable(String),
    #[error("the cgroup v2 freezer is unavailable: {path} is missing (kernel < 5.2?)")]
    FreezerUnavailable { path: PathBuf },
    #[error("{cgroup} did not report frozen {want} within {timeout:?}")]
    FreezeTimeout {
        cgroup: PathBuf,
        want: u8,
        timeout: Duration,
    },
    #[error("processes of {cgroup} were still alive {timeout:?} after SIGKILL")]
    KillTimeout { cgroup: PathBuf, timeout: Duration },
    #[error("{cgroup} still has processes after {passes} passes of moving them out")]
    StillPopulated { cgroup: PathBuf, passes: usize },
    #[error("network {op} for cgroup id {cgroup_id} failed: {message}")]
    Network {
        op: &'static str,
        cgroup_id: u64,
        message: String,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Two managers over one vault would each believe they own its records.
    #[error("{path} is locked by another vigil")]
    VaultLocked { path: PathBuf },
}

impl QuarantineError {
    pub(super) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// True when the error means the process is gone: `/proc/PID` disappears once it is reaped and
/// some files of a dying task, and cgroup.procs writes, answer `ESRCH` instead.
pub(super) fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}
