//! Opens of watched files. An open is looked at only at its exit, only when it succeeded and
//! `WATCHED_FILES` holds something (`FILE_WALK[0] != 0`): the new fd's file is looked up by
//! inode, then its directories, as deep as a watch for the open's access needs. Nothing is
//! remembered at entry: the arguments are still in the saved registers at exit, and each helper
//! call costs here (every open on the host pays for them).
//!
//! Inodes rather than paths: the kernel has already resolved the path (relative to any cwd or
//! dirfd, through symlinks and `..`), so `cd /etc && cat ./shadow` or a hard link cannot slip
//! past a watch the way it slips past a string compare. User space names the watches by path
//! and turns the components carried here back into one.

use agent_common::{
    EventKind, FILE_NAME_LEN, FILE_WALK_ENTRIES, FILE_WATCH_MAX_DEPTH, FileEvent, FileKey, KernelOffsets,
    OFFSET_UNKNOWN, file_access, file_filter_bit, syscall_nr as nr,
};
use aya_ebpf::helpers::generated::{
    bpf_get_current_task_btf, bpf_probe_read_kernel_str, bpf_probe_read_user,
};

use crate::{
    emit::{count_emitted, count_lost, current_ids, header, prompt_wakeup},
    maps::{FILE_FILTER, FILE_WALK, WATCHED_FILES},
    task::{KPtr, config, leader_start_ns, offset, offsets},
};

#[inline(always)]
fn walk(index: u32) -> u32 {
    FILE_WALK.get(index).copied().unwrap_or(0)
}

#[inline(always)]
pub fn watching() -> bool {
    walk(0) != 0
}

/// How many levels an open with `access` is walked: as deep as a watch for any of its accesses.
#[inline(always)]
fn walk_levels(access: u32) -> u32 {
    let mut levels = 0;
    for bit in 0..FILE_WALK_ENTRIES - 1 {
        if access & (1 << bit) != 0 {
            levels = levels.max(walk(1 + bit));
        }
    }
    levels
}

/// `current->files->fdt->fd[fd]` through the BTF-typed `current` a tp_btf program may load
/// from directly: three plain loads where the probe-read chain (`file_of`) makes three helper
/// calls, each ~50 ns here. The fd array is indexed at run time, which the verifier allows
/// only through a probe read.
#[inline(always)]
pub fn file_of_btf(fd: u32) -> Option<KPtr> {
    let (t_files, f_fdt, f_max, f_fd) = (
        offset!(task_files),
        offset!(files_fdt),
        offset!(fdt_max_fds),
        offset!(fdt_fd),
    );
    if t_files == OFFSET_UNKNOWN || f_fdt == OFFSET_UNKNOWN || f_max == OFFSET_UNKNOWN || f_fd == OFFSET_UNKNOWN {
        return None;
    }
    // SAFETY: the verifier checks each load against the kernel's BTF at the (known) offset
    // and turns it into a fault-tolerant load; a NULL or freed pointer reads as 0.
    unsafe {
        let task = bpf_get_current_task_btf() as *const u8;
        let files = *(task.add(t_files as usize) as *const *const u8);
        if files.is_null() {
            return None;
        }
        let fdt = *(files.add(f_fdt as usize) as *const *const u8);
        if fdt.is_null() {
            return None;
        }
        let max = *(fdt.add(f_max as usize) as *const u32);
        if fd >= max {
            return None;
        }
        let fds = *(fdt.add(f_fd as usize) as *const u64);
        KPtr::from_raw(fds as *const u8).read_ptr(fd.checked_mul(8)?)
    }
}

/// The flags of an open/creat/openat/openat2 (`sys`) called with `args`.
#[inline(always)]
pub fn open_flags(sys: u32, args: [u64; 3]) -> u32 {
    match sys {
        nr::OPEN => args[1] as u32,
        // O_CREAT | O_WRONLY | O_TRUNC
        nr::CREAT => 0o1101,
        nr::OPENAT => args[2] as u32,
        _ => {
            // openat2's `struct open_how` starts with the u64 flags.
            let mut f: u64 = 0;
            // SAFETY: 8 bytes into a local; a failed read leaves 0 (a read-only open).
            unsafe { bpf_probe_read_user((&mut f as *mut u64).cast(), 8, args[2] as *const _) };
            f as u32
        }
    }
}

/// Levels an open with `flags` is looked at; 0 when no watch wants its kind of access (an
/// `O_PATH` open, a read while only writes are watched), and then nothing more is read.
#[inline(always)]
pub fn levels_for(flags: u32) -> u32 {
    walk_levels(file_access(flags))
}

