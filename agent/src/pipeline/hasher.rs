//! Executable digests. An exec whose image (by the kernel's identity of it) was exec'd by the
//! same path before is answered from the shared cache without touching `/proc`. Otherwise the
//! process stage opens the image itself (pinned while the pid is still the process's) and looks
//! its identity up in the cache: on a host that runs the same binaries over and over that
//! answers nearly every exec with no thread hop. Only an image not seen before goes to the
//! hasher thread, through a bounded queue, so a 100 MB binary delays its own hash, never the
//! events behind it. The cache lock is never held while reading a file.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tracing::debug;

use crate::process::{ExeHashCache, FileIdentity, KeyImage, KnownImage, ProcessKey};

pub struct HashRequest {
    pub key: ProcessKey,
    /// Which image of the process (exec count) the hash belongs to, so a stale result for an
    /// image the process has since replaced is not applied.
    pub execs: u32,
    pub image: KeyImage,
    pub exec: Option<ExecName>,
}

/// The kernel's identity of an exec'd image and the path it was exec'd by, under which the
/// result is remembered for the next exec ([`ExeHashCache::lookup_exec`]).
pub struct ExecName {
    pub id: FileIdentity,
    pub filename: Box<[u8]>,
}

pub struct HashDone {
    pub key: ProcessKey,
    pub execs: u32,
    pub sha256: Arc<str>,
}

/// Each queued request holds its image open: the queue stays well below the default soft limit
/// of 1024 descriptors. A full queue is counted (`hash_requests_dropped`), never waited on.
const QUEUE: usize = 256;

/// The stage's side: the cache, and the queue to the thread that fills it.
pub struct Hasher {
    cache: Arc<Mutex<ExeHashCache>>,
    tx: mpsc::Sender<HashRequest>,
}

/// What [`Hasher::lookup`] found out about an exec.
pub enum Lookup {
    /// The image was hashed before.
    Cached(Arc<str>),
    /// Queued for the hasher thread; its answer arrives as a [`HashDone`].
    Queued,
    /// The queue was full: counted by the caller, the process stays without a digest.
    Dropped,
}

impl Hasher {
    /// What an earlier exec of this image by this path established, if any.
    pub fn lookup_exec(&self, exec: &ExecName) -> Option<KnownImage> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lookup_exec(&exec.id, &exec.filename)
    }

    /// Answers from the cache for the image of the process `key` names (opened with
    /// [`KeyImage::open`]), or queues it. Once the digest is known (now, or on the hasher
    /// thread) it is also remembered under `exec`, for [`Self::lookup_exec`].
    pub fn lookup(&self, key: ProcessKey, execs: u32, image: KeyImage, exec: Option<ExecName>) -> Lookup {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.lookup(&image.identity) {
            Some(d) => {
                if let Some(exec) = exec {
                    let known = KnownImage { sha256: Arc::clone(&d), running: image.running.clone() };
                    cache.remember_exec(exec.id, &exec.filename, known);
                }
                Lookup::Cached(d)
            }
            None => {
                drop(cache);
                match self.tx.try_send(HashRequest { key, execs, image, exec }) {
                    Ok(()) => Lookup::Queued,
                    Err(_) => Lookup::Dropped,
                }
            }
        }
    }
}

/// Starts the hasher thread; returns the stage's handle and the result queue.
pub fn spawn() -> (Hasher, mpsc::Receiver<HashDone>) {
    let (req_tx, mut req_rx) = mpsc::channel::<HashRequest>(QUEUE);
    let (done_tx, done_rx) = mpsc::channel(QUEUE);
    let cache = Arc::new(Mutex::new(ExeHashCache::default()));
    let shared = cache.clone();
    tokio::task::spawn_blocking(move || {
        while let Some(req) = req_rx.blocking_recv() {
            // The same image may have been queued twice before its first hash was done.
            let known = shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .lookup(&req.image.identity);
            let digest = match known {
                Some(d) => Ok(d),
                None => req.image.digest().inspect(|d| {
                    shared
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remember(req.image.identity, Arc::clone(d));
                }),
            };
            if let (Ok(d), Some(exec)) = (&digest, &req.exec) {
                let known = KnownImage { sha256: Arc::clone(d), running: req.image.running.clone() };
                shared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remember_exec(exec.id, &exec.filename, known);
            }
            match digest {
                Ok(sha256) => {
                    let done = HashDone {
                        key: req.key,
                        execs: req.execs,
                        sha256,
                    };
                    if done_tx.blocking_send(done).is_err() {
                        return;
                    }
                }
                Err(e) => debug!(pid = req.key.tgid, "exe not hashed: {e}"),
            }
        }
    });
    (Hasher { cache, tx: req_tx }, done_rx)
}
