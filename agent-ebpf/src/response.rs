//! Enforcement in the kernel: deny-exec at `sched_process_exec` (SIGKILL before the new image
//! runs an instruction) and the cgroup sock_addr hooks that refuse connect()/sendmsg() for
//! quarantined cgroups and outbound deny lists.
//!
//! Everything here fails open: a missing map entry, an unreadable field or monitor mode lets the
//! operation through. The agent's job is to never harm the host; a policy that cannot be checked
//! is reported by user space, not enforced by guessing.

use agent_common::{
    COUNT_EXEC_DENIED, COUNT_EXEC_DENY_SIGNAL_FAILED, COUNT_NET_DENIED_QUARANTINE,
    COUNT_NET_DENIED_RULE, DENY_EXEC_ENTRIES, DENY_NET_ENTRIES, NET4_KEY_LEN, NET6_KEY_LEN,
    PATH_LEN, PROTECTED_TGIDS_ENTRIES, QUARANTINED_ENTRIES, QUARANTINED_TGIDS_ENTRIES,
    RESPONSE_ENFORCE,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        generated::{bpf_probe_read_kernel_str, bpf_send_signal},
    },
    macros::{cgroup_sock_addr, map},
    maps::{Array, HashMap, LpmTrie, lpm_trie::Key},
    programs::SockAddrContext,
};

use crate::{emit::bump, task::config};

const SIGKILL: u32 = 9;
/// sock_addr programs: 1 lets the call proceed, 0 fails it with EPERM.
const ALLOW: i32 = 1;
const DENY: i32 = 0;

#[map(name = "RESPONSE_MODE")]
pub static RESPONSE_MODE: Array<u32> = Array::with_max_entries(1, 0);

#[map(name = "PROTECTED_TGIDS")]
pub static PROTECTED_TGIDS: HashMap<u32, u8> =
    HashMap::with_max_entries(PROTECTED_TGIDS_ENTRIES, 0);

/// comm -> u8: images whose basename names a protected program (sshd, systemd-journald ...).
/// After exec `comm` is the new image's basename, so this spares a protected program before
/// user space has seen it; user space then decides precisely (full path globs).
#[map(name = "PROTECTED_COMMS")]
pub static PROTECTED_COMMS: HashMap<[u8; 16], u8> =
    HashMap::with_max_entries(PROTECTED_TGIDS_ENTRIES, 0);

#[map(name = "DENY_EXEC")]
pub static DENY_EXEC: LpmTrie<[u8; PATH_LEN], u32> =
    LpmTrie::with_max_entries(DENY_EXEC_ENTRIES, 0);

#[map(name = "QUARANTINED")]
pub static QUARANTINED: HashMap<u64, u8> = HashMap::with_max_entries(QUARANTINED_ENTRIES, 0);

/// tgid -> u8: processes being contained before their quarantine cgroup exists (see
/// `QUARANTINED`, which takes over once they are in it).
#[map(name = "QUARANTINED_TGIDS")]
pub static QUARANTINED_TGIDS: HashMap<u32, u8> =
    HashMap::with_max_entries(QUARANTINED_TGIDS_ENTRIES, 0);

#[map(name = "DENY_NET4")]
pub static DENY_NET4: LpmTrie<[u8; NET4_KEY_LEN], u32> =
    LpmTrie::with_max_entries(DENY_NET_ENTRIES, 0);

#[map(name = "DENY_NET6")]
pub static DENY_NET6: LpmTrie<[u8; NET6_KEY_LEN], u32> =
    LpmTrie::with_max_entries(DENY_NET_ENTRIES, 0);

#[inline(always)]
fn enforcing() -> bool {
    RESPONSE_MODE.get(0).is_some_and(|m| *m == RESPONSE_ENFORCE)
}

/// What the exec deny check decided.
pub enum ExecVerdict {
    Allowed,
    /// Killed under rule index `.0`.
    Killed(u32),
    /// A rule matched but the process is protected or the mode is monitor.
    Spared(u32),
}

impl ExecVerdict {
    // Packed into a scalar across the subprogram boundary: an enum would come back through a
    // pointer into the caller's stack, which the verifier refuses to see in R0 at exit.
    const KILLED: u64 = 1 << 32;
    const SPARED: u64 = 1 << 33;

    #[inline(always)]
    fn pack(self) -> u64 {
        match self {
            Self::Allowed => 0,
            Self::Killed(rule) => Self::KILLED | u64::from(rule),
            Self::Spared(rule) => Self::SPARED | u64::from(rule),
        }
    }

    #[inline(always)]
    fn unpack(v: u64) -> Self {
        let rule = v as u32;
        if v & Self::KILLED != 0 {
            Self::Killed(rule)
        } else if v & Self::SPARED != 0 {
            Self::Spared(rule)
        } else {
            Self::Allowed
        }
    }
}

/// Looks the exec'd path (`filename`, a kernel string) up in `DENY_EXEC` and kills the caller
/// when a rule matches, we enforce, and the process is not protected.
///
/// # Safety
/// `filename` must be a kernel address (read through `bpf_probe_read_kernel_str`).
#[inline(always)]
pub unsafe fn check_exec(filename: *const u8, tgid: u32) -> ExecVerdict {
    // SAFETY: forwarded.
    ExecVerdict::unpack(unsafe { check_exec_packed(filename, tgid) })
}