/// An open with `flags` returned `fd` (>= 0) to the current task, whose file `btf_file` is
/// when the caller could read it directly (tp_btf; null otherwise: one register, since BPF
/// calls pass at most five).
#[inline(never)]
pub fn opened(flags: u32, fd: i64, btf_file: u64) {
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return;
    }
    let access = file_access(flags);
    let levels = walk_levels(access);
    if levels == 0 {
        return;
    }
    let o = offsets();
    let direct = Some(KPtr::from_raw(btf_file as *const u8)).filter(|f| !f.is_null());
    let Some(file) = direct.or_else(|| file_of(&o, KPtr::current_task(), fd as u32)) else {
        return;
    };
    let Some(inode) = file.read_ptr(o.file_inode) else {
        return;
    };
    // `i_sb` and `i_ino` sit close together in `struct inode`: one read.
    let Some((sb, ino)) = inode.read_pair(o.inode_sb, o.inode_ino) else {
        return;
    };
    let Some(Found { depth, watch_ino, dev, first }) =
        find_watch(&o, file, KPtr::from_raw(sb as *const u8), ino, access, levels)
    else {
        return;
    };
    let start_ns = leader_start_ns(&o, KPtr::current_task());
    let Some(mut entry) = crate::maps::EVENTS.reserve::<FileEvent>(0) else {
        count_lost(EventKind::FileOpen);
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reserved record, written field by field (it is too big for the
    // stack) before it is submitted; names past `depth` are emptied so nothing stale leaves.
    unsafe {
        (*ev).header = header(
            EventKind::FileOpen,
            core::mem::size_of::<FileEvent>(),
            pid,
            tgid,
            start_ns,
        );
        (*ev).flags = flags;
        (*ev).fd = fd as i32;
        (*ev).access = access;
        (*ev).depth = depth;
        (*ev).watch_ino = watch_ino;
        (*ev).watch_dev = dev;
        (*ev).dev = dev;
        (*ev).ino = ino;
        let mut dentry = Some(first);
        for level in 0..FILE_WATCH_MAX_DEPTH {
            let name = &mut (*ev).names[level];
            name[0] = 0;
            if level as u32 >= depth {
                continue;
            }
            let Some(d) = dentry else { continue };
            if o.dentry_d_name != OFFSET_UNKNOWN
                && o.qstr_name != OFFSET_UNKNOWN
                && let Some(s) = d.read_ptr(o.dentry_d_name + o.qstr_name)
                && bpf_probe_read_kernel_str(
                    name.as_mut_ptr().cast(),
                    FILE_NAME_LEN as u32,
                    s.as_ptr().cast(),
                ) < 0
            {
                name[0] = 0;
            }
            dentry = d.read_ptr(o.dentry_d_parent);
        }
    }
    entry.submit(prompt_wakeup());
    count_emitted(EventKind::FileOpen);
}

/// Whether the filter has the inode's bit: false means certainly not watched.
#[inline(always)]
fn maybe_watched(ino: u64) -> bool {
    let bit = file_filter_bit(ino);
    FILE_FILTER
        .get(bit / 64)
        .is_some_and(|w| w & (1u64 << (bit % 64)) != 0)
}

/// `current->files->fdt->fd[fd]`, bounds-checked against `max_fds`.
#[inline(always)]
fn file_of(o: &KernelOffsets, task: KPtr, fd: u32) -> Option<KPtr> {
    let fdt = task.read_ptr(o.task_files)?.read_ptr(o.files_fdt)?;
    let (max, fds) = fdt.read_pair(o.fdt_max_fds, o.fdt_fd)?;
    if fd >= max as u32 {
        return None;
    }
    KPtr::from_raw(fds as *const u8).read_ptr(fd.checked_mul(8)?)
}

struct Found {
    /// Levels between the file and the watch.
    depth: u32,
    watch_ino: u64,
    dev: u32,
    /// The file's dentry.
    first: KPtr,
}

/// The first inode from the file upwards that a watch covers for this access. A walk stops at
/// the root of the file's mount (`d_parent` is itself). Everything is read as late as it can
/// be: most opens end at the filter test on the file's own inode, having read neither the
/// device nor a dentry.
#[inline(always)]
fn find_watch(
    o: &KernelOffsets,
    file: KPtr,
    sb: KPtr,
    ino: u64,
    access: u32,
    levels: u32,
) -> Option<Found> {
    if o.file_f_path == OFFSET_UNKNOWN || o.path_dentry == OFFSET_UNKNOWN {
        return None;
    }
    let dentry_of_file = || file.read_ptr(o.file_f_path + o.path_dentry);
    let mut key = FileKey { ino, dev: 0, _pad: 0 };
    let mut dev: Option<u32> = None;
    let mut first: Option<KPtr> = None;
    let mut dentry: Option<KPtr> = None;
    let mut parent: Option<KPtr> = None;
    for depth in 0..FILE_WATCH_MAX_DEPTH as u32 {
        if depth >= levels {
            return None;
        }
        if maybe_watched(key.ino) {
            // The walk never leaves the file's mount, so one device serves every level.
            key.dev = match dev {
                Some(d) => d,
                None => *dev.insert(sb.read::<u32>(o.sb_dev)?),
            };
            // SAFETY: read-only lookup; the value is copied.
            if let Some(w) = unsafe { WATCHED_FILES.get(&key) }
                && w.access & access != 0
                && depth <= w.max_depth
            {
                let first = match first {
                    Some(f) => f,
                    None => dentry_of_file()?,
                };
                return Some(Found { depth, watch_ino: key.ino, dev: key.dev, first });
            }
        }
        if depth + 1 >= levels {
            return None;
        }
        let here = match dentry {
            Some(d) => d,
            None => *first.insert(dentry_of_file()?),
        };
        let up = match parent {
            Some(p) => p,
            None => here.read_ptr(o.dentry_d_parent)?,
        };
        if up == here {
            return None;
        }
        // The parent's inode and its own parent, in one read.
        let (inode, grandparent) = up.read_pair(o.dentry_d_inode, o.dentry_d_parent)?;
        key.ino = KPtr::from_raw(inode as *const u8).read::<u64>(o.inode_ino)?;
        dentry = Some(up);
        parent = Some(KPtr::from_raw(grandparent as *const u8)).filter(|p| !p.is_null());
    }
    None
}
