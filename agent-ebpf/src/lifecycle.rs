//! Process lifecycle: exec, fork (new processes only), exit (last thread of a process).

use agent_common::{
    ARGS_LEN, EXEC_FLAG_ARGS_TRUNCATED, EXEC_FLAG_ARGS_UNREADABLE, EXEC_FLAG_DENIED,
    EXEC_FLAG_DENY_SPARED, EXEC_FLAG_FILENAME_TRUNCATED, EXEC_FLAG_MEMFD,
    EXEC_FLAG_STDOUT_INHERITED, EventKind, ExecEvent, ExitEvent, FORK_FLAG_DERIVED, FlushReason,
    ForkEvent, KernelOffsets, MEMFD_NAME_LEN, PATH_LEN, ProbeId, STDIO_INET_PARENT_SHIFT,
    call_class, syscall_nr,
};
use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user},
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

use crate::{
    created,
    emit::{
        count_emitted, count_lost, current_ids, header, lazy_wakeup, prompt_wakeup, report_error,
    },
    maps::{CREDS, EVENTS},
    response::{ExecVerdict, check_exec},
    syscalls::{record, release_slot},
    task::{
        KPtr, config, creds_of, current_syscall, exe_file, image_of, leader_start_ns, memfd_image,
        offsets, parent_of, remember_creds, stdio_of, stdout_file,
    },
};

// Clone flags we report for calls whose flags are fixed or that we did not see.
const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
const SIGCHLD: u64 = 17;

// `sched_process_exec` record layout (stable since 3.4): `__data_loc char[] filename` at 8,
// `pid_t old_pid` at 16.
const EXEC_FILENAME_LOC: usize = 8;
const EXEC_OLD_PID: usize = 16;

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn vigil_sched_exec(ctx: TracePointContext) -> u32 {
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return 0;
    }
    if let Err(code) = try_exec(&ctx, pid, tgid) {
        report_error(ProbeId::Exec, code, pid, tgid);
    }
    0
}

fn try_exec(ctx: &TracePointContext, pid: u32, tgid: u32) -> Result<(), i64> {
    // SAFETY: offsets inside the tracepoint record, read through bpf_probe_read_kernel.
    let old_pid: u32 = unsafe { ctx.read_at::<i32>(EXEC_OLD_PID) }.map_err(i64::from)? as u32;
    // Syscalls made before the exec belong to the old image: send them first, in order.
    // (A non-leader thread that execs ran as `old_pid` until now: its batch says so.) The
    // execve itself ends them: its exit is the new image's (`syscalls::exit_token`).
    if let Some((nr, _)) = current_syscall()
        && (nr == syscall_nr::EXECVE as u64 || nr == syscall_nr::EXECVEAT as u64)
    {
        record(call_class::batch_id(nr, call_class::NONE));
    }
    release_slot(FlushReason::Exec);

    // Deny-exec acts first, before the new image returns to user space, and whether or not the
    // ring has room to report it: a flood must not open a window for denied images.
    // SAFETY: offsets inside the tracepoint record, read through bpf_probe_read_kernel.
    let loc: u32 = unsafe { ctx.read_at::<u32>(EXEC_FILENAME_LOC) }.unwrap_or(0);
    let src = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
    // SAFETY: `src` points into the tracepoint record (kernel memory).
    let verdict = unsafe { check_exec(src, tgid) };

    let o = offsets();
    let task = KPtr::current_task();
    // A set-user-ID image changes them: what a later setuid-family call starts from.
    let creds = creds_of(&o, task);
    remember_creds(pid, &creds);
    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        count_lost(EventKind::Exec);
        return Ok(());
    };
    let ev = entry.as_mut_ptr();
    let (ppid, parent_start_ns) = parent_of(&o, task);
    // SAFETY: `ev` points to reserved ring-buffer memory of size_of::<ExecEvent>(); every field
    // is written below before submit (strings up to their recorded lengths).
    unsafe {
        (*ev).header = header(
            EventKind::Exec,
            core::mem::size_of::<ExecEvent>(),
            pid,
            tgid,
            leader_start_ns(&o, task),
        );
        (*ev).ppid = ppid;
        (*ev).old_pid = old_pid;
        (*ev).uid = creds.uid;
        (*ev).euid = creds.euid;
        (*ev).gid = creds.gid;
        (*ev).egid = creds.egid;
        (*ev).cgroup_id = bpf_get_current_cgroup_id();
        (*ev).parent_start_ns = parent_start_ns;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);

        let mut flags = 0u32;
        let n = bpf_probe_read_kernel_str(
            (*ev).filename.as_mut_ptr().cast(),
            PATH_LEN as u32,
            src.cast(),
        );
        // n counts the NUL; a full buffer means the path may have been cut.
        let used = if n > 0 { (n - 1) as u16 } else { 0 };
        if n as usize >= PATH_LEN {
            flags |= EXEC_FLAG_FILENAME_TRUNCATED;
        }
        (*ev).filename_len = used;

        (*ev).deny_rule = 0;
        match verdict {
            ExecVerdict::Allowed => {}
            ExecVerdict::Killed(rule) => {
                flags |= EXEC_FLAG_DENIED;
                (*ev).deny_rule = rule + 1;
            }
            ExecVerdict::Spared(rule) => {
                flags |= EXEC_FLAG_DENY_SPARED;
                (*ev).deny_rule = rule + 1;
            }
        }
        let (modes, inet) = stdio_of(&o, task);
        (*ev).stdio_modes = modes;
        let parent = task.read_ptr(o.task_real_parent);
        let parent_inet = parent.map_or(0, |parent| stdio_of(&o, parent).1);
        (*ev).stdio_inet = inet | parent_inet << STDIO_INET_PARENT_SHIFT;
        let stdout = stdout_file(&o, task);
        if stdout != 0 && parent.is_some_and(|p| stdout_file(&o, p) == stdout) {
            flags |= EXEC_FLAG_STDOUT_INHERITED;
        }
        let exe = exe_file(&o, task);
        (*ev).image = image_of(&o, exe);
        (*ev).memfd_name = [0; MEMFD_NAME_LEN];
        if memfd_image(&o, exe, (*ev).memfd_name.as_mut_ptr()) {
            flags |= EXEC_FLAG_MEMFD;
        }
        (*ev).written_by = created::by(&(*ev).image);

        let (args_len, args_flags) = read_args(&o, task, (*ev).args.as_mut_ptr());
        (*ev).args_len = args_len;
        (*ev).flags = flags | args_flags;
    }
    entry.submit(prompt_wakeup());
    count_emitted(EventKind::Exec);
    Ok(())
}

