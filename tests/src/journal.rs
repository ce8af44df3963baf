//! The journal as tests see it: a journald to send incidents to (started standalone when the
//! machine has none, as on test VMs without systemd as PID 1), and reading vigil's entries back
//! with `journalctl -o json`.
//!
//! Without `/var/log/journal` (or before a flush) journald keeps entries in `/run/log/journal`;
//! journalctl reads both, so tests need not care which.

use std::fs::{self, File};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
const JOURNAL_DIR: &str = "/run/systemd/journal";
const JOURNALD: &str = "/lib/systemd/systemd-journald";
/// Serializes starting journald across test processes (a second journald would steal the
/// socket from the first).
const START_LOCK: &str = "/run/systemd/journal/.vigil-tests-start.lock";

/// True when something accepts datagrams on the native socket (a stale socket file left by a
/// dead journald refuses the connect).
pub fn journald_live() -> bool {
    UnixDatagram::unbound()
        .and_then(|s| s.connect(JOURNAL_SOCKET))
        .is_ok()
}

/// Makes sure a journald is listening, starting `systemd-journald` detached (own session,
/// stdio on /dev/null, outliving the test) when none is. Idempotent within a process and across
/// processes: whoever started it, it is left running.
pub fn ensure_journald() -> Result<(), String> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if journald_live() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("no journald is listening and starting one needs root".into());
    }
    if !Path::new(JOURNALD).exists() {
        return Err(format!(
            "no journald is listening and {JOURNALD} is missing (`cargo xtask setup` installs systemd)"
        ));
    }
    // journald creates its sockets here when not socket-activated, but not the directory.
    fs::create_dir_all(JOURNAL_DIR).map_err(|e| format!("creating {JOURNAL_DIR}: {e}"))?;
    let lock = File::create(START_LOCK).map_err(|e| format!("creating {START_LOCK}: {e}"))?;
    // SAFETY: flock on a descriptor we own; the lock goes with `lock`.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "locking {START_LOCK}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // Another process may have started one while we waited for the lock.
    if journald_live() {
        return Ok(());
    }
    let mut cmd = Command::new(JOURNALD);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe. Its own session keeps journald out of the test's
    // process group, so a Ctrl-C on the test run does not take the journal down with it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {JOURNALD}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !journald_live() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{JOURNALD} exited at startup: {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{JOURNALD} is running but {JOURNAL_SOCKET} did not accept within 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The cursor of the newest entry in the journal, so a test can later read only what came
/// after it. `None` when the journal is empty or unreadable.
pub fn journal_cursor() -> Option<String> {
    sync();
    let out = Command::new("journalctl")
        .args(["-o", "json", "-n", "1", "--no-pager"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|e| e["__CURSOR"].as_str().map(str::to_string))
}

/// vigil's entries (`SYSLOG_IDENTIFIER=vigil`) that match `pred`, polling until at least one
/// does or `timeout` passes (journald writes asynchronously). `since` is a cursor from
/// [`journal_cursor`] (only later entries are read), a `journalctl --since` time such as
/// `"-1min"` or `"2025-11-25 18:00:00"`, or `""` for the whole journal. Returns an empty
/// vector on timeout; the caller asserts.
pub fn read_vigil_entries(
    since: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    let mut last_sync: Option<Instant> = None;
    loop {
        // Each sync makes journald log a line of its own, so not on every poll.
        if last_sync.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            sync();
            last_sync = Some(Instant::now());
        }
        let matches: Vec<Value> = query(since).into_iter().filter(|e| pred(e)).collect();
        if !matches.is_empty() || Instant::now() >= deadline {
            return matches;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A journal field as text: journalctl prints non-printable values as arrays of bytes.
pub fn field(entry: &Value, name: &str) -> Option<String> {
    match entry.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(bytes) => {
            let bytes: Option<Vec<u8>> = bytes
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
        }
        _ => None,
    }
}

fn query(since: &str) -> Vec<Value> {
    let mut cmd = Command::new("journalctl");
    // --all: without it journalctl prints fields over 4 KiB as null.
    cmd.args(["-o", "json", "--all", "--no-pager", "-t", "vigil"]);
    let cursor = since.starts_with("s=").then_some(since);
    // Not --after-cursor: with a match (-t) it skips the first matching entry when the cursor's
    // own entry does not match (journalctl skips two from the cursor position). --cursor
    // starts at the cursor, and its own entry, if it is vigil's, is dropped below.
    if let Some(cursor) = cursor {
        cmd.arg(format!("--cursor={cursor}"));
    } else if !since.is_empty() {
        cmd.arg(format!("--since={since}"));
    }
    // Before journald's first write journalctl prints nothing (or "-- No entries --"): no entries.
    let Ok(out) = cmd.stderr(Stdio::null()).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| cursor.is_none_or(|c| e["__CURSOR"] != c))
        .collect()
}

/// Asks journald to write out everything it has received (over varlink; works without systemd
/// as PID 1). Best effort: the polling covers an older journalctl that cannot.
fn sync() {
    let _ = Command::new("journalctl")
        .arg("--sync")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
