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
//!
//! Renames and unlinks (`path_changed`) open nothing: an absolute path is matched as a string
//! against `WATCHED_PATHS`, a relative one from its base directory's inode upwards.

use agent_common::{
    EventKind, FILE_ACCESS_DELETE, FILE_ACCESS_REWRITE, FILE_ACCESS_WRITE, FILE_NAME_LEN,
    FILE_WALK_ENTRIES, FILE_WATCH_MAX_DEPTH, FileEvent, FileKey, OFFSET_UNKNOWN,
    PATH_LEN, PATH_ROLE_RENAMED_FROM, PATH_ROLE_RENAMED_TO, PATH_ROLE_UNLINKED, PathChangeEvent,
    file_access, file_filter_bit, syscall_nr as nr,
};
use aya_ebpf::{
    helpers::generated::{
        bpf_get_current_task_btf, bpf_probe_read_kernel_str, bpf_probe_read_user,
        bpf_probe_read_user_str,
    },
    maps::lpm_trie::Key,
};

use crate::{
    emit::{count_emitted, current_ids, prompt_wakeup, reserve_record},
    maps::{FILE_FILTER, FILE_WALK, WATCHED_FILES, WATCHED_PATHS},
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
    if t_files == OFFSET_UNKNOWN
        || f_fdt == OFFSET_UNKNOWN
        || f_max == OFFSET_UNKNOWN
        || f_fd == OFFSET_UNKNOWN
    {
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

/// An open with `flags`, to be looked at `levels` deep (`levels_for`, non-zero), returned
/// `fd` (>= 0) to the current task, whose `struct file` is `file` when the caller has read it
/// already (null otherwise: one register, since BPF calls pass at most five). Returns the
/// file's superblock when it read it (0 otherwise), for `proc_mem` to use without reading it
/// again.
#[inline(never)]
pub fn opened(flags: u32, levels: u32, fd: i64, file: u64) -> u64 {
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return 0;
    }
    let access = file_access(flags);
    // Single offsets, not a copy of all of `KernelOffsets`: every open on the host comes here,
    // and that copy was most of what `proc_mem`'s check first cost a write open (bpf_stats A/B:
    // ~50-70 ns a program run, gone with single offsets).
    let direct = Some(KPtr::from_raw(file as *const u8)).filter(|f| !f.is_null());
    let Some(file) = direct.or_else(|| file_of(fd as u32)) else {
        return 0;
    };
    let Some(inode) = file.read_ptr(offset!(file_inode)) else {
        return 0;
    };
    // `i_sb` and `i_ino` sit close together in `struct inode`: one read.
    let Some((sb, ino)) = inode.read_pair(offset!(inode_sb), offset!(inode_ino)) else {
        return 0;
    };
    let Some(Found {
        depth,
        watch_ino,
        dev,
        first,
    }) = find_watch(
        file,
        KPtr::from_raw(sb as *const u8),
        ino,
        access,
        levels,
    )
    else {
        return sb;
    };
    let start_ns = leader_start_ns(&offsets(), KPtr::current_task());
    let Some(mut entry) = reserve_record::<FileEvent>(EventKind::FileOpen, pid, tgid, start_ns)
    else {
        return sb;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reserved record, written field by field (it is too big for the
    // stack) before it is submitted; names past `depth` are emptied so nothing stale leaves.
    unsafe {
        (*ev).flags = flags;
        (*ev).fd = fd as i32;
        (*ev).access = access;
        (*ev).depth = depth;
        (*ev).watch_ino = watch_ino;
        (*ev).watch_dev = dev;
        (*ev).dev = dev;
        (*ev).ino = ino;
        write_names(&mut (*ev).names, first, depth);
    }
    entry.submit(prompt_wakeup());
    count_emitted(EventKind::FileOpen);
    sb
}

/// Whether the filter has the inode's bit: false means certainly not watched.
#[inline(always)]
fn maybe_watched(ino: u64) -> bool {
    let bit = file_filter_bit(ino);
    FILE_FILTER
        .get(bit / 64)
        .is_some_and(|w| w & (1u64 << (bit % 64)) != 0)
}

/// The names of `dentry` (null: none) and the directories above it, `depth` of them, into
/// `names`; the slots past `depth` (and any name that cannot be read) are left empty, so
/// nothing stale from the ring buffer leaves with the record.
#[inline(always)]
fn write_names(
    names: &mut [[u8; FILE_NAME_LEN]; FILE_WATCH_MAX_DEPTH],
    mut dentry: KPtr,
    depth: u32,
) {
    let (name_at, parent_at) = (offset!(dentry_d_name), offset!(dentry_d_parent));
    let qstr_name = offset!(qstr_name);
    for (level, name) in names.iter_mut().enumerate() {
        name[0] = 0;
        if level as u32 >= depth || name_at == OFFSET_UNKNOWN || qstr_name == OFFSET_UNKNOWN {
            continue;
        }
        if dentry.is_null() {
            continue;
        }
        if let Some(s) = dentry.read_ptr(name_at + qstr_name) {
            // SAFETY: at most FILE_NAME_LEN bytes into the slot; a fault comes back negative.
            let n = unsafe {
                bpf_probe_read_kernel_str(
                    name.as_mut_ptr().cast(),
                    FILE_NAME_LEN as u32,
                    s.as_ptr().cast(),
                )
            };
            if n < 0 {
                name[0] = 0;
            }
        }
        // A null pointer (no parent, or a failed read) ends the walk: an Option here would
        // leave a register the verifier sees as uninitialised on the `None` path.
        dentry = dentry.read_ptr(parent_at).unwrap_or(KPtr::from_raw(core::ptr::null()));
    }
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
    file: KPtr,
    sb: KPtr,
    ino: u64,
    access: u32,
    levels: u32,
) -> Option<Found> {
    let (f_path, path_dentry) = (offset!(file_f_path), offset!(path_dentry));
    if f_path == OFFSET_UNKNOWN || path_dentry == OFFSET_UNKNOWN {
        return None;
    }
    let dentry_of_file = || file.read_ptr(f_path + path_dentry);
    let mut key = FileKey {
        ino,
        dev: 0,
        _pad: 0,
    };
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
                None => *dev.insert(sb.read::<u32>(offset!(sb_dev))?),
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
                return Some(Found {
                    depth,
                    watch_ino: key.ino,
                    dev: key.dev,
                    first,
                });
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
            None => here.read_ptr(offset!(dentry_d_parent))?,
        };
        if up == here {
            return None;
        }
        // The parent's inode and its own parent, in one read.
        let (inode, grandparent) = up.read_pair(offset!(dentry_d_inode), offset!(dentry_d_parent))?;
        key.ino = KPtr::from_raw(inode as *const u8).read::<u64>(offset!(inode_ino))?;
        dentry = Some(up);
        parent = Some(KPtr::from_raw(grandparent as *const u8)).filter(|p| !p.is_null());
    }
    None
}

/// A rename or unlink (`sys`, called with `args`) succeeded: reports each of its paths that a
/// watch covers for what the call did there.
#[inline(always)]
pub fn path_changed(sys: u32, args: [u64; 4]) {
    const AT_FDCWD: u64 = -100i64 as u64;
    const AT_REMOVEDIR: u64 = 0x200;
    // (dirfd, path) of the target and of the source.
    let (target, source) = match sys {
        nr::RENAME => (Some((AT_FDCWD, args[1])), Some((AT_FDCWD, args[0]))),
        nr::RENAMEAT | nr::RENAMEAT2 => (Some((args[2], args[3])), Some((args[0], args[1]))),
        nr::UNLINK => (None, Some((AT_FDCWD, args[0]))),
        // rmdir through unlinkat: directories are watched for what is put in them.
        nr::UNLINKAT if args[2] & AT_REMOVEDIR == 0 => (None, Some((args[0], args[1]))),
        _ => (None, None),
    };
    if let Some((dirfd, p)) = target {
        path_check(
            sys,
            dirfd,
            p,
            PATH_ROLE_RENAMED_TO,
            FILE_ACCESS_WRITE | FILE_ACCESS_REWRITE,
        );
    }
    if let Some((dirfd, p)) = source {
        let role = if target.is_some() {
            PATH_ROLE_RENAMED_FROM
        } else {
            PATH_ROLE_UNLINKED
        };
        path_check(sys, dirfd, p, role, FILE_ACCESS_DELETE);
    }
}

/// One path of a rename or unlink. Not inlined, so the 260-byte key has a stack frame of its
/// own (as `check_exec`'s). An absolute path is looked up as a string in `WATCHED_PATHS`; a
/// relative one from its base directory upwards by inode, as deep as its components put it.
#[inline(never)]
fn path_check(sys: u32, dirfd: u64, path: u64, role: u32, access: u32) {
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return;
    }
    let mut key = Key::new(0, [0u8; PATH_LEN]);
    // SAFETY: into this frame's PATH_LEN-byte array (`Key` is packed: raw pointers only).
    let n = unsafe {
        bpf_probe_read_user_str(
            core::ptr::addr_of_mut!(key.data).cast(),
            PATH_LEN as u32,
            path as *const _,
        )
    };
    if n <= 1 {
        return;
    }
    let n = n as u32;
    let found = if key.data[0] == b'/' {
        // The count includes the NUL: exact entries (stored with it) match only the whole
        // path, directory entries (ending in `/`) anything below them.
        key.prefix_len = n * 8;
        match WATCHED_PATHS.get(&key) {
            Some(&wanted) if wanted & access != 0 => None,
            _ => return,
        }
    } else {
        let ups = leading_ups(&key.data);
        let Some(base) = base_dir(dirfd) else {
            return;
        };
        let Some(found) = find_watch_at(base, ups, access) else {
            return;
        };
        Some((base, found))
    };
    let start_ns = leader_start_ns(&offsets(), KPtr::current_task());
    let Some(mut entry) =
        reserve_record::<PathChangeEvent>(EventKind::PathChange, pid, tgid, start_ns)
    else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: the reserved record, written field by field before it is submitted; names past
    // `depth` are emptied so nothing stale leaves.
    unsafe {
        (*ev).syscall_nr = sys;
        (*ev).role = role;
        (*ev).access = access;
        (*ev).path_len = n - 1;
        (*ev).path = key.data;
        (*ev)._pad = 0;
        let (depth, dentry) = match found {
            Some((base, (depth, watch_ino, dev))) => {
                (*ev).relative = 1;
                (*ev).watch_ino = watch_ino;
                (*ev).watch_dev = dev;
                (depth, base)
            }
            None => {
                (*ev).relative = 0;
                (*ev).watch_ino = 0;
                (*ev).watch_dev = 0;
                (0, KPtr::from_raw(core::ptr::null()))
            }
        };
        (*ev).depth = depth;
        write_names(&mut (*ev).names, dentry, depth);
    }
    entry.submit(prompt_wakeup());
    count_emitted(EventKind::PathChange);
}

