//! What a quarantine is on disk: the request that asked for it and the record that tracks it.
//! The record is the source of truth across daemon restarts, so every field a later release or
//! kill needs (original cgroups, the cgroup id the network cut was keyed on) lives here.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::clock::now_rfc3339;

/// What the caller knows about the process it wants quarantined. Most of it is evidence that
/// only vigil's pipeline has (scores, tokens, ancestry as it saw it); the manager vaults it.
#[derive(Clone, Debug, Default)]
pub struct QuarantineRequest {
    pub pid: u32,
    /// `/proc/PID/stat` field 22 of the process the caller scored; 0 skips the pid reuse check.
    pub start_ticks: u64,
    pub reason: String,
    pub score: Option<f32>,
    pub exe: String,
    pub sha256: Option<String>,
    pub cmdline: Vec<String>,
    pub uid: u32,
    pub ancestry: Vec<(u32, String)>,
    pub recent_tokens: Vec<String>,
    pub scores: Vec<f32>,
    pub policy_version: String,
    /// Protected processes never moved, even when they descend from `pid`.
    pub spare: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QState {
    /// Recorded, steps under way.
    Pending,
    /// Processes frozen in the quarantine cgroup, network cut.
    Active,
    Released,
    Killed,
    /// A step failed and was rolled back as far as possible; the reason is the error.
    Failed(String),
    /// Found `Pending` after a restart: the daemon stopped mid-quarantine. Processes may be
    /// partly moved; release or kill finishes the job either way.
    Interrupted,
    /// Found `Active` or `Interrupted` after a restart but the cgroup no longer exists (a reboot,
    /// or someone removed it). Its old cgroup id may now name another cgroup, so it is never
    /// re-cut.
    Vanished,
}

impl QState {
    /// Whether processes may still sit in the cgroup, so release and kill apply.
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Active | Self::Interrupted)
    }
}

impl fmt::Display for QState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pending => f.write_str("pending"),
            Self::Active => f.write_str("active"),
            Self::Released => f.write_str("released"),
            Self::Killed => f.write_str("killed"),
            Self::Failed(reason) => write!(f, "failed ({reason})"),
            Self::Interrupted => f.write_str("interrupted"),
            Self::Vanished => f.write_str("vanished"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    /// `q-YYYYMMDD-HHMMSS-NNNN` (UTC): unique within the vault, and sorts by creation time.
    pub id: String,
    pub state: QState,
    /// RFC 3339 UTC.
    pub created: String,
    pub updated: String,
    pub pid: u32,
    pub start_ticks: u64,
    /// Every process moved into the cgroup, the target first.
    pub pids: Vec<u32>,
    /// Each moved pid's v2 cgroup before the move (path relative to the cgroup2 root).
    pub original_cgroups: Vec<(u32, String)>,
    pub cgroup: PathBuf,
    /// Inode of the cgroup directory, which is what `bpf_get_current_cgroup_id` returns; 0 until
    /// the cgroup exists.
    pub cgroup_id: u64,
    pub exe: String,
    /// SHA-256 of the vaulted copy once taken; until then, what the caller reported.
    pub sha256: Option<String>,
    /// What the caller reported, kept when it differs from the vaulted copy's digest.
    pub reported_sha256: Option<String>,
    pub exe_copy: Option<PathBuf>,
    pub evidence: Option<PathBuf>,
    pub uid: u32,
    pub reason: String,
    pub score: Option<f32>,
    pub policy_version: String,
    /// `cgroup.events` said `frozen 1` and no task was left running.
    pub frozen_verified: bool,
    pub network_cut: bool,
    /// Processes the containment SIGSTOPped, as `(pid, start_ticks)`, until it sends them
    /// SIGCONT inside the frozen cgroup. Non-empty only mid-capture, or in a record interrupted
    /// there: release (SIGCONT) and kill (SIGKILL) then reach the ones still the same process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped: Vec<(u32, u64)>,
    /// Audit trail: `<RFC 3339> <step>`, each written before the step it names is performed
    /// (`contained:` is the exception: it reports containment just put in effect).
    pub events: Vec<String>,
}

impl QuarantineRecord {
    pub(super) fn pending(
        id: String,
        cgroup: PathBuf,
        req: &QuarantineRequest,
        start: u64,
    ) -> Self {
        let now = now_rfc3339();
        Self {
            id,
            state: QState::Pending,
            created: now.clone(),
            updated: now,
            pid: req.pid,
            start_ticks: start,
            pids: Vec::new(),
            original_cgroups: Vec::new(),
            cgroup,
            cgroup_id: 0,
            exe: req.exe.clone(),
            sha256: req.sha256.clone(),
            reported_sha256: req.sha256.clone(),
            exe_copy: None,
            evidence: None,
            uid: req.uid,
            reason: req.reason.clone(),
            score: req.score,
            policy_version: req.policy_version.clone(),
            frozen_verified: false,
            network_cut: false,
            stopped: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Appends a timestamped event and bumps `updated`; the caller persists.
    pub(super) fn note(&mut self, what: impl AsRef<str>) {
        let now = now_rfc3339();
        self.events.push(format!("{now} {}", what.as_ref()));
        self.updated = now;
    }

    /// Where a pid goes back to on release. A process born inside the quarantine has no
    /// original of its own; it goes where its quarantined ancestor came from.
    pub(super) fn original_of(&self, pid: u32) -> Option<&str> {
        self.original_cgroups
            .iter()
            .find(|(p, _)| *p == pid)
            .or_else(|| self.original_cgroups.first())
            .map(|(_, path)| path.as_str())
    }
}
