//! Server side of the control socket. Binding is separate from serving so the daemon can refuse
//! to start (another vigil running, unwritable /run) before it loads any eBPF program.

use std::fs::{self, DirBuilder, Permissions};
use std::future::Future;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use tokio::io::BufReader;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};
use tracing::{debug, info, warn};

use super::ControlError;
use super::protocol::{
    Line, MAX_REQUEST_BYTES, Request, Response, read_line, skip_line, write_message,
};
use super::status::Status;

pub const DEFAULT_SOCKET_PATH: &str = "/run/vigil/control.sock";
/// A connection idle this long (or a reply unread this long) is dropped, so a stuck client
/// cannot pin a task forever.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (EMFILE...) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A command the server cannot answer from the status snapshot: handed to the daemon's
/// response stage with a channel for the answer.
pub struct Command {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// Commands wait here while the response stage is busy (a quarantine takes milliseconds).
pub const COMMAND_QUEUE: usize = 16;

/// A bound, not yet serving, control socket.
pub struct ControlServer {
    listener: StdUnixListener,
    socket: SocketFile,
}

/// Binds and serves until the task is dropped.
pub async fn serve(path: &Path, status: watch::Receiver<Status>) -> Result<(), ControlError> {
    ControlServer::bind(path)?
        .run(status, std::future::pending())
        .await
}

impl ControlServer {
    /// Creates the parent directory (mode 0700) if needed, replaces a stale socket, binds and
    /// restricts the socket to root (0600). Fails if another daemon answers on `path`.
    /// Synchronous so it can run before the tokio runtime exists.
    pub fn bind(path: &Path) -> Result<Self, ControlError> {
        if let Some(parent) = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && !p.exists())
        {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| ControlError::io(format!("creating {}", parent.display()), e))?;
        }
        remove_if_stale(path)?;
        let listener = StdUnixListener::bind(path).map_err(|e| match e.kind() {
            // Lost a race with another daemon starting at the same moment.
            ErrorKind::AddrInUse => ControlError::AnotherRunning {
                path: path.to_path_buf(),
            },
            _ => ControlError::io(format!("binding {}", path.display()), e),
        })?;
        let socket = SocketFile::record(path)?;
        fs::set_permissions(path, Permissions::from_mode(0o600))
            .map_err(|e| ControlError::io(format!("restricting {} to root", path.display()), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ControlError::io("making the control socket non-blocking", e))?;
        info!(path = %path.display(), "control socket bound");
        Ok(Self { listener, socket })
    }

    pub fn path(&self) -> &Path {
        &self.socket.path
    }

    /// Answers requests from the latest `status` until `shutdown` completes, then removes the
    /// socket file. Each connection runs in its own task.
    pub async fn run(
        self,
        status: watch::Receiver<Status>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ControlError> {
        self.run_with_commands(status, None, shutdown).await
    }

    /// As [`Self::run`], forwarding every request other than `status` to `commands`.
    pub async fn run_with_commands(
        self,
        status: watch::Receiver<Status>,
        commands: Option<mpsc::Sender<Command>>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ControlError> {
        let Self { listener, socket } = self;
        let listener = UnixListener::from_std(listener)
            .map_err(|e| ControlError::io("registering the control socket with tokio", e))?;
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(handle_connection(stream, status.clone(), commands.clone()));
                    }
                    Err(e) => {
                        warn!(error = %e, "control socket accept failed");
                        sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(e) = joined {
                        warn!(error = %e, "control connection task failed");
                    }
                }
            }
        }
        connections.shutdown().await;
        drop(listener);
        drop(socket);
        info!("control socket closed");
        Ok(())
    }
}