/// How many leading `../` a relative path climbs (up to two, read at fixed offsets: a scan of
/// the whole string would make the verifier follow every branch of every byte).
#[inline(always)]
fn leading_ups(data: &[u8; PATH_LEN]) -> u32 {
    let up_at = |i: usize| data[i] == b'.' && data[i + 1] == b'.' && data[i + 2] == b'/';
    match (up_at(0), up_at(3)) {
        (true, true) => 2,
        (true, false) => 1,
        _ => 0,
    }
}

/// The directory a relative path starts from: the dirfd's, or the cwd for `AT_FDCWD`.
#[inline(always)]
fn base_dir(dirfd: u64) -> Option<KPtr> {
    if offset!(path_dentry) == OFFSET_UNKNOWN {
        return None;
    }
    // An `int` in a 64-bit register: compare its low half (callers do not sign-extend).
    if dirfd as u32 as i32 == -100 {
        if offset!(fs_pwd) == OFFSET_UNKNOWN {
            return None;
        }
        return KPtr::current_task()
            .read_ptr(offset!(task_fs))?
            .read_ptr(offset!(fs_pwd) + offset!(path_dentry));
    }
    if offset!(file_f_path) == OFFSET_UNKNOWN {
        return None;
    }
    file_of(dirfd as u32)?.read_ptr(offset!(file_f_path) + offset!(path_dentry))
}

