//! Opens of another process's `/proc/PID/mem`: for writing, how injectors write into a
//! process without attaching to it (the kernel still checks ptrace access, but no stop shows
//! and no ptrace call is made); for reading, how credential dumpers (mimipenguin and its kind)
//! lift passwords and keys out of a running process. And opens of `/proc/PID/environ`, which
//! the kernel copies out of the process's memory behind the same check: the secrets services
//! are handed in their environment. A process opening its own (`/proc/self/mem`, as a few JITs
//! and hot-patchers do) is skipped.
//!
//! On the same path, opens for writing of the kernel settings an attacker turns
//! (`core_pattern`, `modprobe`, ASLR, ptrace scope, ...: `agent_common::kernel_settings`).
//! The file is known by its filesystem's magic and its name, so every procfs mount counts, a
//! container's too; the pid is its directory's name (`/proc/PID/task/TID/mem` names the thread).
//!
//! Called for every successful open, with the file already looked up and, when a file rule
//! watched the open, its superblock too: most end at the superblock's magic, one probe read
//! (three without file rules).

use agent_common::{
    EVENTS_RING_BYTES, EventKind, MEMORY_READ_PROC_ENVIRON, MEMORY_READ_PROC_MEM,
    MEMORY_WRITE_PROC_MEM, OFFSET_UNKNOWN, PROC_SUPER_MAGIC, PathCallEvent, PtraceEvent,
    kernel_settings::{SETTING_NAME_LEN, SETTING_NAMES},
};
use aya_ebpf::{
    bindings::BPF_RB_AVAIL_DATA,
    helpers::generated::{bpf_probe_read_kernel, bpf_probe_read_kernel_str},
};

use crate::{
    emit::{count_emitted, count_lost, current_ids, prompt_wakeup, reserve_record},
    maps::EVENTS,
    task::{KPtr, config, current_leader_start_ns, leader_start_ns, offset, offsets},
};

/// The longest directory name read: a pid has at most 7 digits (`pid_max` ≤ 4194304).
const NAME_MAX_READ: usize = 8;

/// `file` (the opened `struct file`, non-null) was opened with `flags` as `fd`; `sb` is its
/// superblock when the caller read it, else 0.
#[inline(never)]
pub fn opened(file: u64, sb: u64, fd: i64, sys: u32, flags: u32) {
    // Only the offsets the common case needs, each read by itself: copying the whole
    // `KernelOffsets` is for the rare file that is on procfs.
    let file = KPtr::from_raw(file as *const u8);
    let known = Some(KPtr::from_raw(sb as *const u8)).filter(|s| !s.is_null());
    let Some(sb) = known.or_else(|| {
        file.read_ptr(offset!(file_inode))
            .and_then(|inode| inode.read_ptr(offset!(inode_sb)))
    }) else {
        return;
    };
    if sb.read::<u64>(offset!(sb_magic)) != Some(PROC_SUPER_MAGIC) {
        return;
    }
    let o = offsets();
    if o.file_f_path == OFFSET_UNKNOWN || o.path_dentry == OFFSET_UNKNOWN {
        return;
    }
    let Some(dentry) = file.read_ptr(o.file_f_path + o.path_dentry) else {
        return;
    };
    // O_WRONLY or O_RDWR (O_ACCMODE).
    let writes = flags & 0o3 != 0;
    let (kind, request) = match name_of(&o, dentry).map(u64::from_ne_bytes) {
        Some(n) if n == u64::from_ne_bytes(*b"mem\0\0\0\0\0") => {
            if writes {
                (EventKind::MemoryWrite, MEMORY_WRITE_PROC_MEM)
            } else {
                (EventKind::MemoryRead, MEMORY_READ_PROC_MEM)
            }
        }
        Some(n) if n == u64::from_ne_bytes(*b"environ\0") => {
            (EventKind::MemoryRead, MEMORY_READ_PROC_ENVIRON)
        }
        _ => {
            if writes {
                // Not given `o`: a reference would keep the whole struct on this frame's stack.
                kernel_setting(dentry, sys, fd, flags);
            }
            return;
        }
    };
    let Some(target) = dentry
        .read_ptr(o.dentry_d_parent)
        .and_then(|dir| name_of(&o, dir))
        .and_then(|name| parse_pid(&name))
    else {
        return;
    };
    let (pid, tgid) = current_ids();
    if target == tgid || target == pid || tgid == config().self_tgid {
        return;
    }
    // `ps e` and `cat /proc/*/environ` open one per process: the other half of the ring stays
    // for exec, exit and the other security records.
    if kind == EventKind::MemoryRead
        && EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= EVENTS_RING_BYTES as u64 / 2
    {
        count_lost(kind);
        return;
    }
    let start_ns = leader_start_ns(&o, KPtr::current_task());
    let Some(mut entry) = reserve_record::<PtraceEvent>(kind, pid, tgid, start_ns) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: the reserved record, its header written; the rest is written here before submit.
    unsafe {
        (*ev).request = request;
        (*ev).target_pid = target;
        (*ev).ret = fd as i32;
    }
    entry.submit(prompt_wakeup());
    count_emitted(kind);
}

