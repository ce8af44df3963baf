//! Behaviour sequences: per process, the recent stream of syscall ids and lifecycle/security
//! events as tokens of one vocabulary, for the scorer. Each process keeps a bounded window;
//! older tokens are overwritten, which is the window sliding, not events being lost.

use std::borrow::Cow;
use std::collections::VecDeque;

use foldhash::HashMap;

use agent_common::EventKind;
use agent_common::SyscallBatch;
use agent_common::decode::Event;
use tracing::debug;

use crate::process::ProcessKey;

pub type Token = u16;

/// The token vocabulary. Changing a value or the size changes what a trained model means, so
/// it is versioned with [`token::VOCAB_VERSION`] (`models/FEATURES.md`, "Tokens").
pub mod token {
    use super::Token;
    use agent_common::call_class;

    /// Tokens `0..=SYSCALL_MAX` are x86-64 syscall numbers of calls without a class.
    pub const SYSCALL_MAX: Token = 511;
    pub const EXEC: Token = 512;
    pub const FORK: Token = 513;
    pub const EXIT: Token = 514;
    pub const CONNECT: Token = 515;
    pub const ACCEPT: Token = 516;
    pub const BIND: Token = 517;
    pub const LISTEN: Token = 518;
    pub const CRED_CHANGE: Token = 519;
    pub const PTRACE: Token = 520;
    pub const MEMFD_CREATE: Token = 521;
    pub const MODULE_LOAD: Token = 522;
    pub const BPF_PROG_LOAD: Token = 523;
    /// Syscall `nr` of class `c` (`agent_common::call_class`, 1..=15) is `CLASS_BASE * (c + 1)
    /// + nr`: classes start above the events, one block of 512 each.
    pub const CLASS_BASE: Token = 512;
    pub const VOCAB_SIZE: usize = CLASS_BASE as usize * (call_class::COUNT as usize + 2);
    pub const VOCAB_VERSION: u32 = 2;
    /// Vocabulary 1: numbers and events, no classes (a model trained on it is fed
    /// [`project`]ed tokens).
    pub const VOCAB_V1_SIZE: usize = 524;

    /// Event tokens in value order, with names that cannot collide with a syscall's (`fork` is
    /// also syscall 57).
    pub(super) const EVENT_NAMES: [&str; (BPF_PROG_LOAD - EXEC + 1) as usize] = [
        "<exec>",
        "<fork>",
        "<exit>",
        "<connect>",
        "<accept>",
        "<bind>",
        "<listen>",
        "<cred_change>",
        "<ptrace>",
        "<memfd_create>",
        "<module_load>",
        "<bpf_prog_load>",
    ];

    /// The token of a batch id (number and class, `call_class::batch_id`); `None` for a class
    /// no vocabulary has.
    #[inline]
    pub fn of_batch_id(id: u16) -> Option<Token> {
        let (nr, class) = call_class::split(id);
        match class {
            0 => Some(nr),
            c if c <= call_class::COUNT => Some(CLASS_BASE * (c + 1) + nr),
            _ => None,
        }
    }

    /// (syscall number, class) of a syscall token; `None` for event tokens and beyond the
    /// vocabulary.
    pub fn split(t: Token) -> Option<(Token, u16)> {
        match t {
            0..=SYSCALL_MAX => Some((t, 0)),
            _ if t < 2 * CLASS_BASE || usize::from(t) >= VOCAB_SIZE => None,
            _ => Some((t % CLASS_BASE, t / CLASS_BASE - 1)),
        }
    }

    /// The token in vocabulary `version`: the same for 2, the class dropped for 1.
    #[inline]
    pub fn project(t: Token, version: u32) -> Token {
        if version == 1 && t >= 2 * CLASS_BASE {
            t % CLASS_BASE
        } else {
            t
        }
    }
}

