//! The watched files as the kernel knows them (inodes) and as operators name them (paths). The
//! actor resolves the policy's plan into both and programs the kernel; the responder reads the
//! paths back to name what an open reached.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use agent_common::{
    FILE_ACCESS_DELETE, FILE_ACCESS_REWRITE, FILE_ACCESS_WRITE, FILE_WALK_ENTRIES, FileEvent,
    FileKey, FileWatch, PATH_LEN, PathChangeEvent, WATCHED_FILES_ENTRIES,
};
use tracing::{debug, warn};

use crate::policy::PlannedWatch;

/// How often the policy's file globs are resolved again, for files and directories created
/// since (a new user's `~/.ssh`, a key generated later).
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// What a rename over a file (its target's accesses) and an unlink amount to.
const REPLACED: u32 = FILE_ACCESS_WRITE | FILE_ACCESS_REWRITE | FILE_ACCESS_DELETE;

/// After a watched path was renamed over or unlinked, how long until its globs are resolved
/// once more: a file removed and then written anew (not renamed over) exists only then.
pub const AFTER_REPLACE: Duration = Duration::from_millis(200);

/// Watched inode -> the path it was found under, and a signal that one of those paths now
/// names another inode (or none).
#[derive(Clone, Default)]
pub struct FileWatchIndex {
    paths: Arc<RwLock<HashMap<FileKey, PathBuf>>>,
    replaced: Arc<tokio::sync::Notify>,
}

/// A plan resolved to inodes.
#[derive(Debug, Default)]
pub struct Resolved {
    pub entries: HashMap<FileKey, FileWatch>,
    pub paths: HashMap<FileKey, PathBuf>,
    /// `FILE_WALK`: 0 when nothing is watched, else 1 + the deepest watch; then the same over
    /// the watches with each access bit.
    pub walk: [u32; FILE_WALK_ENTRIES as usize],
    /// `WATCHED_PATHS`: every spelling of every watch as an LPM key (prefix bits, bytes) and
    /// the accesses wanted there or at any shorter key it extends.
    pub path_keys: Vec<(u32, [u8; PATH_LEN], u32)>,
}

/// Stats every planned path; watches that land on one inode (a path and a symlink to it, two
/// rules on one file) are merged, keeping every access and the deepest depth, and named by a
/// path that is not a symlink when there is one. Paths that vanished since planning are
/// skipped: the next resolution catches up. So are pipes, sockets and devices: a masked unit is
/// a symlink to /dev/null, and watching that would report every `> /dev/null` on the host as a
/// write of the unit. Except, under `/dev`, block devices (raw disks) and the kernel's memory
/// and ports (`/dev/mem`, `kmem`, `port`), which nothing on a host opens in passing.
pub fn resolve(plan: &[PlannedWatch]) -> Resolved {
    fn raw_device(path: &std::path::Path, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        path.starts_with("/dev")
            && (kind.is_block_device()
                || kind.is_char_device()
                    && ["/dev/mem", "/dev/kmem", "/dev/port"].iter().any(|p| path == std::path::Path::new(p)))
    }
    let mut r = Resolved::default();
    let mut named_by_link: std::collections::HashSet<FileKey> = Default::default();
    let mut spellings: Vec<(&PathBuf, u32, u32)> = Vec::new();
    for w in plan {
        let meta = match std::fs::metadata(&w.path) {
            Ok(m) if m.is_file() || m.is_dir() || raw_device(&w.path, &m) => m,
            Ok(_) => {
                debug!(path = %w.path.display(), "file watch skipped: not a regular file or directory");
                continue;
            }
            Err(e) => {
                debug!(path = %w.path.display(), "file watch skipped: {e}");
                continue;
            }
        };
        let via_link = std::fs::symlink_metadata(&w.path).is_ok_and(|m| m.file_type().is_symlink());
        let key = FileKey {
            ino: meta.ino(),
            dev: kernel_dev(meta.dev()),
            _pad: 0,
        };
        if !r.entries.contains_key(&key) && r.entries.len() >= WATCHED_FILES_ENTRIES as usize {
            warn!(
                limit = WATCHED_FILES_ENTRIES,
                path = %w.path.display(),
                "file rules resolve to more inodes than the kernel map holds; the rest are not watched"
            );
            break;
        }
        let e = r.entries.entry(key).or_default();
        e.access |= w.access.bits();
        e.max_depth = e.max_depth.max(w.max_depth);
        spellings.push((&w.path, w.access.bits(), w.max_depth));
        match r.paths.entry(key) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(w.path.clone());
                if via_link {
                    named_by_link.insert(key);
                }
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if !via_link && named_by_link.remove(&key) {
                    o.insert(w.path.clone());
                }
            }
        }
    }
    r.path_keys = path_keys(&spellings);
    for e in r.entries.values() {
        let levels = e.max_depth + 1;
        r.walk[0] = r.walk[0].max(levels);
        for bit in 0..FILE_WALK_ENTRIES as usize - 1 {
            if e.access & (1 << bit) != 0 {
                r.walk[1 + bit] = r.walk[1 + bit].max(levels);
            }
        }
    }
    r
}

