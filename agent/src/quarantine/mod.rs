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

/// The process's cgroup v2 path (the `0::` line of /proc/PID/cgroup).
pub fn cgroup_of(pid: u32) -> Option<String> {
    procfs::v2_cgroup(pid).ok()
}

/// What became of a process after [`kill`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillOutcome {
    /// Its pidfd reported the exit within the wait.
    Exited,
    /// Signalled, but not dead yet after the wait (e.g. uninterruptible sleep).
    Signalled,
}

/// SIGKILLs `pid` through a pidfd after the same last-line checks a quarantine passes: refuses
/// pid 0, init, kthreadd, kernel threads, threads, vigil and its ancestors, an unknown start time
/// (0) and a pid whose start time is not `expected_start_ticks` (recycled). The pidfd is opened
/// before the start time is checked, so the signal reaches the process checked or nothing.
pub fn kill(
    pid: u32,
    expected_start_ticks: u64,
    wait: std::time::Duration,
) -> Result<KillOutcome, QuarantineError> {
    if expected_start_ticks == 0 {
        return Err(QuarantineError::Protected {
            pid,
            reason: "its start time is unknown, so a recycled pid cannot be ruled out".into(),
        });
    }
    let target = protect::check_target(pid, expected_start_ticks)?;
    target
        .pidfd
        .kill()
        .map_err(|source| QuarantineError::Signal { pid, source })?;
    Ok(if target.pidfd.wait_exit(wait) {
        KillOutcome::Exited
    } else {
        KillOutcome::Signalled
    })
}

#[cfg(test)]
mod kill_tests {
    use std::{os::unix::process::ExitStatusExt, process::Command, time::Duration};

    use super::*;

    fn sleeper() -> (std::process::Child, u64) {
        let child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let ticks = procfs::read_stat(child.id()).expect("stat").start_ticks;
        (child, ticks)
    }

    #[test]
    fn kills_a_child_and_reports_its_exit() {
        let (mut child, ticks) = sleeper();
        assert_eq!(
            kill(child.id(), ticks, Duration::from_secs(2)).expect("kill"),
            KillOutcome::Exited
        );
        assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn refuses_a_recycled_pid_or_an_unknown_start_time() {
        let (mut child, ticks) = sleeper();
        let err = kill(child.id(), ticks + 1, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, QuarantineError::PidReused { .. }), "{err}");
        let err = kill(child.id(), 0, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, QuarantineError::Protected { .. }), "{err}");
        // Still alive: the refusals sent nothing.
        assert!(child.try_wait().expect("try_wait").is_none());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn never_kills_init_or_itself() {
        for pid in [1, std::process::id()] {
            let ticks = procfs::read_stat(pid).expect("stat").start_ticks;
            assert!(matches!(
                kill(pid, ticks, Duration::from_millis(10)),
                Err(QuarantineError::Protected { .. })
            ));
        }
    }
}