/// From directory `base` upwards: the first inode a watch covers for `access` at the depth a
/// path relative to `base` would have below it, as (levels above `base`, inode, device). The
/// path is taken to be one component below `base` (after its leading `../`, `ups` of them):
/// exact for the basenames `mv` and `rm -r` pass with a dirfd, and for a longer path it only
/// lets through more than the rule's glob will match, which user space then checks on the
/// whole path.
#[inline(always)]
fn find_watch_at(base: KPtr, ups: u32, access: u32) -> Option<(u32, u64, u32)> {
    let levels = walk_levels(access);
    let inode = base.read_ptr(offset!(dentry_d_inode))?;
    let (sb, ino) = inode.read_pair(offset!(inode_sb), offset!(inode_ino))?;
    let dev = KPtr::from_raw(sb as *const u8).read::<u32>(offset!(sb_dev))?;
    let mut key = FileKey { ino, dev, _pad: 0 };
    let mut dentry = base;
    for up in 0..FILE_WATCH_MAX_DEPTH as u32 {
        if up >= ups {
            let depth = up - ups + 1;
            if depth >= levels {
                return None;
            }
            // SAFETY: read-only lookup; the value is copied.
            if maybe_watched(key.ino)
                && let Some(w) = unsafe { WATCHED_FILES.get(&key) }
                && w.access & access != 0
                && depth <= w.max_depth
            {
                return Some((up, key.ino, dev));
            }
        }
        let parent = dentry.read_ptr(offset!(dentry_d_parent))?;
        if parent == dentry {
            return None;
        }
        key.ino = parent
            .read_ptr(offset!(dentry_d_inode))?
            .read::<u64>(offset!(inode_ino))?;
        dentry = parent;
    }
    None
}

/// `current->files->fdt->fd[fd]` through probe reads (the raw_tp program, and dirfds),
/// bounds-checked against `max_fds`. Each offset is read by itself: the path checks keep a
/// 260-byte key on the stack, and a copy of every offset would not fit beside it.
#[inline(always)]
pub fn file_of(fd: u32) -> Option<KPtr> {
    let fdt = KPtr::current_task()
        .read_ptr(offset!(task_files))?
        .read_ptr(offset!(files_fdt))?;
    let (max, fds) = fdt.read_pair(offset!(fdt_max_fds), offset!(fdt_fd))?;
    if fd >= max as u32 {
        return None;
    }
    KPtr::from_raw(fds as *const u8).read_ptr(fd.checked_mul(8)?)
}
