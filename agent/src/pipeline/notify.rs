//! systemd readiness (`Type=notify`): tell the service manager we are up only once every program
//! is attached. A no-op without `NOTIFY_SOCKET`.

use std::os::{linux::net::SocketAddrExt, unix::net::{SocketAddr, UnixDatagram}};

use tracing::warn;

pub fn ready() {
    send("READY=1\nSTATUS=sensors attached");
}

pub fn stopping() {
    send("STOPPING=1");
}

fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let result = addr.and_then(|addr| {
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(message.as_bytes(), &addr).map(drop)
    });
    if let Err(e) = result {
        warn!("could not notify the service manager at {path}: {e}");
    }
}
