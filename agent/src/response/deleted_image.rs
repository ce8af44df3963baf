//! A program whose file was deleted while it runs, with nothing put in its place: how droppers,
//! miners and implants hide from whoever lists the disk (`./x & rm -f x`). A package upgrade
//! also leaves running programs on a deleted file (`/usr/sbin/nginx (deleted)` until the
//! restart), but puts the new version at the same path: that is not this.
//!
//! Nothing on the event path says a file was unlinked unless it is watched, so running
//! processes are looked at every [`SWEEP_EVERY`]. The kernel marks an unlinked image in
//! `/proc/PID/exe` (" (deleted)"), and `/proc/PID/root` resolves its path in the process's own
//! mount namespace, so a container's programs are judged by their own files, not the host's.

use std::{
    collections::HashMap,
    fs,
    path::Path,
    time::{Duration, Instant},
};

/// How often running processes are looked at. A sweep reads one link per process (~2 µs).
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// Processes reported, remembered at most (their children running the same file are not
/// reported again); past it the memory is cleared.
const MAX_REPORTED: usize = 4096;

#[derive(Default)]
pub(super) struct DeletedImages {
    last: Option<Instant>,
    /// Reported process -> the deleted path it runs.
    reported: HashMap<(u32, u64), String>,
}

impl DeletedImages {
    /// Whether a sweep is due at `now` (and, if so, that it starts now).
    pub fn due(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return false;
        }
        self.last = Some(now);
        true
    }

    /// Whether `process` should be reported for running `path`: not already, and not a
    /// child of a reported process that runs the same file (a dropper's forked workers).
    pub fn report(&mut self, process: (u32, u64), parent: Option<(u32, u64)>, path: &str) -> bool {
        if self.reported.contains_key(&process)
            || parent.is_some_and(|p| self.reported.get(&p).is_some_and(|q| q == path))
        {
            return false;
        }
        if self.reported.len() >= MAX_REPORTED {
            self.reported.clear();
        }
        self.reported.insert(process, path.to_owned());
        true
    }

    pub fn on_exit(&mut self, process: (u32, u64)) {
        self.reported.remove(&process);
    }
}

/// The path of the image `pid` runs when its file was deleted and nothing is at that path now
/// (in the process's mount namespace); `None` otherwise, or when `/proc` cannot tell (the
/// process is gone, a kernel thread, a zombie). memfd images are `fileless-exec`'s.
pub(super) fn deleted_image(proc_root: &Path, pid: u32) -> Option<String> {
    let proc = proc_root.join(pid.to_string());
    let link = fs::read_link(proc.join("exe")).ok()?;
    let path = link.to_str()?.strip_suffix(" (deleted)")?;
    if !path.starts_with('/') || path.starts_with("/memfd:") {
        return None;
    }
    let now_there = proc.join("root").join(path.trim_start_matches('/'));
    match fs::symlink_metadata(now_there) {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(path.to_owned()),
        // Unreadable (the process exited meanwhile, or its root is not ours to see): unknown.
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake /proc entry: `exe` links to `target`, `root` to `root`.
    fn fake_proc(dir: &Path, pid: u32, target: &str, root: &Path) {
        let p = dir.join(pid.to_string());
        fs::create_dir_all(&p).unwrap();
        symlink(target, p.join("exe")).unwrap();
        symlink(root, p.join("root")).unwrap();
    }

    #[test]
    fn only_a_deleted_file_with_nothing_in_its_place_counts() {
        let dir = std::env::temp_dir().join(format!("vigil-deleted-image-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("root");
        fs::create_dir_all(root.join("usr/sbin")).unwrap();
        fs::write(root.join("usr/sbin/nginx"), b"new version").unwrap();
        let procfs = dir.join("proc");
        fake_proc(&procfs, 10, "/tmp/.x/updater (deleted)", &root);
        fake_proc(&procfs, 11, "/usr/sbin/nginx (deleted)", &root);
        fake_proc(&procfs, 12, "/usr/bin/sleep", &root);
        fake_proc(&procfs, 13, "/memfd:payload (deleted)", &root);
        assert_eq!(
            deleted_image(&procfs, 10).as_deref(),
            Some("/tmp/.x/updater")
        );
        assert_eq!(deleted_image(&procfs, 11), None, "upgraded in place");
        assert_eq!(deleted_image(&procfs, 12), None, "not deleted");
        assert_eq!(deleted_image(&procfs, 13), None, "fileless-exec's");
        assert_eq!(deleted_image(&procfs, 14), None, "gone");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_process_is_reported_once_and_its_workers_not_at_all() {
        let mut d = DeletedImages::default();
        let (dropper, worker, other) = ((10, 1), (11, 2), (12, 3));
        assert!(d.report(dropper, Some((1, 0)), "/tmp/x"));
        assert!(!d.report(dropper, Some((1, 0)), "/tmp/x"), "once");
        assert!(
            !d.report(worker, Some(dropper), "/tmp/x"),
            "a forked worker of the same file"
        );
        assert!(
            d.report(other, Some(dropper), "/tmp/y"),
            "a child running another deleted file"
        );
        d.on_exit(dropper);
        assert!(d.report(dropper, None, "/tmp/x"), "forgotten at exit");
    }

    #[test]
    fn sweeps_are_spaced() {
        let mut d = DeletedImages::default();
        let t0 = Instant::now();
        assert!(d.due(t0));
        assert!(!d.due(t0 + SWEEP_EVERY / 2));
        assert!(d.due(t0 + SWEEP_EVERY));
    }
}
