//! Event records. Lifecycle and security records travel in the `EVENTS` ring buffer; syscall
//! batches travel in `SYSCALLS`, so that a syscall flood cannot crowd out exec/exit/connect.

/// Bumped on any layout change; the kernel writes it into every header.
pub const ABI_VERSION: u16 = 11;

pub const COMM_LEN: usize = 16;
/// Bytes of the exec'd filename kept (NUL-terminated when shorter).
pub const PATH_LEN: usize = 256;
/// Bytes of argv kept, NUL-separated as in `/proc/PID/cmdline`.
pub const ARGS_LEN: usize = 512;
/// Syscall ids per batch record.
pub const BATCH_LEN: usize = 64;
/// Bytes of a memfd name / bpf program name kept.
pub const NAME_LEN: usize = 64;
/// Levels a file open is walked up its directories looking for a watched one, and so path
/// components a [`FileEvent`] carries.
pub const FILE_WATCH_MAX_DEPTH: usize = 8;
/// Bytes kept of each path component in a [`FileEvent`] (NUL-terminated when shorter).
pub const FILE_NAME_LEN: usize = 64;

/// What follows the header. Stored as a raw `u16` in the header; decode with
/// [`EventKind::from_u16`] so an unknown value is an error, not undefined behaviour.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "user", serde(rename_all = "snake_case"))]
pub enum EventKind {
    Exec = 1,
    Fork = 2,
    Exit = 3,
    SyscallBatch = 4,
    Connect = 5,
    Accept = 6,
    Bind = 7,
    Listen = 8,
    CredChange = 9,
    Ptrace = 10,
    MemfdCreate = 11,
    ModuleLoad = 12,
    BpfProgLoad = 13,
    /// An error a probe hit, sent in-band so it is visible rather than swallowed.
    ProbeError = 14,
    /// An open of a watched file, or of a file below a watched directory.
    FileOpen = 15,
    /// A rename or unlink whose absolute path is, or is below, a watched one.
    PathChange = 16,
    /// A chmod family call asking for the set-user-ID bit.
    SetuidChmod = 17,
    /// A raw IP or packet socket created.
    RawSocket = 18,
    /// A file created, unlinked or renamed by a process (or the children of a parent) that
    /// does many of those at once.
    FileChurn = 19,
    /// A write into another process's memory without attaching to it, in a [`PtraceEvent`]
    /// whose `request` says how ([`MEMORY_WRITE_VM_WRITEV`], [`MEMORY_WRITE_PROC_MEM`]).
    MemoryWrite = 20,
    /// File capabilities set on a file (the `security.capability` extended attribute), in a
    /// [`PathCallEvent`].
    FileCapability = 21,
    /// A mount onto a `/proc/PID` directory or a file below it, in a [`PathCallEvent`].
    ProcMount = 22,
    /// One of [`crate::kernel_settings::KERNEL_SETTINGS`] opened for writing, in a
    /// [`PathCallEvent`].
    KernelSetting = 23,
    /// A read of another process's memory without attaching to it, in a [`PtraceEvent`] whose
    /// `request` says how ([`MEMORY_READ_VM_READV`], [`MEMORY_READ_PROC_MEM`],
    /// [`MEMORY_READ_PROC_ENVIRON`]).
    MemoryRead = 24,
    /// A library, written lately by another process, mapped executable by a process that runs
    /// with `LD_PRELOAD` or `LD_AUDIT` set, in a [`PreloadEvent`].
    PreloadLibrary = 25,
    /// A thread that named itself (`prctl(PR_SET_NAME)`) like a kernel thread (a bracket, or
    /// the start of kworker, ksoftirqd, kswapd ...), in a [`PathCallEvent`].
    ThreadRenamed = 26,
    /// A signal another process sent to vigil itself or to a process user space guards (the
    /// host's security services: `SIGNAL_GUARDED`), by kill, tgkill, pidfd_send_signal or
    /// sigqueue, in a [`PtraceEvent`]: `request` is the signal, `target_pid` the process (tgid)
    /// it was sent to, `ret` the kernel's `TRACE_SIGNAL_*` result. Signals the kernel raises on
    /// its own (a child's exit, a broken pipe, the OOM killer, a terminal's Ctrl-C) are not this.
    GuardedSignal = 27,
}

impl EventKind {
    /// One past the largest discriminant; sizes per-kind counter arrays.
    pub const COUNT: usize = 28;

