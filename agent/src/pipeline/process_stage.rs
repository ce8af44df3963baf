//! The stage that owns the process table and the behaviour sequences. Every decoded record
//! passes through here once: it updates the table, becomes tokens in its process's sequence, and
//! (when asked) a JSON line.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use agent_common::{
    CredChangeEvent, EventKind, ExecEvent, SetuidChmodEvent,
    decode::{Event, c_str},
};
use tokio::sync::mpsc;
use tracing::warn;

use super::{
    hasher::{self, ExecName, HashDone, Hasher, Lookup},
    path_call,
    scorer::{ScoreUpdate, ScoreWork, ScorerHandle},
};
use crate::response::Responder;
use crate::{
    output::{Enrichment, EventJson, JsonSink, OutputError},
    policy::SecurityEvent,
    process::{FileIdentity, KeyImage, ProcessKey, ProcessTable},
    reorder::TimeOrder,
    sensors::EventBatch,
    sequence::{BehaviourSequences, Token, token_name, tokens_of},
};

pub struct ProcessStage {
    pub table: ProcessTable,
    pub sequences: BehaviourSequences,
    order: TimeOrder,
    sink: Option<JsonSink>,
    proc_root: PathBuf,
    hasher: Hasher,
    pub hashed: mpsc::Receiver<HashDone>,
    pub hash_requests_dropped: u64,
    /// Exec images answered from the kernel's identity, and opened through /proc.
    pub images_known: u64,
    pub images_opened: u64,
    pub events_handled: u64,
    scorer: Option<ScorerHandle>,
    /// Tokens for the scorer, handed over at most every [`SCORE_HANDOFF`] (or when
    /// [`SCORE_HANDOFF_TOKENS`] wait): every handover wakes the scorer's thread, and on an
    /// exec-heavy host the feed delivers a batch per exec.
    score_work: Vec<ScoreWork>,
    score_tokens: usize,
    score_since: Option<Instant>,
    /// Last `malloc_trim`.
    trimmed: Instant,
    /// Policy decisions; `None` when the daemon runs without a response stage.
    pub responder: Option<Responder>,
}

/// How often freed memory is handed back to the kernel.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Longest a token waits before the scorer gets it.
pub const SCORE_HANDOFF: Duration = Duration::from_millis(5);
const SCORE_HANDOFF_TOKENS: usize = 16_384;

impl ProcessStage {
    pub fn new(
        table: ProcessTable,
        sequences: BehaviourSequences,
        sink: Option<JsonSink>,
        proc_root: PathBuf,
        scorer: Option<ScorerHandle>,
    ) -> Self {
        let (hasher, hashed) = hasher::spawn();
        Self {
            table,
            sequences,
            order: TimeOrder::default(),
            sink,
            proc_root,
            hasher,
            hashed,
            hash_requests_dropped: 0,
            images_known: 0,
            images_opened: 0,
            events_handled: 0,
            scorer,
            score_work: Vec::new(),
            score_tokens: 0,
            score_since: None,
            trimmed: Instant::now(),
            responder: None,
        }
    }

    pub fn set_responder(&mut self, mut responder: Responder) {
        responder.seed(&self.table);
        self.responder = Some(responder);
    }

    pub async fn handle(&mut self, batch: EventBatch) -> Result<(), OutputError> {
        let now = Instant::now();
        let mut json = String::new();
        for event in &batch {
            self.apply(event, now);
            if self.sink.is_some() {
                let line = EventJson::new(event, self.enrichment(event));
                match serde_json::to_string(&line) {
                    Ok(s) => {
                        json.push_str(&s);
                        json.push('\n');
                    }
                    Err(e) => warn!("event not serializable: {e}"),
                }
            }
        }
        self.events_handled += batch.len() as u64;
        if let Some(sink) = &self.sink
            && !json.is_empty()
        {
            sink.send(json).await?;
        }
        Ok(())
    }

