//! Every syscall of every process, batched in the kernel.
//!
//! The hot path (one run per syscall on the whole host) does: pid/tgid, a compare against our own
//! tgid, one hash lookup of the thread's open batch, a clock read and a store. A record
//! leaves only when the batch is full, ages, or the thread execs or exits (see `lifecycle`).

use agent_common::{
    BATCH_LEN, COUNT_SYSCALLS_BATCHED, EventKind, FlushReason, LOSS_BATCH_MAP_FULL,
    LOSS_SYSCALLS_IN_LOST_BATCHES,
};
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_ktime_get_ns,
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::{
    emit::{bump, count_emitted, count_lost, current_ids, header},
    maps::{BATCHES, IGNORED_TGIDS, OpenBatch, SYSCALLS},
    task::{KPtr, config, leader_start_ns, offsets},
};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn vigil_sys_enter(ctx: RawTracePointContext) -> u32 {
    let (pid, tgid) = current_ids();
    let cfg = config();
    if tgid == cfg.self_tgid {
        return 0;
    }
    // arg 1 of sys_enter is the syscall number; -1 (no syscall) truncates to 0xffff, which user
    // space maps to its "unknown" token rather than dropping.
    let id: i64 = ctx.arg(1);
    // SAFETY: helper without preconditions. (The cheaper coarse clock is refused to tracing
    // programs; with the TSC clocksource this is a few ns.)
    let now = unsafe { bpf_ktime_get_ns() };

    let Some(open) = BATCHES.get_ptr_mut(&pid) else {
        open_batch(pid, tgid, id as u16, now);
        return 0;
    };
    // SAFETY: a map value of a preallocated hash; only this thread writes its own entry.
    let open = unsafe { &mut *open };
    if open.ignored != 0 {
        return 0;
    }
    let n = open.record.count as usize;
    if let Some(slot) = open.record.ids.get_mut(n) {
        *slot = id as u16;
        open.record.count += 1;
        if n == 0 {
            open.record.first_ns = now;
        }
    }
    if open.record.count as usize >= BATCH_LEN {
        flush(open, FlushReason::Full);
    } else if now.wrapping_sub(open.record.first_ns) > cfg.batch_max_age_ns {
        flush(open, FlushReason::Age);
    }
    0
}

/// First syscall this thread makes while we watch: create its batch.
#[inline(never)]
fn open_batch(pid: u32, tgid: u32, id: u16, now: u64) {
    let o = offsets();
    let start_ns = leader_start_ns(&o, KPtr::current_task());
    // SAFETY: OpenBatch is plain integers; all-zero is a valid value.
    let mut batch: OpenBatch = unsafe { core::mem::zeroed() };
    batch.record.header = header(
        EventKind::SyscallBatch,
        core::mem::size_of::<agent_common::SyscallBatch>(),
        pid,
        tgid,
        start_ns,
    );
    batch.ignored = is_ignored(tgid) as u32;
    batch.record.ids[0] = id;
    batch.record.count = 1;
    batch.record.first_ns = now;
    if BATCHES.insert(&pid, &batch, BPF_NOEXIST as u64).is_err() {
        // Map full (or a racing insert from a tid reused mid-flight): this syscall is not batched.
        bump(LOSS_BATCH_MAP_FULL, 1);
    }
}

#[inline(always)]
fn is_ignored(tgid: u32) -> bool {
    // SAFETY: read-only lookup of a u8 value.
    unsafe { IGNORED_TGIDS.get(&tgid) }.is_some()
}

/// Sends the open batch (if it holds anything) and starts the next one in place.
#[inline(never)]
pub fn flush(open: &mut OpenBatch, reason: FlushReason) {
    let count = open.record.count as u64;
    if count == 0 {
        return;
    }
    open.ignored = is_ignored(open.record.header.tgid) as u32;
    if open.ignored == 0 {
        // SAFETY: helper without preconditions.
        open.record.header.ktime_ns = unsafe { bpf_ktime_get_ns() };
        open.record.reason = reason as u16;
        if SYSCALLS.output::<agent_common::SyscallBatch>(&open.record, 0).is_ok() {
            count_emitted(EventKind::SyscallBatch);
            bump(COUNT_SYSCALLS_BATCHED, count);
        } else {
            count_lost(EventKind::SyscallBatch);
            bump(LOSS_SYSCALLS_IN_LOST_BATCHES, count);
        }
    }
    open.record.count = 0;
    open.record.seq = open.record.seq.wrapping_add(1);
}

/// Flushes the batch of thread `pid`, if it has one (exec and exit call this).
#[inline(always)]
pub fn flush_thread(pid: u32, reason: FlushReason) {
    if let Some(open) = BATCHES.get_ptr_mut(&pid) {
        // SAFETY: see vigil_sys_enter; called from the thread itself.
        flush(unsafe { &mut *open }, reason);
    }
}