    pub const ALL: [EventKind; 27] = [
        EventKind::Exec,
        EventKind::Fork,
        EventKind::Exit,
        EventKind::SyscallBatch,
        EventKind::Connect,
        EventKind::Accept,
        EventKind::Bind,
        EventKind::Listen,
        EventKind::CredChange,
        EventKind::Ptrace,
        EventKind::MemfdCreate,
        EventKind::ModuleLoad,
        EventKind::BpfProgLoad,
        EventKind::ProbeError,
        EventKind::FileOpen,
        EventKind::PathChange,
        EventKind::SetuidChmod,
        EventKind::RawSocket,
        EventKind::FileChurn,
        EventKind::MemoryWrite,
        EventKind::FileCapability,
        EventKind::ProcMount,
        EventKind::KernelSetting,
        EventKind::MemoryRead,
        EventKind::PreloadLibrary,
        EventKind::ThreadRenamed,
        EventKind::GuardedSignal,
    ];

    pub const fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Exec,
            2 => Self::Fork,
            3 => Self::Exit,
            4 => Self::SyscallBatch,
            5 => Self::Connect,
            6 => Self::Accept,
            7 => Self::Bind,
            8 => Self::Listen,
            9 => Self::CredChange,
            10 => Self::Ptrace,
            11 => Self::MemfdCreate,
            12 => Self::ModuleLoad,
            13 => Self::BpfProgLoad,
            14 => Self::ProbeError,
            15 => Self::FileOpen,
            16 => Self::PathChange,
            17 => Self::SetuidChmod,
            18 => Self::RawSocket,
            19 => Self::FileChurn,
            20 => Self::MemoryWrite,
            21 => Self::FileCapability,
            22 => Self::ProcMount,
            23 => Self::KernelSetting,
            24 => Self::MemoryRead,
            25 => Self::PreloadLibrary,
            26 => Self::ThreadRenamed,
            27 => Self::GuardedSignal,
            _ => return None,
        })
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Fork => "fork",
            Self::Exit => "exit",
            Self::SyscallBatch => "syscall_batch",
            Self::Connect => "connect",
            Self::Accept => "accept",
            Self::Bind => "bind",
            Self::Listen => "listen",
            Self::CredChange => "cred_change",
            Self::Ptrace => "ptrace",
            Self::MemfdCreate => "memfd_create",
            Self::ModuleLoad => "module_load",
            Self::BpfProgLoad => "bpf_prog_load",
            Self::ProbeError => "probe_error",
            Self::FileOpen => "file_open",
            Self::PathChange => "path_change",
            Self::SetuidChmod => "setuid_chmod",
            Self::RawSocket => "raw_socket",
            Self::FileChurn => "file_churn",
            Self::MemoryWrite => "memory_write",
            Self::FileCapability => "file_capability",
            Self::ProcMount => "proc_mount",
            Self::KernelSetting => "kernel_setting",
            Self::MemoryRead => "memory_read",
            Self::PreloadLibrary => "preload_library",
            Self::ThreadRenamed => "thread_renamed",
            Self::GuardedSignal => "guarded_signal",
        }
    }
}

/// Common prefix of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// [`EventKind`] as u16.
    pub kind: u16,
    pub abi_version: u16,
    /// Size of the whole record in bytes, header included.
    pub size: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the record was written.
    pub ktime_ns: u64,
    /// Kernel pid of the thread (what user space calls the tid).
    pub pid: u32,
    /// Thread-group id (what user space calls the pid).
    pub tgid: u32,
    /// `start_boottime` of the thread-group leader, ns since boot. Together with `tgid` it names a
    /// process uniquely for the boot, so a recycled pid is never mistaken for its predecessor.
    /// `/proc/PID/stat` field 22 is the same clock in clock ticks.
    pub start_ns: u64,
}

impl EventHeader {
    pub const SIZE: usize = core::mem::size_of::<Self>();
}

/// `sched_process_exec`: the task now runs a new image.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// `real_parent->tgid`.
    pub ppid: u32,
    /// Tracepoint `old_pid`: differs from `header.pid` when a non-leader thread exec'd.
    pub old_pid: u32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// cgroup v2 id (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
    /// Parent's `start_boottime`, to name the parent uniquely too.
    pub parent_start_ns: u64,
    /// Bytes of `filename` used (without NUL).
    pub filename_len: u16,
    /// Bytes of `args` used.
    pub args_len: u16,
    /// `EXEC_FLAG_*`.
    pub flags: u32,
    /// File type bits (`i_mode & S_IFMT`) of the new image's fds 0, 1 and 2; 0 when closed or
    /// unreadable. The fourth slot is padding.
    pub stdio_modes: [u16; 4],
    /// 1 + index of the policy rule under which the kernel killed this exec; 0 when none.
    pub deny_rule: u32,
    /// Bit i set: fd i (0..3) is an AF_INET or AF_INET6 socket. Bit 8 + i: the same for the
    /// parent's fd i at the exec ([`STDIO_INET_PARENT_SHIFT`]).
    pub stdio_inet: u32,
    /// The file the new image was loaded from (`mm->exe_file`); `ino` 0 when unreadable.
    pub image: ImageId,
    /// The last `O_CREAT` open of that file vigil saw; `tgid` 0 when none.
    pub written_by: CreatedBy,
    pub comm: [u8; COMM_LEN],
    /// With [`EXEC_FLAG_MEMFD`]: the image's name, `memfd:NAME` (NUL-terminated when
    /// shorter), as `/proc/PID/exe` shows it while the process lives; zero otherwise.
    pub memfd_name: [u8; MEMFD_NAME_LEN],
    pub filename: [u8; PATH_LEN],
    pub args: [u8; ARGS_LEN],
}