    /// The digest (now, or later from the hasher) and running path of an exec's image.
    fn exec_image(&mut self, key: ProcessKey, execs: u32, e: &ExecEvent) -> (Option<String>, Option<HashDone>) {
        let exec = FileIdentity::of_image(&e.image).map(|id| ExecName {
            id,
            filename: e.filename[..usize::from(e.filename_len).min(e.filename.len())].into(),
        });
        // This image was exec'd by this path before: nothing to open.
        if let Some(known) = exec.as_ref().and_then(|x| self.hasher.lookup_exec(x)) {
            self.images_known += 1;
            return (known.running, Some(HashDone { key, execs, sha256: known.sha256 }));
        }
        self.images_opened += 1;
        match KeyImage::open(&self.proc_root, &key) {
            Ok(image) => {
                let running = image.running.clone();
                let done = match self.hasher.lookup(key, execs, image, exec) {
                    // Applied once the responder has seen the exec, as a hasher answer would be.
                    Lookup::Cached(sha256) => Some(HashDone { key, execs, sha256 }),
                    Lookup::Queued => None,
                    Lookup::Dropped => {
                        self.hash_requests_dropped += 1;
                        None
                    }
                };
                (running, done)
            }
            // Short-lived processes are often gone before we get to them; an image that cannot
            // be opened may still name itself to the responder, and a memfd image is named by
            // the kernel (a payload that runs for a millisecond is still fileless).
            Err(err) => {
                tracing::debug!(pid = key.tgid, "exe not hashed: {err}");
                let running = (!err.is_vanished())
                    .then(|| std::fs::read_link(self.proc_root.join(key.tgid.to_string()).join("exe")).ok())
                    .flatten()
                    .map(|p| p.to_string_lossy().into_owned())
                    .or_else(|| e.memfd_image());
                (running, None)
            }
        }
    }

    fn apply(&mut self, event: &Event, now: Instant) {
        let key = ProcessKey::from_event_header(event.header());
        let mut hashed_now = None;
        let mut running = None;
        match event {
            Event::Exec(e) => {
                let execs = self.table.on_exec(e, now).execs;
                (running, hashed_now) = self.exec_image(key, execs, e);
                if let Some(r) = running.as_deref() {
                    self.table.resolve_relative_exe(&key, execs, r);
                }
            }
            Event::Fork(f) => {
                self.table.on_fork(f, now);
            }
            Event::Exit(x) => {
                self.table.on_exit(x, now);
            }
            Event::SyscallBatch(_) => {
                // An unknown process is filled in at release, not here: its fork record is in
                // the other ring and may simply not have been read yet (measured under exec
                // load: ~5% of short-lived children, each costing a /proc read that mostly
                // found the process gone and left a retired entry ahead of its own fork).
                self.table.touch(&key, now);
            }
            // Security records are rare and decided on right away: a process the table lacks
            // is looked up in /proc now, so rules see its executable.
            Event::Net(_)
            | Event::CredChange(_)
            | Event::Ptrace(_)
            | Event::Memfd(_)
            | Event::ModuleLoad(_)
            | Event::BpfProgLoad(_)
            | Event::File(_)
            | Event::PathChange(_)
            | Event::SetuidChmod(_)
            | Event::PathCall(_)
            | Event::Preload(_)
            | Event::RawSocket(_)
            | Event::FileChurn(_) => {
                self.table.ensure(key, &self.proc_root, now);
            }
            Event::ProbeError(_) => {}
        }
        if let Some(r) = self.responder.as_mut() {
            let (table, seqs) = (&self.table, &self.sequences);
            match event {
                Event::Exec(e) => r.on_exec(table, seqs, key, e, running.take()),
                Event::Net(n) => r.on_net(table, seqs, key, n),
                Event::Exit(_) => r.on_exit(key),
                Event::File(f) => r.on_file_open(table, seqs, key, f),
                Event::PathChange(c) => r.on_path_change(table, seqs, key, c),
                Event::FileChurn(c) => r.on_churn(table, seqs, key, c),
                Event::Ptrace(p) if p.header.kind == EventKind::MemoryWrite as u16 => {
                    r.on_memory_write(table, seqs, key, p);
                }
                Event::Ptrace(p) if p.header.kind == EventKind::MemoryRead as u16 => {
                    r.on_memory_read(table, seqs, key, p);
                }
                Event::Ptrace(p) if p.header.kind == EventKind::GuardedSignal as u16 => {
                    r.on_guarded_signal(table, seqs, key, p);
                }
                // A refused chmod changed nothing; its call is still in the batch.
                Event::SetuidChmod(c) if c.ret == 0 => {
                    let detail = setuid_chmod_detail(c, &self.proc_root, key.tgid);
                    r.on_security_event(table, seqs, key, SecurityEvent::SetuidBit, detail);
                }
                Event::PathCall(c) => {
                    if let Some((event, detail)) = path_call::security_event(c, &self.proc_root, key.tgid) {
                        r.on_security_event(table, seqs, key, event, detail);
                    }
                }
                Event::Preload(p) => r.on_preload(table, seqs, key, p),
                other => {
                    if let Some((event, detail)) = security_event(other) {
                        if let Event::BpfProgLoad(b) = other
                            && let Some(hook) = bpf_hook_type(b.prog_type)
                        {
                            let detail = format!("{detail}: a {hook} program");
                            r.on_security_event(table, seqs, key, SecurityEvent::BpfHookLoad, detail);
                        }
                        r.on_security_event(table, seqs, key, event, detail);
                    }
                }
            }
        }
        if let Some(done) = hashed_now {
            self.apply_hash(done);
        }
        // Tokens wait in kernel-time order until both rings have been read past them.
        let out_of_vocab = self.sequences.out_of_vocab_counter();
        self.order
            .push(key, event.header().ktime_ns, tokens_of(event, out_of_vocab));
    }

