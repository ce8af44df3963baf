//! Mass encryption in place: many files that were there rewritten, within seconds, with what
//! reads as ciphertext. `mass_replace` knows ransomware by its names (`f.docx` gives way to
//! `f.docx.locked`); a locker that overwrites each file where it lies (`open(f, "r+b")`, or
//! `"wb"` after reading it) changes no name. The kernel reports a regular file that was there
//! opened to be written over (`CHURN_REWRITTEN`), and the new name of every rename (an
//! encrypted copy moved onto its original), while a process or its ancestors churn files;
//! once one of them has rewritten [`REWRITTEN`] distinct files within [`WINDOW`], the latest of
//! them are read back and their first bytes weighed, and again after every [`REWRITTEN`] more.
//!
//! Builds, formatters, `sed -i`, `cp` over a copy and databases rewrite files by the hundred
//! too, but not into ciphertext: source, objects and text read at 4 to 6.5 bits per byte, and
//! what is denser (images, archives, compressed streams) opens with its format's magic. What
//! is left, dense and unnamed, is ciphertext: `openssl enc` (`Salted__`), a stream cipher's
//! raw output, or the same in base64 (a Fernet token: dense over its 64 symbols).

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    io::Read,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::actors::{Activity, Actors};

/// How far back rewrites count.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Distinct files rewritten within [`WINDOW`] before their contents are looked at.
pub const REWRITTEN: usize = 12;
/// Files read back per look: the latest but the very last (which may still be being written).
const SAMPLED: usize = 8;
/// Files of a look that must read as ciphertext, at least, and at least three quarters of those
/// that could be weighed.
const ENCRYPTED: usize = 4;
/// Bytes read from the start of each file.
const SAMPLE_BYTES: usize = 4096;
/// Fewer bytes than this weigh nothing either way.
const MIN_BYTES: usize = 128;
/// Names remembered per process.
const MAX_NAMES: usize = 1024;
/// Processes (and parents) followed at once.
const MAX_ACTORS: usize = 1024;

/// What a file's first bytes say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Content {
    /// Too short to weigh, or unreadable.
    Unknown,
    /// Text, code, objects, or a known dense format.
    Plain,
    /// Dense and in no known format: `bits` per byte over `alphabet` symbols (256 raw, 64 in
    /// base64).
    Ciphertext { bits: f64, alphabet: u16 },
}

/// Magic of dense formats (compressed, media, containers) that are not ciphertext, at offset 0.
const DENSE_FORMATS: &[&[u8]] = &[
    b"\x1f\x8b",             // gzip
    b"BZh",                  // bzip2
    b"\xfd7zXZ\x00",         // xz
    b"\x28\xb5\x2f\xfd",     // zstd
    b"\x04\x22\x4d\x18",     // lz4
    b"7z\xbc\xaf\x27\x1c",   // 7-zip
    b"PK\x03\x04",           // zip, jar, docx, apk
    b"PK\x05\x06",           // empty zip
    b"Rar!",                 // rar
    b"\xff\xd8\xff",         // jpeg
    b"\x89PNG",              // png
    b"GIF8",                 // gif
    b"RIFF",                 // webp, wav, avi
    b"OggS",                 // ogg
    b"fLaC",                 // flac
    b"ID3",                  // mp3
    b"\x1a\x45\xdf\xa3",     // matroska, webm
    b"%PDF",                 // pdf
    b"PACK",                 // git pack
    b"\xfftOc",              // git pack index
    b"!<arch>",              // ar: .deb, .a, .rlib
    b"\x7fELF",              // elf
    b"SQLite format 3\x00",  // sqlite
    b"LPKSHHRH",             // systemd journal
    b"\xca\xfe\xba\xbe",     // java class, mach-o fat
    b"\x00\x00\x00\x0cjP  ", // jpeg 2000
];

/// Classifies the first bytes of a file.
pub fn weigh(bytes: &[u8]) -> Content {
    if bytes.len() < MIN_BYTES {
        return Content::Unknown;
    }
    if DENSE_FORMATS.iter().any(|m| bytes.starts_with(m)) || is_zlib(bytes) || is_iso_media(bytes) {
        return Content::Plain;
    }
    let raw = entropy(bytes.iter().copied());
    if raw >= random_bits(bytes.len(), 256) - 0.5 {
        return Content::Ciphertext {
            bits: raw,
            alphabet: 256,
        };
    }
    // Base64 (or base64url) of ciphertext: only its symbols, as dense over them as random.
    let symbols: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !matches!(b, b'\n' | b'\r' | b'='))
        .collect();
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
    if symbols.len() >= MIN_BYTES && symbols.iter().all(base64) && !bytes.starts_with(b"-----BEGIN")
    {
        let bits = entropy(symbols.iter().copied());
        if bits >= random_bits(symbols.len(), 64) - 0.3 {
            return Content::Ciphertext { bits, alphabet: 64 };
        }
    }
    Content::Plain
}