/// A file's identity as the kernel's inode has it (`dev` in the kernel's encoding,
/// `MAJOR << 20 | MINOR`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageId {
    pub ino: u64,
    pub size: i64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    pub dev: u32,
    pub ctime_sec: i64,
    pub ctime_nsec: u32,
    pub _pad: u32,
}

/// argv was longer than [`ARGS_LEN`].
pub const EXEC_FLAG_ARGS_TRUNCATED: u32 = 1 << 0;
/// filename was longer than [`PATH_LEN`].
pub const EXEC_FLAG_FILENAME_TRUNCATED: u32 = 1 << 1;
/// argv could not be read (e.g. the kernel offsets were unavailable).
pub const EXEC_FLAG_ARGS_UNREADABLE: u32 = 1 << 2;
/// The kernel sent SIGKILL at exec under a deny rule: the image never ran an instruction.
pub const EXEC_FLAG_DENIED: u32 = 1 << 3;
/// A deny rule matched but the process is protected (or the mode is monitor): not killed.
pub const EXEC_FLAG_DENY_SPARED: u32 = 1 << 4;
/// The new image is a memfd (its file is named `memfd:NAME`, as memfd_create names every
/// one): fileless execution, whatever path the exec went through (`/proc/self/fd/N`,
/// fexecve's `/dev/fd/N`) and however soon the process is gone.
pub const EXEC_FLAG_MEMFD: u32 = 1 << 5;
/// The new image's stdout is the very file its parent's is (the same `struct file`, as fork
/// shares it): output going where the parent's goes, not into a pipe the parent set up to read
/// (`$(curl URL)`) or to pass on (`curl URL | sh`).
pub const EXEC_FLAG_STDOUT_INHERITED: u32 = 1 << 6;
/// Bytes of a memfd image's name kept in [`ExecEvent::memfd_name`].
pub const MEMFD_NAME_LEN: usize = 32;

/// `S_IFSOCK`, as in `stdio_modes`.
pub const S_IFSOCK: u16 = 0o140000;
/// `S_IFIFO` (a pipe or named pipe), as in `stdio_modes`.
pub const S_IFIFO: u16 = 0o010000;
pub const S_IFMT: u16 = 0o170000;
/// `S_IFREG`: a regular file.
pub const S_IFREG: u16 = 0o100000;

/// `sched_process_fork`; the header names the parent thread.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkEvent {
    pub header: EventHeader,
    pub child_pid: u32,
    pub child_tgid: u32,
    /// Clone flags as passed to clone/clone3 when the probe saw the call; otherwise the bits it
    /// could derive from the child (`CLONE_THREAD`, `CLONE_VM`) with [`FORK_FLAG_DERIVED`] set.
    pub clone_flags: u64,
    pub child_start_ns: u64,
    /// `FORK_FLAG_*`.
    pub flags: u32,
    pub _pad: u32,
}

/// `clone_flags` were derived from the child task rather than read from the syscall.
pub const FORK_FLAG_DERIVED: u32 = 1 << 0;

/// `sched_process_exit` of the last thread of a process (thread exits are not reported).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// `task->exit_code` in wait(2) status form: `(code & 0xff) << 8`, or the signal number.
    pub exit_code: u32,
    pub _pad: u32,
}

/// Why a batch was flushed.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushReason {
    Full = 1,
    Exec = 2,
    Exit = 3,
    Age = 4,
    /// The thread was switched out.
    Switch = 5,
}