/// Readable name of a token: the syscall's name (with its class after a colon), an event name
/// in angle brackets, or a placeholder for numbers without one.
pub fn token_name(t: Token) -> Cow<'static, str> {
    if let Some((nr, class)) = token::split(t) {
        let name = match syscalls::Sysno::new(usize::from(nr)) {
            Some(s) => Cow::Borrowed(s.name()),
            None => Cow::Owned(format!("<syscall_{nr}>")),
        };
        return match class {
            0 => name,
            c => Cow::Owned(format!(
                "{name}:{}",
                agent_common::call_class::NAMES[usize::from(c) - 1]
            )),
        };
    }
    match t
        .checked_sub(token::EXEC)
        .and_then(|i| token::EVENT_NAMES.get(usize::from(i)))
    {
        Some(n) => Cow::Borrowed(n),
        None => Cow::Owned(format!("<unknown_{t}>")),
    }
}

/// The token for a non-batch event; `None` for syscall batches (see [`tokens_of`]), probe
/// errors, and new threads (a thread's `clone` is already in its batch, and thread pools would
/// otherwise flood the window).
pub fn event_token(ev: &Event) -> Option<Token> {
    Some(match ev {
        Event::Exec(_) => token::EXEC,
        Event::Fork(f) if f.child_pid == f.child_tgid => token::FORK,
        Event::Fork(_) => return None,
        Event::Exit(_) => token::EXIT,
        Event::SyscallBatch(_) => return None,
        Event::Net(n) => match EventKind::from_u16(n.header.kind)? {
            EventKind::Connect => token::CONNECT,
            EventKind::Accept => token::ACCEPT,
            EventKind::Bind => token::BIND,
            EventKind::Listen => token::LISTEN,
            _ => return None,
        },
        Event::CredChange(_) => token::CRED_CHANGE,
        // A memory write or read without ptrace is in the batch already, as the call it is
        // (process_vm_writev or _readv, or the open of /proc/PID/mem or environ).
        Event::Ptrace(p) if p.header.kind == EventKind::Ptrace as u16 => token::PTRACE,
        Event::Ptrace(_) => return None,
        Event::Memfd(_) => token::MEMFD_CREATE,
        Event::ModuleLoad(_) => token::MODULE_LOAD,
        Event::BpfProgLoad(_) => token::BPF_PROG_LOAD,
        // Which file was opened or chmod'ed is a policy matter; the call itself is in the batch.
        Event::ProbeError(_)
        | Event::File(_)
        | Event::PathChange(_)
        | Event::SetuidChmod(_)
        | Event::PathCall(_)
        | Event::Preload(_)
        | Event::RawSocket(_)
        | Event::FileChurn(_) => return None,
    })
}

/// Every token an event contributes to its process's sequence, in order: a batch's calls, or
/// the event's own token. Batch ids no vocabulary has are skipped and counted in
/// `out_of_vocab`.
pub fn tokens_of<'a>(ev: &'a Event, out_of_vocab: &'a mut u64) -> impl Iterator<Item = Token> + 'a {
    let batch: &[u16] = match ev {
        Event::SyscallBatch(b) => b.ids(),
        _ => &[],
    };
    batch
        .iter()
        .filter_map(|&id| {
            let t = token::of_batch_id(id);
            *out_of_vocab += u64::from(t.is_none());
            t
        })
        .chain(event_token(ev))
}

#[derive(Clone, Debug)]
pub struct SequenceConfig {
    /// Tokens kept per process.
    pub per_process: usize,
    /// Processes tracked; beyond it the least recently active are dropped.
    pub max_processes: usize,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        // Incidents carry a process's last 256 tokens as evidence; the scorer keeps its own
        // windows. A deeper ring only costs memory (2 bytes a token, per live process).
        Self {
            per_process: 1024,
            max_processes: 65_536,
        }
    }
}

#[derive(Debug, Default)]
struct Ring {
    /// Grows on demand up to `per_process`, so quiet processes cost little.
    tokens: VecDeque<Token>,
    /// Tokens ever pushed.
    total: u64,
    /// `total` at the last `take_new`.
    taken: u64,
    /// Value of the owner's push clock at the last push; orders processes for eviction.
    last_push: u64,
}

