//! The control socket: a root-only Unix stream socket at `/run/vigil/control.sock` speaking
//! newline-delimited JSON. `vigil status` is its first client; policy push and quarantine
//! listing are meant to become further `Request` variants.

pub mod client;
pub mod protocol;
pub mod server;
pub mod status;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use client::{command, fetch_status, request};
pub use protocol::{Request, Response};
pub use server::{COMMAND_QUEUE, Command, ControlServer, DEFAULT_SOCKET_PATH, serve};
pub use status::{
    ProcessTableStatus, ProgramState, ProgramStatus, ResponseStatus, ScorerStatus, Status,
    render_human,
};

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("vigil is not running (no control socket at {})", path.display())]
    NotRunning { path: PathBuf },
    #[error("vigil is not running (stale control socket at {}: nothing listens on it)", path.display())]
    Stale { path: PathBuf },
    #[error("permission denied on the control socket {}: run this as root", path.display())]
    PermissionDenied { path: PathBuf },
    #[error("another vigil is running (it answers on {})", path.display())]
    AnotherRunning { path: PathBuf },
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket { path: PathBuf },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("control protocol error: {0}")]
    Protocol(String),
    #[error("vigil did not answer within {0:?}")]
    Timeout(Duration),
    #[error("vigil refused the request: {0}")]
    Remote(String),
}

impl ControlError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