    /// Moves every token the feed has delivered up to `watermark` into the sequences, and on
    /// to the scorer.
    pub fn release(&mut self, watermark: u64) {
        let sequences = &mut self.sequences;
        let table = &mut self.table;
        let proc_root = &self.proc_root;
        let work = &mut self.score_work;
        let mut added = 0;
        let scoring = self.scorer.is_some();
        let now = Instant::now();
        let mut last_key = None;
        self.order.release(watermark, |key, tokens| {
            // Both rings have been read past these tokens, so a process still unknown here
            // started before seeding or was evicted: only now is /proc worth asking.
            if last_key != Some(key) {
                last_key = Some(key);
                if table.get_key(&key).is_none() {
                    table.ensure(key, proc_root, now);
                }
            }
            sequences.push_tokens(key, tokens);
            if scoring {
                added += tokens.len();
                match work.last_mut() {
                    Some(w) if w.key == key => w.tokens.extend_from_slice(tokens),
                    _ => {
                        let exe: Arc<str> =
                            table.get_key(&key).map_or_else(|| "".into(), |p| Arc::clone(&p.exe));
                        work.push(ScoreWork {
                            key,
                            exe,
                            tokens: tokens.to_vec(),
                        });
                    }
                }
            }
        });
        if added > 0 {
            self.score_tokens += added;
            self.score_since.get_or_insert_with(Instant::now);
        }
        if self.score_tokens >= SCORE_HANDOFF_TOKENS || watermark == u64::MAX {
            self.hand_over_scores();
        }
    }

    /// When the tokens waiting for the scorer must be handed over, if any wait.
    pub fn score_handoff_at(&self) -> Option<Instant> {
        self.score_since.map(|t| t + SCORE_HANDOFF)
    }

    pub fn hand_over_scores(&mut self) {
        self.score_since = None;
        self.score_tokens = 0;
        let work = std::mem::take(&mut self.score_work);
        if let Some(scorer) = &self.scorer {
            scorer.submit(work);
        }
    }

    /// A process whose verdict rose: into the event stream, with what the table knows of it.
    pub async fn report_score(&mut self, update: ScoreUpdate) -> Result<(), OutputError> {
        if let Some(r) = self.responder.as_mut() {
            r.on_score(&self.table, &self.sequences, &update);
        }
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let key = ProcessKey::new(update.pid, update.start_ns);
        let exe = self
            .table
            .get_key(&key)
            .map(|p| p.exe.to_string())
            .unwrap_or_default();
        let line = serde_json::json!({
            "type": "score",
            "pid": update.pid,
            "start_ns": update.start_ns,
            "exe": exe,
            "score": update.score,
            "windows": update.windows,
            "verdict": update.verdict,
            "novelty": update.novelty,
        });
        sink.send(format!("{line}\n")).await
    }

