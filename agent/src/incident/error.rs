//! The incident writer's error type.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    /// journald silently drops fields whose names break its rules, so a bad name is refused here
    /// where the mistake is visible.
    #[error(
        "invalid journal field name `{0}` (A-Z, 0-9 and _, not starting with a digit or _, at most 64)"
    )]
    InvalidFieldName(String),
    #[error("creating the journal client socket: {0}")]
    Socket(#[source] io::Error),
    /// journald is absent (`ENOENT`, `ECONNREFUSED`) or its queue is full (`EAGAIN`).
    #[error("sending to journald at {path}: {source}")]
    Send {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The entry was too big for one datagram and handing it over in a memfd failed.
    #[error("passing a {size}-byte entry to journald through a memfd: {source}")]
    Memfd {
        size: usize,
        #[source]
        source: io::Error,
    },
}

impl IncidentError {
    pub(super) fn send(path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        Self::Send {
            path: path.into(),
            source: source.into(),
        }
    }
}
