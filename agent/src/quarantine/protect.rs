//! The last line of defence before a process is touched. The caller has a richer protected list;
//! this only refuses what must never be frozen whatever the policy says: init, kernel threads,
//! vigil itself and the processes it descends from.

use super::error::{QuarantineError, is_gone};
use super::pidfd::PidFd;
use super::procfs::{self, KTHREADD_PID, Stat};

/// A process that passed the checks, pinned by a pidfd opened before its start time was read.
#[derive(Debug)]
pub(super) struct Target {
    pub pidfd: PidFd,
    pub stat: Stat,
}

pub(super) fn check_target(pid: u32, expected_start: u64) -> Result<Target, QuarantineError> {
    let refuse = |reason: &str| QuarantineError::Protected {
        pid,
        reason: reason.to_owned(),
    };
    match pid {
        0 => return Err(refuse("pid 0 is not a process")),
        1 => return Err(refuse("it is init")),
        KTHREADD_PID => return Err(refuse("it is kthreadd")),
        _ => {}
    }
    let gone = |e: std::io::Error| {
        if is_gone(&e) {
            QuarantineError::ProcessGone { pid }
        } else {
            QuarantineError::io(format!("/proc/{pid}"), e)
        }
    };
    let tgid = procfs::read_tgid(pid).map_err(gone)?;
    if tgid != pid {
        // Writing a tid to cgroup.procs moves its whole process; make the caller say so.
        return Err(refuse(&format!("it is a thread of process {tgid}")));
    }
    if pid == std::process::id() {
        return Err(refuse("it is vigil itself"));
    }
    if procfs::self_and_ancestors().contains(&pid) {
        return Err(refuse(
            "it is an ancestor of vigil; freezing it would freeze vigil",
        ));
    }
    // The pidfd first, then the start time: if the start time matches, the pidfd refers to the
    // process the caller meant, and stays tied to it even if the number is recycled later.
    let pidfd = PidFd::open(pid).map_err(gone)?;
    let stat = procfs::read_stat(pid).map_err(gone)?;
    if stat.is_kernel_thread() {
        return Err(refuse("it is a kernel thread"));
    }
    if expected_start != 0 && stat.start_ticks != expected_start {
        return Err(QuarantineError::PidReused {
            pid,
            expected: expected_start,
            found: stat.start_ticks,
        });
    }
    if !procfs::has_exe(pid) {
        return Err(refuse(
            "it has no executable (a kernel thread, or already exiting)",
        ));
    }
    Ok(Target { pidfd, stat })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(pid: u32) -> bool {
        matches!(check_target(pid, 0), Err(QuarantineError::Protected { .. }))
    }

    #[test]
    fn refuses_init_kthreadd_self_and_ancestors() {
        assert!(refused(0));
        assert!(refused(1));
        assert!(refused(2));
        assert!(refused(std::process::id()));
        let parent = procfs::read_stat(std::process::id()).unwrap().ppid;
        if parent > 2 {
            assert!(refused(parent));
        }
    }

    #[test]
    fn refuses_a_thread_id() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            tx.send(nix::unistd::gettid().as_raw() as u32).unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let err = check_target(tid, 0).unwrap_err();
        done_tx.send(()).unwrap();
        handle.join().unwrap();
        assert!(err.to_string().contains("thread of process"), "{err}");
    }
}
