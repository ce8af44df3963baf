//! Signals sent to vigil itself. An intruder with root blinds the sensor before the real work:
//! `kill -STOP` freezes it without a trace in any log, `kill -9` ends it before it can write
//! one. The kernel's `signal_generate` tracepoint fires in the sender's context, whatever the
//! call (kill, tgkill, pidfd_send_signal, sigqueue), before the signal is delivered: a stopped
//! vigil reads the record once it runs again. What a SIGKILL leaves unread is reported by the
//! next vigil from its state directory (user space, `response::run_marker`).

use agent_common::{EventKind, PtraceEvent};
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{
    emit::{count_emitted, current_ids, prompt_wakeup, reserve_record},
    task::{KPtr, config, current_leader_start_ns, offset},
};

/// `SEND_SIG_PRIV`: the largest of the kernel's special `siginfo` pointers (`SEND_SIG_NOINFO`
/// is 0), which stand for signals it raises itself (the OOM killer, a terminal's job control).
const SEND_SIG_PRIV: u64 = 1;
/// `si_code`'s offset in `struct kernel_siginfo` (after `si_signo` and `si_errno`), fixed by the
/// user ABI the struct mirrors.
const SI_CODE_OFFSET: u32 = 8;

/// `signal_generate(int sig, struct kernel_siginfo *info, struct task_struct *task, int group,
/// int result)`.
#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn vigil_signal_generate(ctx: RawTracePointContext) -> u32 {
    let self_tgid = config().self_tgid;
    let task = KPtr::from_raw(ctx.arg::<*const u8>(2));
    if task.read::<u32>(offset!(task_tgid)) != Some(self_tgid) {
        return 0;
    }
    let (pid, tgid) = current_ids();
    if tgid == self_tgid {
        return 0;
    }
    // A process sends with si_code <= 0 (SI_USER, SI_QUEUE, SI_TKILL ...); the kernel's own
    // signals carry a positive one (SI_KERNEL, CLD_*, a fault's) or a special pointer.
    let info = ctx.arg::<u64>(1);
    if info <= SEND_SIG_PRIV {
        return 0;
    }
    match KPtr::from_raw(info as *const u8).read::<i32>(SI_CODE_OFFSET) {
        Some(code) if code <= 0 => {}
        _ => return 0,
    }
    let start_ns = current_leader_start_ns();
    let Some(mut entry) =
        reserve_record::<PtraceEvent>(EventKind::AgentSignalled, pid, tgid, start_ns)
    else {
        return 0;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: the reserved record, written field by field before it is submitted.
    unsafe {
        (*ev).request = i64::from(ctx.arg::<u64>(0) as i32);
        (*ev).target_pid = task.read::<u32>(offset!(task_pid)).unwrap_or(0);
        (*ev).ret = ctx.arg::<u64>(4) as i32;
    }
    entry.submit(prompt_wakeup());
    count_emitted(EventKind::AgentSignalled);
    0
}
