//! Reading `task_struct`, `cred`, `mm_struct` and `signal_struct` fields at the byte offsets user
//! space resolved from the running kernel's BTF (our CO-RE). An unknown offset reads as `None`.

use agent_common::{
    AgentConfig, Creds, ImageId, KernelOffsets, LOSS_CREDS_UNRECORDED, MEMFD_NAME_LEN,
    OFFSET_UNKNOWN,
};
use aya_ebpf::{
    Global,
    bindings::pt_regs,
    helpers::{
        bpf_get_current_task, bpf_probe_read_kernel,
        generated::{bpf_get_current_task_btf, bpf_probe_read_kernel_str, bpf_task_pt_regs},
    },
};

use crate::{emit::bump, maps::CREDS};

/// Written by the loader before load; see `agent_common::KernelOffsets`.
#[unsafe(no_mangle)]
pub(crate) static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets::UNKNOWN);

/// Written by the loader before load; see `agent_common::AgentConfig`.
#[unsafe(no_mangle)]
static CONFIG: Global<AgentConfig> = Global::new(AgentConfig {
    self_tgid: 0,
    flags: 0,
    batch_max_age_jiffies: 0,
});

#[inline(always)]
pub fn offsets() -> KernelOffsets {
    OFFSETS.load()
}

/// One offset, read by itself from the frozen read-only global: the verifier then knows its
/// value, which direct loads through BTF-typed pointers need (a whole-struct copy goes through
/// the stack, where it may not).
macro_rules! offset {
    ($field:ident) => {{
        let all = core::ptr::addr_of!($crate::task::OFFSETS).cast::<agent_common::KernelOffsets>();
        // SAFETY: `Global` is a transparent wrapper around the initialised struct.
        #[allow(unused_unsafe)]
        let value = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*all).$field)) };
        value
    }};
}
pub(crate) use offset;

#[inline(always)]
pub fn config() -> AgentConfig {
    CONFIG.load()
}

/// A kernel object we only ever read through `bpf_probe_read_kernel`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KPtr(*const u8);

impl KPtr {
    #[inline(always)]
    pub fn current_task() -> Self {
        // SAFETY: helper without preconditions.
        Self(unsafe { bpf_get_current_task() } as *const u8)
    }

    #[inline(always)]
    pub fn from_raw(p: *const u8) -> Self {
        Self(p)
    }

    #[inline(always)]
    pub fn as_ptr(self) -> *const u8 {
        self.0
    }

    #[inline(always)]
    pub fn is_null(self) -> bool {
        self.0.is_null()
    }

    /// Reads a `T` at `offset`; `None` if the offset is unknown, the pointer null, or the read
    /// faults.
    #[inline(always)]
    pub fn read<T: Copy>(self, offset: u32) -> Option<T> {
        if offset == OFFSET_UNKNOWN || self.0.is_null() {
            return None;
        }
        // SAFETY: bpf_probe_read_kernel tolerates any address and reports faults as errors.
        unsafe { bpf_probe_read_kernel(self.0.wrapping_add(offset as usize).cast::<T>()).ok() }
    }

    /// Two 8-byte fields at `a` and `b` in one probe read when they are 8-aligned and at most
    /// 64 bytes apart (each helper call costs tens of ns, and opens make several); two reads
    /// otherwise. A 4-byte field comes back in the low half (little-endian).
    #[inline(always)]
    pub fn read_pair(self, a: u32, b: u32) -> Option<(u64, u64)> {
        if a == OFFSET_UNKNOWN || b == OFFSET_UNKNOWN || self.0.is_null() {
            return None;
        }
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        if (a | b) % 8 != 0 || hi - lo > 56 {
            return Some((self.read::<u64>(a)?, self.read::<u64>(b)?));
        }
        let mut buf = [0u64; 8];
        let len = hi - lo + 8;
        // SAFETY: at most 64 bytes into a 64-byte local; faults come back as an error.
        let rc = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                buf.as_mut_ptr().cast(),
                len,
                self.0.wrapping_add(lo as usize).cast(),
            )
        };
        if rc != 0 {
            return None;
        }
        Some((
            *buf.get(((a - lo) / 8) as usize)?,
            *buf.get(((b - lo) / 8) as usize)?,
        ))
    }

    #[inline(always)]
    pub fn read_ptr(self, offset: u32) -> Option<KPtr> {
        self.read::<u64>(offset)
            .map(|p| KPtr(p as *const u8))
            .filter(|p| !p.is_null())
    }
}

/// `start_boottime` of the task's thread-group leader: half of a process's boot-unique name.
#[inline(always)]
pub fn leader_start_ns(o: &KernelOffsets, task: KPtr) -> u64 {
    task.read_ptr(o.task_group_leader)
        .and_then(|leader| leader.read::<u64>(o.task_start_boottime))
        .unwrap_or(0)
}

