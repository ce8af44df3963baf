//! Builds the `vigil status` snapshot and reports losses as they happen.

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Instant,
};

use agent_common::EventKind;
use tracing::{error, info, warn};

use super::{
    process_stage::{ProcessStage, describe},
    scorer::ScorerStats,
};
use crate::{
    control::{ProcessTableStatus, ProgramState, ProgramStatus, ScorerStatus, Status},
    loader::{AttachReport, Outcome},
    sensors::{CounterSnapshot, DecodeStats, KernelCounters},
};

pub struct StatusBuilder {
    kernel: String,
    programs: Vec<ProgramStatus>,
    counters: KernelCounters,
    decode: Arc<DecodeStats>,
    started: Instant,
    last: CounterSnapshot,
    last_decode_errors: u64,
    /// User-space drops at the previous snapshot, to report only growth.
    last_internal: BTreeMap<String, u64>,
    /// The model's path, its scorer's counters and its token vocabulary.
    model: Option<(String, Arc<ScorerStats>, u32)>,
    response: Option<ResponseHandles>,
}

/// What the status reads of the response stage.
pub struct ResponseHandles {
    pub policy: tokio::sync::watch::Receiver<Arc<crate::policy::Policy>>,
    pub decisions: Arc<crate::response::ResponseStats>,
    pub actions: Arc<crate::response::ActorStats>,
    pub journal_undelivered: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub network_guards: bool,
    pub quarantine: bool,
    /// Loss reports go to journald through the actor.
    pub actor: tokio::sync::mpsc::Sender<crate::response::ActorMsg>,
}

impl StatusBuilder {
    pub fn new(
        kernel: &str,
        report: &[AttachReport],
        counters: KernelCounters,
        decode: Arc<DecodeStats>,
        started: Instant,
    ) -> Self {
        let programs = report
            .iter()
            .map(|r| ProgramStatus {
                name: r.program.to_string(),
                hook: r.hook.clone(),
                state: match &r.outcome {
                    Outcome::Attached => ProgramState::Attached,
                    Outcome::Skipped(reason) => ProgramState::Skipped {
                        reason: reason.clone(),
                    },
                },
            })
            .collect();
        Self {
            kernel: kernel.to_string(),
            programs,
            counters,
            decode,
            started,
            last: CounterSnapshot::default(),
            last_decode_errors: 0,
            last_internal: BTreeMap::new(),
            model: None,
            response: None,
        }
    }

    pub fn set_model(
        &mut self,
        path: Option<std::path::PathBuf>,
        stats: Option<Arc<ScorerStats>>,
        vocab: u32,
    ) {
        self.model = path.zip(stats).map(|(p, s)| (p.display().to_string(), s, vocab));
    }

    pub fn set_response(&mut self, handles: ResponseHandles) {
        self.response = Some(handles);
    }