#[derive(Debug)]
pub struct BehaviourSequences {
    config: SequenceConfig,
    rings: HashMap<ProcessKey, Ring>,
    clock: u64,
    overwritten: u64,
    untaken_overwritten: u64,
    out_of_vocab: u64,
    evicted_processes: u64,
}

impl BehaviourSequences {
    pub fn new(config: SequenceConfig) -> Self {
        let config = SequenceConfig {
            per_process: config.per_process.max(1),
            max_processes: config.max_processes.max(1),
        };
        Self {
            config,
            rings: HashMap::default(),
            clock: 0,
            overwritten: 0,
            untaken_overwritten: 0,
            out_of_vocab: 0,
            evicted_processes: 0,
        }
    }

    /// Appends a batch's calls in order; ids no vocabulary has are dropped and counted in
    /// [`Self::out_of_vocab`].
    pub fn push_batch(&mut self, key: ProcessKey, batch: &SyscallBatch) {
        let mut ids = [0; agent_common::BATCH_LEN];
        let mut n = 0;
        for &id in batch.ids() {
            if let Some(t) = token::of_batch_id(id) {
                ids[n] = t;
                n += 1;
            } else {
                self.out_of_vocab += 1;
            }
        }
        self.push_tokens(key, &ids[..n]);
    }

    pub fn push_token(&mut self, key: ProcessKey, t: Token) {
        self.push_tokens(key, &[t]);
    }

    /// Appends tokens of one process in order, with one lookup for all of them.
    pub fn push_tokens(&mut self, key: ProcessKey, tokens: &[Token]) {
        if tokens.is_empty() {
            return;
        }
        if !self.rings.contains_key(&key) && self.rings.len() >= self.config.max_processes {
            self.evict_least_recent();
        }
        self.clock += 1;
        let cap = self.config.per_process;
        let ring = self.rings.entry(key).or_default();
        // In bulk, not token by token (a busy process's ring is always full, and this runs for
        // every syscall on the host): the ring keeps the last `cap` of its tokens followed by
        // these, and the ones before them in the stream are overwritten.
        let held = ring.tokens.len();
        let n = tokens.len();
        let overwritten = (held + n).saturating_sub(cap);
        if overwritten > 0 {
            // Stream positions [first, first + overwritten) go; the untaken ones among them
            // were never handed to the scorer: for it, those are a real gap.
            let first = ring.total - held as u64;
            let gone_end = first + overwritten as u64;
            self.overwritten += overwritten as u64;
            self.untaken_overwritten += gone_end.saturating_sub(ring.taken.max(first));
            ring.tokens.drain(..overwritten.min(held));
        }
        ring.tokens.extend(&tokens[n - (n.min(cap))..]);
        ring.total += n as u64;
        ring.last_push = self.clock;
    }

    /// The last `n` tokens (fewer if the window holds fewer), oldest first.
    pub fn recent(&self, key: &ProcessKey, n: usize) -> Vec<Token> {
        self.rings.get(key).map_or_else(Vec::new, |r| {
            r.tokens
                .iter()
                .skip(r.tokens.len().saturating_sub(n))
                .copied()
                .collect()
        })
    }

    /// Tokens pushed since the previous call for this process, oldest first; those already
    /// overwritten are gone (counted in [`Self::untaken_overwritten`]).
    pub fn take_new(&mut self, key: &ProcessKey) -> Vec<Token> {
        let Some(r) = self.rings.get_mut(key) else {
            return Vec::new();
        };
        let new = usize::try_from(r.total - r.taken).unwrap_or(usize::MAX);
        r.taken = r.total;
        r.tokens
            .iter()
            .skip(r.tokens.len().saturating_sub(new))
            .copied()
            .collect()
    }

    /// Tokens ever pushed for the process.
    pub fn total_tokens(&self, key: &ProcessKey) -> u64 {
        self.rings.get(key).map_or(0, |r| r.total)
    }

    /// Forgets the process; returns whether it was tracked.
    pub fn remove(&mut self, key: &ProcessKey) -> bool {
        self.rings.remove(key).is_some()
    }

