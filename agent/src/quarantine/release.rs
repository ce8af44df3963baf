//! Ending a quarantine: `release()` thaws and hands the processes back, `kill()` SIGKILLs them.
//! Both write each step ahead, and both work on `Interrupted` records, whose processes may be
//! only partly moved and whose network cut may or may not have happened. A failed step leaves
//! the state as it was (the processes are still contained) and the error in the trail, so the
//! action can simply be retried.

use tracing::{info, warn};

use super::cgroup::{Cgroup, SETTLE_TIMEOUT};
use super::error::{QuarantineError, is_gone};
use super::manager::{NetworkCut, QuarantineManager};
use super::pidfd::PidFd;
use super::procfs;
use super::record::{QState, QuarantineRecord};

/// Passes over `cgroup.procs` when moving processes out: after a thaw a process can fork once
/// more before it is moved, and its child is born inside.
const MOVE_OUT_PASSES: usize = 32;

impl QuarantineManager {
    pub fn release(
        &mut self,
        id: &str,
        net: &mut dyn NetworkCut,
    ) -> Result<QuarantineRecord, QuarantineError> {
        let mut record = self.record_for(id, "release")?;
        let result = self.release_steps(&mut record, net);
        self.finish(record, "release", result)
    }

    pub fn kill(
        &mut self,
        id: &str,
        net: &mut dyn NetworkCut,
    ) -> Result<QuarantineRecord, QuarantineError> {
        let mut record = self.record_for(id, "kill")?;
        let result = self.kill_steps(&mut record, net);
        self.finish(record, "kill", result)
    }

    fn release_steps(
        &mut self,
        record: &mut QuarantineRecord,
        net: &mut dyn NetworkCut,
    ) -> Result<(), QuarantineError> {
        let cg = Cgroup::new(&record.cgroup);
        if cg.exists() {
            // Thaw before moving out, and restore the network only after: the processes run
            // again with their network still cut, so release fails closed at every step.
            self.step(record, "thaw (cgroup.freeze 0)")?;
            cg.set_frozen(false)?;
            cg.wait_frozen(false, self.cfg.freeze_timeout)?;
            self.move_all_out(record, &cg, true)?;
        }
        // Still before the network: a resumed process runs with it cut, as above.
        self.signal_left_stopped(record, libc::SIGCONT, "resume (SIGCONT)")?;
        self.restore_network(record, net)?;
        self.remove_cgroup(record, &cg)?;
        record.state = QState::Released;
        self.step(record, "released")
    }

    fn kill_steps(
        &mut self,
        record: &mut QuarantineRecord,
        net: &mut dyn NetworkCut,
    ) -> Result<(), QuarantineError> {
        let cg = Cgroup::new(&record.cgroup);
        if cg.exists() {
            let pids = cg.procs()?;
            self.step(
                record,
                format!("SIGKILL every process in the cgroup: {pids:?}"),
            )?;
            cg.kill_all()?;
            // SIGKILL gets through the freezer; this waits for the tasks to finish exiting.
            cg.wait_empty(self.cfg.freeze_timeout.max(SETTLE_TIMEOUT))?;
            record.note("cgroup.procs is empty");
        }
        self.signal_left_stopped(record, libc::SIGKILL, "SIGKILL")?;
        self.restore_network(record, net)?;
        self.remove_cgroup(record, &cg)?;
        record.state = QState::Killed;
        self.step(record, "killed")
    }

    /// Sends `sig` to the processes an interrupted capture may have left SIGSTOPped, in the
    /// cgroup or outside it: those its record lists, and for an interrupted record the target
    /// itself (a crash between its SIGSTOP and the `contained:` step left no list). Each must
    /// still be the same process (pidfd, then start time) and be stopped; a completed capture
    /// lists none, having sent them SIGCONT itself.
    fn signal_left_stopped(
        &mut self,
        record: &mut QuarantineRecord,
        sig: libc::c_int,
        what: &str,
    ) -> Result<(), QuarantineError> {
        let mut candidates = record.stopped.clone();
        if record.state == QState::Interrupted && !candidates.iter().any(|&(p, _)| p == record.pid)
        {
            candidates.push((record.pid, record.start_ticks));
        }
        for (pid, start_ticks) in candidates {
            let Ok(pidfd) = PidFd::open(pid) else {
                continue;
            };
            let Ok(stat) = procfs::read_stat(pid) else {
                continue;
            };
            if stat.start_ticks != start_ticks || stat.state != 'T' {
                continue;
            }
            self.step(
                record,
                format!(
                    "{what} pid {pid} ({}), left stopped by the interrupted capture",
                    stat.comm
                ),
            )?;
            match pidfd.signal(sig) {
                Err(e) if !is_gone(&e) => return Err(QuarantineError::Signal { pid, source: e }),
                _ => {}
            }
        }
        record.stopped.clear();
        Ok(())
    }