/// The socket file we created, identified by inode so that dropping it never removes a file
/// another daemon has since bound at the same path.
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    fn record(path: &Path) -> Result<Self, ControlError> {
        let meta = fs::symlink_metadata(path)
            .map_err(|e| ControlError::io(format!("inspecting {}", path.display()), e))?;
        Ok(Self {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if ours && let Err(e) = fs::remove_file(&self.path) {
            warn!(path = %self.path.display(), error = %e, "cannot remove control socket");
        }
    }
}

/// Removes a socket file nobody listens on (left by a crashed daemon); refuses if a daemon
/// answers or if the path is not a socket at all.
fn remove_if_stale(path: &Path) -> Result<(), ControlError> {
    use std::os::unix::fs::FileTypeExt as _;
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(ControlError::io(
                format!("inspecting {}", path.display()),
                e,
            ));
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    if someone_listens(path)? {
        return Err(ControlError::AnotherRunning {
            path: path.to_path_buf(),
        });
    }
    fs::remove_file(path)
        .map_err(|e| ControlError::io(format!("removing stale {}", path.display()), e))?;
    info!(path = %path.display(), "removed stale control socket");
    Ok(())
}

/// Non-blocking connect: a live listener accepts (or is busy: EAGAIN) at once, a stale socket
/// file refuses. A blocking connect could hang on a wedged daemon's full backlog.
fn someone_listens(path: &Path) -> Result<bool, ControlError> {
    let probe_err = |e: Errno| ControlError::io(format!("probing {}", path.display()), e.into());
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(probe_err)?;
    let addr = UnixAddr::new(path).map_err(probe_err)?;
    match connect(fd.as_raw_fd(), &addr) {
        Ok(()) | Err(Errno::EAGAIN) => Ok(true),
        Err(Errno::ECONNREFUSED | Errno::ENOENT) => Ok(false),
        Err(e) => Err(probe_err(e)),
    }
}

async fn handle_connection(
    stream: UnixStream,
    status: watch::Receiver<Status>,
    commands: Option<mpsc::Sender<Command>>,
) {
    if let Err(e) = serve_connection(stream, status, commands).await {
        debug!(error = %e, "control connection ended with an error");
    }
}

async fn serve_connection(
    stream: UnixStream,
    status: watch::Receiver<Status>,
    commands: Option<mpsc::Sender<Command>>,
) -> Result<(), ControlError> {
    let cred = stream
        .peer_cred()
        .map_err(|e| ControlError::io("reading the peer's credentials", e))?;
    let (rd, mut wr) = stream.into_split();
    // The socket is 0600 in a 0700 directory, so only root should get here; check anyway in
    // case someone loosened the permissions.
    if cred.uid() != 0 {
        warn!(uid = cred.uid(), pid = ?cred.pid(), "refused control connection from a non-root peer");
        let refusal = Response::Error(format!(
            "permission denied: the control socket serves root only (peer uid {})",
            cred.uid()
        ));
        return send(&mut wr, &refusal).await;
    }
    let mut rd = BufReader::new(rd);
    loop {
        let Ok(line) = timeout(IO_TIMEOUT, read_line(&mut rd, MAX_REQUEST_BYTES)).await else {
            debug!("control connection idle, closing");
            return Ok(());
        };
        match line.map_err(|e| ControlError::io("reading a control request", e))? {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                let refusal =
                    Response::Error(format!("request larger than {MAX_REQUEST_BYTES} bytes"));
                send(&mut wr, &refusal).await?;
                // Drain the rest so the client finishes writing and reads the refusal.
                let _ = timeout(IO_TIMEOUT, skip_line(&mut rd)).await;
                return Ok(());
            }
            Line::Complete(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => {}
            Line::Complete(bytes) => {
                let response = match serde_json::from_slice::<Request>(&bytes) {
                    Ok(request) => answer(request, &status, commands.as_ref()).await,
                    Err(e) => Response::Error(format!("invalid request: {e}")),
                };
                send(&mut wr, &response).await?;
            }
        }
    }
}

async fn answer(
    request: Request,
    status: &watch::Receiver<Status>,
    commands: Option<&mpsc::Sender<Command>>,
) -> Response {
    if request == Request::Status {
        return Response::Status(Box::new(status.borrow().clone()));
    }
    let Some(commands) = commands else {
        return Response::Error("this daemon has no response stage".into());
    };
    let (reply, answer) = oneshot::channel();
    if commands.send(Command { request, reply }).await.is_err() {
        return Response::Error("the daemon is shutting down".into());
    }
    match timeout(IO_TIMEOUT, answer).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => Response::Error("the response stage dropped the request".into()),
        Err(_) => Response::Error(format!("no answer within {IO_TIMEOUT:?}")),
    }
}

async fn send(
    wr: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
) -> Result<(), ControlError> {
    timeout(IO_TIMEOUT, write_message(wr, response))
        .await
        .map_err(|_| ControlError::Timeout(IO_TIMEOUT))?
}

#[cfg(test)]
mod tests;