/// A zlib stream's two-byte header (git's loose objects, PDF and PNG streams on their own).
fn is_zlib(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// `ftyp` at offset 4: MP4, MOV, HEIC, AVIF.
fn is_iso_media(b: &[u8]) -> bool {
    b.get(4..8) == Some(b"ftyp")
}

/// Shannon entropy in bits per symbol.
fn entropy(symbols: impl Iterator<Item = u8>) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for s in symbols {
        counts[usize::from(s)] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

/// What `n` uniformly random symbols of an alphabet of `k` measure on average: short samples
/// read below log2(k) (Miller and Madow's correction).
fn random_bits(n: usize, k: u16) -> f64 {
    f64::from(k).log2() - (f64::from(k) - 1.0) / (2.0 * n as f64 * std::f64::consts::LN_2)
}

/// Reads the first [`SAMPLE_BYTES`] of a regular file; `None` for anything else. Opened
/// without following a last symlink and without blocking on a FIFO put in its place.
pub fn sample(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut out = Vec::with_capacity(SAMPLE_BYTES);
    file.take(SAMPLE_BYTES as u64).read_to_end(&mut out).ok()?;
    Some(out)
}

#[derive(Default)]
struct Rewrites {
    /// Files rewritten within the window, each with the number of its latest rewrite.
    latest: HashMap<PathBuf, u64>,
    /// The rewrites in the order they came, oldest first, numbered; an entry that is not its
    /// file's latest was superseded by a later rewrite and is skipped. Stale and superseded
    /// entries leave from the front, so a rewrite costs a constant amount, not a pass.
    order: VecDeque<(PathBuf, Instant, u64)>,
    /// Rewrites counted so far: the next one's number.
    seq: u64,
    /// Rewrites since the contents were last looked at.
    since_look: usize,
    last: Option<Instant>,
    reported: bool,
}

impl Activity for Rewrites {
    fn last(&self) -> Option<Instant> {
        self.last
    }
}

impl Rewrites {
    fn holds(&self, path: &Path) -> bool {
        self.latest.contains_key(path)
    }

    /// Distinct files rewritten within the window.
    fn count(&self) -> usize {
        self.latest.len()
    }

    fn current(&self, (p, _, n): &(PathBuf, Instant, u64)) -> bool {
        self.latest.get(p) == Some(n)
    }

    /// Drops the oldest entry: forgets its file unless a later rewrite superseded it.
    fn pop_oldest(&mut self) {
        if let Some(entry) = self.order.pop_front()
            && self.current(&entry)
        {
            self.latest.remove(&entry.0);
        }
    }

    /// One file rewritten; the files to look at, when it is time.
    fn add(&mut self, path: &Path, now: Instant) -> Option<Vec<PathBuf>> {
        self.last = Some(now);
        while self
            .order
            .front()
            .is_some_and(|e| now.duration_since(e.1) > WINDOW || !self.current(e))
        {
            self.pop_oldest();
        }
        while self.latest.len() >= MAX_NAMES || self.order.len() >= 4 * MAX_NAMES {
            self.pop_oldest();
        }
        self.seq += 1;
        self.latest.insert(path.to_owned(), self.seq);
        self.order.push_back((path.to_owned(), now, self.seq));
        self.since_look += 1;
        // After every REWRITTEN new files, whatever came before: a look at text just before
        // must not put off the look at what follows. The kernel sends at most 1024 names per
        // process and 2 s, so a build rewriting thousands of objects costs at most 85 looks
        // of 8 reads from the page cache every 2 s.
        if self.count() < REWRITTEN || self.since_look < REWRITTEN {
            return None;
        }
        self.since_look = 0;
        Some(
            self.order
                .iter()
                .rev()
                .filter(|e| self.current(e))
                .skip(1)
                .take(SAMPLED)
                .map(|(p, ..)| p.clone())
                .collect(),
        )
    }
}

/// Files to read back for `actors[actor]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    pub actor: usize,
    pub files: Vec<PathBuf>,
    /// Distinct files it rewrote within the window.
    pub rewritten: usize,
}

pub struct EncryptWatch<Id> {
    actors: Actors<Id, Rewrites>,
}

impl<Id: Hash + Eq + Copy> Default for EncryptWatch<Id> {
    fn default() -> Self {
        EncryptWatch {
            actors: Actors::new(MAX_ACTORS, WINDOW),
        }
    }
}

impl<Id: Hash + Eq + Copy> EncryptWatch<Id> {
    /// One file (an absolute path) rewritten by `actors[0]`, counted for every actor given
    /// (the process, then its ancestors). The first actor due a look, if any.
    pub fn on_rewrite(&mut self, actors: &[Id], path: &Path, now: Instant) -> Option<Look> {
        if actors
            .iter()
            .any(|a| self.actors.get(a).is_some_and(|r| r.reported))
        {
            return None;
        }
        let mut look = None;
        for (i, actor) in actors.iter().enumerate() {
            let Some(rewrites) = self.actors.follow(*actor, now) else {
                continue;
            };
            if let Some(files) = rewrites.add(path, now)
                && look.is_none()
            {
                look = Some(Look {
                    actor: i,
                    files,
                    rewritten: rewrites.count(),
                });
            }
        }
        look
    }

    /// The files of `look`, weighed: when they read as ciphertext, the actor the incident is
    /// for (an index into `actors`) and its detail. That actor and its descendants on this line
    /// are not looked at again.
    pub fn weighed(
        &mut self,
        actors: &[Id],
        look: &Look,
        contents: &[(PathBuf, Content)],
    ) -> Option<(usize, String)> {
        let weighed = contents
            .iter()
            .filter(|(_, c)| *c != Content::Unknown)
            .count();
        let dense: Vec<_> = contents
            .iter()
            .filter_map(|(p, c)| match c {
                Content::Ciphertext { bits, alphabet } => Some((p, *bits, *alphabet)),
                _ => None,
            })
            .collect();
        if dense.len() < ENCRYPTED || 4 * dense.len() < 3 * weighed {
            return None;
        }
        // The nearest on the line that rewrote most of what reads as ciphertext is the locker:
        // a shell that copied thousands of files before it started the loop is not.
        let (owner, rewritten) = (0..=look.actor)
            .find_map(|i| {
                let r = self.actors.get(&actors[i])?;
                let own = dense.iter().filter(|(p, ..)| r.holds(p)).count();
                (own >= ENCRYPTED).then_some((i, r.count()))
            })
            .unwrap_or((look.actor, look.rewritten));
        // The locker and what it ran are not looked at again; its ancestors are, or a second
        // locker the same shell starts (or a test harness, or a cron job) would go unseen.
        for actor in &actors[..=owner] {
            self.actors.set(
                *actor,
                Rewrites {
                    reported: true,
                    last: Some(Instant::now()),
                    ..Rewrites::default()
                },
            );
        }
        let (example, bits, alphabet) = dense[0];
        let over = if alphabet == 256 {
            String::new()
        } else {
            format!(" over the {alphabet} symbols of base64")
        };
        let detail = format!(
            "{rewritten} files rewritten in place within {}s; {} of {} read back look encrypted, e.g. {} ({bits:.2} bits per byte{over}, in no known file format)",
            WINDOW.as_secs(),
            dense.len(),
            weighed,
            example.display(),
        );
        Some((owner, detail))
    }

    pub fn on_exit(&mut self, actor: &Id) {
        self.actors.remove(actor);
    }

    /// Processes not followed because the table was full of active ones.
    pub fn untracked(&self) -> u64 {
        self.actors.untracked
    }
}

/// Pairs each file with what its first bytes say.
pub fn weigh_files(files: &[PathBuf]) -> Vec<(PathBuf, Content)> {
    files
        .iter()
        .map(|p| (p.clone(), sample(p).map_or(Content::Unknown, |b| weigh(&b))))
        .collect()
}

/// `path` as a syscall passed it by `tgid`, made absolute against its working directory (as
/// it is now, or as it was at its exec: `at_exec`) or its parent's; `None` when none holds it.
pub fn absolute(path: &str, tgid: u32, at_exec: Option<&Path>, parent: u32) -> Option<PathBuf> {
    if path.starts_with('/') {
        return Some(PathBuf::from(path));
    }
    if let Ok(cwd) = std::fs::read_link(format!("/proc/{tgid}/cwd")) {
        return Some(cwd.join(path));
    }
    // Gone already (a locker done with 30 files in a blink): where it was at its exec, else
    // where its parent is, whichever holds the file. Its parent's directory alone would name
    // another file of the same name, or none.
    [at_exec.map(Path::to_path_buf), std::fs::read_link(format!("/proc/{parent}/cwd")).ok()]
        .into_iter()
        .flatten()
        .map(|cwd| cwd.join(path))
        .find(|p| p.exists())
}

#[cfg(test)]
#[path = "encryption_tests.rs"]
mod tests;
