//! Signals sent to vigil itself, or to one of the host's security services user space guards
//! (`SIGNAL_GUARDED`: auditd, the syslog daemons, journald, other agents). An intruder with
//! root blinds the sensors before the real work: `kill -STOP` freezes vigil without a trace in
//! any log, `kill -9` ends it before it can write one, `kill -9 $(pidof auditd)` names no
//! service on its command line. The kernel's `signal_generate` tracepoint fires in the
//! sender's context, whatever the call (kill, tgkill, pidfd_send_signal, sigqueue), before the
//! signal is delivered: a stopped vigil reads the record once it runs again. What a SIGKILL leaves unread is reported by the
//! next vigil from its state directory (user space, `response::run_marker`).

use agent_common::{EventKind, PtraceEvent, SIGNAL_GUARDED_ENTRIES};
use aya_ebpf::{
    macros::{map, raw_tracepoint},
    maps::HashMap,
    programs::RawTracePointContext,
};

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

/// tgid -> u8: processes besides vigil whose signals from others are reported.
#[map(name = "SIGNAL_GUARDED")]
static SIGNAL_GUARDED: HashMap<u32, u8> = HashMap::with_max_entries(SIGNAL_GUARDED_ENTRIES, 0);

/// `signal_generate(int sig, struct kernel_siginfo *info, struct task_struct *task, int group,
/// int result)`.
#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn vigil_signal_generate(ctx: RawTracePointContext) -> u32 {
    let self_tgid = config().self_tgid;
    let task = KPtr::from_raw(ctx.arg::<*const u8>(2));
    let Some(target) = task.read::<u32>(offset!(task_tgid)) else {
        return 0;
    };
    // SAFETY: the value is only tested for presence.
    if target != self_tgid && unsafe { SIGNAL_GUARDED.get(&target) }.is_none() {
        return 0;
    }
    let (pid, tgid) = current_ids();
    // A process signalling itself, or vigil its own threads, is nobody's tampering.
    if tgid == target || tgid == self_tgid {
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
        reserve_record::<PtraceEvent>(EventKind::GuardedSignal, pid, tgid, start_ns)
    else {
        return 0;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: the reserved record, written field by field before it is submitted.
    unsafe {
        (*ev).request = i64::from(ctx.arg::<u64>(0) as i32);
        (*ev).target_pid = target;
        (*ev).ret = ctx.arg::<u64>(4) as i32;
    }
    entry.submit(prompt_wakeup());
    count_emitted(EventKind::GuardedSignal);
    0
}
