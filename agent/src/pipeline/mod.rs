//! The daemon: preflight, load and attach, then run the stages until SIGINT/SIGTERM.
//!
//! ```text
//! EVENTS ring --reader--> [bounded] --+
//!                                     +--> process stage (ProcessTable, BehaviourSequences) --> JSON sink
//! SYSCALLS ring --reader--> [bounded] +        |  ^
//!                                              v  | exe sha256 (blocking hasher thread)
//! ```
//! Each stage owns its state; the process stage prefers lifecycle events over syscall batches so a
//! syscall flood delays batches, never exec/exit.

mod hasher;
mod notify;
mod process_stage;
mod status;

use std::{path::PathBuf, sync::Arc, time::Duration};

use agent_common::{AgentConfig, names};
use aya::maps::{HashMap as BpfHashMap, MapData, MapError, RingBuf};
use thiserror::Error;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
    time::MissedTickBehavior,
};
use tracing::{info, warn};

use crate::{
    control::{self, ControlError, ControlServer},
    kernel::{self, PreflightError},
    loader::{LoadError, Sensors, kernel_hz, to_jiffies},
    output::{JsonSink, OutputError, SinkTarget},
    process::{ProcessError, ProcessTable, TableConfig},
    sensors::{DecodeStats, KernelCounters, SensorError, spawn_reader},
    sequence::{BehaviourSequences, SequenceConfig},
};
use process_stage::ProcessStage;
use status::StatusBuilder;

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub events_json: Option<SinkTarget>,
    pub control_socket: PathBuf,
    /// Print `ready` on stdout once every program is attached (for scripts and tests).
    pub ready_line: bool,
    pub batch_max_age: Duration,
    /// Processes whose syscalls are not batched.
    pub ignore_tgids: Vec<u32>,
    pub proc_root: PathBuf,
    pub status_interval: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            events_json: None,
            control_socket: control::DEFAULT_SOCKET_PATH.into(),
            ready_line: false,
            batch_max_age: Duration::from_millis(agent_common::DEFAULT_BATCH_MAX_AGE_MS),
            ignore_tgids: Vec::new(),
            proc_root: "/proc".into(),
            status_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Sensor(#[from] SensorError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("seeding the process table from /proc: {0}")]
    Seed(#[from] ProcessError),
    #[error("map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("installing signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// Bounded queues between readers and the process stage, in batches of records.
const READER_QUEUE: usize = 256;

pub async fn run(cfg: RunConfig) -> Result<(), DaemonError> {
    let started = std::time::Instant::now();
    let kinfo = kernel::preflight()?;
    for missing in &kinfo.missing_fields {
        warn!("kernel BTF lacks {missing:?}; the fields that depend on it are reported as unknown");
    }
    // Bind before loading so a second instance fails fast without touching the kernel.
    let server = ControlServer::bind(&cfg.control_socket)?;

    let agent_cfg = AgentConfig {
        self_tgid: std::process::id(),
        _pad: 0,
        batch_max_age_jiffies: to_jiffies(cfg.batch_max_age, kernel_hz()),
    };
    let mut sensors = Sensors::load(&kinfo.offsets, &agent_cfg)?;
    set_ignored(&mut sensors, &cfg.ignore_tgids)?;
    let counters = KernelCounters::new(sensors.take_map(names::MAP_COUNTERS)?)?;

    let decode_stats = Arc::new(DecodeStats::default());
    let (stop_readers, readers_stop) = watch::channel(false);
    let (events_tx, events_rx) = mpsc::channel(READER_QUEUE);
    let (syscalls_tx, syscalls_rx) = mpsc::channel(READER_QUEUE);
    let readers = [
        spawn_reader(
            names::MAP_EVENTS,
            ring(&mut sensors, names::MAP_EVENTS)?,
            events_tx,
            decode_stats.clone(),
            readers_stop.clone(),
            // Lifecycle records wake the reader at once: response latency depends on them.
            None,
        )?,
        spawn_reader(
            names::MAP_SYSCALLS,
            ring(&mut sensors, names::MAP_SYSCALLS)?,
            syscalls_tx,
            decode_stats.clone(),
            readers_stop,
            // Batches are written without wakeups until the ring fills up; drain on a timer.
            Some(Duration::from_millis(agent_common::SYSCALLS_POLL_MS)),
        )?,
    ];

    // Seed after attaching: a process born in between is seen by both, never by neither.
    let mut table = ProcessTable::new(TableConfig::default());
    let seeded = table.seed_from_proc(&cfg.proc_root)?;
    info!(processes = seeded, "process table seeded from {}", cfg.proc_root.display());

    let sink = match &cfg.events_json {
        Some(target) => Some(JsonSink::open(target).await?),
        None => None,
    };
    let mut status = StatusBuilder::new(&kinfo.release, &sensors.report, counters, decode_stats, started);
    let (status_tx, status_rx) = watch::channel(status.build_initial());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let control_task = tokio::spawn(server.run(status_rx, wait_true(shutdown_rx)));

    let mut stage = ProcessStage::new(
        table,
        BehaviourSequences::new(SequenceConfig::default()),
        sink,
        cfg.proc_root.clone(),
    );

    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    info!(pid = std::process::id(), "vigil is running");
    if cfg.ready_line {
        println!("ready");
    }
    notify::ready();

    let mut tick = tokio::time::interval(cfg.status_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut events_rx, mut syscalls_rx) = (events_rx, syscalls_rx);
    loop {
        tokio::select! {
            biased;
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            Some(batch) = events_rx.recv() => stage.handle(batch).await?,
            Some(done) = stage.hashed.recv() => stage.apply_hash(done),
            Some(batch) = syscalls_rx.recv() => stage.handle(batch).await?,
            _ = tick.tick() => {
                stage.housekeeping();
                status_tx.send_replace(status.build(&stage));
            }
        }
    }

    info!("shutting down");
    notify::stopping();
    // Detach first so the rings stop filling, then let the readers empty them: records already
    // written are handled, not discarded. The loop ends when both readers have closed.
    drop(sensors);
    let _ = stop_readers.send(true);
    loop {
        tokio::select! {
            Some(batch) = events_rx.recv() => stage.handle(batch).await?,
            Some(batch) = syscalls_rx.recv() => stage.handle(batch).await?,
            else => break,
        }
    }
    for reader in readers {
        match reader.await {
            Ok(Err(e)) => warn!("ring reader: {e}"),
            Err(e) => warn!("ring reader task: {e}"),
            Ok(Ok(())) => {}
        }
    }
    let final_status = status.build(&stage);
    status.log_losses(&final_status);
    let _ = shutdown_tx.send(true);
    let _ = control_task.await;
    stage.close().await?;
    Ok(())
}

fn ring(sensors: &mut Sensors, name: &'static str) -> Result<RingBuf<MapData>, DaemonError> {
    RingBuf::try_from(sensors.take_map(name)?).map_err(|source| DaemonError::Map { name, source })
}

fn set_ignored(sensors: &mut Sensors, tgids: &[u32]) -> Result<(), DaemonError> {
    let name = names::MAP_IGNORED_TGIDS;
    let mut map: BpfHashMap<_, u32, u8> = BpfHashMap::try_from(sensors.map_mut(name)?)
        .map_err(|source| DaemonError::Map { name, source })?;
    for &tgid in tgids {
        map.insert(tgid, 1, 0).map_err(|source| DaemonError::Map { name, source })?;
    }
    Ok(())
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
