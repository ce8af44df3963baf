//! The on-disk vault: one directory per quarantine holding `record.json`, `evidence.json` and a
//! copy of the executable. Every write is temp + fsync + rename + fsync(dir), so after a crash a
//! file is either the old version or the new one, never a torn mix.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use tracing::warn;

use super::clock::Utc;
use super::error::QuarantineError;
use super::record::QuarantineRecord;

pub(super) const RECORD_FILE: &str = "record.json";
pub(super) const EVIDENCE_FILE: &str = "evidence.json";
pub(super) const EXE_FILE: &str = "exe";
const LOCK_FILE: &str = ".lock";
/// Ids allowed per second before creation gives up; a real agent quarantines a few a day.
const IDS_PER_SECOND: u32 = 10_000;

#[derive(Debug)]
pub struct QuarantineVault {
    root: PathBuf,
    /// Held for the vault's lifetime: a second manager over the same records would race this one.
    _lock: Flock<File>,
}

impl QuarantineVault {
    /// Creates the root (0700: evidence includes command lines and binaries) and locks it.
    pub fn open(root: &Path) -> Result<Self, QuarantineError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| QuarantineError::io(root, e))?;
        // An existing directory keeps whatever mode it had; tighten it.
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))
            .map_err(|e| QuarantineError::io(root, e))?;
        let lock_path = root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| QuarantineError::io(&lock_path, e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                QuarantineError::VaultLocked {
                    path: root.to_owned(),
                }
            } else {
                QuarantineError::io(&lock_path, errno.into())
            }
        })?;
        Ok(Self {
            root: root.to_owned(),
            _lock: lock,
        })
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Picks the next free id for `now` and creates its directory (0700). Creation is the
    /// reservation: `create_dir` fails on an existing name, so two ids never collide.
    pub fn create_entry(&self, now: Utc) -> Result<String, QuarantineError> {
        let stamp = now.id_stamp();
        for n in 0..IDS_PER_SECOND {
            let id = format!("q-{stamp}-{n:04}");
            let dir = self.dir(&id);
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(id),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(QuarantineError::io(dir, e)),
            }
        }
        Err(QuarantineError::io(
            self.root.join(format!("q-{stamp}-*")),
            io::Error::other("no free quarantine id left in this second"),
        ))
    }

    /// Every write is atomic (a reader sees the old record or the new one); `durable` ones are
    /// also fsynced. The manager makes every change of state durable, and one write while a
    /// quarantine is `Pending` (right after the processes are contained). The steps in between
    /// are not: a daemon crash keeps them (the page cache survives it), and after a power loss
    /// the durable `pending` record is enough for the restart to find the quarantine
    /// interrupted and reconcile it with the cgroup. Ten fsyncs per quarantine were most of its
    /// latency.
    pub fn write_record(
        &self,
        record: &QuarantineRecord,
        durable: bool,
    ) -> Result<(), QuarantineError> {
        self.write_json_with(&record.id, RECORD_FILE, record, durable)
            .map(drop)
    }

    pub fn write_json<T: Serialize>(
        &self,
        id: &str,
        name: &str,
        value: &T,
    ) -> Result<PathBuf, QuarantineError> {
        self.write_json_with(id, name, value, true)
    }

    fn write_json_with<T: Serialize>(
        &self,
        id: &str,
        name: &str,
        value: &T,
        durable: bool,
    ) -> Result<PathBuf, QuarantineError> {
        let path = self.dir(id).join(name);
        let mut text =
            serde_json::to_vec_pretty(value).map_err(|source| QuarantineError::Json {
                path: path.clone(),
                source,
            })?;
        text.push(b'\n');
        atomic_write(&path, &text, 0o600, durable).map_err(|e| QuarantineError::io(&path, e))?;
        Ok(path)
    }

    /// Every readable record. One unreadable record must not take quarantine down with it, so
    /// it is logged and skipped rather than failing the load.
    pub fn load_all(&self) -> Result<Vec<QuarantineRecord>, QuarantineError> {
        let entries = fs::read_dir(&self.root).map_err(|e| QuarantineError::io(&self.root, e))?;
        let mut records = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with("q-") {
                continue;
            }
            let path = entry.path().join(RECORD_FILE);
            let text = match fs::read(&path) {
                Ok(text) => text,
                // A directory without a record: the daemon died between reserving the id and
                // writing the first record, before anything was done to any process.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    warn!(dir = %entry.path().display(), "quarantine entry without a record");
                    continue;
                }
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "unreadable quarantine record");
                    continue;
                }
            };
            match serde_json::from_slice::<QuarantineRecord>(&text) {
                Ok(record) if record.id == name => records.push(record),
                Ok(record) => warn!(
                    path = %path.display(), id = %record.id,
                    "quarantine record id does not match its directory; skipped"
                ),
                Err(e) => warn!(path = %path.display(), error = %e, "malformed quarantine record"),
            }
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
/// `durable`: also fsync the file and the directory, so the write survives a power loss.
pub(super) fn atomic_write(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    // A stale temp from a crash could carry another mode; start from nothing.
    let _ = fs::remove_file(&tmp);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    // The rename lives in the directory; without this a crash can forget it.
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn ids_are_unique_and_sorted_within_one_second() {
        let tmp = tempfile::tempdir().unwrap();
        let vault = QuarantineVault::open(&tmp.path().join("v")).unwrap();
        let now = Utc::now();
        let a = vault.create_entry(now).unwrap();
        let b = vault.create_entry(now).unwrap();
        assert!(a < b, "{a} then {b}");
        assert!(a.ends_with("-0000") && b.ends_with("-0001"));
        let mode = fs::metadata(vault.dir(&a)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            fs::metadata(tmp.path().join("v")).unwrap().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn second_manager_on_one_vault_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = QuarantineVault::open(tmp.path()).unwrap();
        let second = QuarantineVault::open(tmp.path());
        assert!(matches!(second, Err(QuarantineError::VaultLocked { .. })));
    }

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f.json");
        atomic_write(&path, b"one", 0o600, true).unwrap();
        atomic_write(&path, b"two", 0o600, false).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert!(!tmp.path().join(".f.json.tmp").exists());
    }
}
