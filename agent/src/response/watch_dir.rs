//! Picks up policy files that config management drops into policy.d: inotify on the directory,
//! debounced so an editor's write-rename-chmod sequence is one reload.

use std::{path::Path, time::Duration};

use inotify::{Inotify, WatchMask};
use tokio::sync::mpsc;
use tokio_stream_shim::next;
use tracing::{info, warn};

use super::actor::ActorMsg;

/// Quiet time after the last change before reloading.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Watches `dir` (created if missing) until `actor` closes. Failing to watch is reported, not
/// fatal: pushes over the control socket still work.
pub fn spawn(dir: &Path, actor: mpsc::Sender<ActorMsg>) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        warn!(dir = %dir.display(), "cannot create the policy directory: {e}; drop-in changes are not watched");
        return;
    }
    let inotify = match Inotify::init() {
        Ok(i) => i,
        Err(e) => {
            warn!("inotify unavailable: {e}; policy.d changes are only read at start and on push");
            return;
        }
    };
    let mask = WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE
        | WatchMask::CREATE;
    if let Err(e) = inotify.watches().add(dir, mask) {
        warn!(dir = %dir.display(), "cannot watch the policy directory: {e}");
        return;
    }
    info!(dir = %dir.display(), "watching for policy changes");
    tokio::spawn(async move {
        let mut stream = match inotify.into_event_stream(vec![0u8; 4096]) {
            Ok(s) => s,
            Err(e) => {
                warn!("inotify stream: {e}");
                return;
            }
        };
        loop {
            let Some(first) = next(&mut stream).await else {
                return;
            };
            let mut relevant = is_policy_event(&first);
            // Collect the rest of the burst.
            while let Ok(Some(ev)) = tokio::time::timeout(DEBOUNCE, next(&mut stream)).await {
                relevant |= is_policy_event(&ev);
            }
            if relevant && actor.send(ActorMsg::Reload).await.is_err() {
                return;
            }
        }
    });
}

fn is_policy_event(ev: &std::io::Result<inotify::Event<std::ffi::OsString>>) -> bool {
    match ev {
        Ok(e) => e
            .name
            .as_ref()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".toml") && !n.starts_with('.')),
        // An overflowed queue may have hidden a change: reload to be sure.
        Err(_) => true,
    }
}

/// `futures::StreamExt::next` without the dependency.
mod tokio_stream_shim {
    use std::{future::poll_fn, pin::Pin};

    use futures_core::Stream;

    pub async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
    }
}
