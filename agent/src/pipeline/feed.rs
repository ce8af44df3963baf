//! The sensor feed shared by `vigil run` and `vigil record`: preflight, load and attach, one
//! reader per ring, and an orderly stop that detaches first and then drains what the rings hold.

use std::{sync::Arc, time::Duration};

use agent_common::{AgentConfig, SYSCALLS_POLL_MS, names};
use aya::maps::{HashMap as BpfHashMap, MapData, RingBuf};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tracing::warn;

use super::DaemonError;
use crate::{
    kernel::{self, KernelInfo},
    loader::{AttachReport, Sensors, kernel_hz, to_jiffies},
    sensors::{
        DecodeStats, DrainTiming, DrainedUntil, EventBatch, KernelCounters, Nudges, SensorError, spawn_reader,
    },
};

/// Bounded queues between readers and their consumer, in batches of records. The readers and the process stage share one thread, so a deeper queue buys no throughput,
/// only memory: a decoded record is as large as the largest (an exec with its path and
/// arguments), and a batch holds up to 512 of them. Beyond this, records wait in the ring.
const READER_QUEUE: usize = 16;

pub struct SensorFeed {
    sensors: Option<Sensors>,
    pub kernel: KernelInfo,
    pub report: Vec<AttachReport>,
    pub decode: Arc<DecodeStats>,
    counters: Option<KernelCounters>,
    events: mpsc::Receiver<EventBatch>,
    syscalls: mpsc::Receiver<EventBatch>,
    readers: Vec<JoinHandle<Result<(), SensorError>>>,
    drained: [DrainedUntil; 2],
    stop: watch::Sender<bool>,
}

/// Slack for records reserved just before a drain started but committed just after it.
const WATERMARK_SLACK_NS: u64 = 2_000_000;

impl SensorFeed {
    /// Checks the kernel, loads and attaches every program, and starts the readers.
    /// `call_classes`: batch ids carry each call's class (`agent_common::call_class`), which
    /// costs the per-syscall program a few ns; only a model of vocabulary 2 and recording read it.
    pub fn start(
        batch_max_age: Duration,
        ignore_tgids: &[u32],
        call_classes: bool,
    ) -> Result<Self, DaemonError> {
        let kernel = kernel::preflight()?;
        for missing in &kernel.missing_fields {
            warn!(
                "kernel BTF lacks {missing}; the fields that depend on it are reported as unknown"
            );
        }
        let config = AgentConfig {
            self_tgid: std::process::id(),
            flags: if call_classes { agent_common::CONFIG_CALL_CLASSES } else { 0 },
            batch_max_age_jiffies: to_jiffies(batch_max_age, kernel_hz()),
        };
        // Without cgroup v2 vigil still senses and kills; quarantine and network cuts say why not.
        let cgroup2 = match kernel::mounts::ensure_cgroup2() {
            Ok(p) => Some(p),
            Err(e) => {
                warn!("{e}");
                None
            }
        };
        let mut sensors = Sensors::load(&kernel.offsets, &config, cgroup2.as_deref())?;
        set_ignored(&mut sensors, ignore_tgids)?;
        let programs = sensors.tracing_program_fds();
        let counters = KernelCounters::new(sensors.take_map(names::MAP_COUNTERS)?, programs)?;
        let decode = Arc::new(DecodeStats::default());
        let (stop, stopped) = watch::channel(false);
        let (events_tx, events) = mpsc::channel(READER_QUEUE);
        let (syscalls_tx, syscalls) = mpsc::channel(READER_QUEUE);
        let drained = [DrainedUntil::default(), DrainedUntil::default()];
        let poll = Duration::from_millis(SYSCALLS_POLL_MS);
        let mut nudges = Nudges::among(2).into_iter();
        let readers = vec![
            // Lifecycle records also wake the reader at once: response latency depends on them.
            spawn_reader(
                names::MAP_EVENTS,
                ring(&mut sensors, names::MAP_EVENTS)?,
                events_tx,
                decode.clone(),
                stopped.clone(),
                DrainTiming { poll, paced: true, nudges: nudges.next().expect("two nudges") },
                drained[0].clone(),
            )?,
            // Batches are written without wakeups until the ring fills up: the timer collects them.
            spawn_reader(
                names::MAP_SYSCALLS,
                ring(&mut sensors, names::MAP_SYSCALLS)?,
                syscalls_tx,
                decode.clone(),
                stopped,
                DrainTiming { poll, paced: false, nudges: nudges.next().expect("two nudges") },
                drained[1].clone(),
            )?,
        ];
        Ok(Self {
            report: sensors.report.clone(),
            sensors: Some(sensors),
            kernel,
            decode,
            counters: Some(counters),
            events,
            syscalls,
            readers,
            drained,
            stop,
        })
    }