/// Up to [`BATCH_LEN`] syscall ids of one thread, in the order they returned (see
/// `agent-ebpf/src/syscalls.rs` for the calls that do not return), made while it stayed on one
/// CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallBatch {
    pub header: EventHeader,
    /// `bpf_ktime_get_ns()` at the first syscall in the batch.
    pub first_ns: u64,
    /// Batch number on the CPU that sent it (a thread's own batches arrive in its order, since
    /// its batch is sent whenever it leaves a CPU).
    pub seq: u32,
    /// Ids used in `ids`.
    pub count: u16,
    /// [`FlushReason`] as u16.
    pub reason: u16,
    pub ids: [u16; BATCH_LEN],
}

/// A socket address as the probe read it from user memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockAddr {
    /// `AF_INET` (2), `AF_INET6` (10), `AF_UNIX` (1), or 0 when unreadable.
    pub family: u16,
    /// Port in host byte order.
    pub port: u16,
    /// IPv6 scope id (0 for IPv4).
    pub scope_id: u32,
    /// IPv4 in the first 4 bytes, or the IPv6 address, network byte order.
    pub addr: [u8; 16],
}

/// connect / accept / accept4 / bind / listen, reported at syscall exit with the result.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetEvent {
    pub header: EventHeader,
    /// The socket fd the call was made on (listening fd for accept).
    pub fd: i32,
    /// Syscall return value (new fd for accept, `-errno` on failure).
    pub ret: i32,
    /// listen backlog; 0 otherwise.
    pub backlog: i32,
    pub _pad: u32,
    /// Destination (connect), peer (accept) or local address (bind).
    pub addr: SockAddr,
}

/// Real, effective, saved and filesystem ids of a task.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
}

impl Creds {
    /// Ids that were never recorded (a thread older than vigil whose entry was evicted): -1 is
    /// no valid id, so no check mistakes it for root or for a user.
    pub const UNKNOWN: Creds = Creds {
        uid: u32::MAX,
        euid: u32::MAX,
        suid: u32::MAX,
        fsuid: u32::MAX,
        gid: u32::MAX,
        egid: u32::MAX,
        sgid: u32::MAX,
        fsgid: u32::MAX,
    };

    pub fn is_known(&self) -> bool {
        *self != Self::UNKNOWN
    }
}

/// setuid family, reported at syscall exit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CredChangeEvent {
    pub header: EventHeader,
    /// x86-64 syscall number (setuid, setresuid, ...).
    pub syscall_nr: u32,
    pub ret: i32,
    /// The ids the caller asked for, in argument order (unused ones 0).
    pub requested: [u32; 3],
    pub _pad: u32,
    pub before: Creds,
    pub after: Creds,
}

/// A ptrace call (kind `Ptrace`), or a write into or a read of another process's memory
/// without it (kinds `MemoryWrite` and `MemoryRead`, `request` one of the `MEMORY_WRITE_*` or
/// `MEMORY_READ_*`): the ways to reach into a process by its pid. Also a signal sent to vigil
/// or a guarded process (kind `GuardedSignal`: `request` the signal number, `target_pid` the
/// process signalled, `ret` the kernel's `TRACE_SIGNAL_*` result, 0 when it was delivered).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PtraceEvent {
    pub header: EventHeader,
    pub request: i64,
    pub target_pid: u32,
    pub ret: i32,
}

/// [`PtraceEvent::request`] of a `MemoryWrite`: a process_vm_writev call (`ret` its result).
pub const MEMORY_WRITE_VM_WRITEV: i64 = 0;
/// [`PtraceEvent::request`] of a `MemoryWrite`: an open of `/proc/PID/mem` (or of a thread's,
/// under `task/`) for writing (`ret` the fd).
pub const MEMORY_WRITE_PROC_MEM: i64 = 1;
/// [`PtraceEvent::request`] of a `MemoryRead`: a process_vm_readv call (`ret` its result).
pub const MEMORY_READ_VM_READV: i64 = 0;
/// [`PtraceEvent::request`] of a `MemoryRead`: an open of `/proc/PID/mem` (or of a thread's)
/// for reading only (`ret` the fd). Opened for writing too, it is a `MemoryWrite`.
pub const MEMORY_READ_PROC_MEM: i64 = 1;
/// [`PtraceEvent::request`] of a `MemoryRead`: an open of `/proc/PID/environ` (`ret` the fd).
/// The kernel copies it out of the process's memory, behind the same access check as `mem`.
pub const MEMORY_READ_PROC_ENVIRON: i64 = 2;
/// procfs's `s_magic` (`PROC_SUPER_MAGIC`).
pub const PROC_SUPER_MAGIC: u64 = 0x9fa0;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MemfdEvent {
    pub header: EventHeader,
    pub flags: u32,
    /// The new fd, or `-errno`.
    pub ret: i32,
    pub name: [u8; NAME_LEN],
}

