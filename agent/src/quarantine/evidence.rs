//! Evidence taken while the process is frozen: a copy of its executable (read through
//! `/proc/PID/exe`, which still works when the file was deleted or replaced on disk) and what the
//! pipeline knew about it, in `evidence.json`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::clock::now_rfc3339;
use super::record::QuarantineRequest;

const READ_BUF: usize = 64 * 1024;

/// What became of the executable copy.
#[derive(Debug)]
pub(super) enum ExeCopy {
    Copied {
        path: PathBuf,
        sha256: String,
        bytes: u64,
    },
    /// Larger than the configured bound; the record says so instead.
    TooLarge { bytes: u64 },
}

/// Copies the image of `pid` to `dest` (0400) and digests it in the same pass, so the digest is
/// of exactly the bytes vaulted.
pub(super) fn copy_exe(pid: u32, dest: &Path, max_bytes: u64) -> io::Result<ExeCopy> {
    let mut src = File::open(format!("/proc/{pid}/exe"))?;
    let size = src.metadata()?.len();
    if size > max_bytes {
        return Ok(ExeCopy::TooLarge { bytes: size });
    }
    // Read-only from birth: the vault copy is evidence, and nothing should run or edit it.
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(dest)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; READ_BUF];
    let mut bytes = 0_u64;
    // `take` keeps the bound even if the file grows while it is read.
    let mut limited = (&mut src).take(max_bytes + 1);
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        bytes += n as u64;
    }
    if bytes > max_bytes {
        drop(out);
        let _ = fs::remove_file(dest);
        return Ok(ExeCopy::TooLarge { bytes });
    }
    out.sync_all()?;
    let digest = hasher.finalize();
    let sha256 = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(ExeCopy::Copied {
        path: dest.to_owned(),
        sha256,
        bytes,
    })
}

/// `evidence.json`: the pipeline's view of the process at decision time, plus what `/proc` said
/// at capture time (the two can differ: argv is writable by the process itself).
#[derive(Debug, Serialize)]
pub(super) struct Evidence<'a> {
    pub id: &'a str,
    pub captured: String,
    pub pid: u32,
    pub start_ticks: u64,
    pub uid: u32,
    pub exe: &'a str,
    pub exe_sha256: Option<&'a str>,
    pub reported_sha256: Option<&'a str>,
    pub cmdline: &'a [String],
    pub live_cmdline: Option<Vec<String>>,
    pub ancestry: &'a [(u32, String)],
    pub recent_tokens: &'a [String],
    pub scores: &'a [f32],
    pub score: Option<f32>,
    pub reason: &'a str,
    pub policy_version: &'a str,
    pub pids: &'a [u32],
    pub original_cgroups: &'a [(u32, String)],
}

impl<'a> Evidence<'a> {
    pub fn new(id: &'a str, req: &'a QuarantineRequest, start_ticks: u64) -> Self {
        Self {
            id,
            captured: now_rfc3339(),
            pid: req.pid,
            start_ticks,
            uid: req.uid,
            exe: &req.exe,
            exe_sha256: None,
            reported_sha256: req.sha256.as_deref(),
            cmdline: &req.cmdline,
            live_cmdline: live_cmdline(req.pid),
            ancestry: &req.ancestry,
            recent_tokens: &req.recent_tokens,
            scores: &req.scores,
            score: req.score,
            reason: &req.reason,
            policy_version: &req.policy_version,
            pids: &[],
            original_cgroups: &[],
        }
    }
}

fn live_cmdline(pid: u32) -> Option<Vec<String>> {
    let bytes = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    Some(
        bytes
            .split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn copies_own_image_read_only_and_respects_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let dest = tmp.path().join("exe");
        let ExeCopy::Copied { sha256, bytes, .. } = copy_exe(me, &dest, u64::MAX / 2).unwrap()
        else {
            panic!("own image should fit");
        };
        assert_eq!(sha256.len(), 64);
        assert_eq!(fs::metadata(&dest).unwrap().len(), bytes);
        assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o777, 0o400);
        let small = tmp.path().join("small");
        assert!(matches!(
            copy_exe(me, &small, 16).unwrap(),
            ExeCopy::TooLarge { .. }
        ));
        assert!(!small.exists());
    }
}
