//! One task per ring buffer: wait for readiness, drain every record, decode, and send the decoded
//! events downstream as one batch. A record that does not decode is counted by cause and kind —
//! never a panic, never silently dropped.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use agent_common::{
    EventKind,
    decode::{DecodeError, Event, decode, decode_header},
    wakeup::PromptPace,
};
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    sync::{Notify, mpsc, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::debug;

use super::SensorError;

/// Kernel time (CLOCK_MONOTONIC ns) up to which a reader has delivered everything: set to the
/// time a drain started once that drain found the ring empty.
#[derive(Clone, Debug, Default)]
pub struct DrainedUntil(Arc<AtomicU64>);

impl DrainedUntil {
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC is the clock bpf_ktime_get_ns reads.
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

/// Decoded events from one drain of one ring buffer.
pub type EventBatch = Vec<Event>;

/// Most records a single batch carries, so one busy ring cannot starve the stage downstream.
const MAX_BATCH: usize = 512;

/// What the readers received and what they could not decode, per kind.
#[derive(Default)]
pub struct DecodeStats {
    received: [AtomicU64; EventKind::COUNT],
    pub truncated: AtomicU64,
    pub unknown_kind: AtomicU64,
    pub bad_size: AtomicU64,
    pub abi_mismatch: AtomicU64,
    /// Events the downstream stage was gone for (only during shutdown).
    pub undelivered: AtomicU64,
}

impl DecodeStats {
    pub fn received(&self, kind: EventKind) -> u64 {
        self.received[kind as usize].load(Relaxed)
    }

    pub fn record_error(&self, err: &DecodeError) {
        let counter = match err {
            DecodeError::TruncatedHeader { .. } => &self.truncated,
            DecodeError::UnknownKind { .. } => &self.unknown_kind,
            DecodeError::BadSize { .. } => &self.bad_size,
            DecodeError::AbiVersion { .. } => &self.abi_mismatch,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn errors_total(&self) -> u64 {
        [&self.truncated, &self.unknown_kind, &self.bad_size, &self.abi_mismatch]
            .iter()
            .map(|c| c.load(Relaxed))
            .sum()
    }
}

/// When a reader drains without being woken.
pub struct DrainTiming {
    /// Between timed drains while records come (backing off while they do not).
    pub poll: Duration,
    /// Whether the kernel paces this ring's forced wakeups (`agent_common::wakeup`): records
    /// written just after one are left for a drain just past the pace's window, which this
    /// reader follows from the wakeups it sees. Otherwise the next drain is `poll` after a
    /// wakeup.
    pub paced: bool,
    /// The other readers, drained after this one's drains, and nudging this one after theirs.
    pub nudges: Nudges,
}

/// Each reader drains when woken or when its timer fires, and then has the other readers
/// drain too: they run on the same thread, so a drain that rides on a wakeup already paid for
/// costs no context switch, and it pushes their own timers back. Under an exec load the
/// batches ring is then drained with each exec wakeup instead of on a timer of its own, and
/// records of both rings reach the time order together.
pub struct Nudges {
    own: Arc<Notify>,
    peers: Vec<Arc<Notify>>,
}

impl Nudges {
    /// One for each of `n` readers, each nudging all the others.
    pub fn among(n: usize) -> Vec<Self> {
        let all: Vec<Arc<Notify>> = (0..n).map(|_| Arc::new(Notify::new())).collect();
        (0..n)
            .map(|i| Self {
                own: all[i].clone(),
                peers: all.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, n)| n.clone()).collect(),
            })
            .collect()
    }

    fn wake_peers(&self) {
        for peer in &self.peers {
            peer.notify_one();
        }
    }
}

/// Starts the reader for `ring`. It runs until `stop` turns true — then drains what is left in
/// the ring and returns — or until the receiving side closes. It drains on wakeups and on the
/// timer `timing` sets: producers may skip wakeups, and `drained` must advance even when
/// nothing arrives.
pub fn spawn_reader(
    name: &'static str,
    ring: RingBuf<MapData>,
    tx: mpsc::Sender<EventBatch>,
    stats: Arc<DecodeStats>,
    stop: watch::Receiver<bool>,
    timing: DrainTiming,
    drained: DrainedUntil,
) -> Result<JoinHandle<Result<(), SensorError>>, SensorError> {
    // SAFETY: the RingBuf owns its map fd and keeps it open and unchanged for as long as it lives,
    // and the AsyncFd owns the RingBuf.
    let fd = unsafe { AsyncFd::register(ring) }
        .map_err(|e| SensorError::Poll { name, source: e.into_parts().1 })?;
    Ok(tokio::spawn(read_loop(name, fd, tx, stats, stop, timing, drained)))
}

async fn read_loop(
    name: &'static str,
    mut fd: AsyncFd<RingBuf<MapData>>,
    tx: mpsc::Sender<EventBatch>,
    stats: Arc<DecodeStats>,
    mut stop: watch::Receiver<bool>,
    timing: DrainTiming,
    drained: DrainedUntil,
) -> Result<(), SensorError> {
    let DrainTiming { poll, paced, nudges } = timing;
    // Records written without a wakeup wait for this drain, every `poll` while they come in
    // numbers, and backing off to `poll * MAX_BACKOFF` while a drain finds only a few: on a
    // quiet host each timer wakeup is most of what vigil costs (and since syscall batches leave
    // at every context switch, a quiet host still sends a few dozen a second).
    let mut every = poll;
    let started = Instant::now();
    let mut next = started + every;
    let mut pace = PromptPace::default();
    let mut window_drain_due = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {
                let Some(forwarded) = forward_all(name, fd.get_mut(), &tx, &stats, &drained).await else {
                    return Ok(());
                };
                window_drain_due = false;
                nudges.wake_peers();
                every = if forwarded >= BUSY_DRAIN { poll } else { (every * 2).min(poll * MAX_BACKOFF) };
                next = Instant::now() + every;
            }
            () = nudges.own.notified() => {
                if forward_all(name, fd.get_mut(), &tx, &stats, &drained).await.is_none() {
                    return Ok(());
                }
                // This drain rode on another reader's wakeup, so this ring's timer starts over,
                // unless it is the drain due just past a paced wakeup's window: records may still
                // be written inside that window.
                if !window_drain_due {
                    next = Instant::now() + every;
                }
            }
            ready = fd.readable_mut() => {
                let mut guard = ready.map_err(|source| SensorError::Poll { name, source })?;
                if forward_all(name, guard.get_inner_mut(), &tx, &stats, &drained).await.is_none() {
                    return Ok(());
                }
                guard.clear_ready();
                nudges.wake_peers();
                // Records are flowing: drain the unannounced ones at the short interval again,
                // and the ones a coalesced wakeup left behind soon. While wakeups keep coming
                // this deadline keeps moving: each wakeup's drain takes those records along.
                every = poll;
                let now = Instant::now();
                window_drain_due = paced;
                let after = if paced {
                    pace.woke(u64::try_from((now - started).as_nanos()).unwrap_or(u64::MAX));
                    Duration::from_nanos(pace.drain_after_ns())
                } else {
                    poll
                };
                next = now + after.min(poll);
            }
            // The guard wait_for returns is not Send; drop it inside the future.
            () = async { drop(stop.wait_for(|s| *s).await) } => {
                // The programs are detached by now: whatever is in the ring is all there will be.
                forward_all(name, fd.get_mut(), &tx, &stats, &drained).await;
                drained.0.store(u64::MAX, Relaxed);
                return Ok(());
            }
        }
    }
}