    /// Keeps only the processes `keep` accepts, e.g. those the process table still knows.
    pub fn retain(&mut self, mut keep: impl FnMut(&ProcessKey) -> bool) {
        self.rings.retain(|k, _| keep(k));
    }

    /// Processes tracked.
    pub fn len(&self) -> usize {
        self.rings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
    }

    /// Tokens that slid out of a full window (all processes).
    pub fn overwritten(&self) -> u64 {
        self.overwritten
    }

    /// The part of [`Self::overwritten`] that no `take_new` had returned.
    pub fn untaken_overwritten(&self) -> u64 {
        self.untaken_overwritten
    }

    /// Batch ids dropped because no token stands for them.
    pub fn out_of_vocab(&self) -> u64 {
        self.out_of_vocab
    }

    /// The counter [`tokens_of`] adds to, for the stage that turns events into tokens.
    pub fn out_of_vocab_counter(&mut self) -> &mut u64 {
        &mut self.out_of_vocab
    }

    /// Processes dropped to stay within `max_processes`.
    pub fn evicted_processes(&self) -> u64 {
        self.evicted_processes
    }

    /// Drops the least recently active sixteenth at once, so the O(n) scan is amortised over
    /// many new processes. Exits normally `remove` their process first; this is the backstop.
    fn evict_least_recent(&mut self) {
        let excess = (self.config.max_processes / 16).max(1);
        let mut by_age: Vec<(u64, ProcessKey)> =
            self.rings.iter().map(|(k, r)| (r.last_push, *k)).collect();
        if excess < by_age.len() {
            by_age.select_nth_unstable(excess);
            by_age.truncate(excess);
        }
        for (_, k) in &by_age {
            self.rings.remove(k);
        }
        self.evicted_processes += by_age.len() as u64;
        debug!(
            evicted = by_age.len(),
            "behaviour sequences full: dropped least recent"
        );
    }
}

