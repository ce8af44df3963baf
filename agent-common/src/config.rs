//! Configuration user space writes before load (globals) and while running (maps).

/// Byte offsets of kernel struct fields, resolved by user space from `/sys/kernel/btf/vmlinux`
/// and written into the eBPF object as a global before load. This is our CO-RE: the programs
/// never hard-code a kernel's layout. A field that could not be resolved is [`OFFSET_UNKNOWN`];
/// programs then skip reading it and flag the record instead of reading garbage.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_start_boottime: u32,
    pub task_real_cred: u32,
    pub task_mm: u32,
    pub task_flags: u32,
    pub task_exit_code: u32,
    pub task_signal: u32,
    pub signal_live: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `mm->env_start..env_end`: where `LD_PRELOAD` is looked for (`PreloadEvent`).
    pub mm_env_start: u32,
    pub mm_env_end: u32,
    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_suid: u32,
    pub cred_sgid: u32,
    pub cred_euid: u32,
    pub cred_egid: u32,
    pub cred_fsuid: u32,
    pub cred_fsgid: u32,
    /// `task->files->fdt->fd[i]->f_inode->i_mode`: the file type of the new image's stdio at exec
    /// (a shell whose stdin is a socket is the classic reverse shell).
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_fd: u32,
    pub file_inode: u32,
    pub inode_mode: u32,
    /// `file->private_data` (a `struct socket *` for sockets) `->sk->__sk_common.skc_family`:
    /// only an internet socket on stdio makes a reverse shell; services log to Unix sockets.
    pub file_private_data: u32,
    /// `file->f_mode`: whether an `O_CREAT` open made the file (`FMODE_CREATED`) or opened
    /// one that was there (`CHURN_REWRITTEN`).
    pub file_f_mode: u32,
    pub socket_sk: u32,
    pub sock_common_family: u32,
    /// `skc_daddr`, `skc_dport` (network order) and `skc_v6_daddr`: the peer of a socket
    /// `accept` returned, for servers that do not ask accept for it (`NetEvent::addr`).
    pub sock_common_daddr: u32,
    pub sock_common_dport: u32,
    pub sock_common_v6_daddr: u32,
    /// `mm->exe_file->f_inode`: `i_ino`, `i_sb->s_dev`, `i_size`, `i_[mc]time_sec/nsec` — the
    /// running image's identity, so a known image is recognised without opening `/proc/PID`.
    pub mm_exe_file: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    /// `super_block.s_magic`: which filesystem a file is on (procfs, for `/proc/PID/mem`).
    pub sb_magic: u32,
    pub inode_size: u32,
    pub inode_mtime_sec: u32,
    pub inode_mtime_nsec: u32,
    pub inode_ctime_sec: u32,
    pub inode_ctime_nsec: u32,
    /// The opened file's path, walked up to find a watched directory:
    /// `file->f_path.dentry` (`file_f_path + path_dentry`), `dentry->d_parent`, `d_inode`,
    /// `d_name.name` (`dentry_d_name + qstr_name`); `fdtable->max_fds` bounds the fd lookup.
    pub fdt_max_fds: u32,
    pub file_f_path: u32,
    pub path_dentry: u32,
    pub dentry_d_parent: u32,
    pub dentry_d_inode: u32,
    pub dentry_d_name: u32,
    pub qstr_name: u32,
    /// `task->fs->pwd.dentry` (`fs_pwd + path_dentry`): the cwd a relative rename or unlink
    /// is resolved from.
    pub task_fs: u32,
    pub fs_pwd: u32,
}

pub const OFFSET_UNKNOWN: u32 = u32::MAX;

