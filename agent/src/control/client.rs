//! Client side of the control socket, used by `vigil status`.

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::time::timeout;

use super::ControlError;
use super::protocol::{Line, MAX_RESPONSE_BYTES, Request, Response, read_line, write_message};
use super::status::Status;

/// The daemon answers from an in-memory snapshot; anything slower means it is wedged.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends one request on a fresh connection and returns the daemon's answer, which may itself be
/// [`Response::Error`].
pub async fn request(path: &Path, req: &Request) -> Result<Response, ControlError> {
    let stream = UnixStream::connect(path).await.map_err(|e| {
        let path = path.to_path_buf();
        match e.kind() {
            ErrorKind::NotFound => ControlError::NotRunning { path },
            ErrorKind::ConnectionRefused => ControlError::Stale { path },
            ErrorKind::PermissionDenied => ControlError::PermissionDenied { path },
            _ => ControlError::io(format!("connecting to {}", path.display()), e),
        }
    })?;
    timeout(REQUEST_TIMEOUT, exchange(stream, req))
        .await
        .map_err(|_| ControlError::Timeout(REQUEST_TIMEOUT))?
}

/// The daemon's status, with a refusal turned into an error.
pub async fn fetch_status(path: &Path) -> Result<Status, ControlError> {
    match request(path, &Request::Status).await? {
        Response::Status(status) => Ok(*status),
        Response::Error(e) => Err(ControlError::Remote(e)),
        Response::Result(_) => Err(ControlError::Protocol("expected a status".into())),
    }
}

/// Any command other than `status`: its JSON answer, with a refusal turned into an error.
pub async fn command(path: &Path, req: &Request) -> Result<serde_json::Value, ControlError> {
    match request(path, req).await? {
        Response::Result(v) => Ok(v),
        Response::Error(e) => Err(ControlError::Remote(e)),
        Response::Status(_) => Err(ControlError::Protocol("unexpected status answer".into())),
    }
}

async fn exchange(stream: UnixStream, req: &Request) -> Result<Response, ControlError> {
    let (rd, mut wr) = stream.into_split();
    // The server may answer and close before reading our request (e.g. refusing a non-root
    // peer); its answer explains more than our EPIPE would, so read before reporting the write.
    let written = write_message(&mut wr, req).await;
    let mut rd = BufReader::new(rd);
    match read_line(&mut rd, MAX_RESPONSE_BYTES).await {
        Ok(Line::Complete(bytes)) => serde_json::from_slice(&bytes)
            .map_err(|e| ControlError::Protocol(format!("malformed response: {e}"))),
        Ok(Line::TooLong) => Err(ControlError::Protocol(format!(
            "response larger than {MAX_RESPONSE_BYTES} bytes"
        ))),
        Ok(Line::Eof) => written.and(Err(ControlError::Protocol(
            "vigil closed the connection without answering".into(),
        ))),
        Err(e) => written.and(Err(ControlError::io("reading from the control socket", e))),
    }
}
