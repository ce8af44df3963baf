//! Killing one process through a pidfd, so a recycled pid is never hit: the pidfd pins the
//! process we checked, and the signal goes to that process or nowhere.

use std::{
    fs,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum KillError {
    #[error("pid {pid} is gone (pidfd_open: {source})")]
    Gone {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("pid {pid} is another process now (start time {found} ticks, expected {expected})")]
    Recycled { pid: u32, expected: u64, found: u64 },
    #[error("pidfd_send_signal(SIGKILL) to pid {pid}: {source}")]
    Signal {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// What became of the process after SIGKILL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillOutcome {
    /// Its pidfd reported the exit within the wait.
    Exited,
    /// Signalled, but still not dead after the wait (e.g. stuck in uninterruptible sleep).
    Signalled,
}

/// `/proc/PID/stat` field 22: start time in clock ticks since boot.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// SIGKILLs `pid` if it is still the process that started at `expected_ticks` (0 = unchecked),
/// then waits up to `wait` for it to die.
pub fn kill(pid: u32, expected_ticks: u64, wait: Duration) -> Result<KillOutcome, KillError> {
    let pidfd = pidfd_open(pid).map_err(|source| KillError::Gone { pid, source })?;
    // Checked after opening the pidfd: from here on the pid cannot be handed to anyone else.
    if expected_ticks != 0 {
        let found = start_ticks(pid).unwrap_or(0);
        if found != expected_ticks {
            return Err(KillError::Recycled {
                pid,
                expected: expected_ticks,
                found,
            });
        }
    }
    // SAFETY: valid pidfd, no siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<u8>(),
            0,
        )
    };
    if rc < 0 {
        return Err(KillError::Signal {
            pid,
            source: std::io::Error::last_os_error(),
        });
    }
    // A pidfd polls readable once its process has exited.
    let deadline = Instant::now() + wait;
    loop {
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n > 0 {
            return Ok(KillOutcome::Exited);
        }
        if n == 0 || Instant::now() >= deadline {
            return Ok(KillOutcome::Signalled);
        }
        // EINTR: poll again until the deadline.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_a_child_and_reports_its_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let ticks = start_ticks(pid).expect("start ticks");
        assert_eq!(
            kill(pid, ticks, Duration::from_secs(2)).expect("kill"),
            KillOutcome::Exited
        );
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn refuses_a_recycled_pid() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let ticks = start_ticks(pid).expect("start ticks");
        let err = kill(pid, ticks + 1, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, KillError::Recycled { .. }), "{err}");
        // Still alive: the refusal sent nothing.
        assert!(child.try_wait().expect("try_wait").is_none());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
