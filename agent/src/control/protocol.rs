//! Wire format of the control socket: one JSON object per line, each way. A request is tagged by
//! `cmd` so later commands (policy push, quarantine list) are new enum variants, not a new
//! protocol.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use super::ControlError;
use super::status::Status;

/// Requests are tiny today; the bound keeps a misbehaving client from growing our memory.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Statuses grow with the number of counters, still far below this.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// The active merged policy with its version.
    PolicyShow,
    /// Validate `content` as policy file `name`, write it atomically into policy.d and apply it.
    PolicyPush {
        name: String,
        content: String,
    },
    QuarantineList,
    QuarantineShow {
        id: String,
    },
    QuarantineRelease {
        id: String,
    },
    QuarantineKill {
        id: String,
    },
}

/// `{"ok":true,"status":{...}}` or `{"ok":false,"error":"..."}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireResponse", into = "WireResponse")]
pub enum Response {
    Status(Box<Status>),
    /// Any other command's answer.
    Result(serde_json::Value),
    Error(String),
}

/// The flat JSON object both sides exchange; a new response kind adds an optional field.
#[derive(Serialize, Deserialize)]
struct WireResponse {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<Box<Status>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<Response> for WireResponse {
    fn from(r: Response) -> Self {
        match r {
            Response::Status(s) => WireResponse {
                ok: true,
                status: Some(s),
                result: None,
                error: None,
            },
            Response::Result(r) => WireResponse {
                ok: true,
                status: None,
                result: Some(r),
                error: None,
            },
            Response::Error(e) => WireResponse {
                ok: false,
                status: None,
                result: None,
                error: Some(e),
            },
        }
    }
}

impl TryFrom<WireResponse> for Response {
    type Error = String;

    fn try_from(w: WireResponse) -> Result<Self, String> {
        match w {
            WireResponse {
                ok: true,
                status: Some(s),
                ..
            } => Ok(Response::Status(s)),
            WireResponse {
                ok: true,
                result: Some(r),
                ..
            } => Ok(Response::Result(r)),
            WireResponse {
                ok: false,
                error: Some(e),
                ..
            } => Ok(Response::Error(e)),
            WireResponse {
                ok: false,
                error: None,
                ..
            } => Ok(Response::Error("unspecified error".into())),
            WireResponse { ok: true, .. } => Err("response has ok:true but no payload".into()),
        }
    }
}

/// Outcome of reading one line.
#[derive(Debug)]
pub enum Line {
    Complete(Vec<u8>),
    /// The line exceeded the bound; what was read of it is discarded.
    TooLong,
    Eof,
}

/// Reads up to and excluding `\n`, never buffering more than `max` bytes. A final line without
/// `\n` at EOF still counts as a line.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    let mut line = Vec::new();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                Line::Eof
            } else {
                Line::Complete(line)
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if line.len() + chunk.len() > max {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(chunk);
        let consumed = done.unwrap_or(chunk.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(Line::Complete(line));
        }
    }
}

/// Discards input up to and including the next `\n` (or EOF), so a client that sent an
/// oversized line can still read our error reply instead of hitting EPIPE mid-write.
pub async fn skip_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

pub async fn write_message<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    msg: &T,
) -> Result<(), ControlError> {
    let mut bytes = serde_json::to_vec(msg)
        .map_err(|e| ControlError::Protocol(format!("cannot encode: {e}")))?;
    bytes.push(b'\n');
    writer
        .write_all(&bytes)
        .await
        .map_err(|e| ControlError::io("writing to the control socket", e))?;
    writer
        .flush()
        .await
        .map_err(|e| ControlError::io("writing to the control socket", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    #[test]
    fn request_and_response_json_shapes() {
        assert_eq!(
            serde_json::to_string(&Request::Status).expect("ser"),
            r#"{"cmd":"status"}"#
        );
        let req: Request = serde_json::from_str(r#"{"cmd":"status"}"#).expect("de");
        assert_eq!(req, Request::Status);
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());

        let err = serde_json::to_string(&Response::Error("nope".into())).expect("ser");
        assert_eq!(err, r#"{"ok":false,"error":"nope"}"#);
        let ok = serde_json::to_value(Response::Status(Box::default())).expect("ser");
        assert_eq!(ok["ok"], true);
        assert_eq!(ok["status"]["pid"], 0);
        let back: Response = serde_json::from_value(ok).expect("de");
        assert_eq!(back, Response::Status(Box::default()));
        assert!(serde_json::from_str::<Response>(r#"{"ok":true}"#).is_err());
    }

    #[tokio::test]
    async fn read_line_bounds_and_splits() {
        let input: &[u8] = b"abc\ndefgh\nxy";
        let mut r = BufReader::with_capacity(2, input);
        assert!(
            matches!(read_line(&mut r, 4).await.expect("io"), Line::Complete(l) if l == b"abc")
        );
        assert!(matches!(
            read_line(&mut r, 4).await.expect("io"),
            Line::TooLong
        ));
        skip_line(&mut r).await.expect("io");
        assert!(matches!(read_line(&mut r, 4).await.expect("io"), Line::Complete(l) if l == b"xy"));
        assert!(matches!(read_line(&mut r, 4).await.expect("io"), Line::Eof));
    }
}