    fn enrichment(&self, event: &Event) -> Enrichment {
        let key = ProcessKey::from_event_header(event.header());
        match self.table.get_key(&key) {
            Some(p) => Enrichment {
                exe: (!p.exe.is_empty()).then(|| p.exe.to_string()),
                ppid: Some(p.ppid),
            },
            None => Enrichment::default(),
        }
    }

    pub fn apply_hash(&mut self, done: HashDone) {
        if self
            .table
            .set_exe_sha256(&done.key, done.execs, &done.sha256)
            && let Some(r) = self.responder.as_mut()
        {
            r.on_hash(&self.table, &self.sequences, done.key);
        }
    }

    /// Periodic upkeep: bound the table, forget sequences of processes it forgot, and look for
    /// programs running from deleted files.
    pub fn housekeeping(&mut self) {
        let now = Instant::now();
        self.table.evict_expired(now);
        let table = &self.table;
        self.sequences.retain(|key| table.get_key(key).is_some());
        if let Some(r) = self.responder.as_mut() {
            r.sweep_deleted_images(&self.table, &self.sequences, &self.proc_root, now);
        }
        if now.duration_since(self.trimmed) >= TRIM_EVERY {
            self.trimmed = now;
            // After a burst, the stages' threads leave freed memory in their malloc arenas,
            // which glibc keeps (it trims only the main heap's top on its own).
            // SAFETY: malloc_trim only releases free memory; it has no preconditions.
            unsafe { libc::malloc_trim(0) };
        }
    }

    pub async fn close(self) -> Result<(), OutputError> {
        match self.sink {
            Some(sink) => sink.close().await,
            None => Ok(()),
        }
    }
}

/// A one-line summary of the stage, for debug logs.
pub fn describe(stage: &ProcessStage) -> String {
    format!(
        "{} processes ({} running), {} sequences, {} events handled",
        stage.table.len(),
        stage.table.running(),
        stage.sequences.len(),
        stage.events_handled
    )
}

/// The `rule.event` event a record is, with what an operator reads about it.
/// What a BPF program of `prog_type` hooks, when it hooks the kernel's code or packets (the
/// uapi's `enum bpf_prog_type`); `None` for socket filters, cgroup programs (systemd's, runc's),
/// sched_ext's struct_ops and the rest.
fn bpf_hook_type(prog_type: u32) -> Option<&'static str> {
    Some(match prog_type {
        2 => "kprobe",
        3 => "tc classifier",
        4 => "tc action",
        5 => "tracepoint",
        6 => "XDP",
        7 => "perf event",
        17 => "raw tracepoint",
        24 => "writable raw tracepoint",
        26 => "tracing (fentry/fexit)",
        28 => "freplace",
        29 => "LSM",
        _ => return None,
    })
}

