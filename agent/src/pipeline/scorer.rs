//! The scoring stage: windows of each process's token stream go through the model as they
//! complete, on a thread of their own so inference never sits on the event path. Scores travel
//! on with the process identity; a rise in verdict is logged (the policy stage acts on it).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tracing::{error, warn};

use crate::{
    model::{
        DIM, Model, NgramProfile, ProcessScore, STRIDE, Thresholds, Verdict, WINDOW,
        window_features,
    },
    process::ProcessKey,
    sequence::{Token, token},
};

/// New tokens of one process, in order.
pub struct ScoreWork {
    pub key: ProcessKey,
    /// The executable the per-executable profile is keyed by.
    pub exe: Arc<str>,
    pub tokens: Vec<Token>,
}

/// A process whose verdict rose.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScoreUpdate {
    pub pid: u32,
    pub start_ns: u64,
    pub score: f32,
    pub windows: usize,
    pub verdict: Verdict,
    /// Novelty against the executable's learned profile (None while it is still learning).
    pub novelty: Option<f32>,
}

/// Counters the status reports.
#[derive(Debug, Default)]
pub struct ScorerStats {
    pub windows: AtomicU64,
    pub busy_ns: AtomicU64,
    pub work_dropped: AtomicU64,
    pub errors: AtomicU64,
    /// n-grams held by all executables' profiles.
    pub profile_grams: AtomicU64,
    /// Windows not learned because the profiles' memory budget was spent.
    pub profile_windows_unlearned: AtomicU64,
}

/// Queue between the process stage and the scorer, in chunks.
const QUEUE: usize = 4096;

#[derive(Default)]
struct Live {
    /// Tokens from `next_start` on.
    buf: Vec<Token>,
    /// The stride drained last: with `buf` it reconstructs the sequence's final window at exit.
    drained: Vec<Token>,
    /// Sequence offset of `buf[0]`, which is where the next window starts.
    next_start: usize,
    total: usize,
    score: ProcessScore,
    novelty: ProcessScore,
    verdict: Option<Verdict>,
}

/// An executable's n-gram profile: learning until `learn_until`, then scoring.
struct ExeProfile {
    profile: NgramProfile,
    learn_until: Instant,
}

struct Profiles {
    by_exe: HashMap<Arc<str>, ExeProfile>,
    learn_for: Duration,
    /// n-grams held across all profiles; learning stops at [`PROFILE_BUDGET`].
    grams: usize,
    /// Windows not learned because the budget was spent.
    saturated: u64,
}

/// n-grams all profiles together may hold (8 bytes each plus table overhead: ~40 MB at most).
const PROFILE_BUDGET: usize = 2_000_000;

impl Profiles {
    /// Learns the window while the executable is in its learn period; afterwards returns its
    /// novelty.
    fn observe(&mut self, exe: &Arc<str>, window: &[Token]) -> Option<f32> {
        let now = Instant::now();
        let learn_for = self.learn_for;
        let p = self
            .by_exe
            .entry(exe.clone())
            .or_insert_with(|| ExeProfile {
                profile: NgramProfile::default(),
                learn_until: now + learn_for,
            });
        if now < p.learn_until {
            if self.grams < PROFILE_BUDGET {
                self.grams += p.profile.learn(window);
            } else {
                self.saturated += 1;
            }
            None
        } else {
            Some(p.profile.window_novelty(window))
        }
    }
}

pub struct ScorerHandle {
    tx: mpsc::Sender<Vec<ScoreWork>>,
    pub stats: Arc<ScorerStats>,
}

impl ScorerHandle {
    /// Queues work; counted as dropped when the scorer lags (its scores then miss windows).
    pub fn submit(&self, work: Vec<ScoreWork>) {
        if work.is_empty() {
            return;
        }
        if self.tx.try_send(work).is_err() {
            self.stats.work_dropped.fetch_add(1, Relaxed);
        }
    }
}

