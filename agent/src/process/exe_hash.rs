//! SHA-256 of executable images, cached by file identity so each distinct image is read once.
//!
//! Everything here is blocking file I/O (an image can be hundreds of MiB): the caller runs it on
//! a blocking pool (`tokio::task::spawn_blocking` or a dedicated thread) and hands the result to
//! the table with `ProcessTable::set_exe_sha256`. The table never calls this itself.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::error::ProcessError;
use super::key::ProcessKey;
use super::proc_seed::parse_stat;

pub const DEFAULT_CAPACITY: usize = 4096;
const READ_BUF: usize = 64 * 1024;

/// What makes two opens the same file contents, without reading them. A rewrite in place
/// changes mtime and ctime (and usually size); a replaced file has a new inode. ctime matters:
/// the owner of a file can put its mtime back with utimensat(2), but not its ctime, so a binary
/// rewritten in place to the same size cannot pass for the digest cached for its old contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub size: u64,
}

fn ns(sec: i64, nsec: i64) -> i128 {
    i128::from(sec) * 1_000_000_000 + i128::from(nsec)
}

impl FileIdentity {
    /// The identity the kernel reported for an exec'd image (`ExecEvent::image`), in `stat`'s
    /// terms; `None` when the probe could not read it.
    pub fn of_image(image: &agent_common::ImageId) -> Option<Self> {
        (image.ino != 0).then(|| Self {
            // The kernel's dev_t is MAJOR << 20 | MINOR; stat(2) encodes it differently.
            dev: libc::makedev(image.dev >> 20, image.dev & 0xf_ffff),
            ino: image.ino,
            mtime_ns: ns(image.mtime_sec, image.mtime_nsec.into()),
            ctime_ns: ns(image.ctime_sec, image.ctime_nsec.into()),
            size: image.size as u64,
        })
    }

    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            size: meta.size(),
        }
    }
}

/// Bounded map from [`FileIdentity`] to hex digest, evicting the oldest insert first.
#[derive(Debug)]
pub struct ExeHashCache {
    capacity: usize,
    digests: HashMap<FileIdentity, Arc<str>>,
    order: VecDeque<FileIdentity>,
    /// Execs seen before, by the kernel's identity of the image and the path it was exec'd by:
    /// the digest and where the image runs from (`/proc/PID/exe`'s link), so the same command
    /// run again needs no `/proc` lookup at all. Keyed by path too because the running path
    /// is a property of the exec (a script's interpreter, a hard link's name), not of the file.
    execs: HashMap<(FileIdentity, Box<[u8]>), KnownImage>,
    exec_order: VecDeque<(FileIdentity, Box<[u8]>)>,
    hits: u64,
    misses: u64,
}

/// What an earlier exec of the same image by the same path established.
#[derive(Clone, Debug)]
pub struct KnownImage {
    pub sha256: Arc<str>,
    pub running: Option<String>,
}

