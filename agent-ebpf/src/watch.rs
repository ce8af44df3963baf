//! Every syscall's exit: the one program vigil runs per syscall on the host. It adds the call to
//! its thread's batch (`syscalls::record`) and, for the security-relevant ones, reports the
//! result with the arguments still in the saved registers: connect/accept/bind/listen, the
//! setuid family (with the thread's ids before, from `CREDS`), ptrace, process_vm_writev and
//! _readv, memfd_create, opens of another process's `/proc/PID/mem` and `environ` (`proc_mem`),
//! (f)init_module and bpf(BPF_PROG_LOAD); chmods that ask for the set-user-ID bit and raw
//! sockets; file capabilities set and mounts onto /proc/PID (`path_calls`); libraries mapped
//! under `LD_PRELOAD` (`preload`); every file creation, counted (`churn`) and remembered by
//! inode (`created`); and,
//! while some file is watched, the opens, renames and unlinks (`files`).
//!
//! The batch carries each call's class (`agent_common::call_class`) when the loader asks for
//! it: its errno class if it failed, and for a few calls what their arguments asked for. Everything but the batch store
//! and that class sits behind one bitmap test of the syscall number. Per-syscall
//! `syscalls:sys_*_<name>` tracepoints would be simpler, but enabling them costs every syscall on
//! the host ~30 ns here (measured with `cargo xtask bench overhead`).

use agent_common::{
    BpfProgLoadEvent, CONFIG_CALL_CLASSES, CredChangeEvent, Creds, EVENTS_RING_BYTES, EventKind,
    LOSS_CREDS_BEFORE_UNKNOWN, MemfdEvent,
    ModuleLoadEvent, call_class, NAME_LEN, NetEvent, PtraceEvent,
    RawSocketEvent, S_ISUID, SetuidChmodEvent, SockAddr, is_raw_socket, syscall_nr as nr,
};
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, pt_regs},
    helpers::{
        bpf_probe_read_kernel,
        generated::{bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};

use crate::{
    churn, created,
    emit::{
        bump, count_emitted, count_lost, current_ids, header, prompt_wakeup, read_user_path,
        reserve_record,
    },
    files,
    maps::{CREDS, EVENTS},
    path_calls, preload, proc_mem,
    syscalls::{exit_token, record},
    task::{KPtr, config, creds_of, leader_start_ns, offset, offsets, remember_creds},
};

/// A watched call as its exit sees it: the number and the x86-64 argument registers, in order.
#[derive(Clone, Copy)]
struct Call {
    nr: u32,
    args: [u64; 5],
}

/// `sys_exit(regs, ret)` with a BTF-typed `regs`: the verifier lets us load `orig_rax` and the
/// arguments directly, which here is about 35 ns cheaper per syscall than
/// `bpf_probe_read_kernel`.
#[btf_tracepoint(function = "sys_exit")]
pub fn vigil_sys_exit(ctx: BtfTracePointContext) -> u32 {
    let regs = BtfRegs(ctx.arg(0));
    // SAFETY: `regs` is the tracepoint's trusted pt_regs pointer; the verifier checks the load.
    let sys = unsafe { (*regs.0).orig_rax };
    on_sys_exit(regs, sys, ctx.arg(1));
    0
}

/// The same for kernels that refuse tp_btf: the registers are probe-read instead.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn vigil_sys_exit_raw(ctx: RawTracePointContext) -> u32 {
    let regs = RawRegs(ctx.arg(0));
    // SAFETY: probe read of one field of the saved user registers.
    let Ok(sys) = (unsafe { bpf_probe_read_kernel(core::ptr::addr_of!((*regs.0).orig_rax)) })
    else {
        return 0;
    };
    on_sys_exit(regs, sys, ctx.arg(1));
    0
}

/// How a `sys_exit` program reads the saved user registers; the two programs differ only there.
trait UserRegs: Copy {
    /// Syscall argument `i` (0..5, x86-64 order); 0 where it cannot be read.
    fn arg(self, i: usize) -> u64;
    /// The file the current task holds at `fd`.
    fn file_of(self, fd: u32) -> Option<KPtr>;
}

/// The tp_btf program's trusted `pt_regs`: direct loads.
#[derive(Clone, Copy)]
struct BtfRegs(*const pt_regs);