/// init_module / finit_module.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModuleLoadEvent {
    pub header: EventHeader,
    pub syscall_nr: u32,
    /// finit_module's fd; -1 for init_module.
    pub fd: i32,
    /// init_module's image length; 0 for finit_module.
    pub len: u64,
    pub ret: i32,
    pub _pad: u32,
}

/// bpf(BPF_PROG_LOAD, ...).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BpfProgLoadEvent {
    pub header: EventHeader,
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub ret: i32,
    pub _pad: u32,
    pub prog_name: [u8; 16],
}

/// open / openat / openat2 / creat that returned a file the `WATCHED_FILES` map names, either
/// the file itself or one of its first [`FILE_WATCH_MAX_DEPTH`] directories, with the access
/// the watch asked for. Reported at syscall exit, so only opens that succeeded.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileEvent {
    pub header: EventHeader,
    /// The open flags (`O_*`; creat's are `O_CREAT | O_WRONLY | O_TRUNC`).
    pub flags: u32,
    /// The new fd.
    pub fd: i32,
    /// `FILE_ACCESS_*` bits the open asked for.
    pub access: u32,
    /// Directory levels between the file and the watched inode: 0 when the file itself is
    /// watched, 1 for a file in a watched directory, ...
    pub depth: u32,
    /// The watched inode that matched (kernel `s_dev` encoding, `MAJOR << 20 | MINOR`).
    pub watch_ino: u64,
    pub watch_dev: u32,
    pub dev: u32,
    /// The opened file's inode (same device as the watch: the walk stops at mount roots).
    pub ino: u64,
    /// `names[0]` is the file's own name, `names[1]` its directory's, ... up to `depth`
    /// entries: appended to the watch's path they give the file's path.
    pub names: [[u8; FILE_NAME_LEN]; FILE_WATCH_MAX_DEPTH],
}

/// chmod / fchmod / fchmodat / fchmodat2 asking for the set-user-ID bit (`S_ISUID`): how a
/// copied shell becomes a root backdoor (`chmod u+s`). Other modes are not reported: the mode is
/// tested first, so an ordinary chmod costs nothing beyond its batch slot and one bit test.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SetuidChmodEvent {
    pub header: EventHeader,
    /// x86-64 syscall number.
    pub syscall_nr: u32,
    pub ret: i32,
    /// The mode asked for.
    pub mode: u32,
    /// fchmod's fd, or the dirfd a relative path is taken from (`AT_FDCWD`, -100, for chmod).
    pub fd: i32,
    /// Bytes of `path` used (without NUL); 0 for fchmod, or when the path could not be read.
    pub path_len: u32,
    pub _pad: u32,
    /// The path passed, as read at exit.
    pub path: [u8; PATH_LEN],
}

/// A call that changes what a path is in a way attackers use and servers rarely do; the
/// header's kind says which:
/// - [`EventKind::FileCapability`]: setxattr, lsetxattr, fsetxattr or setxattrat of
///   `security.capability` (what `setcap` writes): a program given `cap_setuid` is a root
///   backdoor without a set-user-ID bit. Other attributes are not reported.
/// - [`EventKind::ProcMount`]: mount or move_mount onto `/proc/<digits>...`, or onto a relative
///   path (resolved in user space): bind-mounting an empty directory over `/proc/PID` hides a
///   process from ps and top, and over `/proc/PID/cmdline` disguises it. Mounts through an fd's
///   magic link (`/proc/self/fd/N`, as container runtimes do) are not this and not reported.
/// - [`EventKind::KernelSetting`]: an open for writing of a procfs file in
///   [`crate::kernel_settings::KERNEL_SETTINGS`]; `path` is its file name, `ret` the fd,
///   `value` the open's flags, `fd` -1.
/// - [`EventKind::ThreadRenamed`]: `prctl(PR_SET_NAME)` to a name that starts like a kernel
///   thread's; `path` is the new name, `value` the thread's id, `fd` -1. Thread pools name
///   their threads all day: only names beginning with a bracket or with one of a kernel
///   thread's names' first four letters are sent, and user space judges the whole name.
///
/// Reported only when the call succeeded (a refused call changed nothing), and only while the
/// events ring is less than half full (anyone can mount inside a user namespace; each skipped
/// record is counted as lost).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PathCallEvent {
    pub header: EventHeader,
    /// x86-64 syscall number.
    pub syscall_nr: u32,
    pub ret: i32,
    /// fsetxattr's fd, or the dirfd a relative path is taken from (`AT_FDCWD`, -100, for
    /// setxattr, lsetxattr and mount).
    pub fd: i32,
    /// Bytes of `path` used (without NUL); 0 for fsetxattr, or when the path could not be read.
    pub path_len: u32,
    /// FileCapability: the permitted set (bit N is capability N). ProcMount: the flags passed.
    /// KernelSetting: the open's flags.
    pub value: u64,
    /// FileCapability: the attribute's `magic_etc` (revision, and bit 0 for "effective"), 0
    /// when the value could not be read. ProcMount: 0.
    pub aux: u32,
    pub _pad: u32,
    /// FileCapability: the file's path; ProcMount: the mount's target, as passed;
    /// KernelSetting: the file's name.
    pub path: [u8; PATH_LEN],
}