impl KernelOffsets {
    pub const UNKNOWN: Self = Self {
        task_pid: OFFSET_UNKNOWN,
        task_tgid: OFFSET_UNKNOWN,
        task_real_parent: OFFSET_UNKNOWN,
        task_group_leader: OFFSET_UNKNOWN,
        task_start_boottime: OFFSET_UNKNOWN,
        task_real_cred: OFFSET_UNKNOWN,
        task_mm: OFFSET_UNKNOWN,
        task_flags: OFFSET_UNKNOWN,
        task_exit_code: OFFSET_UNKNOWN,
        task_signal: OFFSET_UNKNOWN,
        signal_live: OFFSET_UNKNOWN,
        mm_arg_start: OFFSET_UNKNOWN,
        mm_arg_end: OFFSET_UNKNOWN,
        mm_env_start: OFFSET_UNKNOWN,
        mm_env_end: OFFSET_UNKNOWN,
        cred_uid: OFFSET_UNKNOWN,
        cred_gid: OFFSET_UNKNOWN,
        cred_suid: OFFSET_UNKNOWN,
        cred_sgid: OFFSET_UNKNOWN,
        cred_euid: OFFSET_UNKNOWN,
        cred_egid: OFFSET_UNKNOWN,
        cred_fsuid: OFFSET_UNKNOWN,
        cred_fsgid: OFFSET_UNKNOWN,
        task_files: OFFSET_UNKNOWN,
        files_fdt: OFFSET_UNKNOWN,
        fdt_fd: OFFSET_UNKNOWN,
        file_inode: OFFSET_UNKNOWN,
        inode_mode: OFFSET_UNKNOWN,
        file_private_data: OFFSET_UNKNOWN,
        file_f_mode: OFFSET_UNKNOWN,
        socket_sk: OFFSET_UNKNOWN,
        sock_common_family: OFFSET_UNKNOWN,
        sock_common_daddr: OFFSET_UNKNOWN,
        sock_common_dport: OFFSET_UNKNOWN,
        sock_common_v6_daddr: OFFSET_UNKNOWN,
        mm_exe_file: OFFSET_UNKNOWN,
        inode_ino: OFFSET_UNKNOWN,
        inode_sb: OFFSET_UNKNOWN,
        sb_dev: OFFSET_UNKNOWN,
        sb_magic: OFFSET_UNKNOWN,
        inode_size: OFFSET_UNKNOWN,
        inode_mtime_sec: OFFSET_UNKNOWN,
        inode_mtime_nsec: OFFSET_UNKNOWN,
        inode_ctime_sec: OFFSET_UNKNOWN,
        inode_ctime_nsec: OFFSET_UNKNOWN,
        fdt_max_fds: OFFSET_UNKNOWN,
        file_f_path: OFFSET_UNKNOWN,
        path_dentry: OFFSET_UNKNOWN,
        dentry_d_parent: OFFSET_UNKNOWN,
        dentry_d_inode: OFFSET_UNKNOWN,
        dentry_d_name: OFFSET_UNKNOWN,
        qstr_name: OFFSET_UNKNOWN,
        task_fs: OFFSET_UNKNOWN,
        fs_pwd: OFFSET_UNKNOWN,
    };
}

/// Scalars fixed at load time, written as the global `CONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// vigil's own tgid: nothing it does is traced.
    pub self_tgid: u32,
    /// `CONFIG_*` bits.
    pub flags: u32,
    /// A partial batch older than this many jiffies is flushed at its thread's next syscall
    /// (a thread that blocks or is preempted sends its batch then anyway).
    /// Jiffies, not ns: `bpf_jiffies64` is a variable read, while `bpf_ktime_get_ns` costs
    /// ~100 ns in a VM whose TSC reads are slow — too much for every syscall on the host.
    pub batch_max_age_jiffies: u64,
}

/// [`AgentConfig::flags`]: batch ids carry each call's class (`call_class`). Off, the
/// per-syscall program tests this bit and skips the classing. On when the model reads classes
/// (vocabulary 2) and when recording a dataset.
pub const CONFIG_CALL_CLASSES: u32 = 1;

/// Default batch age (converted to jiffies by the loader with the kernel's HZ).
pub const DEFAULT_BATCH_MAX_AGE_MS: u64 = 200;
/// Used when the kernel's HZ cannot be determined: the largest x86 value, so ages only err long.
pub const FALLBACK_HZ: u64 = 1000;

/// Names shared by both sides: globals, maps and programs.
pub mod names {
    pub const GLOBAL_OFFSETS: &str = "OFFSETS";
    pub const GLOBAL_CONFIG: &str = "CONFIG";