/// LPM keys for renames and unlinks, which name paths: a file watch is its path and NUL (that
/// path exactly), a directory watch its path and `/` (anything below). Each key carries the
/// accesses of every key that is a prefix of it, since a lookup finds only the longest. A file
/// watch also asks for a rename over it and its unlink whatever its rules want: after either,
/// the watched inode is no longer the file of that name, and the daemon must resolve the watches
/// again (`FileWatchIndex::path_changed_at`); rules still match on their own accesses.
fn path_keys(spellings: &[(&PathBuf, u32, u32)]) -> Vec<(u32, [u8; PATH_LEN], u32)> {
    let mut keys: Vec<(Vec<u8>, u32)> = Vec::new();
    for (path, access, depth) in spellings {
        let mut bytes = path.as_os_str().as_encoded_bytes().to_vec();
        if *depth == 0 {
            bytes.push(0);
        } else if bytes.last() != Some(&b'/') {
            bytes.push(b'/');
        }
        if bytes.len() > PATH_LEN {
            warn!(path = %path.display(), "watched path longer than {PATH_LEN} bytes: its renames and unlinks are not seen");
            continue;
        }
        match keys.iter_mut().find(|(k, _)| *k == bytes) {
            Some((_, a)) => *a |= access,
            None => keys.push((bytes, *access)),
        }
    }
    keys.iter()
        .map(|(k, _)| {
            let access = keys
                .iter()
                .filter(|(p, _)| k.starts_with(p))
                .fold(0, |acc, (_, a)| acc | a);
            let replaced = if k.last() == Some(&0) { REPLACED } else { 0 };
            let mut data = [0u8; PATH_LEN];
            data[..k.len()].copy_from_slice(k);
            ((k.len() * 8) as u32, data, access | replaced)
        })
        .collect()
}

/// `st_dev` as the kernel's `s_dev` has it (`MAJOR << 20 | MINOR`).
fn kernel_dev(dev: u64) -> u32 {
    (libc::major(dev) << 20) | libc::minor(dev)
}

impl FileWatchIndex {
    pub fn add_all(&self, paths: &HashMap<FileKey, PathBuf>) {
        let mut index = self.paths.write().unwrap_or_else(|p| p.into_inner());
        for (k, p) in paths {
            index.insert(*k, p.clone());
        }
    }

    pub fn replace(&self, paths: HashMap<FileKey, PathBuf>) {
        *self.paths.write().unwrap_or_else(|p| p.into_inner()) = paths;
    }