    /// Removes the network entry. A vanished record's id may already name an unrelated cgroup,
    /// so it is left alone.
    fn restore_network(
        &mut self,
        record: &mut QuarantineRecord,
        net: &mut dyn NetworkCut,
    ) -> Result<(), QuarantineError> {
        if record.cgroup_id == 0 || record.state == QState::Vanished {
            return Ok(());
        }
        self.step(
            record,
            format!("restore network of cgroup id {}", record.cgroup_id),
        )?;
        net.restore(record.cgroup_id)
            .map_err(|message| QuarantineError::Network {
                op: "restore",
                cgroup_id: record.cgroup_id,
                message,
            })?;
        record.network_cut = false;
        Ok(())
    }

    fn remove_cgroup(
        &mut self,
        record: &mut QuarantineRecord,
        cg: &Cgroup,
    ) -> Result<(), QuarantineError> {
        if !cg.path.exists() {
            return Ok(());
        }
        self.step(record, format!("remove cgroup {}", cg.path.display()))?;
        cg.remove(SETTLE_TIMEOUT)
    }

    /// Moves every process in `cg` back where it came from; to the root if that cgroup is gone
    /// or refuses it. `strict` (release) persists each move before making it and stops if it
    /// cannot; a rollback (`strict == false`) keeps going regardless.
    pub(super) fn move_all_out(
        &mut self,
        record: &mut QuarantineRecord,
        cg: &Cgroup,
        strict: bool,
    ) -> Result<(), QuarantineError> {
        for _ in 0..MOVE_OUT_PASSES {
            let pids = cg.procs()?;
            if pids.is_empty() {
                return Ok(());
            }
            for pid in pids {
                let to = record.original_of(pid).unwrap_or("/").to_owned();
                let what = format!("move pid {pid} back to {to}");
                if strict {
                    self.step(record, what)?;
                } else {
                    self.step_best_effort(record, what);
                }
                let err = match self.cgroup_at(&to).add_pid(pid) {
                    Ok(()) => continue,
                    Err(e) => e,
                };
                if err.raw_os_error() == Some(libc::ESRCH) {
                    record.note(format!("pid {pid} exited"));
                    continue;
                }
                // ENOENT: the original cgroup was removed meanwhile. EBUSY/EOPNOTSUPP: it
                // gained controllers and no longer takes processes directly. The root takes
                // anyone.
                record.note(format!(
                    "moving pid {pid} to {to} failed ({err}); using the root"
                ));
                match self.cgroup_at("/").add_pid(pid) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => {
                        return Err(QuarantineError::io(
                            self.cgroup_root.join("cgroup.procs"),
                            e,
                        ));
                    }
                }
            }
        }
        Err(QuarantineError::StillPopulated {
            cgroup: cg.path.clone(),
            passes: MOVE_OUT_PASSES,
        })
    }

    /// Records how `action` ended. On failure the state is left as it was and the error joins
    /// the trail.
    fn finish(
        &mut self,
        mut record: QuarantineRecord,
        action: &'static str,
        result: Result<(), QuarantineError>,
    ) -> Result<QuarantineRecord, QuarantineError> {
        match result {
            Ok(()) => {
                info!(id = %record.id, action, "quarantine ended");
                Ok(record)
            }
            Err(e) => {
                warn!(id = %record.id, action, error = %e, "quarantine action failed");
                self.step_best_effort(&mut record, format!("{action} failed: {e}"));
                Err(e)
            }
        }
    }
}
