//! A pidfd pins the identity of a process, not its number: once the process exits the pidfd goes
//! dead even if the number is handed to someone else. Quarantine checks a pid's start time after
//! opening its pidfd and checks the pidfd is alive after acting on the number, so a pid reused in
//! between is caught instead of quarantined.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug)]
pub(super) struct PidFd {
    pub pid: u32,
    fd: OwnedFd,
}

impl PidFd {
    pub fn open(pid: u32) -> io::Result<Self> {
        let raw =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: pidfd_open(pid_t, unsigned int) has no pointer arguments; it returns a new fd
        // or -1 with errno set.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0_u32) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just handed us this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(ret as RawFd) };
        Ok(Self { pid, fd })
    }

    /// A second descriptor on the same process.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            pid: self.pid,
            fd: self.fd.try_clone()?,
        })
    }

    /// SIGKILL through the pidfd: reaches the process it was opened on, or nothing.
    pub fn kill(&self) -> io::Result<()> {
        self.signal(libc::SIGKILL)
    }

    /// `sig` through the pidfd, to the whole thread group: reaches the process it was opened
    /// on, or nothing (ESRCH once it has exited).
    pub fn signal(&self, sig: libc::c_int) -> io::Result<()> {
        // SAFETY: as in `is_alive`, with `sig`.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0_u32,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `wait` for the process to exit (a pidfd polls readable then).
    pub fn wait_exit(&self, wait: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            // SAFETY: one valid pollfd.
            let n =
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if n > 0 {
                return true;
            }
            if n == 0 || std::time::Instant::now() >= deadline {
                return false;
            }
            // EINTR: poll again until the deadline.
        }
    }

    /// Signal 0 through the pidfd: delivered only if the very process it was opened on still
    /// exists (a zombie still counts).
    pub fn is_alive(&self) -> bool {
        // SAFETY: pidfd_send_signal(int, int, siginfo_t *, unsigned int); a null siginfo is
        // allowed and means "as kill(2) would send it".
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                0,
                std::ptr::null::<libc::siginfo_t>(),
                0_u32,
            )
        };
        // EPERM still proves the process exists.
        ret == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfd_goes_dead_when_the_process_is_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let fd = PidFd::open(child.id()).unwrap();
        assert!(fd.is_alive());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!fd.is_alive());
    }
}