/// `vfs_cap_data.magic_etc`'s flag for capabilities raised as the program starts (`+e`).
pub const VFS_CAP_FLAGS_EFFECTIVE: u32 = 1;

/// Where the parent's stdio bits sit in [`ExecEvent::stdio_inet`].
pub const STDIO_INET_PARENT_SHIFT: u32 = 8;

/// The set-user-ID bit of a file mode.
pub const S_ISUID: u32 = 0o4000;

/// A socket that sees or forges packets below TCP and UDP: `AF_PACKET`, or `SOCK_RAW` of
/// `AF_INET`/`AF_INET6`. What SYN scanners (nmap -sS, masscan, zmap) and sniffers open; a
/// connect-based scan detector never sees them. Only sockets actually created are reported.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawSocketEvent {
    pub header: EventHeader,
    /// socket(2)'s arguments.
    pub family: u32,
    pub sock_type: u32,
    pub protocol: u32,
    /// The new fd.
    pub ret: i32,
}

/// A file name that appeared (an `O_CREAT` open that created the file, or a rename's new name),
/// went away (an unlink, or a rename's old name) or was opened to be written over, sent only while the process or its parent does many
/// of those in a row, or its parent's or grandparent's children together ([`CHURN_HOT`] within
/// [`CHURN_WINDOW_NS`]). What mass encryption looks like
/// (`f.docx` read, `f.docx.locked` written, `f.docx` removed) and what builds, `rm -rf` and
/// `tar x` also do: user space tells them apart by pairing the names.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileChurnEvent {
    pub header: EventHeader,
    /// x86-64 syscall number.
    pub syscall_nr: u32,
    /// [`CHURN_CREATED`], [`CHURN_REMOVED`] or [`CHURN_REWRITTEN`].
    pub op: u32,
    /// Bytes of `path` used (without NUL).
    pub path_len: u32,
    pub _pad: u32,
    /// The path as the call passed it.
    pub path: [u8; PATH_LEN],
}

pub const CHURN_CREATED: u32 = 1;
pub const CHURN_REMOVED: u32 = 2;
/// A file that was there opened to be written over: `O_TRUNC`, or writable without
/// `O_APPEND` (an `O_CREAT` open that did not create). Mass encryption in place.
pub const CHURN_REWRITTEN: u32 = 3;
/// Creates, unlinks and renames a process (or an ancestor's descendants together) must make
/// within [`CHURN_WINDOW_NS`] before its names are sent.
pub const CHURN_HOT: u32 = 8;
/// Names sent per hot process (or ancestor) and window at most: enough to pair a burst, and a
/// process creating files as fast as it can (a benchmark, an unpacker) cannot flood the ring.
pub const CHURN_SENT_MAX: u32 = 1024;
pub const CHURN_WINDOW_NS: u64 = 2_000_000_000;

/// The last `O_CREAT` open of a file, as the `CREATED` map keeps it by inode ([`FileKey`]) and
/// the exec record reports it for the image: user space, which sees every connect and accept,
/// tells from it whether a network client wrote the program (`curl -o`, `wget`, or the shell
/// child that read `/dev/tcp` into a file). All zero when the create was not seen (before
/// vigil started, or evicted since).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreatedBy {
    /// tgid of the writer.
    pub tgid: u32,
    /// `real_parent->tgid` of the writer at the open; 0 for init's and kthreadd's children.
    pub parent_tgid: u32,
    /// `bpf_ktime_get_ns()` at the open.
    pub ns: u64,
}