/// Starts the scorer; returns its work queue and the stream of verdict rises.
/// `thresholds` starts as the model's; the policy may override it while running.
pub fn spawn(
    model: Model,
    learn_for: Duration,
    thresholds: Arc<std::sync::RwLock<Thresholds>>,
) -> (ScorerHandle, mpsc::Receiver<ScoreUpdate>) {
    let (tx, mut rx) = mpsc::channel::<Vec<ScoreWork>>(QUEUE);
    let (up_tx, updates) = mpsc::channel(QUEUE);
    let stats = Arc::new(ScorerStats::default());
    let st = stats.clone();
    tokio::task::spawn_blocking(move || {
        let mut live: HashMap<ProcessKey, Live> = HashMap::new();
        let mut profiles = Profiles {
            by_exe: HashMap::new(),
            learn_for,
            grams: 0,
            saturated: 0,
        };
        let mut features = vec![0.0f32; DIM];
        while let Some(chunk) = rx.blocking_recv() {
            let t0 = Instant::now();
            let limits = *thresholds.read().unwrap_or_else(|p| p.into_inner());
            for work in chunk {
                if let Some(update) = feed(
                    &model,
                    &limits,
                    &mut profiles,
                    &mut live,
                    &mut features,
                    work,
                    &st,
                ) && up_tx.try_send(update).is_err()
                {
                    st.work_dropped.fetch_add(1, Relaxed);
                }
            }
            st.busy_ns
                .fetch_add(t0.elapsed().as_nanos() as u64, Relaxed);
            st.profile_grams.store(profiles.grams as u64, Relaxed);
            st.profile_windows_unlearned
                .store(profiles.saturated, Relaxed);
        }
    });
    (ScorerHandle { tx, stats }, updates)
}

/// The running scores of one process.
struct Scores<'a> {
    model: &'a mut ProcessScore,
    novelty: &'a mut ProcessScore,
}

/// Scores one window with the model, and with the executable's profile once it has learned.
fn score_window(
    model: &Model,
    profiles: &mut Profiles,
    scores: Scores<'_>,
    exe: &Arc<str>,
    window: &[Token],
    features: &mut [f32],
    st: &ScorerStats,
) {
    if let Some(novelty) = profiles.observe(exe, window) {
        scores.novelty.push(novelty);
    }
    if let Some(s) = model_score(model, window, features, st) {
        scores.model.push(s);
    }
}

fn model_score(
    model: &Model,
    window: &[Token],
    features: &mut [f32],
    st: &ScorerStats,
) -> Option<f32> {
    window_features(window, features);
    st.windows.fetch_add(1, Relaxed);
    match model.score(features) {
        Ok(s) => Some(s),
        Err(e) => {
            st.errors.fetch_add(1, Relaxed);
            error!("{e}");
            None
        }
    }
}

/// Adds tokens to a process, scores every window they complete (and the tail at exit), and
/// returns an update when the process's verdict rises.
fn feed(
    model: &Model,
    limits: &Thresholds,
    profiles: &mut Profiles,
    live: &mut HashMap<ProcessKey, Live>,
    features: &mut [f32],
    work: ScoreWork,
    st: &ScorerStats,
) -> Option<ScoreUpdate> {
    let exited = work.tokens.last() == Some(&token::EXIT);
    let p = live.entry(work.key).or_default();
    p.total += work.tokens.len();
    p.buf.extend_from_slice(&work.tokens);
    while p.buf.len() >= WINDOW {
        let scores = Scores {
            model: &mut p.score,
            novelty: &mut p.novelty,
        };
        score_window(
            model,
            profiles,
            scores,
            &work.exe,
            &p.buf[..WINDOW],
            features,
            st,
        );
        p.drained.clear();
        p.drained.extend(p.buf.drain(..STRIDE));
        p.next_start += STRIDE;
    }
    if exited {
        // The contract's last window: the whole sequence if it is short, else the final W
        // tokens if the stride did not end exactly there.
        let tail_needed = p.score.windows() == 0 || p.next_start + WINDOW - STRIDE < p.total;
        if p.total > 0 && tail_needed {
            let tail: Vec<Token> = if p.score.windows() == 0 {
                p.buf.clone()
            } else {
                // The final W tokens: the end of the last drained stride, then what is left.
                let keep = WINDOW.saturating_sub(p.buf.len()).min(p.drained.len());
                p.drained[p.drained.len() - keep..]
                    .iter()
                    .chain(&p.buf)
                    .copied()
                    .collect()
            };
            let scores = Scores {
                model: &mut p.score,
                novelty: &mut p.novelty,
            };
            score_window(model, profiles, scores, &work.exe, &tail, features, st);
        }
    }
    let value = p.score.value();
    let verdict = limits.verdict(value);
    let update = (p.score.windows() > 0 && Some(verdict) > p.verdict && verdict > Verdict::Normal)
        .then(|| {
            warn!(
                pid = work.key.tgid,
                score = value,
                windows = p.score.windows(),
                ?verdict,
                "behaviour score crossed a threshold"
            );
            ScoreUpdate {
                pid: work.key.tgid,
                start_ns: work.key.start_ns,
                score: value,
                windows: p.score.windows(),
                verdict,
                novelty: (p.novelty.windows() > 0).then(|| p.novelty.value()),
            }
        });
    if update.is_some() {
        p.verdict = Some(verdict);
    }
    if exited {
        live.remove(&work.key);
    }
    update
}
