//! Every syscall of every process, batched in the kernel in one open batch per CPU.
//!
//! A syscall is recorded when it returns, by the `sys_exit` programs (`watch.rs`): that is the
//! one program vigil runs for every syscall on the host. A second one at `sys_enter` cost every
//! syscall its own tracepoint dispatch, ~45 ns here (`cargo xtask bench overhead`), and nothing
//! needs the entry: the arguments are still in the saved registers at exit, and what changes
//! during a call (credentials) is remembered per thread (`CREDS`). The calls that never reach
//! their exit are recorded where they end: exit and exit_group by the exit probe, a successful
//! execve by the exec probe (for the old image, where the entry would have put it). A thread
//! killed inside a blocking call loses that call.
//!
//! The batch in a CPU's slot always belongs to the task running there: `vigil_sched_switch`
//! sends it when that task is switched out, and exec and exit send it before their own records.
//! So the hot path calls no helper and looks nothing up by thread: an inlined per-CPU array
//! access, an inlined jiffies read and a store. Identity, the ignore list and the clock are read
//! once per batch. A thread's batches still leave in its own order: it is switched out, and its
//! batch sent, before it can run on another CPU.
//!
//! Measured with `cargo xtask bench overhead` on this VM (AMD, SRSO "safe RET": every helper
//! call pays a return thunk): the per-thread hash map of open batches this replaced cost every
//! syscall on the host ~60 ns more; a `bpf_get_current_task` call per syscall (not inlined for
//! raw_tp on 6.18) ~7 ns more, so `current` is only checked when a batch starts.

use agent_common::{
    BATCH_LEN, COUNT_SYSCALLS_BATCHED, COUNT_UNSWITCHED_SLOTS, EventKind, FlushReason,
    LOSS_SYSCALLS_IN_LOST_BATCHES, SYSCALLS_WAKEUP_BYTES, SyscallBatch, syscall_nr as nr,
};
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_task, bpf_jiffies64, bpf_ktime_get_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::{
    emit::{bump, count_emitted, count_lost, current_ids, header},
    maps::{CPU_BATCH, IGNORED_TGIDS, OpenBatch, SYSCALLS, SlotState},
    task::{KPtr, config, leader_start_ns, offsets},
};

/// The token a returning syscall adds to its thread's batch, if any. `-1` is what rt_sigreturn
/// leaves in `orig_rax` (it restores the interrupted registers and disables restarts), so it is
/// recorded as rt_sigreturn. A new clone child's first return and a new image's return from
/// execve are not calls of their own: the parent made the clone, and the exec probe recorded the
/// execve for the old image.
#[inline(always)]
pub fn exit_token(sys: u64, ret: i64) -> Option<u64> {
    if sys == u64::MAX {
        return Some(nr::RT_SIGRETURN as u64);
    }
    if ret == 0 && nr::returns_twice(sys) {
        return None;
    }
    Some(sys)
}

/// Adds syscall `id` to the running task's batch: from the `sys_exit` programs, once per
/// syscall on the host, and from the exec and exit probes for the calls that do not return.
#[inline(always)]
pub fn record(id: u64) {
    let Some(slot) = CPU_BATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot of an array map. Only the task running on this CPU writes it, and
    // it is released before another task runs here. Runs of one program do not nest on a CPU:
    // while a task preempted inside this one is off the CPU, the kernel skips (and counts, see
    // `program_runs_skipped`) other tasks' runs of it there.
    let slot = unsafe { &mut *slot };
    if slot.state == SlotState::Empty as u32 {
        take_slot(slot, current_task());
    }
    if slot.state != SlotState::Open as u32 {
        return;
    }
    // SAFETY: helper without preconditions; the kernel inlines it as a read of jiffies_64.
    let now = unsafe { bpf_jiffies64() };
    let n = slot.record.count as usize;
    if n == 0 && !start_batch(slot, now) {
        return;
    }
    // `call_class::batch_id` keeps every id within u16.
    if let Some(id_slot) = slot.record.ids.get_mut(n) {
        *id_slot = id as u16;
        slot.record.count += 1;
    }
    if slot.record.count as usize >= BATCH_LEN {
        flush(slot, FlushReason::Full);
    } else if now.wrapping_sub(slot.first_jiffies) > config().batch_max_age_jiffies {
        flush(slot, FlushReason::Age);
    }
}