impl UserRegs for BtfRegs {
    #[inline(always)]
    fn arg(self, i: usize) -> u64 {
        // SAFETY: direct loads the verifier checks against the trusted pt_regs pointer.
        unsafe {
            match i {
                0 => (*self.0).rdi,
                1 => (*self.0).rsi,
                2 => (*self.0).rdx,
                3 => (*self.0).r10,
                _ => (*self.0).r8,
            }
        }
    }

    #[inline(always)]
    fn file_of(self, fd: u32) -> Option<KPtr> {
        files::file_of_btf(fd)
    }
}

/// The raw_tp program's untyped `pt_regs`: one probe read per field (the whole struct would
/// crowd the 512-byte stack `path_check`'s key shares).
#[derive(Clone, Copy)]
struct RawRegs(*const pt_regs);

impl UserRegs for RawRegs {
    #[inline(always)]
    fn arg(self, i: usize) -> u64 {
        let r = self.0;
        // SAFETY: probe reads of single fields of the saved user registers.
        unsafe {
            match i {
                0 => bpf_probe_read_kernel(core::ptr::addr_of!((*r).rdi)),
                1 => bpf_probe_read_kernel(core::ptr::addr_of!((*r).rsi)),
                2 => bpf_probe_read_kernel(core::ptr::addr_of!((*r).rdx)),
                3 => bpf_probe_read_kernel(core::ptr::addr_of!((*r).r10)),
                _ => bpf_probe_read_kernel(core::ptr::addr_of!((*r).r8)),
            }
        }
        .unwrap_or(0)
    }

    #[inline(always)]
    fn file_of(self, fd: u32) -> Option<KPtr> {
        files::file_of(fd)
    }
}

/// The class the batch carries with call `nr` (`call_class`): its errno class if it failed,
/// else what its arguments ask for if it is one of the few calls classed by them. rt_sigreturn
/// returns the interrupted code's restored `rax`, which says nothing about rt_sigreturn.
#[inline(always)]
fn class_of(regs: impl UserRegs, nr: u64, ret: i64) -> u16 {
    if nr == u64::from(nr::RT_SIGRETURN) {
        return call_class::NONE;
    }
    let class = call_class::result_class(ret);
    if class != call_class::NONE || !call_class::has_arg_class(nr) {
        return class;
    }
    call_class::arg_class(nr as u32, [regs.arg(0), regs.arg(1), regs.arg(2)])
}

/// Both programs' body: batch the call, then report it if it is watched.
#[inline(always)]
fn on_sys_exit(regs: impl UserRegs, sys: u64, ret: i64) {
    if let Some(nr) = exit_token(sys, ret) {
        let class = if config().flags & CONFIG_CALL_CLASSES != 0 {
            class_of(regs, nr, ret)
        } else {
            call_class::NONE
        };
        record(call_class::batch_id(nr, class));
    }
    if !nr::is_watched(sys) {
        return;
    }
    let id = sys as u32;
    let args3 = || [regs.arg(0), regs.arg(1), regs.arg(2)];
    if nr::is_open(id) {
        if ret >= 0 {
            let args = args3();
            let flags = files::open_flags(id, args);
            // The fd's file once, for whichever wants it: every open, since `proc_mem` looks
            // at reads too (another process's `mem` and `environ`).
            let file = regs.file_of(ret as u32).map_or(0, |f| f.as_ptr() as u64);
            let creates = churn::opened(id, flags, args, file);
            let levels = if files::watching() { files::levels_for(flags) } else { 0 };
            if creates {
                created::opened(file);
            }
            let sb = if levels != 0 {
                files::opened(flags, levels, ret, file)
            } else {
                0
            };
            if file != 0 {
                proc_mem::opened(file, sb, ret, id, flags);
            }
        }
    } else if nr::is_path_change(id) {
        if ret == 0 {
            let args = [regs.arg(0), regs.arg(1), regs.arg(2), regs.arg(3)];
            churn::path_changed(id, args);
            if files::watching() {
                files::path_changed(id, args);
            }
        }
    } else if nr::is_chmod(id) {
        setuid_chmod(id, args3(), ret);
    } else if id == nr::SOCKET {
        if ret >= 0 {
            raw_socket(args3(), ret);
        }
    } else if nr::is_setxattr(id) {
        let args = [regs.arg(0), regs.arg(1), regs.arg(2), regs.arg(3), regs.arg(4)];
        path_calls::setxattr(id, args, ret);
    } else if nr::is_mount(id) {
        let args = [regs.arg(0), regs.arg(1), regs.arg(2), regs.arg(3), regs.arg(4)];
        path_calls::mount(id, args, ret);
    } else if id == nr::PRCTL {
        if ret == 0 && regs.arg(0) == nr::PR_SET_NAME {
            path_calls::thread_named(regs.arg(1));
        }
    } else if id == nr::MMAP {
        let fd = regs.arg(4);
        if preload::maps_code(regs.arg(2), regs.arg(3), fd, ret)
            && let Some(file) = regs.file_of(fd as u32)
        {
            preload::mapped(file.as_ptr() as u64);
        }
    } else {
        let args = [regs.arg(0), regs.arg(1), regs.arg(2), regs.arg(3), regs.arg(4)];
        exit_watched(Call { nr: id, args }, ret);
    }
}