/// Not inlined, so the 260-byte key has a stack frame of its own: a per-CPU scratch map could be
/// overwritten by an exec that preempts this one on the same CPU between write and lookup.
#[inline(never)]
unsafe fn check_exec_packed(filename: *const u8, tgid: u32) -> u64 {
    let mut key = Key::new(0, [0u8; PATH_LEN]);
    // SAFETY: the destination is this frame's PATH_LEN-byte array (`Key` is packed: raw
    // pointers, no references); the read is bounded by it.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            core::ptr::addr_of_mut!(key.data).cast(),
            PATH_LEN as u32,
            filename.cast(),
        )
    };
    if n <= 0 {
        return ExecVerdict::Allowed.pack();
    }
    // The count includes the NUL, so exact entries (stored with their NUL) match only the whole
    // path while prefix entries match anything below them.
    key.prefix_len = (n as u32) * 8;
    let Some(&rule) = DENY_EXEC.get(&key) else {
        return ExecVerdict::Allowed.pack();
    };
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    if tgid <= 1
        || tgid == config().self_tgid
        || PROTECTED_TGIDS.get_ptr(tgid).is_some()
        || PROTECTED_COMMS.get_ptr(comm).is_some()
        || !enforcing()
    {
        return ExecVerdict::Spared(rule).pack();
    }
    // SAFETY: helper without memory arguments; signals the current task's process.
    if unsafe { bpf_send_signal(SIGKILL) } == 0 {
        bump(COUNT_EXEC_DENIED, 1);
        ExecVerdict::Killed(rule).pack()
    } else {
        bump(COUNT_EXEC_DENY_SIGNAL_FAILED, 1);
        ExecVerdict::Spared(rule).pack()
    }
}

/// A connect/sendmsg passes unless we enforce and the caller's cgroup or process is quarantined
/// or `listed` (the destination's deny-list lookup, run only when needed) says so. Quarantine
/// comes first: it does not depend on the destination. The process check covers the moments
/// between a verdict and the move into the quarantine cgroup.
#[inline(always)]
fn guard(listed: impl FnOnce() -> bool) -> i32 {
    if !enforcing() {
        return ALLOW;
    }
    // SAFETY: helper without preconditions.
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if QUARANTINED.get_ptr(cgroup).is_some() || QUARANTINED_TGIDS.get_ptr(tgid).is_some() {
        bump(COUNT_NET_DENIED_QUARANTINE, 1);
        return DENY;
    }
    if listed() {
        bump(COUNT_NET_DENIED_RULE, 1);
        return DENY;
    }
    ALLOW
}

/// Exact port first, then any port (stored as port 0).
#[inline(always)]
fn listed<const N: usize>(trie: &LpmTrie<[u8; N], u32>, mut data: [u8; N]) -> bool {
    if trie.get(Key::new((N * 8) as u32, data)).is_some() {
        return true;
    }
    data[0] = 0;
    data[1] = 0;
    trie.get(Key::new((N * 8) as u32, data)).is_some()
}

#[inline(always)]
fn key4(port: [u8; 2], ip: [u8; 4]) -> [u8; NET4_KEY_LEN] {
    let mut data = [0u8; NET4_KEY_LEN];
    data[..2].copy_from_slice(&port);
    data[2..].copy_from_slice(&ip);
    data
}

/// Each family has its own entry point: the verifier lets a connect4 program read only
/// `user_ip4` and a connect6 program only `user_ip6`.
#[inline(always)]
fn verdict4(ctx: &SockAddrContext) -> i32 {
    guard(|| {
        // SAFETY: the context pointer is the kernel's bpf_sock_addr for this call.
        let sa = unsafe { &*ctx.sock_addr };
        // user_port holds the port in network order in its low 16 bits.
        let port = (sa.user_port as u16).to_ne_bytes();
        listed(&DENY_NET4, key4(port, sa.user_ip4.to_ne_bytes()))
    })
}

#[inline(always)]
fn verdict6(ctx: &SockAddrContext) -> i32 {
    guard(|| {
        // SAFETY: as in verdict4.
        let sa = unsafe { &*ctx.sock_addr };
        let port = (sa.user_port as u16).to_ne_bytes();
        let words = [
            sa.user_ip6[0],
            sa.user_ip6[1],
            sa.user_ip6[2],
            sa.user_ip6[3],
        ];
        // ::ffff:a.b.c.d reaches an IPv4 peer: the IPv4 lists apply.
        if words[0] == 0 && words[1] == 0 && words[2] == u32::from_ne_bytes([0, 0, 0xff, 0xff]) {
            return listed(&DENY_NET4, key4(port, words[3].to_ne_bytes()));
        }
        let mut data = [0u8; NET6_KEY_LEN];
        data[..2].copy_from_slice(&port);
        let mut i = 0;
        while i < 4 {
            data[2 + i * 4..6 + i * 4].copy_from_slice(&words[i].to_ne_bytes());
            i += 1;
        }
        listed(&DENY_NET6, data)
    })
}

#[cgroup_sock_addr(connect4)]
pub fn vigil_connect4(ctx: SockAddrContext) -> i32 {
    verdict4(&ctx)
}

#[cgroup_sock_addr(connect6)]
pub fn vigil_connect6(ctx: SockAddrContext) -> i32 {
    verdict6(&ctx)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn vigil_sendmsg4(ctx: SockAddrContext) -> i32 {
    verdict4(&ctx)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn vigil_sendmsg6(ctx: SockAddrContext) -> i32 {
    verdict6(&ctx)
}