/// The batch leaves with the task being switched out, so the slot only ever holds the syscalls
/// of the task running on its CPU, and nothing waits in it while the CPU idles.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn vigil_sched_switch(_ctx: RawTracePointContext) -> u32 {
    release_slot(FlushReason::Switch);
    0
}

/// Sends this CPU's batch (it belongs to the current task) and empties the slot, so the next
/// syscall on this CPU identifies its task afresh (exec, exit and context switches call this).
#[inline(always)]
pub fn release_slot(reason: FlushReason) {
    if let Some(slot) = CPU_BATCH.get_ptr_mut(0) {
        // SAFETY: see `record`.
        let slot = unsafe { &mut *slot };
        if slot.state != SlotState::Empty as u32 {
            flush(slot, reason);
            slot.task = 0;
            slot.state = SlotState::Empty as u32;
        }
    }
}

/// First syscall of a task since it was switched in: name the slot after it.
#[inline(never)]
fn take_slot(slot: &mut OpenBatch, task: u64) {
    slot.task = task;
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        slot.state = SlotState::Vigil as u32;
        return;
    }
    if is_ignored(tgid) {
        slot.state = SlotState::Ignored as u32;
        return;
    }
    slot.state = SlotState::Open as u32;
    let start_ns = leader_start_ns(&offsets(), KPtr::from_raw(task as *const u8));
    let seq = slot.record.seq;
    slot.record.header = header(
        EventKind::SyscallBatch,
        core::mem::size_of::<SyscallBatch>(),
        pid,
        tgid,
        start_ns,
    );
    slot.record.seq = seq;
    slot.record.count = 0;
}

/// Opens a batch (once per batch: the helpers here are too dear for every syscall). Checks that
/// the slot still names the running task; false if it now names one that is not batched.
#[inline(never)]
fn start_batch(slot: &mut OpenBatch, now_jiffies: u64) -> bool {
    let task = current_task();
    if slot.task != task {
        // Cannot happen while the switch program runs; if it ever does, at most one batch of
        // the other task's syscalls went to the wrong task, and the count says so.
        bump(COUNT_UNSWITCHED_SLOTS, 1);
        take_slot(slot, task);
        if slot.state != SlotState::Open as u32 {
            return false;
        }
    }
    slot.first_jiffies = now_jiffies;
    // SAFETY: helper without preconditions.
    slot.record.first_ns = unsafe { bpf_ktime_get_ns() };
    true
}

#[inline(always)]
fn current_task() -> u64 {
    // SAFETY: helper without preconditions.
    unsafe { bpf_get_current_task() }
}

#[inline(always)]
fn is_ignored(tgid: u32) -> bool {
    // SAFETY: read-only lookup of a u8 value.
    unsafe { IGNORED_TGIDS.get(tgid) }.is_some()
}

/// Sends the open batch (if it holds anything) and starts the next one in place.
#[inline(never)]
fn flush(slot: &mut OpenBatch, reason: FlushReason) {
    let count = slot.record.count as u64;
    if count == 0 || slot.state != SlotState::Open as u32 {
        return;
    }
    // SAFETY: helper without preconditions.
    slot.record.header.ktime_ns = unsafe { bpf_ktime_get_ns() };
    slot.record.reason = reason as u16;
    // Waking the reader is an IPI (a VM exit under virtualisation) per record; let batches pile
    // up until a quarter of the ring waits, and let the reader's timer collect the rest.
    let wakeup = if SYSCALLS.query(BPF_RB_AVAIL_DATA.into()) >= SYSCALLS_WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    if SYSCALLS
        .output::<SyscallBatch>(&slot.record, wakeup.into())
        .is_ok()
    {
        count_emitted(EventKind::SyscallBatch);
        bump(COUNT_SYSCALLS_BATCHED, count);
    } else {
        count_lost(EventKind::SyscallBatch);
        bump(LOSS_SYSCALLS_IN_LOST_BATCHES, count);
    }
    slot.record.count = 0;
    slot.record.seq = slot.record.seq.wrapping_add(1);
}