/// `LD_PRELOAD=/tmp/x.so ls`: a library mapped executable (an `mmap` with `PROT_EXEC` of a
/// file) by a process whose environment sets `LD_PRELOAD` or `LD_AUDIT`, when `CREATED`
/// remembers the library's inode as written by another process. The dynamic loader maps the preloaded
/// library first, into whatever the variable was set for; a library the process wrote itself
/// (a JVM unpacking its native code) is not reported, nor is any map of a process without the
/// variable, whose environment is never read beyond it. Kind `PreloadLibrary`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PreloadEvent {
    pub header: EventHeader,
    /// Who wrote the library, and when.
    pub created_by: CreatedBy,
    pub ino: u64,
    /// Kernel `s_dev` encoding.
    pub dev: u32,
    /// Bytes of `preload` used (without NUL).
    pub preload_len: u32,
    /// The library file's own name (its dentry's), NUL-padded.
    pub name: [u8; NAME_LEN],
    /// The environment's `LD_PRELOAD=...` or `LD_AUDIT=...` string, as much of it as fits.
    pub preload: [u8; PATH_LEN],
}

/// What starts the environment string [`PreloadEvent::preload`] holds: one of the two variables
/// that have the dynamic loader map a library into every program started with them.
pub const PRELOAD_VAR: &[u8] = b"LD_PRELOAD=";
/// `LD_AUDIT`'s auditing libraries are loaded before any other, preloads included, and see
/// every symbol binding: the same injection by another name.
pub const AUDIT_VAR: &[u8] = b"LD_AUDIT=";
/// Environment strings looked at for either variable before giving up.
pub const PRELOAD_ENV_STRINGS: u32 = 128;

/// Entries of `CREATED` (LRU): a download is exec'd seconds after it is written, long before
/// a busy host's other creates could evict it.
pub const CREATED_ENTRIES: u32 = 16384;

/// The `CHURN` map's value: a tgid's creates, unlinks and renames since `start_ns`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ChurnCount {
    pub start_ns: u64,
    pub count: u32,
    pub _pad: u32,
}

pub const AF_INET: u32 = 2;
pub const AF_INET6: u32 = 10;
pub const AF_PACKET: u32 = 17;
pub const SOCK_RAW: u32 = 3;

/// Whether socket(family, type, ...) is one [`RawSocketEvent`] reports.
pub const fn is_raw_socket(family: u32, sock_type: u32) -> bool {
    // The type's low bits; SOCK_NONBLOCK and SOCK_CLOEXEC ride above them.
    family == AF_PACKET
        || ((family == AF_INET || family == AF_INET6) && sock_type & 0xf == SOCK_RAW)
}

/// rename / renameat / renameat2 / unlink / unlinkat that succeeded on a watched path. An
/// absolute path is matched as a string against the `WATCHED_PATHS` trie; a relative one from
/// its base directory (the dirfd's, or the cwd's) upwards by inode, like an open, and then
/// `names` and the watch name that directory.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PathChangeEvent {
    pub header: EventHeader,
    /// x86-64 syscall number.
    pub syscall_nr: u32,
    /// [`PATH_ROLE_*`](PATH_ROLE_RENAMED_TO): which of the call's paths this is.
    pub role: u32,
    /// `FILE_ACCESS_*` bits the change amounts to: a rename's target is written over
    /// (`WRITE | REWRITE`), its source and an unlinked path are deleted (`DELETE`).
    pub access: u32,
    /// Bytes of `path` used (without NUL).
    pub path_len: u32,
    /// 1 when `path` is relative to the directory `names` and the watch describe.
    pub relative: u32,
    /// Directory levels from the base directory up to the watch (relative paths).
    pub depth: u32,
    pub watch_ino: u64,
    pub watch_dev: u32,
    pub _pad: u32,
    /// `names[0]` is the base directory's own name, then its parent's... `depth` of them.
    pub names: [[u8; FILE_NAME_LEN]; FILE_WATCH_MAX_DEPTH],
    pub path: [u8; PATH_LEN],
}

/// The path a rename put something at.
pub const PATH_ROLE_RENAMED_TO: u32 = 0;
/// The path a rename took something from.
pub const PATH_ROLE_RENAMED_FROM: u32 = 1;
/// The path unlink removed.
pub const PATH_ROLE_UNLINKED: u32 = 2;

/// The open can read (`O_RDONLY` or `O_RDWR`, not `O_PATH`).
pub const FILE_ACCESS_READ: u32 = 1 << 0;
/// The open can write, create or truncate (`O_WRONLY`, `O_RDWR`, `O_CREAT` or `O_TRUNC`).
pub const FILE_ACCESS_WRITE: u32 = 1 << 1;
/// The open truncates (`O_TRUNC`): how logs and histories are emptied.
pub const FILE_ACCESS_TRUNCATE: u32 = 1 << 2;
/// The open can change what is already there: it writes without `O_APPEND`, or truncates.
/// Loggers append; `truncate -s 0`, `shred`, `> file` and editors do not.
pub const FILE_ACCESS_REWRITE: u32 = 1 << 3;
/// The path was removed: unlinked, or renamed away (never an open).
pub const FILE_ACCESS_DELETE: u32 = 1 << 4;