#[inline(always)]
fn exit_watched(call: Call, ret: i64) {
    let (pid, tgid) = current_ids();
    if tgid != config().self_tgid {
        on_exit(pid, tgid, call, ret);
    }
}

#[inline(never)]
fn on_exit(pid: u32, tgid: u32, p: Call, ret: i64) {
    let task = KPtr::current_task();
    let start_ns = leader_start_ns(&offsets(), task);
    let ids = Ids {
        pid,
        tgid,
        start_ns,
    };
    match p.nr {
        nr::CONNECT => net(
            EventKind::Connect,
            &p,
            ret,
            ids,
            Some((p.args[1], p.args[2])),
        ),
        nr::BIND => net(EventKind::Bind, &p, ret, ids, Some((p.args[1], p.args[2]))),
        // The peer address is only there once accept succeeded.
        nr::ACCEPT | nr::ACCEPT4 => {
            let peer = (ret >= 0 && p.args[1] != 0).then_some((p.args[1], p.args[2]));
            net(EventKind::Accept, &p, ret, ids, peer)
        }
        nr::LISTEN => net(EventKind::Listen, &p, ret, ids, None),
        nr::PTRACE => ptrace(&p, ret, ids),
        nr::PROCESS_VM_WRITEV => process_vm(EventKind::MemoryWrite, &p, ret, ids),
        nr::PROCESS_VM_READV => process_vm(EventKind::MemoryRead, &p, ret, ids),
        nr::MEMFD_CREATE => memfd(&p, ret, ids),
        nr::INIT_MODULE | nr::FINIT_MODULE => module_load(&p, ret, ids),
        nr::BPF if p.args[0] == nr::BPF_PROG_LOAD as u64 => bpf_prog_load(&p, ret, ids),
        n if nr::is_cred_change(n) => cred_change(&p, ret, ids, task),
        _ => {}
    }
}

/// A chmod that asked for the set-user-ID bit, whatever its result; any other mode returns
/// before anything is read.
#[inline(never)]
fn setuid_chmod(sys: u32, args: [u64; 3], ret: i64) {
    let (fd, path, mode) = nr::chmod_args(sys, args);
    if mode & S_ISUID == 0 {
        return;
    }
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return;
    }
    let start_ns = leader_start_ns(&offsets(), KPtr::current_task());
    let Some(mut entry) =
        reserve_record::<SetuidChmodEvent>(EventKind::SetuidChmod, pid, tgid, start_ns)
    else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: the reserved record, written field by field before it is submitted; the path is
    // read into it directly (at most PATH_LEN bytes, NUL included), its length says how much.
    unsafe {
        (*ev).syscall_nr = sys;
        (*ev).ret = ret as i32;
        (*ev).mode = mode;
        (*ev).fd = fd;
        (*ev)._pad = 0;
        (*ev).path_len = read_user_path((*ev).path.as_mut_ptr(), path);
    }
    entry.submit(prompt_wakeup());
    count_emitted(EventKind::SetuidChmod);
}

#[derive(Clone, Copy)]
struct Ids {
    pid: u32,
    tgid: u32,
    start_ns: u64,
}

macro_rules! emit {
    ($ty:ty, $kind:expr, $ids:expr, |$ev:ident| $fill:block) => {{
        match EVENTS.reserve::<$ty>(0) {
            None => count_lost($kind),
            Some(mut entry) => {
                // SAFETY: all-zero is a valid value of every ABI record.
                let mut $ev: $ty = unsafe { core::mem::zeroed() };
                $ev.header = header($kind, core::mem::size_of::<$ty>(), $ids.pid, $ids.tgid, $ids.start_ns);
                $fill
                entry.write($ev);
                entry.submit(prompt_wakeup());
                count_emitted($kind);
            }
        }
    }};
}

