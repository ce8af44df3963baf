use std::io::{BufRead as _, BufReader as StdBufReader, Write as _};
use std::os::unix::net::UnixStream as StdUnixStream;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::control::client::{fetch_status, request};
use crate::control::status::sample;

struct Running {
    path: PathBuf,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ControlError>>,
}

fn start(path: &Path, status: watch::Receiver<Status>) -> Running {
    let server = ControlServer::bind(path).expect("bind");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(status, async move {
        let _ = stopped.await;
    }));
    Running {
        path: path.to_path_buf(),
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("run");
        assert!(!self.path.exists(), "socket removed on shutdown");
    }
}

#[tokio::test]
async fn roundtrip_follows_watch_updates_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A missing parent is created 0700.
    let path = dir.path().join("run/control.sock");
    let (tx, rx) = watch::channel(sample());
    let server = start(&path, rx);
    let parent_mode = fs::metadata(dir.path().join("run"))
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(parent_mode & 0o777, 0o700);
    assert_eq!(
        fs::metadata(&path).expect("socket").permissions().mode() & 0o777,
        0o600
    );

    assert_eq!(fetch_status(&path).await.expect("status"), sample());
    tx.send_modify(|s| {
        s.uptime_secs = 99;
        s.events.insert("exit".into(), 5);
    });
    let updated = fetch_status(&path).await.expect("status");
    assert_eq!(updated.uptime_secs, 99);
    assert_eq!(updated.events.get("exit"), Some(&5));

    // Malformed requests get an error answer, and the connection stays usable.
    let client_path = path.clone();
    let lines = tokio::task::spawn_blocking(move || {
        let mut conn = StdUnixStream::connect(client_path).expect("connect");
        conn.write_all(b"{\"cmd\":\"bogus\"}\n{\"cmd\":\"status\"}\n")
            .expect("write");
        StdBufReader::new(conn)
            .lines()
            .take(2)
            .collect::<Result<Vec<_>, _>>()
            .expect("read")
    })
    .await
    .expect("join");
    let first: Response = serde_json::from_str(&lines[0]).expect("json");
    assert!(
        matches!(first, Response::Error(ref e) if e.starts_with("invalid request")),
        "{first:?}"
    );
    let second: Response = serde_json::from_str(&lines[1]).expect("json");
    assert!(matches!(second, Response::Status(_)));

    server.stop().await;
    assert!(matches!(
        fetch_status(&path).await,
        Err(ControlError::NotRunning { .. })
    ));
}

#[tokio::test]
async fn oversize_request_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("control.sock");
    let server = start(&path, watch::channel(Status::default()).1);
    let client_path = path.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let mut conn = StdUnixStream::connect(client_path).expect("connect");
        let mut big = vec![b'x'; 2 * MAX_REQUEST_BYTES];
        big.push(b'\n');
        conn.write_all(&big)
            .expect("server drains the oversized line");
        let mut line = String::new();
        StdBufReader::new(conn).read_line(&mut line).expect("read");
        line
    })
    .await
    .expect("join");
    let reply: Response = serde_json::from_str(&reply).expect("json");
    assert_eq!(
        reply,
        Response::Error(format!("request larger than {MAX_REQUEST_BYTES} bytes"))
    );
    server.stop().await;
}

#[tokio::test]
async fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("control.sock");
    // A crashed daemon leaves its socket file behind with nobody listening.
    drop(StdUnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    assert!(matches!(
        request(&path, &Request::Status).await,
        Err(ControlError::Stale { .. })
    ));

    let server = start(&path, watch::channel(sample()).1);
    assert_eq!(fetch_status(&path).await.expect("status"), sample());
    server.stop().await;
}

#[tokio::test]
async fn second_server_on_live_socket_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("control.sock");
    let first = start(&path, watch::channel(sample()).1);
    let err = ControlServer::bind(&path)
        .err()
        .expect("second bind refused");
    assert!(matches!(err, ControlError::AnotherRunning { .. }), "{err}");
    assert!(err.to_string().contains("another vigil is running"));
    // The refused server left the live socket alone.
    assert_eq!(fetch_status(&path).await.expect("status"), sample());
    first.stop().await;
}

#[tokio::test]
async fn non_socket_file_is_not_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("control.sock");
    fs::write(&path, b"precious").expect("write");
    assert!(matches!(
        ControlServer::bind(&path),
        Err(ControlError::NotASocket { .. })
    ));
    assert_eq!(fs::read(&path).expect("still there"), b"precious");
}

/// SO_PEERCRED is checked even if the socket's permissions are loosened. Credentials are per
/// thread in the kernel, so one thread drops to `nobody` with the raw syscall (glibc's
/// setresuid would change every thread of the test process).
#[tokio::test]
async fn non_root_peer_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: needs root to impersonate another uid");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("control.sock");
    let server = start(&path, watch::channel(sample()).1);
    fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).expect("chmod dir");
    fs::set_permissions(&path, Permissions::from_mode(0o666)).expect("chmod socket");
    let client_path = path.clone();
    // A dedicated thread, not the blocking pool: it must not be reused after dropping root.
    let nobody = std::thread::spawn(move || {
        // SAFETY: plain syscall with integer arguments; it changes only this thread's creds.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
        assert_eq!(rc, 0, "setresuid");
        let mut conn = StdUnixStream::connect(client_path).expect("connect as nobody");
        let _ = conn.write_all(b"{\"cmd\":\"status\"}\n");
        let mut line = String::new();
        StdBufReader::new(conn).read_line(&mut line).expect("read");
        line
    });
    // Joined off the runtime thread, which has to keep serving meanwhile.
    let reply = tokio::task::spawn_blocking(move || nobody.join().expect("client thread"))
        .await
        .expect("join");
    let reply: Response = serde_json::from_str(&reply).expect("json");
    assert!(
        matches!(&reply, Response::Error(e) if e.contains("root only") && e.contains("65534")),
        "{reply:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn client_reports_missing_daemon_clearly() {
    let err = fetch_status(Path::new("/nonexistent/vigil/control.sock"))
        .await
        .expect_err("no daemon");
    assert_eq!(
        err.to_string(),
        "vigil is not running (no control socket at /nonexistent/vigil/control.sock)"
    );
}