/// What an open with `flags` can do to the file, as `FILE_ACCESS_*` bits. Linux checks write
/// permission for `O_TRUNC` whatever the access mode and truncates, so it counts as a write.
pub const fn file_access(flags: u32) -> u32 {
    const O_ACCMODE: u32 = 0o3;
    const O_WRONLY: u32 = 0o1;
    const O_RDWR: u32 = 0o2;
    const O_CREAT: u32 = 0o100;
    const O_TRUNC: u32 = 0o1000;
    const O_APPEND: u32 = 0o2000;
    const O_PATH: u32 = 0o10000000;
    if flags & O_PATH != 0 {
        return 0;
    }
    let mode = flags & O_ACCMODE;
    let mut access = 0;
    if mode == 0 || mode == O_RDWR {
        access |= FILE_ACCESS_READ;
    }
    if mode == O_WRONLY || mode == O_RDWR || flags & (O_CREAT | O_TRUNC) != 0 {
        access |= FILE_ACCESS_WRITE;
    }
    if flags & O_TRUNC != 0 {
        access |= FILE_ACCESS_TRUNCATE | FILE_ACCESS_REWRITE;
    }
    if (mode == O_WRONLY || mode == O_RDWR) && flags & O_APPEND == 0 {
        access |= FILE_ACCESS_REWRITE;
    }
    access
}

/// Key of `WATCHED_FILES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub ino: u64,
    /// Kernel `s_dev` encoding.
    pub dev: u32,
    pub _pad: u32,
}

/// Value of `WATCHED_FILES`: which accesses to report, and how far below this inode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileWatch {
    /// `FILE_ACCESS_*` bits; an open is reported when it asks for any of them.
    pub access: u32,
    /// 0: only this inode; n: also anything up to n directory levels below it.
    pub max_depth: u32,
}

/// Which probe reported a [`ProbeErrorEvent`].
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeId {
    SysEnter = 1,
    Exec = 2,
    Fork = 3,
    Exit = 4,
    SysExit = 5,
}

/// A probe failed in a way worth telling user space (a helper returned an error).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProbeErrorEvent {
    pub header: EventHeader,
    /// [`ProbeId`] as u16.
    pub probe: u16,
    pub _pad: u16,
    /// Negative errno the failing helper returned.
    pub code: i32,
}

// Compile-time layout checks: both sides compile these, so a mismatch cannot ship.
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<EventHeader>() == 32);
    assert!(
        size_of::<ExecEvent>() == 32 + 64 + 48 + 16 + COMM_LEN + MEMFD_NAME_LEN + PATH_LEN + ARGS_LEN
    );
    assert!(size_of::<CreatedBy>() == 16);
    assert!(size_of::<ForkEvent>() == 32 + 32);
    assert!(size_of::<ExitEvent>() == 32 + 8);
    assert!(size_of::<SyscallBatch>() == 32 + 16 + 2 * BATCH_LEN);
    assert!(size_of::<SockAddr>() == 24);
    assert!(size_of::<NetEvent>() == 32 + 16 + 24);
    assert!(size_of::<Creds>() == 32);
    assert!(size_of::<CredChangeEvent>() == 32 + 24 + 64);
    assert!(size_of::<PtraceEvent>() == 32 + 16);
    assert!(size_of::<MemfdEvent>() == 32 + 8 + NAME_LEN);
    assert!(size_of::<ModuleLoadEvent>() == 32 + 24);
    assert!(size_of::<BpfProgLoadEvent>() == 32 + 16 + 16);
    assert!(size_of::<ProbeErrorEvent>() == 32 + 8);
    assert!(size_of::<FileEvent>() == 32 + 40 + FILE_NAME_LEN * FILE_WATCH_MAX_DEPTH);
    assert!(size_of::<FileKey>() == 16);
    assert!(
        size_of::<PathChangeEvent>() == 32 + 40 + FILE_NAME_LEN * FILE_WATCH_MAX_DEPTH + PATH_LEN
    );
    assert!(size_of::<FileWatch>() == 8);
    assert!(size_of::<SetuidChmodEvent>() == 32 + 24 + PATH_LEN);
    assert!(size_of::<RawSocketEvent>() == 32 + 16);
    assert!(size_of::<PathCallEvent>() == 32 + 32 + PATH_LEN);
    assert!(size_of::<FileChurnEvent>() == 32 + 16 + PATH_LEN);
    assert!(size_of::<ChurnCount>() == 16);
};