/// [`leader_start_ns`] of the current task, reading only the two offsets it needs: for the
/// rarely taken paths that have no `KernelOffsets` copy of their own, which would sit on the
/// stack they share with their callers.
#[inline(always)]
pub fn current_leader_start_ns() -> u64 {
    KPtr::current_task()
        .read_ptr(offset!(task_group_leader))
        .and_then(|leader| leader.read::<u64>(offset!(task_start_boottime)))
        .unwrap_or(0)
}

/// `real_parent`'s (tgid, leader start) — what `/proc/PID/stat` calls the ppid.
#[inline(always)]
pub fn parent_of(o: &KernelOffsets, task: KPtr) -> (u32, u64) {
    let Some(parent) = task.read_ptr(o.task_real_parent) else {
        return (0, 0);
    };
    let tgid = parent.read::<u32>(o.task_tgid).unwrap_or(0);
    (tgid, leader_start_ns(o, parent))
}

/// The task's objective credentials (`real_cred`, what `/proc/PID/status` shows).
#[inline(always)]
pub fn creds_of(o: &KernelOffsets, task: KPtr) -> Creds {
    let Some(cred) = task.read_ptr(o.task_real_cred) else {
        return Creds::default();
    };
    // struct cred has kept uid, gid, suid, sgid, euid, egid, fsuid, fsgid side by side, in that
    // order, since 2.6.29: one probe read instead of eight when the BTF offsets say so (fork
    // makes this read for every new thread).
    let u = o.cred_uid;
    if u != OFFSET_UNKNOWN
        && (o.cred_gid, o.cred_suid, o.cred_sgid, o.cred_euid, o.cred_egid, o.cred_fsuid, o.cred_fsgid)
            == (u + 4, u + 8, u + 12, u + 16, u + 20, u + 24, u + 28)
    {
        if let Some(ids) = cred.read::<[u32; 8]>(u) {
            return Creds {
                uid: ids[0],
                gid: ids[1],
                suid: ids[2],
                sgid: ids[3],
                euid: ids[4],
                egid: ids[5],
                fsuid: ids[6],
                fsgid: ids[7],
            };
        }
    }
    Creds {
        uid: cred.read(o.cred_uid).unwrap_or(u32::MAX),
        euid: cred.read(o.cred_euid).unwrap_or(u32::MAX),
        suid: cred.read(o.cred_suid).unwrap_or(u32::MAX),
        fsuid: cred.read(o.cred_fsuid).unwrap_or(u32::MAX),
        gid: cred.read(o.cred_gid).unwrap_or(u32::MAX),
        egid: cred.read(o.cred_egid).unwrap_or(u32::MAX),
        sgid: cred.read(o.cred_sgid).unwrap_or(u32::MAX),
        fsgid: cred.read(o.cred_fsgid).unwrap_or(u32::MAX),
    }
}

/// Remembers thread `pid`'s ids for its next setuid-family call (see `maps::CREDS`).
#[inline(always)]
pub fn remember_creds(pid: u32, creds: &Creds) {
    if CREDS.insert(&pid, creds, 0).is_err() {
        bump(LOSS_CREDS_UNRECORDED, 1);
    }
}

/// The syscall the current task is inside and its first argument, from its saved user
/// registers: for the probes that fire within a syscall without being handed them (fork, exec,
/// exit). `None` if the registers cannot be read.
#[inline(always)]
pub fn current_syscall() -> Option<(u64, u64)> {
    // SAFETY: helpers without preconditions (the task pointer is the trusted `current`); the
    // registers are probe-read.
    unsafe {
        let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as *const pt_regs;
        if regs.is_null() {
            return None;
        }
        let nr = bpf_probe_read_kernel(core::ptr::addr_of!((*regs).orig_rax)).ok()?;
        let arg0 = bpf_probe_read_kernel(core::ptr::addr_of!((*regs).rdi)).ok()?;
        Some((nr, arg0))
    }
}

/// The file `task` runs (`mm->exe_file`), read once for [`image_of`] and [`memfd_image`].
#[inline(always)]
pub fn exe_file(o: &KernelOffsets, task: KPtr) -> Option<KPtr> {
    task.read_ptr(o.task_mm)
        .and_then(|mm| mm.read_ptr(o.mm_exe_file))
}

