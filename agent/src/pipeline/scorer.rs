//! The scoring stage: windows of each process's token stream are scored as they complete, on a
//! thread of their own so inference never sits on the event path. Scores travel on with the
//! process identity; a rise in verdict is logged (the policy stage acts on it).
//!
//! Two layers (models/FEATURES.md, "Layers in the daemon"): every window goes to its
//! executable's n-gram profile first, and to the model unless that profile, once learned, already
//! holds every n-gram of it. Such a window is made only of n-grams this executable showed while
//! learning (though not necessarily as often): it enters the process score as 0 without running
//! the model, so the gate can only lower a score, never raise one above what the calibrated model
//! gives.

use foldhash::HashMap;
use std::{
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
        DIM, Model, NgramProfile, ProcessScore, STRIDE, Thresholds, Verdict, WINDOW, WindowMemo,
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
    /// Windows the executable's learned profile holds entirely: scored 0, the model not run.
    pub windows_gated: AtomicU64,
    /// Windows whose score came from the memo (an identical window was scored before).
    pub memo_hits: AtomicU64,
    pub busy_ns: AtomicU64,
    pub work_dropped: AtomicU64,
    pub errors: AtomicU64,
    /// n-grams held by all executables' profiles.
    pub profile_grams: AtomicU64,
    /// Windows not learned because the profiles' memory budget, or their executable's share of
    /// it, was spent, or because their executable came after the table of profiles was full.
    pub profile_windows_unlearned: AtomicU64,
}

/// Queue between the process stage and the scorer, in chunks.
const QUEUE: usize = 4096;
/// Windows per memo generation: ~2.3 MB at most for both.
const MEMO_WINDOWS: usize = 4096;

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
    /// Windows this executable showed recently, by keyed digest ([`Profiles::digest`]):
    /// while learning, windows already learned (learning one again adds nothing); afterwards,
    /// their novelty (the profile no longer changes). Executables repeat their windows all the
    /// time, and one lookup here replaces up to 360 n-gram lookups. Cleared when it reaches
    /// [`RECENT_WINDOWS`] and when learning ends.
    recent: HashMap<u64, f32>,
    recent_while_learning: bool,
    /// Learned windows in a row that added no n-gram; from [`SETTLED_AFTER`] on, the profile
    /// has settled and only one window in [`SETTLED_LEARN_EVERY`] is learned.
    quiet: u32,
    /// Windows skipped since the last one learned.
    skipped: u32,
}

/// A learning profile counts as settled after this many learned windows that taught it nothing.
const SETTLED_AFTER: u32 = 64;
/// While settled, one window in this many is learned (whole, since the one before it was not);
/// the first that adds an n-gram ends the settling. Learning is most of the scorer's work on a
/// busy server (~190 set insertions a window), and a settled profile rarely gains anything.
const SETTLED_LEARN_EVERY: u32 = 16;

/// Bound of [`ExeProfile::recent`] per executable.
const RECENT_WINDOWS: usize = 512;

struct Profiles {
    /// foldhash, not std's SipHash: this is looked up for every window, and hashing the path
    /// with SipHash was ~2% of vigil's CPU under redis-benchmark.
    by_exe: HashMap<Arc<str>, ExeProfile>,
    learn_for: Duration,
    /// n-grams held across all profiles; learning stops at `budget`.
    grams: usize,
    /// [`PROFILE_BUDGET`], [`PROFILE_MAX_PER_EXE`] and [`PROFILE_MAX_EXES`] (smaller in tests).
    budget: usize,
    per_exe: usize,
    max_exes: usize,
    /// Windows not learned because the budget, or their executable's share of it, was spent,
    /// or because their executable has no profile (the table was full).
    saturated: u64,
    /// Keyed with a per-run random key, so that nobody can make a window collide with one an
    /// executable showed before and borrow its novelty.
    digest: std::collections::hash_map::RandomState,
    /// When the chunk being scored was taken: learn periods are minutes long, and reading the
    /// clock for every window was 3% of vigil's CPU under redis-benchmark.
    now: Instant,
}

