//! Response: policy, decisions and actions. The [`Responder`] decides inside the process stage
//! (it reads the table, never blocks); the [`actor::Actor`] thread carries decisions out (kernel
//! maps, kills, quarantines, the action log, journald) and answers operator commands.
//!
//! ```text
//! process stage --Decision--> [bounded] --> actor thread --> kill / quarantine / journald
//!      ^                                        |   ^
//!      +-------- policy (watch) ----------------+   +-- control socket commands, policy.d inotify
//! ```

pub mod actions_log;
pub mod actor;
mod actors;
pub mod decision;
mod deleted_image;
mod downloads;
mod exec_memo;
pub mod file_watches;
pub mod kernel;
pub(crate) mod masquerade;
mod encryption;
mod mass_replace;
mod piped;
mod port_scan;
pub mod ratelimit;
pub mod responder;
pub mod run_marker;
pub mod scripts;
pub mod store;
pub mod watch_dir;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

pub use actor::{Actor, ActorMsg, ActorStats};
pub use decision::{Act, Decision, Target};
pub use kernel::{KernelMapError, KernelResponse};
pub use responder::{ACTOR_QUEUE, Responder, ResponseStats};
pub use store::PolicyStore;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::{
    incident::JournalWriter,
    kernel::mounts,
    model::Thresholds,
    policy::PolicyError,
    quarantine::{QuarantineConfig, QuarantineManager},
};

pub const DEFAULT_POLICY_PATH: &str = "/usr/lib/vigil/policy.toml";
pub const DEFAULT_POLICY_DIR: &str = "/etc/vigil/policy.d";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vigil";
/// vigil's quarantine cgroups live under this name in the cgroup v2 root.
pub const QUARANTINE_CGROUP: &str = "vigil.quarantine";

#[derive(Clone, Debug)]
pub struct ResponseConfig {
    pub default_policy: PathBuf,
    pub policy_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Journal socket (tests point it elsewhere); `None` is journald's default.
    pub journal_socket: Option<PathBuf>,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        Self {
            default_policy: DEFAULT_POLICY_PATH.into(),
            policy_dir: DEFAULT_POLICY_DIR.into(),
            state_dir: DEFAULT_STATE_DIR.into(),
            journal_socket: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum ResponseError {
    #[error("loading policy: {0}")]
    Policy(#[from] PolicyError),
}

/// Resolves the file rules' globs again now and then, for files created since, and at once
/// (then once more shortly after) when a watched path was renamed over or unlinked.
fn spawn_file_refresh(actor: mpsc::Sender<ActorMsg>, files: file_watches::FileWatchIndex) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(file_watches::REFRESH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            let replaced = tokio::select! {
                _ = every.tick() => false,
                () = files.replaced() => true,
            };
            if actor.send(ActorMsg::RefreshFileWatches).await.is_err() {
                return;
            }
            if replaced {
                tokio::time::sleep(file_watches::AFTER_REPLACE).await;
                if actor.send(ActorMsg::RefreshFileWatches).await.is_err() {
                    return;
                }
            }
        }
    });
}

/// Everything the daemon wires in: the responder for the process stage, the actor's queue (for
/// the control server and loss reports) and the counters for status.
pub struct ResponseStage {
    pub actor_tx: mpsc::Sender<ActorMsg>,
    pub actor_stats: Arc<ActorStats>,
    pub journal_undelivered: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub network_guards: bool,
    pub quarantine_available: bool,
    pub policy: watch::Receiver<Arc<crate::policy::Policy>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Removed at a clean shutdown ([`Self::join`]); left behind, it tells the next vigil.
    run_marker: Option<run_marker::RunMarker>,
}

impl ResponseStage {
    /// Loads the policy (an invalid policy at start is an error: there is no last good one yet),
    /// prepares the quarantine manager and starts the actor thread.
    pub fn start(
        cfg: &ResponseConfig,
        kernel: Option<KernelResponse>,
        thresholds: Option<(Arc<RwLock<Thresholds>>, Thresholds)>,
    ) -> Result<(Self, Responder), ResponseError> {
        let store = PolicyStore {
            default: cfg.default_policy.clone(),
            dir: cfg.policy_dir.clone(),
            last_good: cfg.state_dir.join("policy.last-good.json"),
        };
        // A policy.d that went bad while vigil was down must not leave the host unprotected
        // (Restart=always would crash-loop): run the last policy that was in force, loudly.
        let (policy, startup_note) = match store.load() {
            Ok(p) => (p, None),
            Err(e) => match store.load_last_good() {
                Some(p) => {
                    let note = format!(
                        "vigil: policy on disk is invalid ({e}); running the last good policy {}",
                        p.version
                    );
                    error!("{note}");
                    (p, Some(note))
                }
                None => return Err(e.into()),
            },
        };
        info!(version = %policy.version, sources = policy.sources.len(), "policy loaded");
        let (run_marker, gap) = run_marker::RunMarker::claim(&cfg.state_dir, Path::new("/proc"));
        if let Some(gap) = &gap {
            warn!("{}", gap.message());
        }
        if let Some(m) = &run_marker {
            m.spawn_heartbeat();
        }
        let (policy_tx, policy_rx) = watch::channel(Arc::new(policy));
        let (actions, vault) = actor::state_paths(&cfg.state_dir);
        let quarantine = match mounts::ensure_cgroup2() {
            Ok(root) => {
                let qcfg = QuarantineConfig {
                    cgroup_parent: root.join(QUARANTINE_CGROUP),
                    vault,
                    freeze_timeout: Duration::from_secs(2),
                    ..QuarantineConfig::default()
                };
                match QuarantineManager::open(qcfg) {
                    Ok(qm) => Some(qm),
                    Err(e) => {
                        warn!("quarantine unavailable: {e}");
                        None
                    }
                }
            }
            Err(e) => {
                warn!("quarantine unavailable: {e}");
                None
            }
        };
        let journal = match &cfg.journal_socket {
            Some(p) => JournalWriter::with_socket(p),
            None => JournalWriter::open(),
        };
        let network_guards = kernel.as_ref().is_some_and(|k| k.network_guards);
        let quarantine_available = quarantine.is_some();
        let stats = Arc::new(ActorStats::default());
        let (actor_tx, actor_rx) = mpsc::channel(ACTOR_QUEUE);
        let files = file_watches::FileWatchIndex::default();
        let journal = Arc::new(journal);
        let undelivered = {
            let j = journal.clone();
            Arc::new(move || j.undelivered()) as Arc<dyn Fn() -> u64 + Send + Sync>
        };
        let actor = Actor {
            kernel,
            quarantine,
            journal,
            store,
            policy_tx,
            thresholds,
            log: actions_log::ActionLog::open(&actions),
            stats: stats.clone(),
            startup_note,
            startup_gap: gap,
            files: files.clone(),
        };
        let thread = actor.spawn(actor_rx);
        watch_dir::spawn(&cfg.policy_dir, actor_tx.clone());
        spawn_file_refresh(actor_tx.clone(), files.clone());
        let responder = Responder::new(policy_rx.clone(), actor_tx.clone(), files);
        Ok((
            Self {
                actor_tx,
                actor_stats: stats,
                journal_undelivered: undelivered,
                network_guards,
                quarantine_available,
                policy: policy_rx,
                thread: Some(thread),
                run_marker,
            },
            responder,
        ))
    }

    /// Waits for the actor to finish what it has queued. Drop the responder (and the control
    /// server's sender) first: the actor runs until every sender is gone.
    pub fn join(mut self) {
        let _ = self.actor_tx.blocking_send(ActorMsg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(m) = self.run_marker.take() {
            m.release();
        }
    }
}