/// Longest drain interval, in multiples of the shortest.
const MAX_BACKOFF: u32 = 8;
/// A timed drain that forwards fewer records than this lets the interval grow.
const BUSY_DRAIN: usize = 16;

/// Drains the ring into the channel; how many records it forwarded, `None` once the receiver
/// is gone.
async fn forward_all(
    name: &'static str,
    ring: &mut RingBuf<MapData>,
    tx: &mpsc::Sender<EventBatch>,
    stats: &DecodeStats,
    drained: &DrainedUntil,
) -> Option<usize> {
    let started = monotonic_ns();
    let mut forwarded = 0;
    loop {
        let batch = drain(ring, stats);
        if batch.is_empty() {
            drained.0.fetch_max(started, Relaxed);
            return Some(forwarded);
        }
        let n = batch.len();
        if tx.send(batch).await.is_err() {
            stats.undelivered.fetch_add(n as u64, Relaxed);
            debug!(ring = name, "pipeline closed; reader stops");
            return None;
        }
        forwarded += n;
    }
}

fn drain(ring: &mut RingBuf<MapData>, stats: &DecodeStats) -> EventBatch {
    // Most drains find a handful of records; growing from empty reallocated several times each.
    let mut batch = Vec::with_capacity(16);
    while batch.len() < MAX_BATCH {
        let Some(item) = ring.next() else { break };
        match decode(&item) {
            Ok(event) => {
                stats.received[event.kind() as usize].fetch_add(1, Relaxed);
                batch.push(event);
            }
            Err(err) => {
                stats.record_error(&err);
                // Counted above and reported (rate-limited) by the status stage; per record only
                // at debug, so corrupt input cannot flood the logs.
                let kind = decode_header(&item).map(|h| h.kind).ok();
                debug!(len = item.len(), ?kind, "undecodable ring-buffer record: {err}");
            }
        }
    }
    batch
}
