//! Quarantine: freeze a process and its descendants in a vigil-owned cgroup v2, cut its network
//! (through the caller's BPF map, via [`NetworkCut`]), and vault evidence; release thaws and
//! restores, kill ends it.
//!
//! Every step is written to `<vault>/<id>/record.json` before it is performed, so a crash
//! mid-action leaves a record that tells the truth about what may have happened, and
//! [`QuarantineManager::open`] can pick up after a restart: `Pending` becomes `Interrupted`, and
//! [`QuarantineManager::active_cgroup_ids`] says which network cuts to re-apply.

mod capture;
mod cgroup;
mod clock;
mod error;
mod evidence;
mod manager;
mod pidfd;
mod procfs;
mod protect;
mod record;
mod release;
mod vault;

#[cfg(test)]
mod tests;

pub use error::QuarantineError;
pub use manager::{NetworkCut, QuarantineConfig, QuarantineManager};
pub use record::{QState, QuarantineRecord, QuarantineRequest};

/// The last line of defence every action passes, kills included: refuses pid 0, init, kthreadd,
/// kernel threads, threads (a tid is not a process), vigil and its ancestors, and a pid whose
/// start time is not `expected_start_ticks` (recycled).
pub fn vet_target(pid: u32, expected_start_ticks: u64) -> Result<(), QuarantineError> {
    protect::check_target(pid, expected_start_ticks).map(drop)
}