/// The peer of the internet socket the current task holds at `fd`, from its `sock_common`;
/// the default for any other file.
#[inline(always)]
fn socket_peer(fd: u32) -> SockAddr {
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;
    let Some(sk) = files::file_of(fd)
        .and_then(|f| f.read_ptr(offset!(file_private_data)))
        .and_then(|sock| sock.read_ptr(offset!(socket_sk)))
    else {
        return SockAddr::default();
    };
    let family = sk.read::<u16>(offset!(sock_common_family)).unwrap_or(0);
    let mut addr = SockAddr::default();
    match family {
        AF_INET => {
            let Some(ip) = sk.read::<[u8; 4]>(offset!(sock_common_daddr)) else {
                return addr;
            };
            addr.addr[..4].copy_from_slice(&ip);
        }
        AF_INET6 => {
            let Some(ip) = sk.read::<[u8; 16]>(offset!(sock_common_v6_daddr)) else {
                return addr;
            };
            addr.addr = ip;
        }
        _ => return addr,
    }
    addr.family = family;
    addr.port = sk
        .read::<u16>(offset!(sock_common_dport))
        .map_or(0, u16::from_be);
    addr
}

/// Reads a user `struct sockaddr` of `len` bytes at `ptr`.
#[inline(always)]
fn read_sockaddr(ptr: u64, len: u64) -> SockAddr {
    let mut raw = [0u8; 28];
    // sockaddr_in6 is 28 bytes, sockaddr_in 16: read no more than the caller said it passed.
    let n: u32 = if len >= 28 {
        28
    } else if len >= 16 {
        16
    } else {
        0
    };
    // SAFETY: n <= 28 bytes into a 28-byte local.
    if n == 0 || unsafe { bpf_probe_read_user(raw.as_mut_ptr().cast(), n, ptr as *const _) } != 0 {
        return SockAddr::default();
    }
    let family = u16::from_ne_bytes([raw[0], raw[1]]);
    let port = u16::from_be_bytes([raw[2], raw[3]]);
    let mut addr = SockAddr {
        family,
        port,
        ..Default::default()
    };
    match family {
        2 => addr.addr[..4].copy_from_slice(&raw[4..8]),
        10 => {
            addr.addr.copy_from_slice(&raw[8..24]);
            addr.scope_id = u32::from_ne_bytes([raw[24], raw[25], raw[26], raw[27]]);
        }
        _ => {}
    }
    addr
}

#[inline(always)]
fn net(kind: EventKind, p: &Call, ret: i64, ids: Ids, sockaddr: Option<(u64, u64)>) {
    let addr = match sockaddr {
        Some((ptr, len)) if kind == EventKind::Accept => {
            // accept's addrlen is a pointer to the length the kernel filled in.
            let mut l: u32 = 0;
            // SAFETY: 4 bytes into a local.
            let rc =
                unsafe { bpf_probe_read_user((&mut l as *mut u32).cast(), 4, len as *const _) };
            if rc == 0 {
                read_sockaddr(ptr, l as u64)
            } else {
                SockAddr::default()
            }
        }
        Some((ptr, len)) => read_sockaddr(ptr, len),
        // An accept that did not ask for the peer (libuv's accept4(fd, NULL, NULL, flags)):
        // the socket it returned knows it.
        None if kind == EventKind::Accept && ret >= 0 => socket_peer(ret as u32),
        None => SockAddr::default(),
    };
    emit!(NetEvent, kind, ids, |ev| {
        ev.fd = p.args[0] as i32;
        ev.ret = ret as i32;
        ev.backlog = if kind == EventKind::Listen {
            p.args[1] as i32
        } else {
            0
        };
        ev.addr = addr;
    });
}

