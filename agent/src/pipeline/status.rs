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
    model: Option<(String, Arc<ScorerStats>)>,
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
                    Outcome::Skipped(reason) => ProgramState::Skipped { reason: reason.clone() },
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
            model: None,
        }
    }

    pub fn set_model(&mut self, path: Option<std::path::PathBuf>, stats: Option<Arc<ScorerStats>>) {
        self.model = path.zip(stats).map(|(p, s)| (p.display().to_string(), s));
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
            process_table: ProcessTableStatus { entries: 0, running: 0, evicted_total: 0 },
            sequences: 0,
            scorer: self.model.as_ref().map(|(path, st)| {
                let windows = st.windows.load(Relaxed);
                ScorerStatus {
                    model: path.clone(),
                    windows_scored: windows,
                    mean_us_per_window: st.busy_ns.load(Relaxed) as f64 / 1e3 / windows.max(1) as f64,
                    work_dropped: st.work_dropped.load(Relaxed),
                    errors: st.errors.load(Relaxed),
                    profile_grams: st.profile_grams.load(Relaxed),
                    profile_windows_unlearned: st.profile_windows_unlearned.load(Relaxed),
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
            s.events.insert(kind.as_str().into(), self.decode.received(kind));
            s.kernel_emitted.insert(kind.as_str().into(), counters.emitted.get(&kind).copied().unwrap_or(0));
        }
        s.kernel_emitted.insert("syscalls_batched".into(), counters.syscalls_batched);
        s.losses = counters.losses();
        s.losses.insert("exe_hash_requests_dropped".into(), stage.hash_requests_dropped);
        if let Some(sc) = &s.scorer {
            s.losses.insert("score_work_dropped".into(), sc.work_dropped);
        }
        s.decode_errors = BTreeMap::from([
            ("truncated".into(), self.decode.truncated.load(Relaxed)),
            ("unknown_kind".into(), self.decode.unknown_kind.load(Relaxed)),
            ("bad_size".into(), self.decode.bad_size.load(Relaxed)),
            ("abi_mismatch".into(), self.decode.abi_mismatch.load(Relaxed)),
        ]);
        s.process_table = ProcessTableStatus {
            entries: stage.table.len(),
            running: stage.table.running(),
            evicted_total: stage.table.evicted_total(),
        };
        s.sequences = stage.sequences.len();

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
