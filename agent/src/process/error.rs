//! The process stage's error type.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: malformed {what}")]
    Parse { path: PathBuf, what: &'static str },
    #[error("{path} is not a regular file")]
    NotRegularFile { path: PathBuf },
    /// The file's identity (inode, size, mtime) differed after hashing than before, so the digest
    /// matches no single version of it; the caller may retry.
    #[error("{path} changed while it was being hashed")]
    ChangedWhileHashing { path: PathBuf },
}

impl ProcessError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the error means the process (or file) is gone: `/proc/PID` disappears as soon as
    /// a process is reaped, and some files of a dying task answer `ESRCH` instead.
    pub fn is_vanished(&self) -> bool {
        match self {
            Self::Io { source, .. } => is_vanished_io(source),
            _ => false,
        }
    }
}

pub(crate) fn is_vanished_io(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}
