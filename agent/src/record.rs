//! `vigil record`: the token sequences the scorer would see, for one command's process tree (or
//! the whole host for a duration), written as a labelled dataset for training and evaluation.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    process::ExitStatus,
    time::{Duration, Instant},
};

use agent_common::decode::Event;
use thiserror::Error;
use tokio::{process::Command, time::sleep_until};
use tracing::{info, warn};

use crate::{
    dataset::{Dataset, DatasetError, Label, RecordedProcess},
    pipeline::{DaemonError, SensorFeed},
    process::{ProcessError, ProcessKey, ProcessTable, TableConfig},
    reorder::TimeOrder,
    sequence::tokens_of,
};

#[derive(Clone, Debug)]
pub struct RecordConfig {
    pub out: PathBuf,
    pub label: Label,
    pub family: String,
    pub scenario: String,
    /// Record this command's process tree; empty: record the whole host for `duration`.
    pub command: Vec<String>,
    pub duration: Option<Duration>,
    /// Kill the command's process group if it runs longer than this.
    pub timeout: Duration,
    /// Tokens kept per process.
    pub max_tokens: usize,
    pub batch_max_age: Duration,
}

#[derive(Debug)]
pub struct RecordSummary {
    pub processes: usize,
    pub tokens: usize,
    /// Batch ids dropped because no token stands for them.
    pub out_of_vocab: u64,
    pub command_status: Option<ExitStatus>,
    pub timed_out: bool,
}

#[derive(Debug, Error)]
pub enum RecordError {
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("seeding the process table: {0}")]
    Seed(#[from] ProcessError),
    #[error("starting `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nothing to record: give a command or --duration")]
    NothingToRecord,
    #[error("the command's own process never showed up in the sensor feed")]
    RootNotSeen,
}

/// After the command exits, how long descendants' last records may still arrive.
const LINGER: Duration = Duration::from_millis(500);

/// Everything seen while recording; the recorded tree is resolved at the end.
#[derive(Default)]
struct Capture {
    /// Tokens in kernel-time order across both rings, exactly as the daemon orders them.
    order: TimeOrder,
    tokens: HashMap<ProcessKey, (Vec<u16>, bool)>,
    /// Keys in order of first appearance, so the dataset lists parents before children.
    seen: Vec<ProcessKey>,
    forks: Vec<(ProcessKey, ProcessKey)>,
    /// Batch ids no token stands for (`sequence::tokens_of`).
    out_of_vocab: u64,
}

impl Capture {
    fn apply(&mut self, ev: &Event, table: &mut ProcessTable) {
        let key = ProcessKey::from_event_header(ev.header());
        let now = Instant::now();
        match ev {
            Event::Exec(e) => {
                table.on_exec(e, now);
            }
            Event::Fork(f) => {
                table.on_fork(f, now);
                if f.child_pid == f.child_tgid {
                    self.forks.push((key, ProcessKey::new(f.child_tgid, f.child_start_ns)));
                }
            }
            Event::Exit(x) => {
                table.on_exit(x, now);
            }
            _ => {}
        }
        if !self.tokens.contains_key(&key) {
            self.seen.push(key);
            self.tokens.insert(key, (Vec::new(), false));
        }
        self.order.push(key, ev.header().ktime_ns, tokens_of(ev, &mut self.out_of_vocab));
    }

    /// Appends every token released up to `watermark`, keeping at most `max_tokens` a process.
    fn release(&mut self, watermark: u64, max_tokens: usize) {
        let tokens = &mut self.tokens;
        self.order.release(watermark, |key, chunk| {
            let (kept, truncated) = tokens.entry(key).or_default();
            let room = max_tokens.saturating_sub(kept.len());
            kept.extend(chunk.iter().take(room));
            *truncated |= chunk.len() > room;
        });
    }

    /// `root` and everything it forked, transitively.
    fn tree(&self, root: ProcessKey) -> HashSet<ProcessKey> {
        let mut members = HashSet::from([root]);
        // Forks arrive parent-before-child, so a pass in order usually suffices; repeat until
        // stable for the rare out-of-order case.
        loop {
            let before = members.len();
            for (parent, child) in &self.forks {
                if members.contains(parent) {
                    members.insert(*child);
                }
            }
            if members.len() == before {
                return members;
            }
        }
    }
}