/// n-grams all profiles together may hold. A learned n-gram costs ~21 bytes of hash set
/// (measured: 378k of them took 8 MiB of vigil's RSS), so this is ~12 MiB at most: with vigil's
/// ~35 MiB idle (mostly its mapped binary and rings) and a busy host's tables, it stays within
/// the 64 MB RSS goal (`cargo xtask bench`), even against a process that makes random calls to
/// fill it. Past it, windows go unlearned (counted): more of them go to the model, and no score
/// rises for it, since the profile can only lower a score.
const PROFILE_BUDGET: usize = 600_000;

/// n-grams one executable's profile may hold: past that it is not a program whose behaviour a
/// profile describes, and it must not spend every other executable's share of the budget.
const PROFILE_MAX_PER_EXE: usize = 100_000;

/// Executables with a profile. Each one also keeps up to [`RECENT_WINDOWS`] recent windows
/// (~17 KiB), and paths are endless (a build writes new binaries every run): without a bound
/// the table would grow for as long as vigil runs. An executable seen after it is full gets no
/// profile, so the model scores all its windows, and its windows count as unlearned. None is
/// evicted for it: a profile started afresh would learn whatever the process does next.
const PROFILE_MAX_EXES: usize = 1024;

impl Profiles {
    /// Learns the window while the executable is in its learn period; afterwards returns its
    /// novelty. `known`: how many leading tokens the process's previous window covered.
    fn observe(&mut self, exe: &Arc<str>, window: &[Token], known: usize) -> Option<f32> {
        let now = self.now;
        let learn_for = self.learn_for;
        // The second lookup is paid only once the table is full.
        if self.by_exe.len() >= self.max_exes && !self.by_exe.contains_key(exe) {
            self.saturated += 1;
            return None;
        }
        let p = self
            .by_exe
            .entry(exe.clone())
            .or_insert_with(|| ExeProfile {
                profile: NgramProfile::default(),
                learn_until: now + learn_for,
                recent: HashMap::default(),
                recent_while_learning: true,
                quiet: 0,
                skipped: 0,
            });
        let learning = now < p.learn_until;
        if learning != p.recent_while_learning {
            p.recent.clear();
            p.recent_while_learning = learning;
        }
        let h = std::hash::BuildHasher::hash_one(&self.digest, window);
        if let Some(&novelty) = p.recent.get(&h) {
            return (!learning).then_some(novelty);
        }
        if p.recent.len() >= RECENT_WINDOWS {
            p.recent.clear();
        }
        if learning {
            let settled = p.quiet >= SETTLED_AFTER;
            if settled && p.skipped + 1 < SETTLED_LEARN_EVERY {
                p.skipped += 1;
                return None;
            }
            if self.grams < self.budget && p.profile.len() < self.per_exe {
                // A window after a skipped one shares nothing learned with its predecessor.
                let known = if settled { 0 } else { known };
                let added = p.profile.learn_after(window, known);
                self.grams += added;
                p.quiet = if added == 0 { p.quiet.saturating_add(1) } else { 0 };
                p.skipped = 0;
                p.recent.insert(h, f32::NAN);
            } else {
                self.saturated += 1;
            }
            None
        } else {
            let novelty = p.profile.window_novelty(window);
            p.recent.insert(h, novelty);
            Some(novelty)
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
        let mut live: foldhash::HashMap<ProcessKey, Live> = Default::default();
        let mut profiles = Profiles {
            by_exe: HashMap::default(),
            learn_for,
            grams: 0,
            budget: PROFILE_BUDGET,
            per_exe: PROFILE_MAX_PER_EXE,
            max_exes: PROFILE_MAX_EXES,
            saturated: 0,
            digest: Default::default(),
            now: Instant::now(),
        };
        let mut scoring = ModelScoring {
            model,
            features: vec![0.0f32; DIM],
            memo: WindowMemo::new(MEMO_WINDOWS),
        };
        while let Some(chunk) = rx.blocking_recv() {
            let t0 = Instant::now();
            profiles.now = t0;
            let limits = *thresholds.read().unwrap_or_else(|p| p.into_inner());
            for work in chunk {
                if let Some(update) = feed(
                    &mut scoring,
                    &limits,
                    &mut profiles,
                    &mut live,
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

/// The model with its scratch features and the memo of windows it already scored.
struct ModelScoring {
    model: Model,
    features: Vec<f32>,
    memo: WindowMemo,
}

impl ModelScoring {
    fn score(&mut self, window: &[Token], st: &ScorerStats) -> Option<f32> {
        st.windows.fetch_add(1, Relaxed);
        let (model, features) = (&self.model, &mut self.features);
        let hits = self.memo.hits;
        let scored = self
            .memo
            .get_or_score(window, |w| model.score_window(w, features));
        if self.memo.hits != hits {
            st.memo_hits.fetch_add(1, Relaxed);
        }
        match scored {
            Ok(s) => Some(s),
            Err(e) => {
                st.errors.fetch_add(1, Relaxed);
                error!("{e}");
                None
            }
        }
    }
}

/// Scores one window with the executable's profile once it has learned, and with the model
/// unless the profile holds the whole window. `known`: leading tokens shared with the process's
/// previous window.
fn score_window(
    scoring: &mut ModelScoring,
    profiles: &mut Profiles,
    scores: Scores<'_>,
    exe: &Arc<str>,
    (window, known): (&[Token], usize),
    st: &ScorerStats,
) {
    let novelty = profiles.observe(exe, window, known);
    if let Some(n) = novelty {
        scores.novelty.push(n);
    }
    if novelty == Some(0.0) {
        // 0, not skipped: a known window between two anomalous ones breaks their run of k, as
        // a low model score would, and leaving it out could join windows the model never saw
        // side by side into a higher score than calibration allowed for.
        st.windows_gated.fetch_add(1, Relaxed);
        scores.model.push(0.0);
    } else if let Some(s) = scoring.score(window, st) {
        scores.model.push(s);
    }
}

/// Adds tokens to a process, scores every window they complete (and the tail at exit), and
/// returns an update when the process's verdict rises.
fn feed(
    scoring: &mut ModelScoring,
    limits: &Thresholds,
    profiles: &mut Profiles,
    live: &mut foldhash::HashMap<ProcessKey, Live>,
    work: ScoreWork,
    st: &ScorerStats,
) -> Option<ScoreUpdate> {
    let exited = work.tokens.last() == Some(&token::EXIT);
    let mut tokens = work.tokens;
    // In the model's vocabulary, for the profile as well: both layers see the same tokens.
    scoring.model.project(&mut tokens);
    let p = live.entry(work.key).or_default();
    p.total += tokens.len();
    p.buf.extend_from_slice(&tokens);
    // Windows by offset, and the consumed strides removed once: a chunk can bring thousands of
    // tokens, and draining a stride at a time moved the rest of them for every window.
    let mut start = 0;
    while p.buf.len() - start >= WINDOW {
        let scores = Scores {
            model: &mut p.score,
            novelty: &mut p.novelty,
        };
        let known = if p.next_start == 0 {
            0
        } else {
            WINDOW - STRIDE
        };
        score_window(
            scoring,
            profiles,
            scores,
            &work.exe,
            (&p.buf[start..start + WINDOW], known),
            st,
        );
        start += STRIDE;
        p.next_start += STRIDE;
    }
    if start > 0 {
        p.drained.clear();
        p.drained.extend_from_slice(&p.buf[start - STRIDE..start]);
        p.buf.drain(..start);
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
            score_window(scoring, profiles, scores, &work.exe, (&tail, 0), st);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> Profiles {
        Profiles {
            by_exe: HashMap::default(),
            learn_for: Duration::from_secs(3600),
            grams: 0,
            budget: PROFILE_BUDGET,
            per_exe: PROFILE_MAX_PER_EXE,
            max_exes: PROFILE_MAX_EXES,
            saturated: 0,
            digest: Default::default(),
            now: Instant::now(),
        }
    }

    /// Distinct windows over a two-token alphabet: every n-gram soon known.
    fn window(seed: u32) -> Vec<Token> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..WINDOW)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x & 1) as Token
            })
            .collect()
    }

    #[test]
    fn one_executable_cannot_spend_the_budget_and_the_budget_bounds_them_all() {
        // Windows over 400 tokens: nearly every n-gram new, as from a process making random calls.
        let noisy = |seed: u32| -> Vec<Token> {
            let mut x = seed.wrapping_mul(2_654_435_761) | 1;
            (0..WINDOW)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 400) as Token
                })
                .collect()
        };
        let mut p = Profiles { budget: 2_000, per_exe: 500, ..profiles() };
        let exes: Vec<Arc<str>> = ["/tmp/a", "/tmp/b", "/tmp/c", "/tmp/d", "/tmp/e"].map(Arc::from).into();
        let (a, others) = (&exes[0], &exes[1..]);
        for seed in 0..50 {
            p.observe(a, &noisy(seed), 0);
        }
        let held = p.by_exe[a].profile.len();
        // It stops within one window (at most 6 x 64 n-grams) past its share.
        assert!((500..500 + 6 * WINDOW).contains(&held), "{held}");
        assert!(p.saturated > 0, "windows past the share are counted");
        // Others still learn, until all together reach the budget.
        for exe in others {
            for seed in 1000..1050 {
                p.observe(exe, &noisy(seed), 0);
            }
        }
        assert!(p.by_exe[&exes[1]].profile.len() >= 500, "another executable learns its own share");
        assert!((2_000..2_000 + 6 * WINDOW).contains(&p.grams), "{}", p.grams);
        let total: usize = p.by_exe.values().map(|x| x.profile.len()).sum();
        assert_eq!(total, p.grams);
    }

    #[test]
    fn executables_past_the_table_get_no_profile_and_none_is_evicted_for_them() {
        let mut p = Profiles { max_exes: 3, ..profiles() };
        let exes: Vec<Arc<str>> = (0..5).map(|i| Arc::from(format!("/tmp/build-{i}/a.out"))).collect();
        for (i, exe) in exes.iter().enumerate() {
            assert_eq!(p.observe(exe, &window(i as u32), 0), None);
        }
        assert_eq!(p.by_exe.len(), 3);
        assert!(exes[..3].iter().all(|e| p.by_exe.contains_key(e)), "the first three keep theirs");
        assert_eq!(p.saturated, 2, "the two without one are counted");
        // The profiled ones go on learning and, once learned, answer.
        p.observe(&exes[0], &window(100), 0);
        assert_eq!(p.saturated, 2, "a profiled executable's window is learned, not refused");
        p.by_exe.get_mut(&exes[0]).expect("profile").learn_until = p.now;
        assert!(p.observe(&exes[0], &window(0), 0).is_some());
        assert_eq!(p.observe(&exes[4], &window(0), 0), None, "still none for the fifth");
    }

    #[test]
    fn a_settled_profile_learns_one_window_in_sixteen_until_something_is_new() {
        let exe: Arc<str> = "/usr/bin/x".into();
        let mut p = profiles();
        let mut seed = 0u32;
        while p.by_exe.get(&exe).is_none_or(|e| e.quiet < SETTLED_AFTER) {
            assert_eq!(p.observe(&exe, &window(seed), 0), None);
            seed += 1;
            assert!(seed < 10_000, "never settled");
        }
        let learned = p.by_exe[&exe].profile.len();
        // Settled: windows are skipped, except every 16th, and a skipped one teaches nothing.
        let fresh: Vec<Token> = (0..WINDOW as u16).map(|i| 500 + i).collect();
        for _ in 0..SETTLED_LEARN_EVERY - 1 {
            p.observe(&exe, &fresh, 0);
        }
        assert_eq!(p.by_exe[&exe].profile.len(), learned, "skipped windows are not learned");
        // The 16th is learned; it brings new n-grams, which ends the settling.
        p.observe(&exe, &fresh[1..], 0);
        let e = &p.by_exe[&exe];
        assert!(e.profile.len() > learned);
        assert_eq!(e.quiet, 0);
    }

    #[test]
    fn a_window_the_learned_profile_holds_scores_zero_without_the_model() {
        let exe: Arc<str> = "/usr/bin/x".into();
        let bytes = crate::model::test_models::logistic(&vec![0.0; DIM], 5.0, &[]);
        let model = Model::from_bytes(std::path::Path::new("t.onnx"), &bytes).expect("model");
        let mut scoring = ModelScoring { model, features: vec![0.0; DIM], memo: WindowMemo::new(MEMO_WINDOWS) };
        let (mut p, st) = (profiles(), ScorerStats::default());
        let (mut model_score, mut novelty) = (ProcessScore::default(), ProcessScore::default());
        let mut feed_one = |p: &mut Profiles, w: &[Token]| {
            let scores = Scores { model: &mut model_score, novelty: &mut novelty };
            score_window(&mut scoring, p, scores, &exe, (w, 0), &st);
        };
        let (learned, fresh) = (window(1), (0..WINDOW as u16).map(|i| 500 + i).collect::<Vec<_>>());
        // While the executable learns, the model scores everything.
        feed_one(&mut p, &learned);
        assert_eq!((st.windows.load(Relaxed), st.windows_gated.load(Relaxed)), (1, 0));
        p.now = Instant::now();
        p.by_exe.get_mut(&exe).expect("profile").learn_until = p.now;
        feed_one(&mut p, &learned);
        assert_eq!((st.windows.load(Relaxed), st.windows_gated.load(Relaxed)), (1, 1), "known window gated");
        feed_one(&mut p, &fresh);
        assert_eq!((st.windows.load(Relaxed), st.windows_gated.load(Relaxed)), (2, 1), "novel window scored");
        let s = 1.0 / (1.0 + (-5.0f32).exp());
        assert_eq!(model_score.windows(), 3);
        assert!((model_score.value() - 2.0 * s / 3.0).abs() < 1e-6, "{} vs s, 0, s", model_score.value());
        assert_eq!(novelty.windows(), 2);
        assert!(novelty.value() > 0.0);
    }

    #[test]
    fn windows_fed_in_any_chunking_score_as_the_contract_says() {
        let w: Vec<f32> = (0..DIM).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect();
        let bytes = crate::model::test_models::logistic(&w, 0.1, &[]);
        // 64 + 29 strides: the contract's windows end exactly at the last token (no tail).
        let tokens: Vec<Token> = (0..(WINDOW + 29 * STRIDE) as u32).map(|i| ((i * 37 + i / 7) % 300) as Token).collect();
        let model = Model::from_bytes(std::path::Path::new("t.onnx"), &bytes).expect("model");
        let (windows, want) = crate::model::score_sequence(&model, &tokens).expect("contract");
        assert_eq!(windows.len(), 30);
        let key = ProcessKey { tgid: 7, start_ns: 1 };
        let limits = Thresholds { alert: 2.0, quarantine: 2.0, kill: 2.0 };
        for chunk in [1, 31, 64, 100, tokens.len()] {
            let model = Model::from_bytes(std::path::Path::new("t.onnx"), &bytes).expect("model");
            let mut scoring = ModelScoring { model, features: vec![0.0; DIM], memo: WindowMemo::new(MEMO_WINDOWS) };
            let (mut p, mut live, st) = (profiles(), Default::default(), ScorerStats::default());
            for part in tokens.chunks(chunk) {
                let work = ScoreWork { key, exe: "/bin/x".into(), tokens: part.to_vec() };
                assert!(feed(&mut scoring, &limits, &mut p, &mut live, work, &st).is_none());
            }
            let got = &live[&key];
            assert_eq!((got.score.windows(), got.buf.len()), (30, WINDOW - STRIDE), "chunks of {chunk}");
            assert!((got.score.value() - want).abs() < 1e-6, "chunks of {chunk}: {} vs {want}", got.score.value());
            assert_eq!(got.drained, tokens[tokens.len() - WINDOW..tokens.len() - STRIDE], "chunks of {chunk}");
        }
    }
}
