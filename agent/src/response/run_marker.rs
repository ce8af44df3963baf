//! Whether the last vigil stopped without shutting down. A SIGKILL ends vigil before it can
//! write anything (the kernel's record of the signal is left unread in a ring that closes with
//! it), and so do a crash and the OOM killer. The next vigil tells: each run keeps a marker in
//! the state directory, touched every few seconds and removed at a clean shutdown. One found at
//! start from the same boot, whose process is gone, is a gap in what was watched, reported as
//! a `loss` incident with how long the host went unwatched at most.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

/// How often the marker's modification time is brought up to date: the bound on how long
/// before its end a vanished vigil was last known to run.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

const FILE_NAME: &str = "running.json";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Run {
    boot_id: String,
    pid: u32,
    /// Seconds since the epoch.
    started: u64,
}

/// This run's marker; [`RunMarker::release`] removes it at a clean shutdown.
#[derive(Debug)]
pub struct RunMarker {
    path: PathBuf,
    pid: u32,
}

/// A previous run that ended without shutting down.
#[derive(Debug, PartialEq, Eq)]
pub struct Gap {
    pub pid: u32,
    /// How long it had run when it was last seen.
    pub ran: Duration,
    /// From its last sign of life to this run's start: the longest the host went unwatched.
    pub unwatched: Duration,
}

impl Gap {
    pub fn message(&self) -> String {
        format!(
            "vigil: the previous vigil (pid {}) ended during this boot without shutting down \
             (killed with SIGKILL, crashed or out of memory) after running {} s; it was last \
             seen {} s before this one started, and nothing was watched in between",
            self.pid,
            self.ran.as_secs(),
            self.unwatched.as_secs()
        )
    }
}

impl RunMarker {
    /// Reads the previous run's marker, if any, and writes this run's. A state directory that
    /// cannot be written costs only this report (logged).
    pub fn claim(state_dir: &Path, proc_root: &Path) -> (Option<RunMarker>, Option<Gap>) {
        let path = state_dir.join(FILE_NAME);
        let boot_id = match fs::read_to_string(proc_root.join("sys/kernel/random/boot_id")) {
            Ok(id) => id.trim().to_string(),
            Err(e) => {
                warn!(
                    "cannot tell a killed vigil from a rebooted one (boot_id: {e}); not keeping a run marker"
                );
                return (None, None);
            }
        };
        let gap = previous_gap(&path, &boot_id, proc_root, SystemTime::now());
        let pid = std::process::id();
        let run = Run {
            boot_id,
            pid,
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        };
        match write_atomically(&path, &run) {
            Ok(()) => (Some(RunMarker { path, pid }), gap),
            Err(e) => {
                warn!(path = %path.display(), "cannot write the run marker: {e}; a SIGKILL of this vigil will go unreported by the next");
                (None, gap)
            }
        }
    }

    /// Brings the marker's modification time up to now, every [`HEARTBEAT`], on the runtime.
    pub fn spawn_heartbeat(&self) {
        let path = self.path.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                touch(&path);
            }
        });
    }

    /// Removes the marker, if it is still this run's: the shutdown was clean.
    pub fn release(self) {
        let ours = read_run(&self.path).is_some_and(|r| r.pid == self.pid);
        if ours && let Err(e) = fs::remove_file(&self.path) {
            warn!(path = %self.path.display(), "cannot remove the run marker: {e}; the next vigil will report a gap that was not one");
        }
    }
}

/// The gap a marker left at `path` says, judged at `now`.
fn previous_gap(path: &Path, boot_id: &str, proc_root: &Path, now: SystemTime) -> Option<Gap> {
    let meta = fs::metadata(path).ok()?;
    let Some(run) = read_run(path) else {
        warn!(path = %path.display(), "run marker unreadable; ignored");
        return None;
    };
    // A reboot ends every run; the journal has the boot.
    if run.boot_id != boot_id || run.pid == std::process::id() {
        return None;
    }
    if is_running_vigil(proc_root, run.pid) {
        warn!(pid = run.pid, path = %path.display(), "another vigil is running with this state directory");
        return None;
    }
    let last_seen = meta.modified().ok()?;
    let started = UNIX_EPOCH + Duration::from_secs(run.started);
    Some(Gap {
        pid: run.pid,
        ran: last_seen.duration_since(started).unwrap_or_default(),
        unwatched: now.duration_since(last_seen).unwrap_or_default(),
    })
}

/// Sets the file's modification time to now; never creates it (a released marker stays gone).
fn touch(path: &Path) {
    let touched = fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        debug!(path = %path.display(), "run marker not touched: {e}");
    }
}