    fn base(&self) -> Status {
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            kernel: self.kernel.clone(),
            programs: self.programs.clone(),
            events: BTreeMap::new(),
            kernel_emitted: BTreeMap::new(),
            losses: BTreeMap::new(),
            decode_errors: BTreeMap::new(),
            process_table: ProcessTableStatus::default(),
            sequences: 0,
            scorer: self.model.as_ref().map(|(path, st, vocab)| {
                let windows = st.windows.load(Relaxed);
                let gated = st.windows_gated.load(Relaxed);
                ScorerStatus {
                    model: path.clone(),
                    token_vocabulary: *vocab,
                    call_classes: *vocab >= 2,
                    windows_scored: windows,
                    windows_gated: gated,
                    windows_memo_hits: st.memo_hits.load(Relaxed),
                    mean_us_per_window: st.busy_ns.load(Relaxed) as f64
                        / 1e3
                        / (windows + gated).max(1) as f64,
                    work_dropped: st.work_dropped.load(Relaxed),
                    errors: st.errors.load(Relaxed),
                    profile_grams: st.profile_grams.load(Relaxed),
                    profile_windows_unlearned: st.profile_windows_unlearned.load(Relaxed),
                }
            }),
            response: self.response.as_ref().map(|r| {
                let policy = r.policy.borrow().clone();
                crate::control::ResponseStatus {
                    policy_version: policy.version.clone(),
                    mode: match policy.mode {
                        crate::policy::Mode::Enforce => "enforce".into(),
                        crate::policy::Mode::Monitor => "monitor".into(),
                    },
                    network_guards: r.network_guards,
                    quarantine: r.quarantine,
                    decisions: r.decisions.decisions.load(Relaxed),
                    decisions_dropped: r.decisions.dropped.load(Relaxed),
                    rate_limited: r.decisions.suppressed.load(Relaxed),
                    alerts: r.actions.alerts.load(Relaxed),
                    kills: r.actions.kills.load(Relaxed),
                    quarantines: r.actions.quarantines.load(Relaxed),
                    action_failures: r.actions.action_failures.load(Relaxed),
                    journal_undelivered: (r.journal_undelivered)(),
                    ..Default::default()
                }
            }),
        }
    }

    pub fn build_initial(&self) -> Status {
        self.base()
    }

    /// A fresh snapshot; logs any loss or decode error since the previous one.
    pub fn build(&mut self, stage: &ProcessStage) -> Status {
        let mut s = self.base();
        let counters = match self.counters.snapshot() {
            Ok(c) => c,
            Err(e) => {
                error!("reading kernel counters: {e}");
                self.last.clone()
            }
        };
        for kind in EventKind::ALL {
            s.events
                .insert(kind.as_str().into(), self.decode.received(kind));
            s.kernel_emitted.insert(
                kind.as_str().into(),
                counters.emitted.get(&kind).copied().unwrap_or(0),
            );
        }
        s.kernel_emitted
            .insert("syscalls_batched".into(), counters.syscalls_batched);
        s.kernel_emitted
            .insert("unswitched_slots".into(), counters.unswitched_slots);
        s.losses = counters.losses();
        s.losses.insert(
            "exe_hash_requests_dropped".into(),
            stage.hash_requests_dropped,
        );
        if let Some(sc) = &s.scorer {
            s.losses
                .insert("score_work_dropped".into(), sc.work_dropped);
        }
        s.decode_errors = BTreeMap::from([
            ("truncated".into(), self.decode.truncated.load(Relaxed)),
            (
                "unknown_kind".into(),
                self.decode.unknown_kind.load(Relaxed),
            ),
            ("bad_size".into(), self.decode.bad_size.load(Relaxed)),
            (
                "abi_mismatch".into(),
                self.decode.abi_mismatch.load(Relaxed),
            ),
        ]);
        s.process_table = ProcessTableStatus {
            entries: stage.table.len(),
            running: stage.table.running(),
            evicted_total: stage.table.evicted_total(),
            images_known: stage.images_known,
            images_opened: stage.images_opened,
        };
        s.sequences = stage.sequences.len();
        s.losses.insert("syscall_ids_out_of_vocab".into(), stage.sequences.out_of_vocab());
        if let Some(r) = s.response.as_mut() {
            r.kernel_exec_denied = counters.exec_denied;
            r.kernel_exec_deny_signal_failed = counters.exec_deny_signal_failed;
            r.kernel_net_denied_quarantine = counters.net_denied_quarantine;
            r.kernel_net_denied_rule = counters.net_denied_rule;
        }

        // What user space dropped: in status with the kernel's losses, and to journald on growth.
        if let Some(r) = &self.response {
            s.losses.insert("response_decisions_dropped".into(), r.decisions.dropped.load(Relaxed));
            s.losses.insert("response_protect_updates_dropped".into(), r.decisions.protect_updates_dropped.load(Relaxed));
            s.losses.insert("response_file_opens_unnamed".into(), r.decisions.file_events_unnamed.load(Relaxed));
            s.losses.insert("response_scan_processes_untracked".into(), r.decisions.scan_actors_untracked.load(Relaxed));
            s.losses.insert("response_churn_processes_untracked".into(), r.decisions.churn_actors_untracked.load(Relaxed));
            s.losses.insert("response_net_peers_forgotten".into(), r.decisions.net_peers_forgotten.load(Relaxed));
            s.losses.insert("response_pipelines_forgotten".into(), r.decisions.pipelines_forgotten.load(Relaxed));
            s.losses.insert("journal_undelivered".into(), (r.journal_undelivered)());
        }
        let internal: BTreeMap<String, u64> = s
            .losses
            .iter()
            .filter(|(k, _)| !counters.losses().contains_key(*k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let grown: BTreeMap<String, u64> = internal
            .iter()
            .filter_map(|(k, v)| {
                let before = self.last_internal.get(k).copied().unwrap_or(0);
                (*v > before).then(|| (k.clone(), v - before))
            })
            .collect();
        if !grown.is_empty() {
            warn!(?grown, "vigil dropped work in user space");
            // Incidents journald refused are reported to it by the writer once it is back: a
            // report now would be refused too, and counted, and reported again a second later.
            let to_journal: BTreeMap<&String, &u64> =
                grown.iter().filter(|(k, _)| *k != "journal_undelivered").collect();
            if let Some(r) = self.response.as_ref().filter(|_| !to_journal.is_empty()) {
                let grown = to_journal;
                let lost: u64 = grown.values().copied().sum();
                let message = format!("vigil: user space dropped {lost} item(s) since the last report: {grown:?}");
                if r.actor.try_send(crate::response::ActorMsg::Loss { message, lost }).is_err() {
                    warn!("the loss report itself could not be queued (response queue full)");
                }
            }
        }
        self.last_internal = internal;

        if counters.total_lost() > self.last.total_lost() {
            let before = self.last.losses();
            let new: BTreeMap<String, u64> = counters
                .losses()
                .into_iter()
                .filter_map(|(k, v)| {
                    let b = before.get(&k).copied().unwrap_or(0);
                    (v > b).then(|| (k, v - b))
                })
                .collect();
            warn!(?new, "the kernel dropped events (ring buffer or map full)");
            if let Some(r) = &self.response {
                let lost: u64 = new.values().sum();
                let message = format!(
                    "vigil: the kernel dropped {lost} event(s) since the last report: {new:?}"
                );
                let _ = r
                    .actor
                    .try_send(crate::response::ActorMsg::Loss { message, lost });
            }
        }
        let decode_errors = self.decode.errors_total();
        if decode_errors > self.last_decode_errors {
            warn!(total = decode_errors, "undecodable ring-buffer records");
        }
        self.last_decode_errors = decode_errors;
        self.last = counters;
        tracing::debug!("{}", describe(stage));
        s
    }

    /// One line at shutdown with every non-zero loss counter, so a run's losses are never silent.
    pub fn log_losses(&self, status: &Status) {
        let lost: BTreeMap<_, _> = status.losses.iter().filter(|(_, v)| **v > 0).collect();
        if lost.is_empty() {
            info!(events = ?status.events, "no events lost");
        } else {
            warn!(?lost, events = ?status.events, "events were lost during this run");
        }
    }
}
