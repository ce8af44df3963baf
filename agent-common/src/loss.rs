//! Loss accounting: a per-CPU array of `u64` counters that kernel programs bump and user space
//! sums. Indices below [`EventKind::COUNT`] count failed ring-buffer reservations per kind.

use crate::EventKind;

/// Syscalls inside batches whose ring-buffer reservation failed (the batch count, summed).
pub const LOSS_SYSCALLS_IN_LOST_BATCHES: u32 = 28;
/// A CPU's batch slot named another task when a batch started there (the switch-out that
/// should have released it was not seen; that task's last batch may hold the running task's
/// syscalls). A diagnostic that should stay 0.
pub const COUNT_UNSWITCHED_SLOTS: u32 = 29;
/// A thread's credentials could not be remembered in `CREDS` (its next setuid-family call will
/// report the ids before it as unknown).
pub const LOSS_CREDS_UNRECORDED: u32 = 30;
/// A setuid-family call changed a thread's ids with no record of what they were before (see
/// [`crate::Creds::UNKNOWN`]): its cred-change event says "unknown" instead.
pub const LOSS_CREDS_BEFORE_UNKNOWN: u32 = 31;
/// Syscalls counted into batches (kept for accounting: generated = emitted + lost).
pub const COUNT_SYSCALLS_BATCHED: u32 = 32;
/// Execs killed by a kernel deny rule.
pub const COUNT_EXEC_DENIED: u32 = 33;
/// connect()/sendmsg() refused because the caller's cgroup is quarantined.
pub const COUNT_NET_DENIED_QUARANTINE: u32 = 34;
/// connect()/sendmsg() refused by an outbound deny list.
pub const COUNT_NET_DENIED_RULE: u32 = 35;
/// `bpf_send_signal` failed for a denied exec (the process may have run).
pub const COUNT_EXEC_DENY_SIGNAL_FAILED: u32 = 36;
/// File churn names not sent because the `EVENTS` ring was half full: exec, exit and security
/// records keep the other half (see `FileChurnEvent`).
pub const LOSS_CHURN_RING_BUSY: u32 = 37;
/// `O_CREAT` opens whose writer could not be remembered (the file or its inode unreadable, or
/// the `CREATED` update refused): a program written then would not be named as downloaded.
pub const LOSS_CREATED_UNRECORDED: u32 = 38;
/// Records of each kind successfully submitted live at `EMITTED_BASE + kind`.
pub const EMITTED_BASE: u32 = 39;

/// Number of counters in the `COUNTERS` map.
pub const COUNTER_SLOTS: u32 = 80;

/// Counter index for failed reservations of `kind`.
pub const fn loss_index(kind: EventKind) -> u32 {
    kind as u32
}

/// Counter index for successful submissions of `kind`.
pub const fn emitted_index(kind: EventKind) -> u32 {
    EMITTED_BASE + kind as u32
}

const _: () = assert!(EMITTED_BASE as usize + EventKind::COUNT <= COUNTER_SLOTS as usize);
const _: () = assert!((EventKind::COUNT as u32) <= LOSS_SYSCALLS_IN_LOST_BATCHES);
const _: () = assert!(LOSS_CREATED_UNRECORDED < EMITTED_BASE);