/// Whether `pid` is a live (not zombie) process named vigil: a killed vigil whose parent has
/// not reaped it is gone all the same.
fn is_running_vigil(proc_root: &Path, pid: u32) -> bool {
    let stat = fs::read_to_string(proc_root.join(format!("{pid}/stat"))).unwrap_or_default();
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let state = stat[close + 1..].split_whitespace().next().unwrap_or("");
    stat.get(open + 1..close) == Some("vigil") && !matches!(state, "Z" | "X" | "x")
}

fn read_run(path: &Path) -> Option<Run> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn write_atomically(path: &Path, run: &Run) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(run).map_err(io::Error::other)?)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "6f1b0c3e-8a52-4a8e-9d4e-2f0f3c1b7a90";

    fn fake_proc(dir: &Path, pids: &[(u32, &str, &str)]) -> PathBuf {
        let root = dir.join("proc");
        fs::create_dir_all(root.join("sys/kernel/random")).unwrap();
        fs::write(root.join("sys/kernel/random/boot_id"), format!("{BOOT}\n")).unwrap();
        for (pid, comm, state) in pids {
            fs::create_dir_all(root.join(pid.to_string())).unwrap();
            fs::write(
                root.join(format!("{pid}/stat")),
                format!("{pid} ({comm}) {state} 1 {pid} {pid} 0 -1\n"),
            )
            .unwrap();
        }
        root
    }

    fn leave_marker(state: &Path, boot_id: &str, pid: u32, started: SystemTime, seen: SystemTime) {
        let run = Run {
            boot_id: boot_id.into(),
            pid,
            started: started.duration_since(UNIX_EPOCH).unwrap().as_secs(),
        };
        write_atomically(&state.join(FILE_NAME), &run).unwrap();
        fs::File::options()
            .write(true)
            .open(state.join(FILE_NAME))
            .unwrap()
            .set_modified(seen)
            .unwrap();
    }

    #[test]
    fn a_vanished_run_of_this_boot_is_a_gap_measured_from_its_last_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        // Killed, not yet reaped by its parent.
        let proc_root = fake_proc(dir.path(), &[(4_000_001, "vigil", "Z")]);
        let state = dir.path().join("state");
        let now = SystemTime::now();
        let secs = |s| Duration::from_secs(s);
        leave_marker(&state, BOOT, 4_000_001, now - secs(3_600), now - secs(42));
        let gap = previous_gap(&state.join(FILE_NAME), BOOT, &proc_root, now).expect("a gap");
        assert_eq!(gap.pid, 4_000_001);
        assert_eq!(gap.ran.as_secs(), 3_558);
        assert_eq!(gap.unwatched.as_secs(), 42);
        assert!(gap.message().contains("pid 4000001") && gap.message().contains("42 s before"));

        // Claimed: the gap is reported once, and this run's marker replaces it until released.
        let (marker, reported) = RunMarker::claim(&state, &proc_root);
        assert_eq!(reported.map(|g| g.pid), Some(4_000_001));
        let marker = marker.expect("marker written");
        assert_eq!(
            read_run(&state.join(FILE_NAME)).map(|r| r.pid),
            Some(std::process::id())
        );
        touch(&state.join(FILE_NAME));
        marker.release();
        assert!(
            !state.join(FILE_NAME).exists(),
            "a clean shutdown leaves nothing"
        );
        assert_eq!(RunMarker::claim(&state, &proc_root).1, None);
    }

    #[test]
    fn a_reboot_a_live_vigil_or_a_foreign_marker_is_no_gap() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = fake_proc(dir.path(), &[(4_000_002, "vigil", "S")]);
        let state = dir.path().join("state");
        let now = SystemTime::now();
        let path = state.join(FILE_NAME);
        leave_marker(&state, "another-boot", 4_000_001, now, now);
        assert_eq!(previous_gap(&path, BOOT, &proc_root, now), None, "a reboot");
        leave_marker(&state, BOOT, 4_000_002, now, now);
        assert_eq!(
            previous_gap(&path, BOOT, &proc_root, now),
            None,
            "still running"
        );
        fs::write(&path, b"{not json").unwrap();
        assert_eq!(
            previous_gap(&path, BOOT, &proc_root, now),
            None,
            "unreadable"
        );
    }

    #[test]
    fn release_leaves_a_marker_another_run_has_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = fake_proc(dir.path(), &[]);
        let state = dir.path().join("state");
        let (marker, _) = RunMarker::claim(&state, &proc_root);
        let now = SystemTime::now();
        leave_marker(&state, BOOT, 4_000_003, now, now);
        marker.expect("marker").release();
        assert_eq!(
            read_run(&state.join(FILE_NAME)).map(|r| r.pid),
            Some(4_000_003)
        );
    }
}