    pub const MAP_EVENTS: &str = "EVENTS";
    pub const MAP_SYSCALLS: &str = "SYSCALLS";
    pub const MAP_COUNTERS: &str = "COUNTERS";
    /// tgid -> u8: processes whose syscalls are not batched (lifecycle events still flow).
    pub const MAP_IGNORED_TGIDS: &str = "IGNORED_TGIDS";

    /// tid -> `Creds`: each thread's ids as last seen (fork, exec, setuid family; seeded from
    /// /proc at start), so a setuid-family call's exit can say what it changed.
    pub const MAP_CREDS: &str = "CREDS";
    /// `FileKey` -> `CreatedBy` (LRU): the process that last created or truncated each file.
    pub const MAP_CREATED: &str = "CREATED";
    pub const PROG_EXEC: &str = "vigil_sched_exec";
    pub const PROG_FORK: &str = "vigil_sched_fork";
    pub const PROG_EXIT: &str = "vigil_sched_exit";
    pub const PROG_SYS_EXIT: &str = "vigil_sys_exit";
    pub const PROG_SCHED_SWITCH: &str = "vigil_sched_switch";
    pub const PROG_SIGNAL: &str = "vigil_signal_generate";
    /// tgid -> u8: processes whose signals from others are reported like vigil's own (the
    /// host's security services, kept by user space).
    pub const MAP_SIGNAL_GUARDED: &str = "SIGNAL_GUARDED";
    /// raw_tp twin of `PROG_SYS_EXIT` for kernels that refuse tp_btf.
    pub const PROG_SYS_EXIT_RAW: &str = "vigil_sys_exit_raw";
    /// Counts sys_enter and does nothing else: the floor any per-syscall tracer pays, for benches.
    pub const PROG_EMPTY_SYS_ENTER: &str = "vigil_empty_sys_enter";
    pub const MAP_EMPTY_COUNTER: &str = "EMPTY_COUNTER";

    /// Response: `RESPONSE_MODE[0]` is [`super::RESPONSE_ENFORCE`] or [`super::RESPONSE_MONITOR`].
    pub const MAP_RESPONSE_MODE: &str = "RESPONSE_MODE";
    /// tgid -> u8: never signalled by the kernel programs (pid 1, vigil, journald, sshd ...).
    pub const MAP_PROTECTED_TGIDS: &str = "PROTECTED_TGIDS";
    /// LPM trie of exec'd paths -> rule index: exact paths include their NUL, prefixes do not.
    pub const MAP_DENY_EXEC: &str = "DENY_EXEC";
    /// comm ([u8; 16], NUL-padded) -> u8: basenames of protected programs, spared at exec.
    pub const MAP_PROTECTED_COMMS: &str = "PROTECTED_COMMS";
    /// cgroup id -> u8: quarantined cgroups, whose connect()/sendmsg() are refused.
    pub const MAP_QUARANTINED: &str = "QUARANTINED";
    /// tgid -> u8: processes contained (SIGSTOPped) before their quarantine cgroup exists, whose
    /// connect()/sendmsg() are refused. Entries live only while a quarantine is being captured.
    pub const MAP_QUARANTINED_TGIDS: &str = "QUARANTINED_TGIDS";
    /// LPM tries of (port, address) -> rule index for outbound deny lists; port 0 = any.
    pub const MAP_DENY_NET4: &str = "DENY_NET4";
    pub const MAP_DENY_NET6: &str = "DENY_NET6";

    pub const PROG_CONNECT4: &str = "vigil_connect4";
    pub const PROG_CONNECT6: &str = "vigil_connect6";
    pub const PROG_SENDMSG4: &str = "vigil_sendmsg4";
    pub const PROG_SENDMSG6: &str = "vigil_sendmsg6";

