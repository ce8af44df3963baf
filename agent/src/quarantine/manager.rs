//! [`QuarantineManager`]: owns the vault and the quarantine cgroups, and keeps the records in
//! memory in step with disk. The actions live next door (`capture.rs`: quarantine;
//! `release.rs`: release and kill); this file holds opening, queries and the write-ahead helper
//! they share.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use tracing::{info, warn};

use super::cgroup::{Cgroup, cgroup2_root_of};
use super::error::QuarantineError;
use super::record::{QState, QuarantineRecord};
use super::vault::QuarantineVault;

#[derive(Clone, Debug)]
pub struct QuarantineConfig {
    /// Parent of the per-quarantine cgroups; must lie on a cgroup2 mount.
    pub cgroup_parent: PathBuf,
    pub vault: PathBuf,
    /// How long a freeze or thaw may take before the action fails.
    pub freeze_timeout: Duration,
    /// Executables larger than this are not copied into the vault (the record notes it).
    pub max_exe_bytes: u64,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        Self {
            cgroup_parent: PathBuf::from("/sys/fs/cgroup/unified/vigil.quarantine"),
            vault: PathBuf::from("/var/lib/vigil/quarantine"),
            freeze_timeout: Duration::from_secs(2),
            max_exe_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The network half of quarantine, done by the caller's BPF maps: one keyed on cgroup id (the
/// lasting cut), one keyed on tgid (the containment, from the verdict until the processes sit
/// in the cgroup). The restores must be idempotent: after a crash the manager cannot know
/// whether a cut happened, so it restores anyway.
pub trait NetworkCut {
    /// Whether this host can cut network at all (the guards are attached). When it cannot, a
    /// quarantine still stops and freezes and says the network was not cut.
    fn available(&self) -> bool {
        true
    }
    fn cut(&mut self, cgroup_id: u64) -> Result<(), String>;
    fn restore(&mut self, cgroup_id: u64) -> Result<(), String>;
    /// Cuts one process (thread group) by tgid. Entries must not outlive the capture that made
    /// them: pids are recycled.
    fn cut_tgid(&mut self, tgid: u32) -> Result<(), String>;
    fn restore_tgid(&mut self, tgid: u32) -> Result<(), String>;
}

#[derive(Debug)]
pub struct QuarantineManager {
    pub(super) cfg: QuarantineConfig,
    /// Mount point of the cgroup2 hierarchy holding `cfg.cgroup_parent`; `/proc/PID/cgroup`
    /// paths are relative to it.
    pub(super) cgroup_root: PathBuf,
    pub(super) vault: QuarantineVault,
    /// By id, which sorts by creation time.
    pub(super) records: BTreeMap<String, QuarantineRecord>,
}

impl QuarantineManager {
    /// Mounts cgroup2 if needed (see `kernel::mounts`), creates the cgroup parent and the vault, and loads every
    /// record, reconciling it with what survived the restart.
    pub fn open(cfg: QuarantineConfig) -> Result<Self, QuarantineError> {
        let cgroup_root = match cgroup2_root_of(&cfg.cgroup_parent) {
            Some(root) => root,
            None => {
                crate::kernel::mounts::ensure_cgroup2()
                    .map_err(|e| QuarantineError::Cgroup2Unavailable(e.to_string()))?;
                cgroup2_root_of(&cfg.cgroup_parent).ok_or_else(|| {
                    QuarantineError::Cgroup2Unavailable(format!(
                        "{} is not on a cgroup2 mount",
                        cfg.cgroup_parent.display()
                    ))
                })?
            }
        };
        fs::create_dir_all(&cfg.cgroup_parent)
            .map_err(|e| QuarantineError::io(&cfg.cgroup_parent, e))?;
        // Every non-root cgroup has cgroup.freeze on a kernel with the v2 freezer (5.2+). The
        // root has none, but it is never frozen: quarantine cgroups are its descendants.
        let freeze = cfg.cgroup_parent.join("cgroup.freeze");
        if cfg.cgroup_parent != cgroup_root && !freeze.exists() {
            return Err(QuarantineError::FreezerUnavailable { path: freeze });
        }
        let vault = QuarantineVault::open(&cfg.vault)?;
        let mut manager = Self {
            cfg,
            cgroup_root,
            vault,
            records: BTreeMap::new(),
        };
        for mut record in manager.vault.load_all()? {
            if reconcile(&mut record) {
                manager.save(&record)?;
            }
            manager.records.insert(record.id.clone(), record);
        }
        info!(
            records = manager.records.len(),
            live = manager.active_cgroup_ids().len(),
            vault = %manager.cfg.vault.display(),
            "quarantine manager open"
        );
        Ok(manager)
    }

    /// Cgroup ids whose network must stay cut. The daemon re-applies them after a restart,
    /// since its BPF maps start empty. Interrupted quarantines are included: their processes may
    /// sit in the cgroup unfrozen, and failing closed is the safe side until someone decides.
    pub fn active_cgroup_ids(&self) -> Vec<u64> {
        self.records
            .values()
            .filter(|r| r.state.is_live() && r.cgroup_id != 0)
            .map(|r| r.cgroup_id)
            .collect()
    }

    /// Every record, oldest first.
    pub fn list(&self) -> Vec<QuarantineRecord> {
        self.records.values().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<QuarantineRecord> {
        self.records.get(id).cloned()
    }

    /// The write-ahead rule: note the step and persist the record before performing it, so a
    /// crash in the middle of the step leaves a record that says it was under way. Durable
    /// (fsynced) when it changes the state; see `QuarantineVault::write_record`.
    pub(super) fn step(
        &mut self,
        record: &mut QuarantineRecord,
        what: impl AsRef<str>,
    ) -> Result<(), QuarantineError> {
        let durable = record.state != QState::Pending;
        self.step_as(record, what, durable)
    }

    /// [`Self::step`] with the durability chosen by the caller.
    pub(super) fn step_as(
        &mut self,
        record: &mut QuarantineRecord,
        what: impl AsRef<str>,
        durable: bool,
    ) -> Result<(), QuarantineError> {
        info!(id = %record.id, step = what.as_ref(), "quarantine step");
        record.note(what);
        self.save_as(record, durable)
    }

    /// Like [`Self::step`] for rollback and failure notes, where a failing disk must not stop
    /// the undoing itself.
    pub(super) fn step_best_effort(
        &mut self,
        record: &mut QuarantineRecord,
        what: impl AsRef<str>,
    ) {
        if let Err(e) = self.step(record, what) {
            warn!(id = %record.id, error = %e, "could not persist quarantine record");
        }
    }

    pub(super) fn save(&mut self, record: &QuarantineRecord) -> Result<(), QuarantineError> {
        self.save_as(record, record.state != QState::Pending)
    }

    fn save_as(&mut self, record: &QuarantineRecord, durable: bool) -> Result<(), QuarantineError> {
        self.vault.write_record(record, durable)?;
        self.records.insert(record.id.clone(), record.clone());
        Ok(())
    }

    /// The record `id`, provided `action` applies to its state.
    pub(super) fn record_for(
        &self,
        id: &str,
        action: &'static str,
    ) -> Result<QuarantineRecord, QuarantineError> {
        let record = self
            .records
            .get(id)
            .ok_or_else(|| QuarantineError::NotFound { id: id.to_owned() })?;
        // A vanished quarantine can only be closed (released): there is nothing left to kill.
        let vanished_ok = action == "release" && record.state == QState::Vanished;
        if record.state.is_live() || vanished_ok {
            Ok(record.clone())
        } else {
            Err(QuarantineError::InvalidState {
                id: id.to_owned(),
                state: record.state.to_string(),
                action,
            })
        }
    }

    /// A cgroup path from `/proc/PID/cgroup` as a directory on the mount.
    pub(super) fn cgroup_at(&self, relative: &str) -> Cgroup {
        Cgroup::new(self.cgroup_root.join(relative.trim_start_matches('/')))
    }

    /// Whether a `/proc/PID/cgroup` path lies inside vigil's quarantine parent.
    pub(super) fn is_quarantine_path(&self, relative: &str) -> bool {
        self.cgroup_at(relative)
            .path
            .starts_with(&self.cfg.cgroup_parent)
    }
}

/// Brings a record loaded at startup in line with what survived; true if it changed.
fn reconcile(record: &mut QuarantineRecord) -> bool {
    let mut changed = false;
    if record.state == QState::Pending {
        warn!(id = %record.id, "quarantine was interrupted by a restart");
        record.state = QState::Interrupted;
        record.note("found pending at startup: the previous vigil stopped mid-quarantine");
        changed = true;
    }
    if !record.state.is_live() {
        return changed;
    }
    let cgroup = Cgroup::new(&record.cgroup);
    match (cgroup.exists(), cgroup.id()) {
        (true, Ok(id)) if record.cgroup_id == 0 => {
            // Created, but the crash came before the id reached disk.
            record.cgroup_id = id;
            record.note(format!("found cgroup id {id} at startup"));
            changed = true;
        }
        (true, Ok(id)) if id == record.cgroup_id => {}
        (true, _) => {
            record.state = QState::Vanished;
            record.note("cgroup at startup is not the one quarantined (different id)");
            changed = true;
        }
        // Never created: nothing was done to any process yet, and nothing can be re-cut.
        (false, _) if record.cgroup_id == 0 => {}
        (false, _) => {
            warn!(id = %record.id, cgroup = %record.cgroup.display(), "quarantine cgroup vanished");
            record.state = QState::Vanished;
            record.note("cgroup gone at startup (reboot, or removed outside vigil)");
            changed = true;
        }
    }
    changed
}