/// Copies argv of the new image (`mm->arg_start..arg_end`, NUL-separated) into `dst`.
///
/// # Safety
/// `dst` must point to `ARGS_LEN` writable bytes.
#[inline(always)]
unsafe fn read_args(o: &KernelOffsets, task: KPtr, dst: *mut u8) -> (u16, u32) {
    let Some(mm) = task.read_ptr(o.task_mm) else {
        return (0, EXEC_FLAG_ARGS_UNREADABLE);
    };
    let (Some(start), Some(end)) = (mm.read::<u64>(o.mm_arg_start), mm.read::<u64>(o.mm_arg_end))
    else {
        return (0, EXEC_FLAG_ARGS_UNREADABLE);
    };
    let total = end.saturating_sub(start);
    let mut flags = 0;
    let mut len = total;
    if len > ARGS_LEN as u64 {
        len = ARGS_LEN as u64;
        flags |= EXEC_FLAG_ARGS_TRUNCATED;
    }
    // The mask restates the bound in a form the verifier tracks through the helper's size arg.
    let len = (len as u32) & (2 * ARGS_LEN as u32 - 1);
    if len == 0 || len > ARGS_LEN as u32 {
        return (0, flags);
    }
    // SAFETY: len <= ARGS_LEN bytes at dst; the source is user memory the exec just wrote.
    if unsafe { bpf_probe_read_user(dst.cast(), len, start as *const _) } != 0 {
        return (0, flags | EXEC_FLAG_ARGS_UNREADABLE);
    }
    (len as u16, flags)
}

