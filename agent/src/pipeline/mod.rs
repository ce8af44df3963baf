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

mod feed;
mod hasher;
mod notify;
mod path_call;
mod process_stage;
pub mod scorer;
mod status;

use std::{path::PathBuf, sync::Arc, time::Duration};

use aya::maps::MapError;
use thiserror::Error;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
    time::MissedTickBehavior,
};
use tracing::{info, warn};

use crate::{
    control::{self, ControlError, ControlServer},
    kernel::PreflightError,
    loader::LoadError,
    model::Model,
    output::{JsonSink, OutputError, SinkTarget},
    process::{ProcessError, ProcessTable, TableConfig},
    response::{ActorMsg, ResponseConfig, ResponseStage},
    sensors::SensorError,
    sequence::{BehaviourSequences, SequenceConfig},
};
pub use feed::SensorFeed;
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
    /// The behaviour model; `None` runs the sensors without scoring.
    pub model: Option<PathBuf>,
    /// How long each executable's n-gram profile learns before it scores.
    pub profile_learn: Duration,
    /// Policy, actions and incidents; `None` runs detection only (no policy, no actions).
    pub response: Option<ResponseConfig>,
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
            model: Some(crate::model::DEFAULT_MODEL_PATH.into()),
            profile_learn: Duration::from_secs(600),
            response: Some(ResponseConfig::default()),
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
    #[error("the kernel counters were already handed out")]
    CountersTaken,
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Response(#[from] crate::response::ResponseError),
    #[error(transparent)]
    ResponseMaps(#[from] crate::response::KernelMapError),
}

pub async fn run(cfg: RunConfig) -> Result<(), DaemonError> {
    let started = std::time::Instant::now();
    // Bind before loading so a second instance fails fast without touching the kernel.
    let server = ControlServer::bind(&cfg.control_socket)?;
    // A missing, corrupt or mismatched model stops the start with an error naming it.
    let model = match &cfg.model {
        Some(path) => {
            let model = Model::load(path)?;
            info!(path = %path.display(), thresholds = ?model.thresholds, "behaviour model loaded");
            Some(model)
        }
        None => {
            warn!("no behaviour model (--no-model): processes are not scored");
            None
        }
    };
    // Call classes cost every syscall a few ns: only for a model that reads them.
    let model_vocab = model.as_ref().map_or(0, Model::vocab_version);
    let call_classes = model_vocab >= 2;
    info!(
        call_classes,
        "syscall tokens {} their call classes",
        if call_classes { "carry" } else { "leave out" }
    );
    let mut feed = SensorFeed::start(cfg.batch_max_age, &cfg.ignore_tgids, call_classes)?;

    // Seed after attaching: a process born in between is seen by both, never by neither.
    let mut table = ProcessTable::new(TableConfig::default());
    let seeded = table.seed_from_proc(&cfg.proc_root)?;
    info!(
        processes = seeded,
        "process table seeded from {}",
        cfg.proc_root.display()
    );
    // Loading parsed the kernel's BTF twice over (the loader's relocations, the tp_btf attach):
    // some 20 MB of heap, all freed by now but kept by malloc unless handed back.
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe { libc::malloc_trim(0) };

    let sink = match &cfg.events_json {
        Some(target) => Some(JsonSink::open(target).await?),
        None => None,
    };
    let counters = feed.take_counters().ok_or(DaemonError::CountersTaken)?;
    let mut status = StatusBuilder::new(
        &feed.kernel.release,
        &feed.report,
        counters,
        feed.decode.clone(),
        started,
    );
    let thresholds = model
        .as_ref()
        .map(|m| (Arc::new(std::sync::RwLock::new(m.thresholds)), m.thresholds));
    // The policy is loaded before anything is scored: an invalid policy stops the start here.
    let response = match &cfg.response {
        Some(rcfg) => {
            let kernel = feed.take_response().transpose()?;
            let (stage, responder) = ResponseStage::start(rcfg, kernel, thresholds.clone())?;
            Some((stage, responder))
        }
        None => {
            warn!(
                "no response stage (--no-response): nothing is alerted to journald, killed or quarantined"
            );
            None
        }
    };
    let (command_tx, mut command_rx) =
        tokio::sync::mpsc::channel::<control::Command>(control::COMMAND_QUEUE);
    let (status_tx, status_rx) = watch::channel(status.build_initial());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let control_task = tokio::spawn(server.run_with_commands(
        status_rx,
        response.as_ref().map(|_| command_tx),
        wait_true(shutdown_rx),
    ));

    let (scorer, mut score_updates) = match model.map(|m| {
        let live = thresholds
            .as_ref()
            .map(|(t, _)| t.clone())
            .expect("thresholds exist with a model");
        scorer::spawn(m, cfg.profile_learn, live)
    }) {
        Some((handle, updates)) => (Some(handle), Some(updates)),
        None => (None, None),
    };
    status.set_model(
        cfg.model.clone(),
        scorer.as_ref().map(|s| s.stats.clone()),
        model_vocab,
    );
    let mut stage = ProcessStage::new(
        table,
        BehaviourSequences::new(SequenceConfig::default()),
        sink,
        cfg.proc_root.clone(),
        scorer,
    );
    let mut response_stage = None;
    if let Some((rs, mut responder)) = response {
        if let Some(writers) = feed.take_file_writers() {
            responder.set_file_writers(writers);
        }
        status.set_response(status::ResponseHandles {
            policy: rs.policy.clone(),
            decisions: responder.stats.clone(),
            actions: rs.actor_stats.clone(),
            journal_undelivered: rs.journal_undelivered.clone(),
            network_guards: rs.network_guards,
            quarantine: rs.quarantine_available,
            actor: rs.actor_tx.clone(),
        });
        stage.set_responder(responder);
        // Control commands (policy push, quarantine release...) go to the actor thread.
        let actor = rs.actor_tx.clone();
        tokio::spawn(async move {
            while let Some(cmd) = command_rx.recv().await {
                if actor.send(ActorMsg::Command(cmd)).await.is_err() {
                    break;
                }
            }
        });
        response_stage = Some(rs);
    }

    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    info!(pid = std::process::id(), "vigil is running");
    if cfg.ready_line {
        println!("ready");
    }
    notify::ready();

    let mut tick = tokio::time::interval(cfg.status_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let handoff = stage.score_handoff_at();
        tokio::select! {
            biased;
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            Some(batch) = feed.next() => {
                stage.handle(batch).await?;
                if let Some(watermark) = feed.watermark() {
                    stage.release(watermark);
                }
            }
            Some(done) = stage.hashed.recv() => stage.apply_hash(done),
            _ = sleep_until_some(handoff) => stage.hand_over_scores(),
            Some(update) = async { match score_updates.as_mut() { Some(rx) => rx.recv().await, None => None } } => {
                stage.report_score(update).await?;
            }
            _ = tick.tick() => {
                if let Some(watermark) = feed.watermark() {
                    stage.release(watermark);
                }
                stage.housekeeping();
                status_tx.send_replace(status.build(&stage));
            }
        }
    }

    info!("shutting down");
    notify::stopping();
    // Records already in the rings are handled, not discarded.
    feed.detach();
    while let Some(batch) = feed.next().await {
        stage.handle(batch).await?;
    }
    stage.release(u64::MAX);
    feed.join().await;
    let final_status = status.build(&stage);
    status.log_losses(&final_status);
    let _ = shutdown_tx.send(true);
    let _ = control_task.await;
    // The actor finishes what it was given (a kill in flight is completed and recorded).
    stage.responder = None;
    drop(status);
    stage.close().await?;
    if let Some(rs) = response_stage {
        tokio::task::spawn_blocking(move || rs.join()).await.ok();
    }
    Ok(())
}

/// Sleeps until `at`; never completes for `None`.
async fn sleep_until_some(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
