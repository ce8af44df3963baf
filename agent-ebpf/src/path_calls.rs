//! Calls that change what a path (or a thread) is, reported from `sys_exit` (`watch.rs`) when
//! they succeed, each behind a few bytes read from the caller:
//!
//! - a setxattr of `security.capability` (what `setcap` writes): the attribute's name is read
//!   first, and any other attribute (ACLs, SELinux labels, user.*) returns there;
//! - a mount or move_mount whose target is `/proc/<digit>...`, or relative (resolved in user
//!   space against the caller's cwd or dirfd): the target's first 8 bytes are read first;
//! - a prctl(PR_SET_NAME) whose name starts like a kernel thread's: its first 4 bytes are.
//!
//! The first two are rare on a server; `cp -a` and `tar --xattrs` pay one short string read per
//! attribute, container start-ups one per mount. Failed calls are not reported: nothing changed,
//! and an unprivileged loop of refused mounts must not be able to fill the events ring. Nor are
//! successful ones while that ring is half full (a user namespace lets anyone mount): exec,
//! exit and the other security records keep the other half, and each one skipped is counted
//! as lost.

use agent_common::{EVENTS_RING_BYTES, EventKind, PathCallEvent, syscall_nr as nr};
use aya_ebpf::{
    bindings::BPF_RB_AVAIL_DATA,
    helpers::generated::{bpf_probe_read_user, bpf_probe_read_user_str},
};

use crate::{
    emit::{
        count_emitted, count_lost, current_ids, prompt_wakeup, read_user_path, reserve_record,
    },
    maps::EVENTS,
    task::{config, current_leader_start_ns},
};

/// `security.capability` with its NUL, as three little-endian words (the last zero-padded).
const CAPS_NAME: [u64; 3] = [
    u64::from_le_bytes(*b"security"),
    u64::from_le_bytes(*b".capabil"),
    u64::from_le_bytes(*b"ity\0\0\0\0\0"),
];
/// `bpf_probe_read_user_str`'s count for that name: 19 bytes and the NUL.
const CAPS_NAME_READ: i64 = 20;

/// The first six bytes of an absolute target under /proc.
const PROC_PREFIX: u64 = u64::from_le_bytes(*b"/proc/\0\0");
const SIX_BYTES: u64 = (1 << 48) - 1;

#[inline(never)]
pub fn setxattr(sys: u32, args: [u64; 5], ret: i64) {
    if ret != 0 {
        return;
    }
    let a = nr::setxattr_args(sys, args);
    let mut name = [0u64; 3];
    // SAFETY: at most 24 bytes into a 24-byte local; a failed or longer read does not match.
    let n = unsafe { bpf_probe_read_user_str(name.as_mut_ptr().cast(), 24, a.name as *const _) };
    // Word by word: an array comparison could become a memcmp call, which BPF does not have.
    let caps_name = name[0] == CAPS_NAME[0] && name[1] == CAPS_NAME[1] && name[2] == CAPS_NAME[2];
    if n != CAPS_NAME_READ || !caps_name {
        return;
    }
    let mut value = a.value;
    if a.indirect {
        // setxattrat: `struct xattr_args` begins with the value's address.
        // SAFETY: one u64 read into a local; a failed read leaves 0, and the value unread.
        unsafe { bpf_probe_read_user((&raw mut value).cast(), 8, a.value as *const _) };
    }
    // `struct vfs_cap_data`: magic_etc, then (permitted, inheritable) for the low and the high
    // 32 capabilities (revision 1 has only the low pair; revision 3 appends a root uid).
    let mut caps = [0u32; 5];
    // SAFETY: at most 20 bytes into a 20-byte local; a failed read leaves zeroes.
    if value == 0
        || unsafe { bpf_probe_read_user(caps.as_mut_ptr().cast(), 20, value as *const _) } != 0
    {
        caps = [0; 5];
    }
    let permitted = u64::from(caps[1]) | (u64::from(caps[3]) << 32);
    report(
        EventKind::FileCapability,
        sys,
        ret,
        a.fd,
        a.path,
        permitted,
        caps[0],
    );
}

