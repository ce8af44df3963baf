//! Hashes executables off the event path: one blocking thread owns the cache and works through a
//! bounded queue, so a 100 MB binary delays its own hash, never the events behind it.

use std::{path::PathBuf, sync::Arc};

use tokio::sync::mpsc;
use tracing::debug;

use crate::process::{ExeHashCache, ProcessKey};

pub struct HashRequest {
    pub key: ProcessKey,
    /// Which image of the process (exec count) the hash belongs to, so a stale result for an
    /// image the process has since replaced is not applied.
    pub execs: u32,
}

pub struct HashDone {
    pub key: ProcessKey,
    pub execs: u32,
    pub sha256: Arc<str>,
}

const QUEUE: usize = 1024;

/// Starts the hasher; returns its request queue and result queue.
pub fn spawn(proc_root: PathBuf) -> (mpsc::Sender<HashRequest>, mpsc::Receiver<HashDone>) {
    let (req_tx, mut req_rx) = mpsc::channel::<HashRequest>(QUEUE);
    let (done_tx, done_rx) = mpsc::channel(QUEUE);
    tokio::task::spawn_blocking(move || {
        let mut cache = ExeHashCache::default();
        while let Some(req) = req_rx.blocking_recv() {
            // Checks the start time after opening the image, so a recycled pid is never hashed as ours.
            match cache.hash_key_exe(&proc_root, &req.key) {
                Ok(sha256) => {
                    let done = HashDone { key: req.key, execs: req.execs, sha256 };
                    if done_tx.blocking_send(done).is_err() {
                        return;
                    }
                }
                // Short-lived processes are often gone before we get to them.
                Err(e) => debug!(pid = req.key.tgid, "exe not hashed: {e}"),
            }
        }
    });
    (req_tx, done_rx)
}
