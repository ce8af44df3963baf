//! The action log: every kill is written (and fsynced) before the signal is sent and again with
//! its outcome, so a crash mid-action leaves a trace an operator can find. Quarantines keep
//! their own records in the vault.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::json;
use tracing::warn;

use super::decision::Decision;

pub struct ActionLog {
    path: PathBuf,
    file: Option<File>,
    next: u64,
}

/// One begun action, to be ended with its outcome.
pub struct Entry(u64);

impl ActionLog {
    /// Opens (creating, 0600) the log; without it actions still happen, and the failure is logged.
    pub fn open(path: &Path) -> Self {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path);
        if let Err(e) = &file {
            warn!(path = %path.display(), "cannot open the action log: {e}; actions are not recorded on disk");
        }
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            path: path.to_path_buf(),
            file: file.ok(),
            next: start,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, line: serde_json::Value) {
        let Some(f) = self.file.as_mut() else { return };
        let mut text = line.to_string();
        text.push('\n');
        if let Err(e) = f.write_all(text.as_bytes()).and_then(|()| f.sync_data()) {
            warn!(path = %self.path.display(), "action log write failed: {e}");
        }
    }

    pub fn begin(&mut self, action: &str, d: &Decision) -> Entry {
        self.next += 1;
        let id = self.next;
        self.write(json!({
            "id": id,
            "at_unix_ms": now_ms(),
            "state": "begin",
            "action": action,
            "pid": d.target.key.tgid,
            "start_ns": d.target.key.start_ns,
            "exe": d.target.exe,
            "reason": d.reason,
            "score": d.score,
        }));
        Entry(id)
    }

    pub fn end(&mut self, entry: Entry, outcome: &str) {
        self.write(
            json!({"id": entry.0, "at_unix_ms": now_ms(), "state": "end", "outcome": outcome}),
        );
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