#[inline(never)]
pub fn mount(sys: u32, args: [u64; 5], ret: i64) {
    if ret != 0 {
        return;
    }
    let (fd, target, flags) = nr::mount_target(sys, args);
    let mut head = 0u64;
    // SAFETY: at most 8 bytes into a u64 local; a failed read leaves 0, which is not reported.
    let n = unsafe { bpf_probe_read_user_str((&raw mut head).cast(), 8, target as *const _) };
    if n <= 1 {
        return;
    }
    let absolute = head as u8 == b'/';
    let digit = (head >> 48) as u8;
    if absolute && (head & SIX_BYTES != PROC_PREFIX || !digit.is_ascii_digit()) {
        return;
    }
    report(EventKind::ProcMount, sys, ret, fd, target, flags, 0);
}

/// The first four bytes of kernel threads' names (`kworker/0:2`, `ksoftirqd/1` ...), as
/// little-endian words; `response::masquerade` judges the whole name.
const fn head(name: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*name)
}
const KWORKER: u32 = head(b"kwor");
const KSOFTIRQD: u32 = head(b"ksof");
const MIGRATION: u32 = head(b"migr");
const CPUHP: u32 = head(b"cpuh");
const WATCHDOG: u32 = head(b"watc");
const IRQ: u32 = head(b"irq/");
const JBD2: u32 = head(b"jbd2");
const RCU: u32 = head(b"rcu_");
const KSWAPD: u32 = head(b"kswa");
const KTHREADD: u32 = head(b"kthr");
const KDEVTMPFS: u32 = head(b"kdev");
const KHUGEPAGED: u32 = head(b"khug");
const KCOMPACTD: u32 = head(b"kcom");
const KAUDITD: u32 = head(b"kaud");

/// A successful `prctl(PR_SET_NAME, name)`: reported when the name starts like a kernel
/// thread's (the comparisons are constants: no table to walk, no memcmp).
#[inline(never)]
pub fn thread_named(name: u64) {
    let mut first = [0u8; 4];
    // SAFETY: 4 bytes into a 4-byte local; a failed read (a name at a page's end) leaves
    // zeroes, which match nothing.
    unsafe { bpf_probe_read_user(first.as_mut_ptr().cast(), 4, name as *const _) };
    let h = u32::from_le_bytes(first);
    let kernel_like = first[0] == b'['
        || matches!(
            h,
            KWORKER | KSOFTIRQD | MIGRATION | CPUHP | WATCHDOG | IRQ | JBD2 | RCU | KSWAPD
                | KTHREADD | KDEVTMPFS | KHUGEPAGED | KCOMPACTD | KAUDITD
        );
    if kernel_like {
        let (pid, _) = current_ids();
        report(EventKind::ThreadRenamed, nr::PRCTL, 0, -1, name, u64::from(pid), 0);
    }
}

#[inline(always)]
fn report(kind: EventKind, sys: u32, ret: i64, fd: i32, path: u64, value: u64, aux: u32) {
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return;
    }
    if EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= EVENTS_RING_BYTES as u64 / 2 {
        count_lost(kind);
        return;
    }
    let start_ns = current_leader_start_ns();
    let Some(mut entry) = reserve_record::<PathCallEvent>(kind, pid, tgid, start_ns) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: the reserved record, written field by field before it is submitted; the path is
    // read into it directly (at most PATH_LEN bytes, NUL included), its length says how much.
    unsafe {
        (*ev).syscall_nr = sys;
        (*ev).ret = ret as i32;
        (*ev).fd = fd;
        (*ev).value = value;
        (*ev).aux = aux;
        (*ev)._pad = 0;
        (*ev).path_len = read_user_path((*ev).path.as_mut_ptr(), path);
    }
    entry.submit(prompt_wakeup());
    count_emitted(kind);
}
