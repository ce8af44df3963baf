//! Counters, headers and the error path shared by all programs.

use agent_common::{
    ABI_VERSION, EventHeader, EventKind, PATH_LEN, ProbeErrorEvent, ProbeId, emitted_index,
    loss_index,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated::bpf_probe_read_user_str,
    },
    maps::ring_buf::RingBufEntry,
};

use crate::maps::{COUNTERS, EVENTS, PROMPT_PACE};

/// Adds `n` to a per-CPU counter. Per-CPU, so no atomics on the hot path; user space sums.
#[inline(always)]
pub fn bump(index: u32, n: u64) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: the pointer is to this CPU's slot of an array map value; preemption is off.
        unsafe { *c += n };
    }
}

#[inline(always)]
pub fn count_lost(kind: EventKind) {
    bump(loss_index(kind), 1);
}

#[inline(always)]
pub fn count_emitted(kind: EventKind) {
    bump(emitted_index(kind), 1);
}

/// The current thread's (pid, tgid).
#[inline(always)]
pub fn current_ids() -> (u32, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    (pid_tgid as u32, (pid_tgid >> 32) as u32)
}

#[inline(always)]
pub fn header(kind: EventKind, size: usize, pid: u32, tgid: u32, start_ns: u64) -> EventHeader {
    EventHeader {
        kind: kind as u16,
        abi_version: ABI_VERSION,
        size: size as u32,
        // SAFETY: helper without preconditions.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        pid,
        tgid,
        start_ns,
    }
}

/// Reserves a `T` in `EVENTS` with its header written, for records too big for the stack that
/// the caller fills in place before submitting; a failed reservation is counted as a loss of
/// `kind`.
#[inline(always)]
pub fn reserve_record<T: 'static>(
    kind: EventKind,
    pid: u32,
    tgid: u32,
    start_ns: u64,
) -> Option<RingBufEntry<T>> {
    let Some(mut entry) = EVENTS.reserve::<T>(0) else {
        count_lost(kind);
        return None;
    };
    let head = header(kind, core::mem::size_of::<T>(), pid, tgid, start_ns);
    // SAFETY: every ABI record is `repr(C)` and starts with its `EventHeader`.
    unsafe { entry.as_mut_ptr().cast::<EventHeader>().write(head) };
    Some(entry)
}

/// Reads the user-space path at `ptr` into a record's `PATH_LEN`-byte buffer at `dst`; returns
/// the bytes used without the NUL (0 when `ptr` is null or unreadable), for the record's
/// `path_len`.
///
/// # Safety
/// `dst` must be writable for `PATH_LEN` bytes (a reserved record's path field).
#[inline(always)]
pub unsafe fn read_user_path(dst: *mut u8, ptr: u64) -> u32 {
    if ptr == 0 {
        return 0;
    }
    // SAFETY: at most PATH_LEN bytes into the caller's buffer of that size.
    let n = unsafe { bpf_probe_read_user_str(dst.cast(), PATH_LEN as u32, ptr as *const _) };
    if n > 1 { (n - 1) as u32 } else { 0 }
}

/// Tells user space a probe hit an error, so it is counted there instead of vanishing.
#[inline(never)]
pub fn report_error(probe: ProbeId, code: i64, pid: u32, tgid: u32) {
    let Some(mut entry) = EVENTS.reserve::<ProbeErrorEvent>(0) else {
        count_lost(EventKind::ProbeError);
        return;
    };
    entry.write(ProbeErrorEvent {
        header: header(
            EventKind::ProbeError,
            core::mem::size_of::<ProbeErrorEvent>(),
            pid,
            tgid,
            0,
        ),
        probe: probe as u16,
        _pad: 0,
        code: code as i32,
    });
    entry.submit(0);
    count_emitted(EventKind::ProbeError);
}

/// Wakeup flags for records response acts on (exec, connect, ptrace...): a forced wakeup,
/// unless one went out within the window `agent_common::wakeup` paces them by, in which case
/// the reader takes this record along with the drain it makes just past that window after each
/// wakeup (`sensors::reader::read_loop`), or with the next wakeup. The kernel's default
/// (flags 0) wakes the reader only if it has consumed everything before the record, so behind a
/// fork or exit written without a wakeup an exec would wait for the reader's timer (measured:
/// exec -> quarantine 28-109 ms instead of ~25).
#[inline(always)]
pub fn prompt_wakeup() -> u64 {
    use aya_ebpf::bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(pace) = PROMPT_PACE.get_ptr_mut(0) {
        // SAFETY: the one slot of an array map. CPUs race on it; the worst outcome is an extra
        // wakeup or one record paced by the other window.
        if !unsafe { (*pace).due(now) } {
            return BPF_RB_NO_WAKEUP.into();
        }
    }
    BPF_RB_FORCE_WAKEUP.into()
}

/// Wakeup flags for lifecycle records that response does not wait on (fork, exit): no wakeup
/// (each one is an IPI, a VM exit under virtualisation) unless a quarter of the ring waits; the
/// reader's drain timer collects them, and an exec, which does wake it, takes them along.
#[inline(always)]
pub fn lazy_wakeup() -> u64 {
    use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
    if EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= u64::from(agent_common::EVENTS_RING_BYTES / 4) {
        BPF_RB_FORCE_WAKEUP.into()
    } else {
        BPF_RB_NO_WAKEUP.into()
    }
}