/// The identity of the file a task runs (its `exe_file`'s inode); all zero when any part of it
/// cannot be read, so user space never trusts a half-read identity.
#[inline(always)]
pub fn image_of(o: &KernelOffsets, exe: Option<KPtr>) -> ImageId {
    let inode = exe.and_then(|file| file.read_ptr(o.file_inode));
    let Some(inode) = inode else {
        return ImageId::default();
    };
    let dev = inode.read_ptr(o.inode_sb).and_then(|sb| sb.read::<u32>(o.sb_dev));
    let ctime = inode
        .read::<i64>(o.inode_ctime_sec)
        .zip(inode.read::<u32>(o.inode_ctime_nsec));
    match (
        inode.read::<u64>(o.inode_ino),
        inode.read::<i64>(o.inode_size),
        inode.read::<i64>(o.inode_mtime_sec),
        inode.read::<u32>(o.inode_mtime_nsec),
        dev,
        ctime,
    ) {
        (Some(ino), Some(size), Some(mtime_sec), Some(mtime_nsec), Some(dev), Some((ctime_sec, ctime_nsec))) => {
            ImageId { ino, size, mtime_sec, mtime_nsec, dev, ctime_sec, ctime_nsec, _pad: 0 }
        }
        _ => ImageId::default(),
    }
}

/// Whether a task's image (its `exe_file`) is a memfd: the file's dentry is named
/// `memfd:NAME`, as memfd_create names every memfd. The whole name then goes to `out` (at most
/// `MEMFD_NAME_LEN` bytes, NUL included). Two probe reads per exec and an 8-byte one.
#[inline(always)]
pub fn memfd_image(o: &KernelOffsets, exe: Option<KPtr>, out: *mut u8) -> bool {
    const PREFIX: u64 = u64::from_le_bytes(*b"memfd:\0\0");
    const SIX_BYTES: u64 = (1 << 48) - 1;
    if o.file_f_path == OFFSET_UNKNOWN
        || o.path_dentry == OFFSET_UNKNOWN
        || o.dentry_d_name == OFFSET_UNKNOWN
        || o.qstr_name == OFFSET_UNKNOWN
    {
        return false;
    }
    let Some(name) = exe
        .and_then(|file| file.read_ptr(o.file_f_path + o.path_dentry))
        .and_then(|dentry| dentry.read_ptr(o.dentry_d_name + o.qstr_name))
    else {
        return false;
    };
    // Eight bytes are there whatever the name's length: short names sit in the dentry's
    // inline array, long ones are longer than eight.
    if name.read::<u64>(0).is_none_or(|head| head & SIX_BYTES != PREFIX) {
        return false;
    }
    // SAFETY: at most MEMFD_NAME_LEN bytes into the caller's field of that size.
    unsafe { bpf_probe_read_kernel_str(out.cast(), MEMFD_NAME_LEN as u32, name.as_ptr().cast()) };
    true
}

/// The task's fd 1 (`files->fdt->fd[1]`, a `struct file *`); 0 when closed or unreadable.
#[inline(always)]
pub fn stdout_file(o: &KernelOffsets, task: KPtr) -> u64 {
    task.read_ptr(o.task_files)
        .and_then(|files| files.read_ptr(o.files_fdt))
        .and_then(|fdt| fdt.read_ptr(o.fdt_fd))
        .and_then(|fds| fds.read_ptr(8))
        .map_or(0, |f| f.as_ptr() as u64)
}

/// File type bits of the task's fds 0..3 (`files->fdt->fd[i]->f_inode->i_mode & S_IFMT`; 0 for
/// a closed fd or an unreadable chain), and a bitmask of those that are internet sockets.
#[inline(always)]
pub fn stdio_of(o: &KernelOffsets, task: KPtr) -> ([u16; 4], u32) {
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;
    let mut modes = [0u16; 4];
    let mut inet = 0u32;
    let Some(fds) = task
        .read_ptr(o.task_files)
        .and_then(|files| files.read_ptr(o.files_fdt))
        .and_then(|fdt| fdt.read_ptr(o.fdt_fd))
    else {
        return (modes, inet);
    };
    // fdt->fd always has at least NR_OPEN_DEFAULT (64) slots, so 0..3 are in bounds.
    for (i, slot) in modes.iter_mut().take(3).enumerate() {
        let Some(file) = fds.read_ptr((i * 8) as u32) else {
            continue;
        };
        let Some(mode) = file
            .read_ptr(o.file_inode)
            .and_then(|inode| inode.read::<u16>(o.inode_mode))
        else {
            continue;
        };
        *slot = mode & agent_common::S_IFMT;
        if *slot == agent_common::S_IFSOCK {
            // A socket file's private_data is its `struct socket`; `sk` starts with sock_common.
            let family = file
                .read_ptr(o.file_private_data)
                .and_then(|sock| sock.read_ptr(o.socket_sk))
                .and_then(|sk| sk.read::<u16>(o.sock_common_family));
            if matches!(family, Some(AF_INET | AF_INET6)) {
                inet |= 1 << i;
            }
        }
    }
    (modes, inet)
}