    /// `FileKey` -> `FileWatch`: inodes whose opens are reported (see `FileEvent`).
    pub const MAP_WATCHED_FILES: &str = "WATCHED_FILES";
    /// `FILE_WALK[0]`: 0 while `WATCHED_FILES` is empty (opens are not looked at), else one
    /// more than the deepest `max_depth` in it; `FILE_WALK[1 + i]` the same over the watches
    /// with access bit `i`. An open walks no further than a watch for its access needs: reads,
    /// most of a host's opens, usually only look up the file itself.
    pub const MAP_FILE_WALK: &str = "FILE_WALK";
    /// A bitmap over [`super::file_filter_bit`] of every watched inode: an array lookup (which
    /// the verifier inlines) that spares most opens the hash lookup, ~200 ns here.
    pub const MAP_FILE_FILTER: &str = "FILE_FILTER";
    /// LPM trie of watched paths (exact ones with their NUL, directories with a trailing `/`)
    /// -> `FILE_ACCESS_*` bits wanted there and at every shorter entry: renames and unlinks
    /// name paths, not open files, so they are matched as strings.
    pub const MAP_WATCHED_PATHS: &str = "WATCHED_PATHS";
}

/// Values of `RESPONSE_MODE[0]`: monitor never acts in the kernel.
pub const RESPONSE_MONITOR: u32 = 0;
pub const RESPONSE_ENFORCE: u32 = 1;
pub const PROTECTED_TGIDS_ENTRIES: u32 = 4096;
pub const DENY_EXEC_ENTRIES: u32 = 1024;
pub const QUARANTINED_ENTRIES: u32 = 1024;
pub const QUARANTINED_TGIDS_ENTRIES: u32 = 4096;
pub const DENY_NET_ENTRIES: u32 = 4096;
pub const WATCHED_FILES_ENTRIES: u32 = 8192;
/// Entries of `SIGNAL_GUARDED`: a host runs a handful of security services.
pub const SIGNAL_GUARDED_ENTRIES: u32 = 256;
/// Entries of `FILE_WALK`: the gate, then one per `FILE_ACCESS_*` bit.
pub const FILE_WALK_ENTRIES: u32 = 6;
/// u64 words of `FILE_FILTER` (64 Ki bits: with the default policy's few hundred watched
/// inodes, well under 1% of other inodes share a bit with one).
pub const FILE_FILTER_WORDS: u32 = 1024;

/// The `FILE_FILTER` bit of an inode number (both sides compute it). The device is left out
/// so that an open whose inode misses the filter never reads it.
#[inline(always)]
pub const fn file_filter_bit(ino: u64) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    (ino.wrapping_mul(K) >> 48) as u32 % (FILE_FILTER_WORDS * 64)
}

/// Key data of `DENY_NET4`: big-endian port, then the IPv4 address (network order).
pub const NET4_KEY_LEN: usize = 6;
/// Key data of `DENY_NET6`: big-endian port, then the IPv6 address.
pub const NET6_KEY_LEN: usize = 18;

/// Sizes of the ring buffers (bytes; power of two, multiple of the page size). The reader
/// drains every few ms, so a ring only has to absorb a stall of the daemon; 2M syscalls/s fill
/// about 6 MB/s of batches (64 ids a record). Each ring is mapped twice into the daemon (the kernel maps the
/// data area back to back so records can wrap), so its size counts double in vigil's RSS.
pub const EVENTS_RING_BYTES: u32 = 2 << 20;
pub const SYSCALLS_RING_BYTES: u32 = 4 << 20;
/// Syscall batches are written without waking the reader (a wakeup is an IPI, i.e. a VM exit)
/// until this much data waits; the reader also drains on a short timer.
pub const SYSCALLS_WAKEUP_BYTES: u64 = (SYSCALLS_RING_BYTES / 4) as u64;
/// How often user space drains a ring without a wakeup while records come (it backs off
/// while the ring stays empty).
pub const SYSCALLS_POLL_MS: u64 = 10;
/// Threads whose credentials the kernel side remembers (`CREDS`): every live thread on the host,
/// least recently used evicted.
pub const CREDS_MAP_ENTRIES: u32 = 32768;
pub const IGNORED_TGIDS_ENTRIES: u32 = 1024;

const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 54 * 4);
const _: () = assert!(core::mem::size_of::<AgentConfig>() == 16);