pub async fn record(cfg: RecordConfig) -> Result<RecordSummary, RecordError> {
    if cfg.command.is_empty() && cfg.duration.is_none() {
        return Err(RecordError::NothingToRecord);
    }
    // Datasets keep the classes: a model of either vocabulary trains on them.
    let mut feed = SensorFeed::start(cfg.batch_max_age, &[], true)?;
    let mut table = ProcessTable::new(TableConfig::default());
    table.seed_from_proc(std::path::Path::new("/proc"))?;
    let mut capture = Capture::default();

    let started = tokio::time::Instant::now();
    let mut child = match cfg.command.split_first() {
        Some((program, args)) => Some(
            Command::new(program)
                .args(args)
                // Its own process group, so a timeout can stop the whole tree.
                .process_group(0)
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|source| RecordError::Spawn { command: cfg.command.join(" "), source })?,
        ),
        None => None,
    };
    let root_pid = child.as_ref().and_then(tokio::process::Child::id);
    info!(command = ?cfg.command, pid = ?root_pid, "recording");

    let mut end = cfg.duration.map(|d| started + d);
    let timeout_at = started + cfg.timeout;
    let mut command_status = None;
    let mut timed_out = false;
    let has_child = child.is_some();
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let wait_child = async {
            match child.as_mut() {
                Some(c) if command_status.is_none() => c.wait().await.ok(),
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(batch) = feed.next() => {
                for ev in &batch {
                    capture.apply(ev, &mut table);
                }
                if let Some(watermark) = feed.watermark() {
                    capture.release(watermark, cfg.max_tokens);
                }
            }
            status = wait_child => {
                command_status = status;
                end = Some(tokio::time::Instant::now() + LINGER);
            }
            () = sleep_until(end.unwrap_or(timeout_at + Duration::from_secs(3600))), if end.is_some() => break,
            () = sleep_until(timeout_at), if has_child && !timed_out && command_status.is_none() => {
                warn!("command ran past {:?}; killing its process group", cfg.timeout);
                if let Some(pid) = root_pid {
                    // SAFETY: signalling the process group we created.
                    unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                }
                timed_out = true;
            }
            _ = &mut interrupted => {
                warn!("interrupted; writing what was recorded so far");
                break;
            }
        }
    }
    feed.detach();
    while let Some(batch) = feed.next().await {
        for ev in &batch {
            capture.apply(ev, &mut table);
        }
    }
    capture.release(u64::MAX, cfg.max_tokens);
    let kernel = feed.kernel.release.clone();
    feed.join().await;

    let members: Option<HashSet<ProcessKey>> = match root_pid {
        Some(pid) => {
            let root = capture.seen.iter().find(|k| k.tgid == pid).copied().ok_or(RecordError::RootNotSeen)?;
            Some(capture.tree(root))
        }
        None => None,
    };
    let processes: Vec<RecordedProcess> = capture
        .seen
        .iter()
        .filter(|k| members.as_ref().is_none_or(|m| m.contains(k)))
        .filter_map(|key| {
            let (tokens, truncated) = capture.tokens.get(key)?;
            let info = table.get_key(key);
            Some(RecordedProcess {
                pid: key.tgid,
                start_ns: key.start_ns,
                ppid: info.map_or(0, |i| i.ppid),
                exe: info.map(|i| i.exe.to_string()).unwrap_or_default(),
                argv: info.map(|i| i.cmdline.to_vec()).unwrap_or_default(),
                uid: info.map_or(u32::MAX, |i| i.uid),
                label: cfg.label,
                family: cfg.family.clone(),
                scenario: cfg.scenario.clone(),
                tokens: tokens.clone(),
                truncated: *truncated,
            })
        })
        .filter(|p| !p.tokens.is_empty())
        .collect();
    let summary = RecordSummary {
        processes: processes.len(),
        tokens: processes.iter().map(|p| p.tokens.len()).sum(),
        out_of_vocab: capture.out_of_vocab,
        command_status,
        timed_out,
    };
    Dataset::new(&kernel, cfg.command.clone(), processes).write(&cfg.out)?;
    info!(processes = summary.processes, tokens = summary.tokens, out = %cfg.out.display(), "dataset written");
    Ok(summary)
}