fn security_event(ev: &Event) -> Option<(SecurityEvent, String)> {
    Some(match ev {
        Event::Ptrace(p)
            if p.header.kind == EventKind::Ptrace as u16
                && matches!(p.request, PTRACE_ATTACH | PTRACE_SEIZE) =>
        {
            let request = if p.request == PTRACE_ATTACH { "PTRACE_ATTACH" } else { "PTRACE_SEIZE" };
            (
                SecurityEvent::PtraceAttach,
                format!("ptrace {request} of pid {} (result {})", p.target_pid, p.ret),
            )
        }
        Event::ModuleLoad(m) => {
            let call = token_name(m.syscall_nr as Token);
            let what = if m.fd >= 0 {
                format!("fd {}", m.fd)
            } else {
                format!("{} bytes", m.len)
            };
            (SecurityEvent::ModuleLoad, format!("{call} of {what} (result {})", m.ret))
        }
        Event::BpfProgLoad(b) => (
            SecurityEvent::BpfProgLoad,
            format!(
                "BPF_PROG_LOAD of `{}`, type {}, {} instructions (result {})",
                c_str(&b.prog_name, b.prog_name.len()),
                b.prog_type,
                b.insn_cnt,
                b.ret
            ),
        ),
        Event::Memfd(m) => (
            SecurityEvent::MemfdCreate,
            format!(
                "memfd_create `{}` (result {})",
                c_str(&m.name, m.name.len()),
                m.ret
            ),
        ),
        Event::CredChange(c) if gained_root(c) => (
            SecurityEvent::GainedRoot,
            format!(
                "{} by uid {} (euid {}, saved {}) to euid 0 (result {})",
                token_name(c.syscall_nr as Token),
                c.before.uid,
                c.before.euid,
                c.before.suid,
                c.ret
            ),
        ),
        Event::CredChange(c) if denied_root(c) => (
            SecurityEvent::RootDenied,
            format!(
                "{}({}) by uid {} (euid {}, gid {}, egid {}) refused (result {})",
                token_name(c.syscall_nr as Token),
                c.requested[..asked_ids(c.syscall_nr)]
                    .iter()
                    .map(|&id| (id as i32).to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                c.before.uid,
                c.before.euid,
                c.before.gid,
                c.before.egid,
                c.ret
            ),
        ),
        Event::RawSocket(s) => (
            SecurityEvent::RawSocket,
            format!(
                "{} socket, type {:#x}, protocol {} (fd {})",
                s.family_name(),
                s.sock_type,
                s.protocol,
                s.ret
            ),
        ),
        _ => return None,
    })
}

/// What a setuid chmod did, with the file named as fully as /proc still allows: fchmod's fd
/// and a relative path's base directory are read from the process, which may be gone.
fn setuid_chmod_detail(c: &SetuidChmodEvent, proc_root: &Path, tgid: u32) -> String {
    let file = path_call::name_path(proc_root, tgid, c.fd, &c.path());
    format!(
        "{} {:o} of {} (result {})",
        token_name(c.syscall_nr as Token),
        c.mode,
        file.text(),
        c.ret
    )
}

/// ptrace(2) requests that take hold of another process.
const PTRACE_ATTACH: i64 = 16;
const PTRACE_SEIZE: i64 = 0x4206;

/// A process that held root in none of its user ids and now runs as root: what an exploit or a
/// capability grant does. A setuid-root program taking root back from its saved set-user-ID
/// (sudo, su, passwd between their privilege drops) is not this: it held root all along. Ids
/// the kernel never recorded (a thread older than vigil that the seed missed) decide nothing;
/// the kernel counts those calls (`cred_change_before_unknown`).
fn gained_root(c: &CredChangeEvent) -> bool {
    let b = &c.before;
    c.ret == 0 && c.after.euid == 0 && b.is_known() && b.uid != 0 && b.euid != 0 && b.suid != 0
}

/// A process that holds root in none of its ids (of the kind it asked for) asked for root and
/// was refused: an exploit or a script trying what it may do. Programs dropping privileges ask
/// for their own ids, never 0; sudo and su run from setuid-root images, so theirs succeed.
/// setfsuid and setfsgid never fail (they return the previous id).
fn denied_root(c: &CredChangeEvent) -> bool {
    use agent_common::syscall_nr as nr;
    let b = &c.before;
    let held = match c.syscall_nr {
        nr::SETUID | nr::SETREUID | nr::SETRESUID => [b.uid, b.euid, b.suid],
        nr::SETGID | nr::SETREGID | nr::SETRESGID => [b.gid, b.egid, b.sgid],
        _ => return false,
    };
    c.ret < 0 && !held.contains(&0) && c.requested[..asked_ids(c.syscall_nr)].contains(&0)
}

/// How many ids a setuid-family call takes (-1, "unchanged", is never 0).
fn asked_ids(syscall_nr: u32) -> usize {
    use agent_common::syscall_nr as nr;
    match syscall_nr {
        nr::SETREUID | nr::SETREGID => 2,
        nr::SETRESUID | nr::SETRESGID => 3,
        _ => 1,
    }
}

#[cfg(test)]
#[path = "process_stage_tests.rs"]
mod tests;