/// `sched_process_fork(parent, child)` as a raw tracepoint: it hands us the task pointers, whose
/// fields we read at BTF-resolved offsets, so the record layout of the tracepoint (which changed
/// in 6.x) does not matter.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn vigil_sched_fork(ctx: RawTracePointContext) -> u32 {
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return 0;
    }
    let o = offsets();
    let parent = KPtr::from_raw(ctx.arg::<*const u8>(0));
    let child = KPtr::from_raw(ctx.arg::<*const u8>(1));
    let (Some(child_pid), Some(child_tgid)) = (
        child.read::<u32>(o.task_pid),
        child.read::<u32>(o.task_tgid),
    ) else {
        report_error(ProbeId::Fork, -14, pid, tgid);
        return 0;
    };
    // Every new thread starts from its creator's ids (see `maps::CREDS`).
    remember_creds(child_pid, &creds_of(&o, child));
    // New threads are not processes; the process table tracks processes.
    if child_tgid != child_pid {
        return 0;
    }
    let (clone_flags, flags) = clone_flags(&o, parent, child);
    let Some(mut entry) = EVENTS.reserve::<ForkEvent>(0) else {
        count_lost(EventKind::Fork);
        return 0;
    };
    entry.write(ForkEvent {
        header: header(
            EventKind::Fork,
            core::mem::size_of::<ForkEvent>(),
            pid,
            tgid,
            leader_start_ns(&o, parent),
        ),
        child_pid,
        child_tgid,
        clone_flags,
        child_start_ns: child.read::<u64>(o.task_start_boottime).unwrap_or(0),
        flags,
        _pad: 0,
    });
    entry.submit(lazy_wakeup());
    count_emitted(EventKind::Fork);
    0
}

/// The flags the caller passed to clone/clone3 (read from its saved registers: the fork probe
/// runs inside that call), or the ones we can derive for fork/vfork and anything unreadable.
#[inline(always)]
fn clone_flags(o: &KernelOffsets, parent: KPtr, child: KPtr) -> (u64, u32) {
    match current_syscall() {
        Some((nr, flags)) if nr == syscall_nr::CLONE as u64 => return (flags, 0),
        Some((nr, uargs)) if nr == syscall_nr::CLONE3 as u64 => {
            // clone3(struct clone_args *uargs, size): flags is the first u64.
            let mut flags = 0u64;
            // SAFETY: reads 8 bytes of user memory into a local.
            let rc = unsafe {
                bpf_probe_read_user((&mut flags as *mut u64).cast(), 8, uargs as *const _)
            };
            if rc == 0 {
                return (flags, 0);
            }
        }
        _ => {}
    }
    let mut derived = SIGCHLD;
    let shares_mm = match (parent.read::<u64>(o.task_mm), child.read::<u64>(o.task_mm)) {
        (Some(a), Some(b)) => a == b && a != 0,
        _ => false,
    };
    if shares_mm {
        // A new process sharing the parent's mm is vfork (or clone(CLONE_VM) we did not see).
        derived |= CLONE_VM | CLONE_VFORK;
    }
    (derived & !CLONE_THREAD, FORK_FLAG_DERIVED)
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn vigil_sched_exit(_ctx: TracePointContext) -> u32 {
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return 0;
    }
    let o = offsets();
    let task = KPtr::current_task();
    // exit and exit_group never reach their sys_exit: the thread's last syscall is recorded
    // here, and whatever it did goes out before its process's exit record. A thread killed by
    // a signal (low 7 bits of its exit code) made no exit call, whatever its registers hold.
    let exit_code = task.read::<u32>(o.task_exit_code);
    let killed = exit_code.is_none_or(|code| code & 0x7f != 0);
    if !killed
        && let Some((nr, _)) = current_syscall()
        && syscall_nr::never_returns(nr)
    {
        record(call_class::batch_id(nr, call_class::NONE));
    }
    release_slot(FlushReason::Exit);
    let _ = CREDS.remove(&pid);

    // signal->live was decremented before this tracepoint: zero means the last thread is leaving.
    let live = task
        .read_ptr(o.task_signal)
        .and_then(|sig| sig.read::<i32>(o.signal_live));
    match live {
        Some(0) => {}
        Some(_) => return 0,
        // Without the offset, fall back to the leader's exit as the process's exit.
        None if pid == tgid => {}
        None => return 0,
    }
    let Some(mut entry) = EVENTS.reserve::<ExitEvent>(0) else {
        count_lost(EventKind::Exit);
        return 0;
    };
    entry.write(ExitEvent {
        header: header(
            EventKind::Exit,
            core::mem::size_of::<ExitEvent>(),
            pid,
            tgid,
            leader_start_ns(&o, task),
        ),
        exit_code: exit_code.unwrap_or(u32::MAX),
        _pad: 0,
    });
    entry.submit(lazy_wakeup());
    count_emitted(EventKind::Exit);
    0
}