impl Default for BehaviourSequences {
    fn default() -> Self {
        Self::new(SequenceConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::{ABI_VERSION, BATCH_LEN, EventHeader, ForkEvent, NetEvent, ProbeErrorEvent};

    fn key(tgid: u32) -> ProcessKey {
        ProcessKey::new(tgid, 1_000)
    }

    fn seqs(per_process: usize, max_processes: usize) -> BehaviourSequences {
        BehaviourSequences::new(SequenceConfig {
            per_process,
            max_processes,
        })
    }

    fn batch(ids: &[u16]) -> SyscallBatch {
        let mut b: SyscallBatch = unsafe { core::mem::zeroed() };
        b.ids[..ids.len()].copy_from_slice(ids);
        b.count = ids.len() as u16;
        b
    }

    fn header(kind: EventKind) -> EventHeader {
        EventHeader {
            kind: kind as u16,
            abi_version: ABI_VERSION,
            ..Default::default()
        }
    }

    #[test]
    fn vocabulary_is_named() {
        assert_eq!(usize::from(token::BPF_PROG_LOAD) + 1, token::VOCAB_V1_SIZE);
        assert_eq!(token_name(1024 + 257), "openat:err_perm");
        assert_eq!(token_name(512 * 7 + 257), "openat:create");
        assert_eq!(token_name(512 * 16 + 90), "chmod:mode_exec");
        assert_eq!(token_name(600), "<unknown_600>");
        assert_eq!(token_name(token::VOCAB_SIZE as Token), "<unknown_8704>");
        assert_eq!(token_name(0), "read");
        assert_eq!(token_name(59), "execve");
        assert_eq!(token_name(57), "fork");
        assert_eq!(token_name(token::FORK), "<fork>");
        assert_eq!(token_name(token::BPF_PROG_LOAD), "<bpf_prog_load>");
        assert_eq!(token_name(511), "<syscall_511>");
        assert_eq!(token_name(9999), "<unknown_9999>");
        let names: std::collections::HashSet<_> = (0..token::VOCAB_SIZE as Token)
            .map(token_name)
            .filter(|n| !n.starts_with("<syscall_"))
            .collect();
        assert!(names.len() > 300, "names are distinct");
    }

    #[test]
    fn event_tokens() {
        let mut net: NetEvent = unsafe { core::mem::zeroed() };
        for (kind, t) in [
            (EventKind::Connect, token::CONNECT),
            (EventKind::Accept, token::ACCEPT),
            (EventKind::Bind, token::BIND),
            (EventKind::Listen, token::LISTEN),
        ] {
            net.header = header(kind);
            assert_eq!(event_token(&Event::Net(net)), Some(t));
        }
        let mut fork: ForkEvent = unsafe { core::mem::zeroed() };
        fork.header = header(EventKind::Fork);
        (fork.child_pid, fork.child_tgid) = (5, 5);
        assert_eq!(event_token(&Event::Fork(fork)), Some(token::FORK));
        fork.child_tgid = 4;
        assert_eq!(event_token(&Event::Fork(fork)), None, "a thread");
        let pe: ProbeErrorEvent = unsafe { core::mem::zeroed() };
        assert_eq!(event_token(&Event::ProbeError(pe)), None);
        assert_eq!(event_token(&Event::SyscallBatch(batch(&[1]))), None);
    }

    #[test]
    fn keeps_order_across_batches_and_events() {
        let mut s = seqs(100, 10);
        s.push_token(key(1), token::EXEC);
        s.push_batch(key(1), &batch(&[0, 1, 2]));
        s.push_batch(key(2), &batch(&[9]));
        s.push_batch(key(1), &batch(&[3]));
        s.push_token(key(1), token::EXIT);
        assert_eq!(
            s.recent(&key(1), 100),
            [token::EXEC, 0, 1, 2, 3, token::EXIT]
        );
        assert_eq!(s.recent(&key(1), 2), [3, token::EXIT]);
        assert_eq!(s.recent(&key(2), 5), [9]);
        assert!(s.recent(&key(3), 5).is_empty());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn classed_ids_become_class_tokens_and_unknown_classes_are_dropped_and_counted() {
        use agent_common::call_class::{self, batch_id};
        let mut s = seqs(100, 10);
        let ids = [
            1,
            batch_id(0, call_class::ERR_PERM) as u16,
            batch_id(257, call_class::MODE_EXEC) as u16,
            call_class::OUT_OF_RANGE,
            (call_class::COUNT + 1) << call_class::CLASS_SHIFT,
            2,
        ];
        s.push_batch(key(1), &batch(&ids));
        assert_eq!(s.recent(&key(1), 10), [1, 1024, 512 * 16 + 257, 2]);
        assert_eq!(s.out_of_vocab(), 2);
        let ev = Event::SyscallBatch(batch(&ids));
        let mut counted = 0;
        let tokens: Vec<Token> = tokens_of(&ev, &mut counted).collect();
        assert_eq!(tokens, [1, 1024, 512 * 16 + 257, 2]);
        assert_eq!(counted, 2);
        assert_eq!(usize::from(512 * 16 + 511u16) + 1, token::VOCAB_SIZE, "the last class's last token");
    }

    #[test]
    fn the_v1_projection_drops_classes_only() {
        for t in [0, 59, 511, token::EXEC, token::BPF_PROG_LOAD] {
            assert_eq!(token::project(t, 1), t);
        }
        assert_eq!(token::project(1024 + 42, 1), 42);
        assert_eq!(token::project(8703, 1), 511);
        assert_eq!(token::project(8703, 2), 8703);
        // Every token of vocabulary 2 (524..1024 is unused) lands in vocabulary 1.
        for t in (0..token::VOCAB_V1_SIZE as Token).chain(1024..token::VOCAB_SIZE as Token) {
            assert!(usize::from(token::project(t, 1)) < token::VOCAB_V1_SIZE, "{t}");
        }
    }

    #[test]
    fn window_is_bounded_and_overwrites_are_counted() {
        let mut s = seqs(4, 10);
        let full: Vec<Token> = (0..BATCH_LEN as u16).collect();
        s.push_batch(key(1), &batch(&full));
        assert_eq!(s.recent(&key(1), 100), [60, 61, 62, 63]);
        assert_eq!(s.total_tokens(&key(1)), 64);
        assert_eq!(s.overwritten(), 60);
    }

    #[test]
    fn a_bulk_push_keeps_and_counts_what_pushing_one_by_one_would() {
        // The ring and counters pushing token by token would leave, for every split of a
        // stream into pushes, window size and point where the scorer takes.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        for _ in 0..500 {
            let cap = 1 + next(8) as usize;
            let mut s = seqs(cap, 10);
            let (mut window, mut total, mut taken) = (VecDeque::new(), 0u64, 0u64);
            let (mut overwritten, mut untaken) = (0u64, 0u64);
            for _ in 0..6 {
                let chunk: Vec<Token> = (0..next(12)).map(|_| next(500) as Token).collect();
                s.push_tokens(key(1), &chunk);
                for &t in &chunk {
                    if window.len() == cap {
                        let oldest = total - cap as u64;
                        window.pop_front();
                        overwritten += 1;
                        untaken += u64::from(oldest >= taken);
                    }
                    window.push_back(t);
                    total += 1;
                }
                if next(3) == 0 {
                    s.take_new(&key(1));
                    taken = total;
                }
                assert_eq!(s.recent(&key(1), cap), Vec::from(window.clone()));
                assert_eq!((s.overwritten(), s.untaken_overwritten()), (overwritten, untaken));
                assert_eq!(s.total_tokens(&key(1)), total);
            }
        }
    }

    #[test]
    fn take_new_returns_each_token_once() {
        let mut s = seqs(4, 10);
        assert!(s.take_new(&key(1)).is_empty());
        s.push_batch(key(1), &batch(&[1, 2]));
        assert_eq!(s.take_new(&key(1)), [1, 2]);
        assert!(s.take_new(&key(1)).is_empty());
        s.push_token(key(1), 3);
        assert_eq!(s.take_new(&key(1)), [3]);
        assert_eq!(s.untaken_overwritten(), 0);
        // More than the window between takes: only the window's worth is returned.
        s.push_batch(key(1), &batch(&[4, 5, 6, 7, 8, 9]));
        assert_eq!(s.take_new(&key(1)), [6, 7, 8, 9]);
        assert_eq!(s.overwritten(), 5, "1, 2, 3 (taken) and 4, 5 (not)");
        assert_eq!(s.untaken_overwritten(), 2);
        assert_eq!(
            s.recent(&key(1), 10),
            [6, 7, 8, 9],
            "take_new leaves the window"
        );
    }

    #[test]
    fn remove_forgets_the_process() {
        let mut s = seqs(4, 10);
        s.push_token(key(1), 1);
        s.push_token(key(2), 2);
        assert!(s.remove(&key(1)));
        assert!(!s.remove(&key(1)));
        assert!(s.recent(&key(1), 4).is_empty());
        assert_eq!(s.total_tokens(&key(1)), 0);
        assert_eq!(s.len(), 1);
        // Same pid, new process: a fresh sequence.
        s.push_token(ProcessKey::new(2, 5_000), 7);
        assert_eq!(s.recent(&key(2), 4), [2]);
        assert_eq!(s.len(), 2);
        s.retain(|k| k.start_ns == 5_000);
        assert_eq!(s.len(), 1);
        assert_eq!(s.recent(&ProcessKey::new(2, 5_000), 4), [7]);
    }

    #[test]
    fn process_count_is_bounded_dropping_least_recent() {
        let mut s = seqs(4, 32);
        for tgid in 0..32 {
            s.push_token(key(tgid), 1);
        }
        s.push_token(key(0), 2); // 0 is now the most recent
        s.push_token(key(100), 1);
        assert!(s.len() <= 32);
        assert_eq!(s.evicted_processes(), 2);
        assert!(s.recent(&key(1), 1).is_empty() && s.recent(&key(2), 1).is_empty());
        assert_eq!(s.recent(&key(0), 2), [1, 2]);
        for tgid in 200..1000 {
            s.push_token(key(tgid), 1);
            assert!(s.len() <= 32);
        }
    }
}