#[inline(always)]
fn cred_change(p: &Call, ret: i64, ids: Ids, task: KPtr) {
    let after = creds_of(&offsets(), task);
    // A refused call changed nothing. Otherwise the ids before are the thread's last recorded
    // ones, and these are what its next call starts from.
    let before = if ret < 0 {
        after
    } else {
        // SAFETY: read-only lookup, copied out.
        let before = match unsafe { CREDS.get(&ids.pid) } {
            Some(c) => *c,
            None => {
                bump(LOSS_CREDS_BEFORE_UNKNOWN, 1);
                Creds::UNKNOWN
            }
        };
        remember_creds(ids.pid, &after);
        before
    };
    emit!(CredChangeEvent, EventKind::CredChange, ids, |ev| {
        ev.syscall_nr = p.nr;
        ev.ret = ret as i32;
        ev.requested = [p.args[0] as u32, p.args[1] as u32, p.args[2] as u32];
        ev.before = before;
        ev.after = after;
    });
}

#[inline(always)]
fn ptrace(p: &Call, ret: i64, ids: Ids) {
    emit!(PtraceEvent, EventKind::Ptrace, ids, |ev| {
        ev.request = p.args[0] as i64;
        ev.target_pid = p.args[1] as u32;
        ev.ret = ret as i32;
    });
}

/// process_vm_writev or _readv (`kind` says which; `request` stays 0, `MEMORY_*_VM_*`) into
/// another process. A process's own calls are not that and are not sent. MPI ranks copying
/// their messages (Cross Memory Attach) make them by the thousand: they are sent only while the
/// ring is less than half full, the rest counted as lost.
#[inline(always)]
fn process_vm(kind: EventKind, p: &Call, ret: i64, ids: Ids) {
    let target = p.args[0] as u32;
    if target == ids.tgid || target == ids.pid {
        return;
    }
    if EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= EVENTS_RING_BYTES as u64 / 2 {
        count_lost(kind);
        return;
    }
    emit!(PtraceEvent, kind, ids, |ev| {
        ev.target_pid = target;
        ev.ret = ret as i32;
    });
}

#[inline(always)]
fn memfd(p: &Call, ret: i64, ids: Ids) {
    let mut name = [0u8; NAME_LEN];
    // SAFETY: at most NAME_LEN bytes into a NAME_LEN local; a failed read leaves it empty.
    unsafe {
        bpf_probe_read_user_str(
            name.as_mut_ptr().cast(),
            NAME_LEN as u32,
            p.args[0] as *const _,
        )
    };
    emit!(MemfdEvent, EventKind::MemfdCreate, ids, |ev| {
        ev.flags = p.args[1] as u32;
        ev.ret = ret as i32;
        ev.name = name;
    });
}

#[inline(always)]
fn module_load(p: &Call, ret: i64, ids: Ids) {
    emit!(ModuleLoadEvent, EventKind::ModuleLoad, ids, |ev| {
        ev.syscall_nr = p.nr;
        if p.nr == nr::FINIT_MODULE {
            ev.fd = p.args[0] as i32;
        } else {
            ev.fd = -1;
            ev.len = p.args[1];
        }
        ev.ret = ret as i32;
    });
}

#[inline(always)]
fn bpf_prog_load(p: &Call, ret: i64, ids: Ids) {
    // union bpf_attr for BPF_PROG_LOAD: prog_type @0, insn_cnt @4, prog_name[16] @48.
    let mut head = [0u32; 2];
    let mut name = [0u8; 16];
    let attr = p.args[1];
    // SAFETY: fixed-size reads into locals; failures leave zeros.
    unsafe {
        bpf_probe_read_user(head.as_mut_ptr().cast(), 8, attr as *const _);
        bpf_probe_read_user(name.as_mut_ptr().cast(), 16, (attr + 48) as *const _);
    }
    emit!(BpfProgLoadEvent, EventKind::BpfProgLoad, ids, |ev| {
        ev.prog_type = head[0];
        ev.insn_cnt = head[1];
        ev.ret = ret as i32;
        ev.prog_name = name;
    });
}

/// A socket created below TCP and UDP (`is_raw_socket`); every other socket returns at once.
#[inline(never)]
fn raw_socket(args: [u64; 3], ret: i64) {
    let (family, sock_type, protocol) = (args[0] as u32, args[1] as u32, args[2] as u32);
    if !is_raw_socket(family, sock_type) {
        return;
    }
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return;
    }
    let ids = Ids {
        pid,
        tgid,
        start_ns: leader_start_ns(&offsets(), KPtr::current_task()),
    };
    emit!(RawSocketEvent, EventKind::RawSocket, ids, |ev| {
        ev.family = family;
        ev.sock_type = sock_type;
        ev.protocol = protocol;
        ev.ret = ret as i32;
    });
}
