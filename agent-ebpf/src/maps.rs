//! Every map the programs share. Sizes come from agent-common so user space agrees on them.

use agent_common::{
    COUNTER_SLOTS, CREATED_ENTRIES, ChurnCount, CreatedBy, Creds, EVENTS_RING_BYTES,
    FILE_FILTER_WORDS, FILE_WALK_ENTRIES, FileKey, FileWatch, IGNORED_TGIDS_ENTRIES, PATH_LEN,
    CREDS_MAP_ENTRIES, SYSCALLS_RING_BYTES, SyscallBatch, WATCHED_FILES_ENTRIES,
};
use aya_ebpf::{
    bindings::BPF_F_NO_COMMON_LRU,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};

/// Lifecycle and security records: kept apart from the bulk syscall stream so a syscall flood
/// cannot crowd out the events the process table depends on.
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

/// When `EVENTS` was last woken for a record response acts on, and the pace of such wakeups
/// (see `emit::prompt_wakeup`).
#[map(name = "PROMPT_PACE")]
pub static PROMPT_PACE: Array<agent_common::wakeup::PromptPace> = Array::with_max_entries(1, 0);

/// Syscall batches.
#[map(name = "SYSCALLS")]
pub static SYSCALLS: RingBuf = RingBuf::with_byte_size(SYSCALLS_RING_BYTES, 0);

/// Loss and emission counters, indexed as described in `agent_common::loss`.
#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// A CPU's open batch. `record` is exactly what is sent, so a flush is one copy.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpenBatch {
    pub record: SyscallBatch,
    /// Address of the `task_struct` whose syscalls the slot holds; 0 while the slot is free.
    pub task: u64,
    /// `bpf_jiffies64()` at the first syscall of the batch, for ageing.
    pub first_jiffies: u64,
    /// [`SlotState`] as u32.
    pub state: u32,
    pub _pad: u32,
}

/// What the slot's task gets.
#[repr(u32)]
pub enum SlotState {
    /// No task named yet (a new one is named at its first syscall).
    Empty = 0,
    /// Syscalls are batched.
    Open = 1,
    /// A process in `IGNORED_TGIDS`: watched syscalls are reported, others are not batched.
    Ignored = 2,
    /// vigil itself: nothing is traced.
    Vigil = 3,
}

/// One open batch per CPU; see `syscalls` for why the CPU, not the thread, is the key.
#[map(name = "CPU_BATCH")]
pub static CPU_BATCH: PerCpuArray<OpenBatch> = PerCpuArray::with_max_entries(1, 0);

/// tid -> the thread's credentials as last seen: at fork, at exec, after each setuid-family
/// call, and seeded by user space from /proc for threads older than vigil. A setuid-family
/// call's exit takes its "before" from here: the entry, where they could be read, is not traced.
#[map(name = "CREDS")]
pub static CREDS: LruHashMap<u32, Creds> = LruHashMap::with_max_entries(CREDS_MAP_ENTRIES, 0);

/// Inodes whose opens are reported; written by user space from the policy's file rules.
#[map(name = "WATCHED_FILES")]
pub static WATCHED_FILES: HashMap<FileKey, FileWatch> =
    HashMap::with_max_entries(WATCHED_FILES_ENTRIES, 0);

/// `[0]`: 0 while nothing is watched, else 1 + the deepest `FileWatch::max_depth`; `[1 + i]`:
/// the same over watches with access bit `i`.
#[map(name = "FILE_WALK")]
pub static FILE_WALK: Array<u32> = Array::with_max_entries(FILE_WALK_ENTRIES, 0);

/// Bit `file_filter_bit(ino)` is set for every key of `WATCHED_FILES`.
#[map(name = "FILE_FILTER")]
pub static FILE_FILTER: Array<u64> = Array::with_max_entries(FILE_FILTER_WORDS, 0);

/// Watched paths as strings (see `agent_common::names::MAP_WATCHED_PATHS`).
#[map(name = "WATCHED_PATHS")]
pub static WATCHED_PATHS: LpmTrie<[u8; PATH_LEN], u32> =
    LpmTrie::with_max_entries(WATCHED_FILES_ENTRIES, 0);

/// tgids whose syscalls are not batched (their lifecycle and security events still flow).
#[map(name = "IGNORED_TGIDS")]
pub static IGNORED_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(IGNORED_TGIDS_ENTRIES, 0);

/// tgid -> its creates, unlinks and renames in the current window (`churn`). LRU: a host with
/// more busy processes than entries forgets the quietest.
#[map(name = "CHURN")]
pub static CHURN: LruHashMap<u32, ChurnCount> = LruHashMap::with_max_entries(CHURN_ENTRIES, 0);

const CHURN_ENTRIES: u32 = 8192;

/// Inode -> its last `O_CREAT` open (`created`). Per-CPU LRU lists: an insert on one CPU
/// takes no lock another CPU's creates contend for.
#[map(name = "CREATED")]
pub static CREATED: LruHashMap<FileKey, CreatedBy> =
    LruHashMap::with_max_entries(CREATED_ENTRIES, BPF_F_NO_COMMON_LRU);