    /// Kernel time up to which every record of both rings has been handed out by [`Self::next`]:
    /// the release point for [`TimeOrder`]. `None` while batches wait in the queues, because a
    /// reader publishes how far it drained only after sending what it drained.
    ///
    /// [`TimeOrder`]: crate::reorder::TimeOrder
    pub fn watermark(&self) -> Option<u64> {
        // Read the drain marks before looking at the queues (see above).
        let until = self
            .drained
            .iter()
            .map(DrainedUntil::get)
            .min()
            .unwrap_or(0);
        (self.events.is_empty() && self.syscalls.is_empty())
            .then(|| until.saturating_sub(WATERMARK_SLACK_NS))
    }

    /// The response maps (taken once); `None` if already taken or missing from the object.
    pub fn take_response(
        &mut self,
    ) -> Option<Result<crate::response::KernelResponse, crate::response::KernelMapError>> {
        let sensors = self.sensors.as_mut()?;
        let guards = sensors.network_guards;
        Some(crate::response::KernelResponse::new(
            |name| sensors.take_map(name).ok(),
            guards,
        ))
    }

    /// The kernel's map of file writers (taken once); `None`, logged, when it is missing.
    pub fn take_file_writers(&mut self) -> Option<crate::response::scripts::FileWriters> {
        match self.sensors.as_mut()?.take_map(names::MAP_CREATED) {
            Ok(map) => crate::response::scripts::FileWriters::new(map),
            Err(e) => {
                warn!("{e}: scripts run by interpreters are not checked for their writer");
                None
            }
        }
    }

    /// The kernel's counters, for whoever reports them (taken once).
    pub fn take_counters(&mut self) -> Option<KernelCounters> {
        self.counters.take()
    }

    /// The next batch, lifecycle records first so a syscall flood delays batches, never
    /// exec/exit. `None` once both readers have finished (after [`Self::detach`]).
    pub async fn next(&mut self) -> Option<EventBatch> {
        tokio::select! {
            biased;
            Some(batch) = self.events.recv() => Some(batch),
            Some(batch) = self.syscalls.recv() => Some(batch),
            else => None,
        }
    }

    /// Detaches every program, so the rings stop filling, and tells the readers to drain what is
    /// left. Keep calling [`Self::next`] until it returns `None` to receive all of it.
    pub fn detach(&mut self) {
        self.sensors = None;
        let _ = self.stop.send(true);
    }

    /// After `next` returned `None`: reports any reader that ended in error.
    pub async fn join(self) {
        for reader in self.readers {
            match reader.await {
                Ok(Err(e)) => warn!("ring reader: {e}"),
                Err(e) => warn!("ring reader task: {e}"),
                Ok(Ok(())) => {}
            }
        }
    }
}

fn ring(sensors: &mut Sensors, name: &'static str) -> Result<RingBuf<MapData>, DaemonError> {
    RingBuf::try_from(sensors.take_map(name)?).map_err(|source| DaemonError::Map { name, source })
}

fn set_ignored(sensors: &mut Sensors, tgids: &[u32]) -> Result<(), DaemonError> {
    let name = names::MAP_IGNORED_TGIDS;
    let mut map: BpfHashMap<_, u32, u8> = BpfHashMap::try_from(sensors.map_mut(name)?)
        .map_err(|source| DaemonError::Map { name, source })?;
    for &tgid in tgids {
        map.insert(tgid, 1, 0)
            .map_err(|source| DaemonError::Map { name, source })?;
    }
    Ok(())
}
