//! Every syscall of every process, batched in the kernel.
//!
//! The hot path (one run per syscall on the whole host) does: pid/tgid, a compare against our own
//! tgid, a bitmap test for watched syscalls, one hash lookup of the thread's open batch, a jiffies
//! read and a store. No clock helper runs per syscall (see `AgentConfig::batch_max_age_jiffies`).
//! A record leaves only when the batch is full, ages, or the thread execs or exits (see
//! `lifecycle`).

use agent_common::{
    BATCH_LEN, COUNT_SYSCALLS_BATCHED, EventKind, FlushReason, LOSS_BATCH_MAP_FULL,
    LOSS_SYSCALLS_IN_LOST_BATCHES, SYSCALLS_WAKEUP_BYTES, SyscallBatch, syscall_nr::is_watched,
};
use aya_ebpf::{
    bindings::{BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_jiffies64, bpf_ktime_get_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::{
    emit::{bump, count_emitted, count_lost, current_ids, header},
    maps::{BATCHES, IGNORED_TGIDS, OpenBatch, SYSCALLS},
    task::{KPtr, config, leader_start_ns, offsets},
    watch,
};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn vigil_sys_enter(ctx: RawTracePointContext) -> u32 {
    let (pid, tgid) = current_ids();
    let cfg = config();
    if tgid == cfg.self_tgid {
        return 0;
    }
    // arg 1 of sys_enter is the syscall number; -1 (no syscall) truncates to 0xffff, which user
    // space counts as out of vocabulary rather than dropping silently.
    let id: i64 = ctx.arg(1);
    if is_watched(id as u64) {
        watch::on_enter(pid, id as u64, ctx.arg(0));
    }
    // SAFETY: helper without preconditions; a plain read of jiffies_64.
    let now = unsafe { bpf_jiffies64() };

    let Some(open) = BATCHES.get_ptr_mut(pid) else {
        open_batch(pid, tgid, id as u16, now);
        return 0;
    };
    // SAFETY: a map value of a preallocated hash; only this thread writes its own entry.
    let open = unsafe { &mut *open };
    if open.ignored != 0 {
        return 0;
    }
    let n = open.record.count as usize;
    if n == 0 {
        start_batch(open, now);
    }
    if let Some(slot) = open.record.ids.get_mut(n) {
        *slot = id as u16;
        open.record.count += 1;
    }
    if open.record.count as usize >= BATCH_LEN {
        flush(open, FlushReason::Full);
    } else if now.wrapping_sub(open.first_jiffies) > cfg.batch_max_age_jiffies {
        flush(open, FlushReason::Age);
    }
    0
}

#[inline(always)]
fn start_batch(open: &mut OpenBatch, now_jiffies: u64) {
    open.first_jiffies = now_jiffies;
    // SAFETY: helper without preconditions; once per batch, not per syscall.
    open.record.first_ns = unsafe { bpf_ktime_get_ns() };
}

/// First syscall this thread makes while we watch: create its batch.
#[inline(never)]
fn open_batch(pid: u32, tgid: u32, id: u16, now_jiffies: u64) {
    let o = offsets();
    let start_ns = leader_start_ns(&o, KPtr::current_task());
    // SAFETY: OpenBatch is plain integers; all-zero is a valid value.
    let mut batch: OpenBatch = unsafe { core::mem::zeroed() };
    batch.record.header = header(
        EventKind::SyscallBatch,
        core::mem::size_of::<SyscallBatch>(),
        pid,
        tgid,
        start_ns,
    );
    batch.ignored = is_ignored(tgid) as u32;
    start_batch(&mut batch, now_jiffies);
    batch.record.ids[0] = id;
    batch.record.count = 1;
    if BATCHES.insert(pid, batch, BPF_NOEXIST as u64).is_err() {
        // Map full (or a racing insert from a tid reused mid-flight): this syscall is not batched.
        bump(LOSS_BATCH_MAP_FULL, 1);
    }
}

#[inline(always)]
fn is_ignored(tgid: u32) -> bool {
    // SAFETY: read-only lookup of a u8 value.
    unsafe { IGNORED_TGIDS.get(tgid) }.is_some()
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
        // Waking the reader is an IPI (a VM exit under virtualisation) per record; let batches
        // pile up until a quarter of the ring waits, and let the reader's timer collect the rest.
        let wakeup = if SYSCALLS.query(BPF_RB_AVAIL_DATA.into()) >= SYSCALLS_WAKEUP_BYTES {
            BPF_RB_FORCE_WAKEUP
        } else {
            BPF_RB_NO_WAKEUP
        };
        if SYSCALLS
            .output::<SyscallBatch>(&open.record, wakeup.into())
            .is_ok()
        {
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
    if let Some(open) = BATCHES.get_ptr_mut(pid) {
        // SAFETY: see vigil_sys_enter; called from the thread itself.
        flush(unsafe { &mut *open }, reason);
    }
}