    /// A rename or unlink reached `path`. When it is a watch's own path (`/etc/shadow`, which
    /// `useradd` and `passwd` replace by renaming a new file over it), the kernel now watches an
    /// inode nobody opens by that name any more: the watches are resolved again at once
    /// ([`Self::replaced`]) rather than at the next periodic refresh. A change below a watched
    /// directory leaves the directory's inode, and so the watch, in place.
    pub fn path_changed_at(&self, path: &str) -> bool {
        let own = self
            .paths
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|p| p.as_os_str() == path);
        if own {
            self.replaced.notify_one();
        }
        own
    }

    /// Resolves when a watch's own path was renamed over or unlinked since the last call
    /// (several such changes in a row resolve it once).
    pub async fn replaced(&self) {
        self.replaced.notified().await;
    }

    /// The opened file's path: its watch's path and the components the kernel read below it.
    /// `None` when the watch is no longer known (replaced while the event was in flight).
    pub fn path_of(&self, ev: &FileEvent) -> Option<String> {
        self.below(ev.watch_dev, ev.watch_ino, &ev.components())
            .map(|p| p.display().to_string())
    }

    /// The path a rename or unlink named: as passed when absolute; a relative one below its
    /// base directory (the watch's path and the components up to it), with `.` and `..`
    /// taken lexically as the kernel took them from that directory.
    pub fn path_changed(&self, ev: &PathChangeEvent) -> Option<String> {
        let named = ev.path();
        if ev.relative == 0 {
            return Some(named);
        }
        let mut path = self.below(ev.watch_dev, ev.watch_ino, &ev.components())?;
        for c in named.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    path.pop();
                }
                c => path.push(c),
            }
        }
        Some(path.display().to_string())
    }

    fn below(&self, dev: u32, ino: u64, components: &[String]) -> Option<PathBuf> {
        let key = FileKey { ino, dev, _pad: 0 };
        let mut path = self
            .paths
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)?
            .clone();
        for c in components {
            // An unreadable component still takes its level, so a glob cannot match across it.
            path.push(if c.is_empty() { "?" } else { c.as_str() });
        }
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FileAccess;
    use agent_common::{EventHeader, FILE_NAME_LEN, FILE_WATCH_MAX_DEPTH};

    fn planned(path: PathBuf, access: FileAccess, max_depth: u32) -> PlannedWatch {
        PlannedWatch {
            path,
            access,
            max_depth,
        }
    }

    #[test]
    fn one_inode_named_twice_is_one_watch_with_both_accesses_and_the_deeper_depth() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/dev/null", d.path().join("masked.service")).unwrap();
        let r = resolve(&[
            planned(d.path().join("link"), FileAccess::WRITE, 3),
            planned(d.path().join("real"), FileAccess::READ, 0),
            planned(d.path().join("gone"), FileAccess::WRITE, 1),
            planned(d.path().join("masked.service"), FileAccess::WRITE, 0),
        ]);
        assert_eq!(r.entries.len(), 1, "{r:?}");
        let (key, w) = r.entries.iter().next().unwrap();
        assert_eq!(w.access, FileAccess::READ.union(FileAccess::WRITE).bits());
        assert_eq!(w.max_depth, 3);
        // One inode, one entry: reads of it walk as deep as its writes.
        assert_eq!(r.walk, [4, 4, 4, 0, 0, 0]);
        assert_eq!(
            r.paths[key],
            d.path().join("real"),
            "named by the path that is not a link"
        );
        let meta = std::fs::metadata(d.path().join("real")).unwrap();
        assert_eq!(key.ino, meta.ino());
        assert_eq!(
            resolve(&[]).walk,
            [0; 6],
            "nothing watched: opens are not looked at"
        );
    }

    #[test]
    fn an_event_is_named_by_its_watch_and_the_components_below_it() {
        let index = FileWatchIndex::default();
        let key = FileKey {
            ino: 7,
            dev: 3,
            _pad: 0,
        };
        index.replace(HashMap::from([(key, PathBuf::from("/etc/cron.d"))]));
        let mut names = [[0u8; FILE_NAME_LEN]; FILE_WATCH_MAX_DEPTH];
        names[0][..3].copy_from_slice(b"job");
        names[1][..3].copy_from_slice(b"sub");
        let mut ev = FileEvent {
            header: EventHeader::default(),
            flags: 0o1101,
            fd: 3,
            access: 2,
            depth: 2,
            watch_ino: 7,
            watch_dev: 3,
            dev: 3,
            ino: 9,
            names,
        };
        assert_eq!(index.path_of(&ev).as_deref(), Some("/etc/cron.d/sub/job"));
        ev.names[1][0] = 0;
        assert_eq!(index.path_of(&ev).as_deref(), Some("/etc/cron.d/?/job"));
        ev.watch_ino = 8;
        assert_eq!(index.path_of(&ev), None, "an unknown watch names nothing");
    }

    #[test]
    fn path_keys_are_exact_for_files_and_prefixes_for_directories_with_their_ancestors_accesses() {
        let (etc, cron, shadow) = (
            PathBuf::from("/etc"),
            PathBuf::from("/etc/cron.d"),
            PathBuf::from("/etc/shadow"),
        );
        let w = FileAccess::WRITE.bits();
        let r = FileAccess::READ.bits();
        let d = FileAccess::DELETE.bits();
        let keys = path_keys(&[(&etc, w, 1), (&cron, d, 1), (&shadow, r, 0)]);
        let find = |s: &str| {
            keys.iter()
                .find(|(bits, data, _)| &data[..*bits as usize / 8] == s.as_bytes())
                .map(|(_, _, a)| *a)
        };
        assert_eq!(find("/etc/"), Some(w));
        assert_eq!(find("/etc/cron.d/"), Some(w | d), "the longest match carries /etc/'s writes too");
        let replaced = w | FileAccess::REWRITE.bits() | d;
        let shadow_key = find("/etc/shadow\0");
        assert_eq!(shadow_key, Some(r | replaced), "a file: its path and NUL, and its replacement");
        assert_eq!(keys.len(), 3);
    }

    #[tokio::test]
    async fn a_watch_s_own_path_changing_asks_for_the_watches_again_and_a_path_below_does_not() {
        let index = FileWatchIndex::default();
        let key = |ino| FileKey { ino, dev: 1, _pad: 0 };
        let watched = [(key(2), "/etc/shadow".into()), (key(3), "/etc/cron.d".into())];
        index.replace(HashMap::from(watched));
        assert!(!index.path_changed_at("/etc/cron.d/job"), "below a directory: its inode stays");
        assert!(!index.path_changed_at("/etc/shadowx"));
        let waiting = tokio::time::timeout(Duration::from_millis(50), index.replaced());
        assert!(waiting.await.is_err(), "nothing asked yet");
        assert!(index.path_changed_at("/etc/shadow"));
        assert!(index.path_changed_at("/etc/shadow"));
        tokio::time::timeout(Duration::from_secs(5), index.replaced()).await.expect("asked");
        let again = tokio::time::timeout(Duration::from_millis(50), index.replaced());
        assert!(again.await.is_err(), "two changes in a row ask once");
    }

    fn change(relative: bool, path: &str, names: &[&str]) -> PathChangeEvent {
        let mut n = [[0u8; FILE_NAME_LEN]; FILE_WATCH_MAX_DEPTH];
        for (slot, name) in n.iter_mut().zip(names) {
            slot[..name.len()].copy_from_slice(name.as_bytes());
        }
        let mut p = [0u8; PATH_LEN];
        p[..path.len()].copy_from_slice(path.as_bytes());
        PathChangeEvent {
            header: EventHeader::default(),
            syscall_nr: 316,
            role: agent_common::PATH_ROLE_RENAMED_TO,
            access: FileAccess::WRITE.bits(),
            path_len: path.len() as u32,
            relative: u32::from(relative),
            depth: names.len() as u32,
            watch_ino: 7,
            watch_dev: 3,
            _pad: 0,
            names: n,
            path: p,
        }
    }

    #[test]
    fn a_relative_rename_is_named_from_its_base_directory() {
        let index = FileWatchIndex::default();
        let key = FileKey { ino: 7, dev: 3, _pad: 0 };
        index.replace(HashMap::from([(key, PathBuf::from("/etc"))]));
        // `cd /etc/cron.d/sub && mv /tmp/x ../evil`: the base is sub, two levels below /etc.
        let ev = change(true, "../evil", &["sub", "cron.d"]);
        assert_eq!(index.path_changed(&ev).as_deref(), Some("/etc/cron.d/evil"));
        assert_eq!(index.path_changed(&change(true, "./x", &[])).as_deref(), Some("/etc/x"));
        let absolute = change(false, "/etc/cron.d/job", &[]);
        assert_eq!(index.path_changed(&absolute).as_deref(), Some("/etc/cron.d/job"));
        let mut gone = change(true, "x", &[]);
        gone.watch_ino = 8;
        assert_eq!(index.path_changed(&gone), None, "an unknown watch names nothing");
    }
}