impl Default for ExeHashCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl ExeHashCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            digests: HashMap::new(),
            order: VecDeque::new(),
            execs: HashMap::new(),
            exec_order: VecDeque::new(),
            hits: 0,
            misses: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn hits(&self) -> u64 {
        self.hits
    }

    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Hex SHA-256 of the file at `path`. Blocking.
    ///
    /// The identity comes from the opened descriptor, not the path, so a file swapped between
    /// stat and open cannot be cached under another file's identity.
    pub fn hash_file(&mut self, path: &Path) -> Result<Arc<str>, ProcessError> {
        self.hash_image(&KeyImage::of_file(open_image(path)?, path)?)
    }

    /// Hashes a live process's image through `/proc/PID/exe`, which opens the exact file the
    /// process runs even if its path has since been replaced or deleted. Blocking.
    pub fn hash_process_exe(
        &mut self,
        proc_root: &Path,
        pid: u32,
    ) -> Result<Arc<str>, ProcessError> {
        self.hash_file(&proc_root.join(pid.to_string()).join("exe"))
    }

    /// [`Self::hash_process_exe`] for the process `key` names, and only it: a hash request can
    /// wait in a queue long enough for its pid to be recycled. The image is opened first, then
    /// `/proc/PID/stat` must still show the key's start time; pids never return to an earlier
    /// start time, so the descriptor was opened while the pid was the key's process.
    /// A mismatch is reported as the process having vanished (`is_vanished()`).
    pub fn hash_key_exe(
        &mut self,
        proc_root: &Path,
        key: &ProcessKey,
    ) -> Result<Arc<str>, ProcessError> {
        self.hash_image(&KeyImage::open(proc_root, key)?)
    }

    /// The cached digest of the file `id` names, if it was hashed before. Cheap: no I/O.
    pub fn lookup(&mut self, id: &FileIdentity) -> Option<Arc<str>> {
        let d = self.digests.get(id).map(Arc::clone);
        if d.is_some() {
            self.hits += 1;
        }
        d
    }

    /// The cached digest of an opened image, or reads and hashes it and caches the digest.
    /// Blocking.
    pub fn hash_image(&mut self, image: &KeyImage) -> Result<Arc<str>, ProcessError> {
        if let Some(d) = self.lookup(&image.identity) {
            return Ok(d);
        }
        let digest = image.digest()?;
        self.remember(image.identity, Arc::clone(&digest));
        Ok(digest)
    }

    /// An earlier exec's digest and running path for an exec of the image the kernel identified
    /// as `id` by the path `filename` (the bytes the exec event carries). Cheap: no I/O.
    pub fn lookup_exec(&mut self, id: &FileIdentity, filename: &[u8]) -> Option<KnownImage> {
        let known = self.execs.get(&(*id, filename.into())).cloned();
        if known.is_some() {
            self.hits += 1;
        }
        known
    }

    /// Remembers what an exec established, for [`Self::lookup_exec`].
    pub fn remember_exec(&mut self, id: FileIdentity, filename: &[u8], known: KnownImage) {
        let key = (id, Box::<[u8]>::from(filename));
        while self.execs.len() >= self.capacity {
            match self.exec_order.pop_front() {
                Some(old) => {
                    self.execs.remove(&old);
                }
                None => break,
            }
        }
        if self.execs.insert(key.clone(), known).is_none() {
            self.exec_order.push_back(key);
        }
    }

    /// Caches a digest computed elsewhere ([`KeyImage::digest`]), counted as a miss.
    pub fn remember(&mut self, id: FileIdentity, digest: Arc<str>) {
        self.misses += 1;
        self.insert(id, digest);
    }

    fn insert(&mut self, id: FileIdentity, digest: Arc<str>) {
        while self.digests.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.digests.remove(&old);
                }
                None => break,
            }
        }
        if self.digests.insert(id, digest).is_none() {
            self.order.push_back(id);
        }
    }
}

/// A process's image, opened through `/proc/PID/exe` while the pid still named the process,
/// with the identity of the file opened.
#[derive(Debug)]
pub struct KeyImage {
    file: File,
    path: std::path::PathBuf,
    pub identity: FileIdentity,
    /// Where the image lives (`/proc/PID/exe`'s link): the interpreter for a script,
    /// `/memfd:name (deleted)` for a memfd. `None` when only a path was opened.
    pub running: Option<String>,
}

impl KeyImage {
    /// Opens the image of the process `key` names, and only it: the image is opened first,
    /// then `/proc/PID/stat` must still show the key's start time; pids never return to an
    /// earlier start time, so the descriptor was opened while the pid was the key's process.
    /// A mismatch is reported as the process having vanished (`is_vanished()`).
    pub fn open(proc_root: &Path, key: &ProcessKey) -> Result<Self, ProcessError> {
        let dir_path = proc_root.join(key.tgid.to_string());
        // `/proc/PID` is looked up once (for a new pid procfs takes its slow path and allocates
        // the dentry) and everything else is opened relative to it.
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&dir_path)
            .map_err(|e| ProcessError::io(&dir_path, e))?;
        let exe = dir_path.join("exe");
        let file = open_at(&dir, c"exe", libc::O_RDONLY | libc::O_NONBLOCK)
            .map_err(|e| ProcessError::io(&exe, e))?;
        let running = read_link_at(&dir, c"exe");
        let stat_path = dir_path.join("stat");
        let mut stat = String::new();
        open_at(&dir, c"stat", libc::O_RDONLY)
            .and_then(|mut f| f.read_to_string(&mut stat))
            .map_err(|e| ProcessError::io(&stat_path, e))?;
        let start = parse_stat(&stat).ok_or(ProcessError::Parse {
            path: stat_path,
            what: "stat line",
        })?;
        if !ProcessKey::from_proc_ticks(key.tgid, start.start_ticks).same_process(key) {
            return Err(ProcessError::io(
                exe,
                io::Error::from_raw_os_error(libc::ESRCH),
            ));
        }
        let mut image = Self::of_file(file, &exe)?;
        image.running = running;
        Ok(image)
    }

    /// Reads and hashes the image; an error if the file changed while it was read. Blocking.
    pub fn digest(&self) -> Result<Arc<str>, ProcessError> {
        let digest = sha256_hex(&self.file).map_err(|e| ProcessError::io(&self.path, e))?;
        let after = self
            .file
            .metadata()
            .map_err(|e| ProcessError::io(&self.path, e))?;
        if FileIdentity::of(&after) != self.identity {
            return Err(ProcessError::ChangedWhileHashing {
                path: self.path.clone(),
            });
        }
        Ok(digest.into())
    }

    fn of_file(file: File, path: &Path) -> Result<Self, ProcessError> {
        let meta = file.metadata().map_err(|e| ProcessError::io(path, e))?;
        if !meta.is_file() {
            return Err(ProcessError::NotRegularFile { path: path.into() });
        }
        Ok(Self {
            identity: FileIdentity::of(&meta),
            file,
            path: path.into(),
            running: None,
        })
    }
}

