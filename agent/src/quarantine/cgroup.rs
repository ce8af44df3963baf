//! The cgroup v2 side of quarantine: mounting the hierarchy if missing, and one quarantine cgroup
//! with its core interface files (`cgroup.procs`, `cgroup.freeze`, `cgroup.events`,
//! `cgroup.kill`). The freezer needs no controller, so this works on hybrid systems where every
//! controller stays bound to v1.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::error::{QuarantineError, is_gone};

/// Where hybrid systems (systemd's default before v2-only) mount the v2 hierarchy.
/// Where the tests put their cgroups (the hybrid layout of the machines vigil is tested on).
#[cfg(test)]
pub const CGROUP2_MOUNT: &str = "/sys/fs/cgroup/unified";
/// Upper bound on one wait for a `cgroup.events` change: if a notification is missed the file is
/// re-read at least this often.
const EVENTS_POLL: Duration = Duration::from_millis(50);
/// Bound on waits the caller does not configure (emptying after SIGKILL, rmdir of a cgroup whose
/// last task is still exiting).
pub(super) const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Mount points of cgroup2 filesystems, from `/proc/mounts`.
fn cgroup2_mounts() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/mounts").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let (_, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            // /proc/mounts escapes spaces as \040; no sane cgroup mount has one.
            (fstype == "cgroup2").then(|| PathBuf::from(target))
        })
        .collect()
}

/// The cgroup2 mount point that `path` lies under (the longest match), if any.
pub(super) fn cgroup2_root_of(path: &Path) -> Option<PathBuf> {
    cgroup2_mounts()
        .into_iter()
        .filter(|m| path.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
}

/// One v2 cgroup directory.
#[derive(Clone, Debug)]
pub(super) struct Cgroup {
    pub path: PathBuf,
}

impl Cgroup {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn exists(&self) -> bool {
        self.file("cgroup.procs").exists()
    }

    /// `mkdir`; an existing directory is an error, so a stale cgroup is never silently reused.
    pub fn create(&self) -> Result<(), QuarantineError> {
        fs::create_dir(&self.path).map_err(|e| QuarantineError::io(&self.path, e))
    }

    /// The directory's inode number, which is the kernel's cgroup id on 64-bit systems.
    pub fn id(&self) -> Result<u64, QuarantineError> {
        fs::metadata(&self.path)
            .map(|m| m.ino())
            .map_err(|e| QuarantineError::io(&self.path, e))
    }

    fn write(&self, name: &str, value: &str) -> io::Result<()> {
        // One write(2) per value: cgroup files act on each write, not on close.
        OpenOptions::new()
            .write(true)
            .open(self.file(name))?
            .write_all(value.as_bytes())
    }

    fn write_checked(&self, name: &str, value: &str) -> Result<(), QuarantineError> {
        self.write(name, value)
            .map_err(|e| QuarantineError::io(self.file(name), e))
    }

    /// Moves the whole thread group of `pid` in. `ESRCH` (gone) is left for the caller to judge.
    pub fn add_pid(&self, pid: u32) -> io::Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    pub fn procs(&self) -> Result<Vec<u32>, QuarantineError> {
        let path = self.file("cgroup.procs");
        let text = fs::read_to_string(&path).map_err(|e| QuarantineError::io(&path, e))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    pub fn set_frozen(&self, frozen: bool) -> Result<(), QuarantineError> {
        self.write_checked("cgroup.freeze", if frozen { "1" } else { "0" })
    }

    /// Waits until `cgroup.events` says `frozen <want>`. Freezing is asynchronous: the write
    /// returns at once and each task stops at its next return to user space, so only this file
    /// says when it is done. kernfs wakes pollers with POLLPRI when the file changes.
    pub fn wait_frozen(&self, want: bool, timeout: Duration) -> Result<(), QuarantineError> {
        let path = self.file("cgroup.events");
        let file = File::open(&path).map_err(|e| QuarantineError::io(&path, e))?;
        let deadline = Instant::now() + timeout;
        loop {
            let text = read_at_start(&file).map_err(|e| QuarantineError::io(&path, e))?;
            if events_frozen(&text) == Some(want) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(QuarantineError::FreezeTimeout {
                    cgroup: self.path.clone(),
                    want: u8::from(want),
                    timeout,
                });
            }
            wait_pri(&file, (deadline - now).min(EVENTS_POLL));
        }
    }

    /// SIGKILLs every process inside. `cgroup.kill` (5.14+) does it atomically, racing no fork;
    /// older kernels get a signal per listed pid, repeated by the caller's wait loop.
    pub fn kill_all(&self) -> Result<(), QuarantineError> {
        if self.file("cgroup.kill").exists() {
            return self.write_checked("cgroup.kill", "1");
        }
        self.signal_each()
    }

    fn signal_each(&self) -> Result<(), QuarantineError> {
        for pid in self.procs()? {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // A pid that exited in between answers ESRCH; nothing else can go wrong for root.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        Ok(())
    }

    /// Waits until `cgroup.procs` is empty. Exited tasks leave the list when they exit, not
    /// when they are reaped, so this does not depend on anyone calling wait().
    pub fn wait_empty(&self, timeout: Duration) -> Result<(), QuarantineError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.procs()?.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(QuarantineError::KillTimeout {
                    cgroup: self.path.clone(),
                    timeout,
                });
            }
            if !self.file("cgroup.kill").exists() {
                self.signal_each()?;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `rmdir`, retried while the last task is still on its way out (EBUSY). Already gone is
    /// success.
    pub fn remove(&self, timeout: Duration) -> Result<(), QuarantineError> {
        let deadline = Instant::now() + timeout;
        loop {
            match fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if is_gone(&e) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(QuarantineError::io(&self.path, e)),
            }
        }
    }
}

fn read_at_start(file: &File) -> io::Result<String> {
    let mut buf = vec![0_u8; 256];
    let n = file.read_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `frozen N` from `cgroup.events` text.
pub(super) fn events_frozen(text: &str) -> Option<bool> {
    text.lines()
        .find_map(|l| l.strip_prefix("frozen "))
        .map(|v| v.trim() == "1")
}

/// Sleeps until the kernfs file signals a change or `timeout` passes, whichever is first.
fn wait_pri(file: &File, timeout: Duration) {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call. The result does not matter: the
    // caller re-reads the file either way.
    unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_frozen_from_events() {
        assert_eq!(events_frozen("populated 1\nfrozen 1\n"), Some(true));
        assert_eq!(events_frozen("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(events_frozen("populated 0\n"), None);
    }
}