/// A procfs file other than `mem` opened for writing: reported when it is one of the kernel
/// settings (`agent_common::kernel_settings`), by its name.
#[inline(never)]
fn kernel_setting(dentry: KPtr, sys: u32, fd: i64, flags: u32) {
    let (d_name, qstr_name) = (offset!(dentry_d_name), offset!(qstr_name));
    if d_name == OFFSET_UNKNOWN || qstr_name == OFFSET_UNKNOWN {
        return;
    }
    let Some(name) = dentry.read_ptr(d_name + qstr_name) else {
        return;
    };
    let mut words = [0u64; SETTING_NAME_LEN / 8];
    // SAFETY: at most SETTING_NAME_LEN bytes into a local of that size; the bytes after the NUL
    // stay zero, as the table's padding is. A longer name fills it and matches nothing.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            words.as_mut_ptr().cast(),
            SETTING_NAME_LEN as u32,
            name.as_ptr().cast(),
        )
    };
    if n <= 1 {
        return;
    }
    if !is_setting(&words) {
        return;
    }
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return;
    }
    // As for the other path calls (`path_calls.rs`): never into the second half of the ring.
    if EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= EVENTS_RING_BYTES as u64 / 2 {
        count_lost(EventKind::KernelSetting);
        return;
    }
    let start_ns = current_leader_start_ns();
    let Some(mut entry) =
        reserve_record::<PathCallEvent>(EventKind::KernelSetting, pid, tgid, start_ns)
    else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: the reserved record, written field by field before it is submitted; the name is
    // read into it directly (at most SETTING_NAME_LEN bytes, NUL included).
    unsafe {
        (*ev).syscall_nr = sys;
        (*ev).ret = fd as i32;
        (*ev).fd = -1;
        (*ev).value = u64::from(flags);
        (*ev).aux = 0;
        (*ev)._pad = 0;
        let n = bpf_probe_read_kernel_str(
            (*ev).path.as_mut_ptr().cast(),
            SETTING_NAME_LEN as u32,
            name.as_ptr().cast(),
        );
        (*ev).path_len = if n > 1 { (n - 1) as u32 } else { 0 };
    }
    entry.submit(prompt_wakeup());
    count_emitted(EventKind::KernelSetting);
}

/// Whether `w` is one of the settings' names. Unrolled over constant indices, so each name is
/// a set of immediates: iterating the table would copy its 416 bytes onto the 512-byte stack,
/// and comparing arrays could become a memcmp call, which BPF does not have.
#[inline(always)]
fn is_setting(w: &[u64; SETTING_NAME_LEN / 8]) -> bool {
    const _: () = assert!(SETTING_NAMES.len() == 13, "list every index below");
    let eq = |s: [u64; SETTING_NAME_LEN / 8]| {
        s[0] == w[0] && s[1] == w[1] && s[2] == w[2] && s[3] == w[3]
    };
    macro_rules! any_of {
        ($($i:literal)*) => { false $(|| eq(SETTING_NAMES[$i]))* };
    }
    any_of!(0 1 2 3 4 5 6 7 8 9 10 11 12)
}

/// The first bytes of a dentry's name, zero-padded.
#[inline(always)]
fn name_of(o: &agent_common::KernelOffsets, dentry: KPtr) -> Option<[u8; NAME_MAX_READ]> {
    if o.dentry_d_name == OFFSET_UNKNOWN || o.qstr_name == OFFSET_UNKNOWN {
        return None;
    }
    let name = dentry.read_ptr(o.dentry_d_name + o.qstr_name)?;
    let mut buf = [0u8; NAME_MAX_READ];
    // SAFETY: at most NAME_MAX_READ bytes into a local of that size; a fault is an error. A
    // shorter name's NUL and whatever follows it are read too, and cut at the NUL below.
    let rc = unsafe {
        bpf_probe_read_kernel(
            buf.as_mut_ptr().cast(),
            NAME_MAX_READ as u32,
            name.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return None;
    }
    let mut end = false;
    for b in buf.iter_mut() {
        end |= *b == 0;
        if end {
            *b = 0;
        }
    }
    Some(buf)
}

/// A directory name of decimal digits as a pid; `None` for anything else (`self` resolves to
/// the pid's directory before the open, so it never shows here).
#[inline(always)]
fn parse_pid(name: &[u8; NAME_MAX_READ]) -> Option<u32> {
    let mut pid: u32 = 0;
    let mut digits = 0;
    for &b in name.iter() {
        if b == 0 {
            break;
        }
        if !b.is_ascii_digit() {
            return None;
        }
        pid = pid * 10 + u32::from(b - b'0');
        digits += 1;
    }
    (digits > 0 && digits < NAME_MAX_READ).then_some(pid)
}