fn open_at(dir: &File, name: &std::ffi::CStr, flags: libc::c_int) -> io::Result<File> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _};
    // SAFETY: a valid directory descriptor and a NUL-terminated name; the descriptor returned
    // is owned by the File from here on.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn read_link_at(dir: &File, name: &std::ffi::CStr) -> Option<String> {
    use std::os::fd::AsRawFd as _;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is writable for its length; readlinkat writes at most that many bytes.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn open_image(path: &Path) -> Result<File, ProcessError> {
    OpenOptions::new()
        .read(true)
        // Never block opening a FIFO planted where an image was expected.
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| ProcessError::io(path, e))
}

/// Streaming SHA-256, hex encoded.
pub fn sha256_hex(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_BUF];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, SystemTime};

    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn the_kernels_image_identity_reads_as_stat_would_report_it() {
        let image = agent_common::ImageId {
            ino: 42,
            size: 7,
            mtime_sec: 3,
            mtime_nsec: 5,
            dev: (259 << 20) | 0x1_2345,
            ctime_sec: 4,
            ctime_nsec: 6,
            _pad: 0,
        };
        let id = FileIdentity::of_image(&image).expect("readable");
        let want = FileIdentity { dev: libc::makedev(259, 0x1_2345), ino: 42, mtime_ns: 3_000_000_005, ctime_ns: 4_000_000_006, size: 7 };
        assert_eq!(id, want);
        // An unreadable identity is never used.
        assert_eq!(FileIdentity::of_image(&agent_common::ImageId { ino: 0, ..image }), None);
        // And a real file's: 8:1-style devices encode the same either way round.
        let meta = std::fs::metadata("/proc/self/exe").expect("stat");
        let kernel_dev = ((libc::major(meta.dev()) as u32) << 20) | libc::minor(meta.dev()) as u32;
        let image = agent_common::ImageId {
            ino: meta.ino(),
            size: meta.size() as i64,
            mtime_sec: meta.mtime(),
            mtime_nsec: meta.mtime_nsec() as u32,
            dev: kernel_dev,
            ctime_sec: meta.ctime(),
            ctime_nsec: meta.ctime_nsec() as u32,
            _pad: 0,
        };
        assert_eq!(FileIdentity::of_image(&image), Some(FileIdentity::of(&meta)));
    }

    #[test]
    fn an_exec_is_known_by_image_and_path_and_the_memory_is_bounded() {
        let mut cache = ExeHashCache::new(2);
        let id = |ino| FileIdentity { dev: 1, ino, mtime_ns: 0, ctime_ns: 0, size: 1 };
        let known = |d: &str| KnownImage { sha256: d.into(), running: Some(format!("/run/{d}")) };
        cache.remember_exec(id(1), b"/bin/a", known("a"));
        assert_eq!(cache.lookup_exec(&id(1), b"/bin/a").map(|k| k.running), Some(Some("/run/a".into())));
        // The same image exec'd by another path (a symlink, a script's interpreter) is not known.
        assert!(cache.lookup_exec(&id(1), b"/bin/link").is_none());
        assert!(cache.lookup_exec(&id(2), b"/bin/a").is_none());
        cache.remember_exec(id(2), b"/bin/b", known("b"));
        cache.remember_exec(id(3), b"/bin/c", known("c"));
        assert!(cache.lookup_exec(&id(1), b"/bin/a").is_none(), "the oldest went first");
        assert!(cache.lookup_exec(&id(3), b"/bin/c").is_some());
        assert_eq!(cache.hits(), 2);
    }

    fn write(path: &Path, data: &[u8]) {
        let mut f = File::create(path).unwrap();
        f.write_all(data).unwrap();
    }

    #[test]
    fn streaming_hash_matches_known_vector_across_buffer_boundaries() {
        assert_eq!(sha256_hex(&b"abc"[..]).unwrap(), ABC_SHA256);
        // Larger than one read buffer: the digest of a million 'a's is a published vector.
        let big = vec![b'a'; 1_000_000];
        assert_eq!(
            sha256_hex(&big[..]).unwrap(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn hashes_once_hits_after_and_rehashes_on_mtime_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        write(&path, b"abc");
        let mut cache = ExeHashCache::new(8);

        assert_eq!(&*cache.hash_file(&path).unwrap(), ABC_SHA256);
        assert_eq!((cache.hits(), cache.misses()), (0, 1));
        assert_eq!(&*cache.hash_file(&path).unwrap(), ABC_SHA256);
        assert_eq!((cache.hits(), cache.misses()), (1, 1));

        // Same size, new contents, distinct mtime: must not be served from the cache.
        write(&path, b"xyz");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t)
            .unwrap();
        let d = cache.hash_file(&path).unwrap();
        assert_ne!(&*d, ABC_SHA256);
        assert_eq!(&*d, sha256_hex(&b"xyz"[..]).unwrap());
        assert_eq!((cache.hits(), cache.misses()), (1, 2));
    }

    #[test]
    fn cache_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = ExeHashCache::new(3);
        for i in 0..10 {
            let p = dir.path().join(format!("f{i}"));
            write(&p, format!("{i}").as_bytes());
            cache.hash_file(&p).unwrap();
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.misses(), 10);
    }

    #[test]
    fn errors_for_missing_and_non_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = ExeHashCache::default();
        let missing = cache.hash_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.is_vanished(), "{missing}");
        assert!(matches!(
            cache.hash_file(dir.path()),
            Err(ProcessError::NotRegularFile { .. })
        ));
    }

    /// A small live process to hash (the test binary itself is large and slow to hash in a
    /// debug build). Killed when dropped.
    struct Sleeper(std::process::Child);

    impl Sleeper {
        fn spawn() -> Self {
            Self(
                std::process::Command::new("sleep")
                    .arg("60")
                    .spawn()
                    .unwrap(),
            )
        }
        fn key(&self) -> ProcessKey {
            let pid = self.0.id();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            ProcessKey::from_proc_ticks(pid, parse_stat(&stat).unwrap().start_ticks)
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn hashes_a_live_image_through_proc_exe() {
        let child = Sleeper::spawn();
        let proc_root = Path::new("/proc");
        let mut cache = ExeHashCache::default();
        let via_proc = cache.hash_process_exe(proc_root, child.0.id()).unwrap();
        let image = std::fs::read_link(format!("/proc/{}/exe", child.0.id())).unwrap();
        assert_eq!(&*via_proc, sha256_hex(File::open(&image).unwrap()).unwrap());
        // Same inode through its path: served from the cache.
        cache.hash_file(&image).unwrap();
        assert_eq!((cache.hits(), cache.misses()), (1, 1));
    }

    #[test]
    fn hash_key_exe_refuses_a_recycled_pid() {
        let child = Sleeper::spawn();
        let proc_root = Path::new("/proc");
        let key = child.key();
        let mut cache = ExeHashCache::default();
        assert!(cache.hash_key_exe(proc_root, &key).is_ok());
        // The same pid with another start time is another process.
        let other = ProcessKey::new(key.tgid, key.start_ns + 10 * crate::process::ns_per_tick());
        let err = cache.hash_key_exe(proc_root, &other).unwrap_err();
        assert!(err.is_vanished(), "{err}");
    }
}
