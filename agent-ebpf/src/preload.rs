//! `LD_PRELOAD=/tmp/x.so ls`: code injected into a program through the dynamic loader, which
//! maps the libraries the variable names before the program's own and runs their constructors
//! first. `LD_AUDIT` does the same with auditing libraries, loaded before even the preloads.
//! The loader's `mmap` of the library with `PROT_EXEC` is what shows it; nothing before it
//! does, since the variable lives in the environment, which the kernel never parses.
//!
//! Every executable mapping of a file is looked at only as far as the file's inode: it is
//! reported when `CREATED` remembers that inode as written lately by another process (a
//! library the mapping process wrote itself, as a JVM unpacking its native code does, is not
//! this). Only then is the process's environment read, string by string, for either variable;
//! without it nothing is sent. So the common case, a library that has been on disk since
//! before the LRU's memory, costs four probe reads and a map lookup per library loaded.

use agent_common::{
    AUDIT_VAR, EventKind, FileKey, NAME_LEN, OFFSET_UNKNOWN, PATH_LEN, PRELOAD_ENV_STRINGS,
    PRELOAD_VAR, PreloadEvent,
};
use aya_ebpf::helpers::generated::{bpf_probe_read_kernel_str, bpf_probe_read_user_str};

use crate::{
    emit::{count_emitted, current_ids, prompt_wakeup, reserve_record},
    maps::CREATED,
    task::{KPtr, config, current_leader_start_ns, offset},
};

const PROT_EXEC: u64 = 0x4;
const MAP_ANONYMOUS: u64 = 0x20;

/// Whether an mmap that returned `ret`, with `prot`, `flags` and `fd`, mapped a file
/// executable.
#[inline(always)]
pub fn maps_code(prot: u64, flags: u64, fd: u64, ret: i64) -> bool {
    prot & PROT_EXEC != 0
        && flags & MAP_ANONYMOUS == 0
        && (fd as i32) >= 0
        && !(-4095..0).contains(&ret)
}

/// The current process mapped `file` (the fd's `struct file`, non-null) executable.
#[inline(never)]
pub fn mapped(file: u64) {
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return;
    }
    let file = KPtr::from_raw(file as *const u8);
    let Some(inode) = file.read_ptr(offset!(file_inode)) else {
        return;
    };
    // `i_sb` and `i_ino` sit close together in `struct inode`: one read.
    let Some((sb, ino)) = inode.read_pair(offset!(inode_sb), offset!(inode_ino)) else {
        return;
    };
    let Some(dev) = KPtr::from_raw(sb as *const u8).read::<u32>(offset!(sb_dev)) else {
        return;
    };
    let key = FileKey { ino, dev, _pad: 0 };
    // SAFETY: the value is copied out at once; an LRU entry may be replaced at any time.
    let Some(by) = (unsafe { CREATED.get(&key) }).copied() else {
        return;
    };
    if by.tgid == tgid {
        return;
    }
    let (env_start, env_end) = (offset!(mm_env_start), offset!(mm_env_end));
    if env_start == OFFSET_UNKNOWN || env_end == OFFSET_UNKNOWN {
        return;
    }
    let Some(mm) = KPtr::current_task().read_ptr(offset!(task_mm)) else {
        return;
    };
    let (Some(mut at), Some(end)) = (mm.read::<u64>(env_start), mm.read::<u64>(env_end)) else {
        return;
    };
    let Some(mut entry) = reserve_record::<PreloadEvent>(
        EventKind::PreloadLibrary,
        pid,
        tgid,
        current_leader_start_ns(),
    ) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // Each string is read into the record's buffer: the one that starts with `LD_PRELOAD=` or
    // `LD_AUDIT=` stays there. A string longer than the buffer is stepped through in
    // buffer-sized pieces.
    let mut found = 0;
    for _ in 0..PRELOAD_ENV_STRINGS {
        if at >= end {
            break;
        }
        // SAFETY: at most PATH_LEN bytes into the reserved record's PATH_LEN-byte buffer.
        let n = unsafe {
            bpf_probe_read_user_str(
                (*ev).preload.as_mut_ptr().cast(),
                PATH_LEN as u32,
                at as *const _,
            )
        };
        if n <= 0 {
            break;
        }
        // SAFETY: the buffer was just written; constant indices below its length.
        if unsafe { names_preload(&(*ev).preload) || names_audit(&(*ev).preload) } {
            found = (n - 1) as u32;
            break;
        }
        at += n as u64;
    }
    if found == 0 {
        entry.discard(0);
        return;
    }
    // SAFETY: the reserved record, written field by field before it is submitted.
    unsafe {
        (*ev).created_by = by;
        (*ev).ino = ino;
        (*ev).dev = dev;
        (*ev).preload_len = found;
        let name = file
            .read_ptr(offset!(file_f_path) + offset!(path_dentry))
            .and_then(|dentry| dentry.read_ptr(offset!(dentry_d_name) + offset!(qstr_name)));
        let copied = match name {
            Some(name) => bpf_probe_read_kernel_str(
                (*ev).name.as_mut_ptr().cast(),
                NAME_LEN as u32,
                name.as_ptr().cast(),
            ),
            None => 0,
        };
        if copied <= 0 {
            (*ev).name[0] = 0;
        }
    }
    entry.submit(prompt_wakeup());
    count_emitted(EventKind::PreloadLibrary);
}

/// Whether `$s` starts with `$p`, byte by byte at the listed constant indices, which must
/// cover `$p` exactly (checked at compile time): BPF has no memcmp, and a loop over the
/// variable's length would not unroll into immediates.
macro_rules! starts_with {
    ($s:expr, $p:expr, $($i:literal)*) => {{
        const _: () = assert!($p.len() == [$($i),*].len());
        let (s, p) = ($s, $p);
        true $(&& s[$i] == p[$i])*
    }};
}

/// Whether `s` starts with `LD_PRELOAD=`.
#[inline(always)]
fn names_preload(s: &[u8; PATH_LEN]) -> bool {
    starts_with!(s, PRELOAD_VAR, 0 1 2 3 4 5 6 7 8 9 10)
}

/// Whether `s` starts with `LD_AUDIT=`.
#[inline(always)]
fn names_audit(s: &[u8; PATH_LEN]) -> bool {
    starts_with!(s, AUDIT_VAR, 0 1 2 3 4 5 6 7 8)
}
