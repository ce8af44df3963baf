//! Security-relevant syscalls, seen at entry (arguments, credentials before) and reported at exit
//! with the result: connect/accept/bind/listen, the setuid family, ptrace, memfd_create,
//! (f)init_module and bpf(BPF_PROG_LOAD); chmods that ask for the set-user-ID bit and raw
//! sockets (at exit only); every file creation, counted (`churn`) and remembered by inode
//! (`created`); and, while some file is watched, the opens, renames and unlinks (`files`).
//!
//! Entry is handled inside `vigil_sys_enter` (which runs for every syscall anyway) behind a bitmap
//! test; exit by one raw `sys_exit` program that returns after reading the syscall number unless
//! it is watched. Per-syscall `syscalls:sys_*_<name>` tracepoints would be simpler, but enabling
//! them costs every syscall on the host ~150 ns here (measured with `cargo xtask bench overhead`).

use agent_common::{
    BpfProgLoadEvent, CredChangeEvent, Creds, EventKind, LOSS_PENDING_MAP_FULL,
    LOSS_PENDING_MISSING, MemfdEvent, ModuleLoadEvent, NAME_LEN, NetEvent, PATH_LEN, PtraceEvent,
    RawSocketEvent, S_ISUID, SetuidChmodEvent, SockAddr, is_raw_socket, syscall_nr as nr,
};
use aya_ebpf::{
    bindings::pt_regs,
    helpers::{
        bpf_probe_read_kernel,
        generated::{bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};

use crate::{
    churn, created,
    emit::{bump, count_emitted, count_lost, current_ids, header, prompt_wakeup, reserve_record},
    files,
    maps::{EVENTS, PENDING, Pending},
    task::{KPtr, config, creds_of, leader_start_ns, offsets},
};

/// Remembers a watched syscall's arguments (and, for the setuid family, the credentials before
/// it) for its exit. Called from `vigil_sys_enter` with the user registers it was given, for
/// the calls `is_watched_at_entry` names.
#[inline(never)]
pub fn on_enter(pid: u32, nr: u64, regs: *const pt_regs) {
    // SAFETY: probe read of the saved user registers the tracepoint handed us.
    let Ok(r) = (unsafe { bpf_probe_read_kernel(regs) }) else {
        bump(LOSS_PENDING_MISSING, 1);
        return;
    };
    let nr = nr as u32;
    let mut pending = Pending {
        nr,
        _pad: 0,
        // The x86-64 syscall argument registers, in order.
        args: [r.rdi, r.rsi, r.rdx, r.r10, r.r8],
        before: Creds::default(),
    };
    if nr::is_cred_change(nr) {
        pending.before = creds_of(&offsets(), KPtr::current_task());
    }
    if PENDING.insert(pid, pending, 0).is_err() {
        bump(LOSS_PENDING_MAP_FULL, 1);
    }
}

/// `sys_exit(regs, ret)` with a BTF-typed `regs`: the verifier lets us load `orig_rax` directly,
/// which here is about 35 ns cheaper per syscall than `bpf_probe_read_kernel`.
#[btf_tracepoint(function = "sys_exit")]
pub fn vigil_sys_exit(ctx: BtfTracePointContext) -> u32 {
    let regs: *const pt_regs = ctx.arg(0);
    // SAFETY: `regs` is the tracepoint's trusted pt_regs pointer; the verifier checks the load.
    let sys = unsafe { (*regs).orig_rax };
    if nr::is_watched(sys) {
        if nr::is_open(sys as u32) {
            let ret: i64 = ctx.arg(1);
            if ret >= 0 {
                // SAFETY: as above, direct loads the verifier checks against pt_regs.
                let args = unsafe { [(*regs).rdi, (*regs).rsi, (*regs).rdx] };
                let flags = files::open_flags(sys as u32, args);
                let creates = churn::opened(sys as u32, flags, args);
                let levels = if files::watching() { files::levels_for(flags) } else { 0 };
                // The fd's file once, for whichever of the two wants it.
                if creates || levels != 0 {
                    let file = files::file_of_btf(ret as u32).map_or(0, |f| f.as_ptr() as u64);
                    if creates {
                        created::opened(file);
                    }
                    if levels != 0 {
                        files::opened(flags, levels, ret, file);
                    }
                }
            }
            return 0;
        }
        if nr::is_path_change(sys as u32) {
            let ret: i64 = ctx.arg(1);
            if ret == 0 {
                // SAFETY: as above.
                let args = unsafe { [(*regs).rdi, (*regs).rsi, (*regs).rdx, (*regs).r10] };
                churn::path_changed(sys as u32, args);
                if files::watching() {
                    files::path_changed(sys as u32, args);
                }
            }
            return 0;
        }
        if nr::is_chmod(sys as u32) {
            // SAFETY: as above.
            let args = unsafe { [(*regs).rdi, (*regs).rsi, (*regs).rdx] };
            setuid_chmod(sys as u32, args, ctx.arg(1));
            return 0;
        }
        if sys == nr::SOCKET as u64 {
            let ret: i64 = ctx.arg(1);
            if ret >= 0 {
                // SAFETY: as above.
                let args = unsafe { [(*regs).rdi, (*regs).rsi, (*regs).rdx] };
                raw_socket(args, ret);
            }
            return 0;
        }
        exit_watched(sys, ctx.arg(1));
    }
    0
}

/// The same for kernels that refuse tp_btf: the register is probe-read instead.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn vigil_sys_exit_raw(ctx: RawTracePointContext) -> u32 {
    let regs: *const pt_regs = ctx.arg(0);
    // SAFETY: probe read of one field of the saved user registers.
    let Ok(sys) = (unsafe { bpf_probe_read_kernel(core::ptr::addr_of!((*regs).orig_rax)) }) else {
        return 0;
    };
    if nr::is_watched(sys) {
        if nr::is_open(sys as u32) {
            let ret: i64 = ctx.arg(1);
            if ret >= 0 {
                let args = raw_args(regs);
                let flags = files::open_flags(sys as u32, args);
                let creates = churn::opened(sys as u32, flags, args);
                let levels = if files::watching() { files::levels_for(flags) } else { 0 };
                if creates || levels != 0 {
                    let file = files::file_of(ret as u32).map_or(0, |f| f.as_ptr() as u64);
                    if creates {
                        created::opened(file);
                    }
                    if levels != 0 {
                        files::opened(flags, levels, ret, file);
                    }
                }
            }
            return 0;
        }
        if nr::is_path_change(sys as u32) {
            let ret: i64 = ctx.arg(1);
            if ret == 0 {
                // SAFETY: probe reads of the saved user registers (one by one: the whole
                // struct would crowd the 512-byte stack `path_check`'s key shares).
                let args = unsafe {
                    [
                        bpf_probe_read_kernel(core::ptr::addr_of!((*regs).rdi)).unwrap_or(0),
                        bpf_probe_read_kernel(core::ptr::addr_of!((*regs).rsi)).unwrap_or(0),
                        bpf_probe_read_kernel(core::ptr::addr_of!((*regs).rdx)).unwrap_or(0),
                        bpf_probe_read_kernel(core::ptr::addr_of!((*regs).r10)).unwrap_or(0),
                    ]
                };
                churn::path_changed(sys as u32, args);
                if files::watching() {
                    files::path_changed(sys as u32, args);
                }
            }
            return 0;
        }
        if nr::is_chmod(sys as u32) {
            let args = raw_args(regs);
            setuid_chmod(sys as u32, args, ctx.arg(1));
            return 0;
        }
        if sys == nr::SOCKET as u64 {
            let ret: i64 = ctx.arg(1);
            if ret >= 0 {
                let args = raw_args(regs);
                raw_socket(args, ret);
            }
            return 0;
        }
        exit_watched(sys, ctx.arg(1));
    }
    0
}

/// The first three syscall arguments from the saved user registers, probe-read (the raw
/// tracepoint's `regs` is not BTF-typed); 0 where a read fails.
#[inline(always)]
fn raw_args(regs: *const pt_regs) -> [u64; 3] {
    // SAFETY: probe reads of single fields of the saved user registers.
    unsafe {
        [
            bpf_probe_read_kernel(core::ptr::addr_of!((*regs).rdi)).unwrap_or(0),
            bpf_probe_read_kernel(core::ptr::addr_of!((*regs).rsi)).unwrap_or(0),
            bpf_probe_read_kernel(core::ptr::addr_of!((*regs).rdx)).unwrap_or(0),
        ]
    }
}

#[inline(always)]
fn exit_watched(sys: u64, ret: i64) {
    let (pid, tgid) = current_ids();
    if tgid != config().self_tgid {
        on_exit(pid, tgid, sys as u32, ret);
    }
}

#[inline(never)]
fn on_exit(pid: u32, tgid: u32, sys: u32, ret: i64) {
    // SAFETY: read-only lookup; copied out before the entry is removed.
    let Some(p) = (unsafe { PENDING.get(pid) }).copied() else {
        // A new clone child returns from clone without having entered it: not a loss.
        if sys != nr::CLONE && sys != nr::CLONE3 {
            bump(LOSS_PENDING_MISSING, 1);
        }
        return;
    };
    let _ = PENDING.remove(pid);
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
        nr::MEMFD_CREATE => memfd(&p, ret, ids),
        nr::INIT_MODULE | nr::FINIT_MODULE => module_load(&p, ret, ids),
        nr::BPF if p.args[0] == nr::BPF_PROG_LOAD as u64 => bpf_prog_load(&p, ret, ids),
        n if nr::is_cred_change(n) => cred_change(&p, ret, ids, task),
        // clone/clone3 were only remembered for the fork probe.
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
        let n = if path == 0 {
            0
        } else {
            bpf_probe_read_user_str(
                (*ev).path.as_mut_ptr().cast(),
                PATH_LEN as u32,
                path as *const _,
            )
        };
        (*ev).path_len = if n > 1 { (n - 1) as u32 } else { 0 };
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
fn net(kind: EventKind, p: &Pending, ret: i64, ids: Ids, sockaddr: Option<(u64, u64)>) {
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
fn cred_change(p: &Pending, ret: i64, ids: Ids, task: KPtr) {
    let after = creds_of(&offsets(), task);
    emit!(CredChangeEvent, EventKind::CredChange, ids, |ev| {
        ev.syscall_nr = p.nr;
        ev.ret = ret as i32;
        ev.requested = [p.args[0] as u32, p.args[1] as u32, p.args[2] as u32];
        ev.before = p.before;
        ev.after = after;
    });
}

#[inline(always)]
fn ptrace(p: &Pending, ret: i64, ids: Ids) {
    emit!(PtraceEvent, EventKind::Ptrace, ids, |ev| {
        ev.request = p.args[0] as i64;
        ev.target_pid = p.args[1] as u32;
        ev.ret = ret as i32;
    });
}

#[inline(always)]
fn memfd(p: &Pending, ret: i64, ids: Ids) {
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
fn module_load(p: &Pending, ret: i64, ids: Ids) {
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
fn bpf_prog_load(p: &Pending, ret: i64, ids: Ids) {
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
