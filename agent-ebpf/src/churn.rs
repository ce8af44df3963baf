//! Bursts of file creations, unlinks and renames, for user space's mass-replacement check
//! (`agent/src/response/mass_replace.rs`). Every `O_CREAT` open, unlink and rename that succeeds
//! on the host is counted for the process, its parent and its grandparent: a ransomware script
//! starts one `openssl` and one `rm` per file (`xargs` or `find -exec` one shell per batch), so
//! only an ancestor sees the burst. Names are sent only while one of the three counts is hot,
//! so a quiet host sends nothing and a build sends what it churns.

use agent_common::{
    CHURN_CREATED, CHURN_HOT, CHURN_REMOVED, CHURN_REWRITTEN, CHURN_SENT_MAX, CHURN_WINDOW_NS,
    ChurnCount, EVENTS_RING_BYTES, EventKind, FileChurnEvent, LOSS_CHURN_RING_BUSY, PATH_LEN,
    PROC_SUPER_MAGIC, S_IFMT, S_IFREG, syscall_nr as nr,
};
use aya_ebpf::{
    bindings::BPF_RB_AVAIL_DATA,
    helpers::{bpf_ktime_get_ns, generated::bpf_probe_read_user_str},
};

use crate::{
    emit::{bump as count, count_emitted, current_ids, reserve_record},
    maps::{CHURN, EVENTS},
    task::{KPtr, config, leader_start_ns, offset, offsets},
};

/// A successful open, with its flags, first three arguments and `struct file` (0 when
/// unknown): named when it made the file, or opened a regular file that was there to write it
/// over (mass encryption in place: `open(f, "wb")`, `"r+b"`). Appends are neither. Whether it
/// could create (`O_CREAT`).
#[inline(always)]
pub fn opened(sys: u32, flags: u32, args: [u64; 3], file: u64) -> bool {
    const O_ACCMODE: u32 = 0o3;
    const O_CREAT: u32 = 0o100;
    const O_APPEND: u32 = 0o2000;
    let creates = flags & O_CREAT != 0;
    let writes = flags & O_ACCMODE != 0 && flags & O_APPEND == 0;
    if !creates && !writes {
        return false;
    }
    let op = if creates && made(file) {
        CHURN_CREATED
    } else if writes && rewritable(file) {
        CHURN_REWRITTEN
    } else {
        return creates;
    };
    let path = if sys == nr::OPEN || sys == nr::CREAT {
        args[0]
    } else {
        args[1]
    };
    churned(sys, op, path);
    creates
}

/// Whether the `O_CREAT` open of `file` made it (`FMODE_CREATED`, set by the kernel since
/// 4.19 and at the same bit since); an unreadable file counts as made, as before the bit was
/// looked at.
#[inline(always)]
fn made(file: u64) -> bool {
    const FMODE_CREATED: u32 = 1 << 20;
    KPtr::from_raw(file as *const u8)
        .read::<u32>(offset!(file_f_mode))
        .is_none_or(|mode| mode & FMODE_CREATED != 0)
}

/// Whether `file` is a regular file of a real filesystem: `> /dev/null` and writes to
/// procfs, sysfs or cgroup files (what service managers and container runtimes do all day)
/// are not file churn.
#[inline(always)]
fn rewritable(file: u64) -> bool {
    const SYSFS_MAGIC: u64 = 0x6265_6572;
    const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
    const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;
    let Some(inode) = KPtr::from_raw(file as *const u8).read_ptr(offset!(file_inode)) else {
        return false;
    };
    if inode.read::<u16>(offset!(inode_mode)).map(|m| m & S_IFMT) != Some(S_IFREG) {
        return false;
    }
    let magic = inode
        .read_ptr(offset!(inode_sb))
        .and_then(|sb| sb.read::<u64>(offset!(sb_magic)))
        .unwrap_or(0);
    !matches!(
        magic,
        PROC_SUPER_MAGIC | SYSFS_MAGIC | CGROUP2_SUPER_MAGIC | CGROUP_SUPER_MAGIC
    )
}

/// A successful unlink (of a file: `AT_REMOVEDIR` is rmdir) or rename, with its first four
/// arguments: a rename removes its old name and creates its new one.
#[inline(always)]
pub fn path_changed(sys: u32, args: [u64; 4]) {
    const AT_REMOVEDIR: u64 = 0x200;
    match sys {
        nr::UNLINK => churned(sys, CHURN_REMOVED, args[0]),
        nr::UNLINKAT if args[2] & AT_REMOVEDIR == 0 => churned(sys, CHURN_REMOVED, args[1]),
        nr::RENAME => {
            churned(sys, CHURN_REMOVED, args[0]);
            churned(sys, CHURN_CREATED, args[1]);
        }
        nr::RENAMEAT | nr::RENAMEAT2 => {
            churned(sys, CHURN_REMOVED, args[1]);
            churned(sys, CHURN_CREATED, args[3]);
        }
        _ => {}
    }
}

/// One name that appeared (`CHURN_CREATED`) or went away (`CHURN_REMOVED`), `path` being the
/// caller's pointer to it as passed to the syscall.
#[inline(never)]
pub fn churned(sys: u32, op: u32, path: u64) {
    let (pid, tgid) = current_ids();
    if tgid == config().self_tgid {
        return;
    }
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let o = offsets();
    let task = KPtr::current_task();
    // init's and kthreadd's descendants are every service on the host, not one burst.
    let tgid_of = |t: KPtr| t.read::<u32>(o.task_tgid).filter(|p| *p > 2).unwrap_or(0);
    let parent = task.read_ptr(o.task_real_parent);
    let grandparent = parent.and_then(|p| p.read_ptr(o.task_real_parent));
    let (parent, grandparent) = (parent.map_or(0, tgid_of), grandparent.map_or(0, tgid_of));
    let hot = bump(tgid, now) | bump(parent, now) | bump(grandparent, now);
    if !hot {
        return;
    }
    // Exec, exit and security records share this ring: churn may fill half of it at most.
    if EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= EVENTS_RING_BYTES as u64 / 2 {
        count(LOSS_CHURN_RING_BUSY, 1);
        return;
    }
    let start_ns = leader_start_ns(&o, task);
    let Some(mut entry) =
        reserve_record::<FileChurnEvent>(EventKind::FileChurn, pid, tgid, start_ns)
    else {
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: the reserved record, written field by field before it is submitted; the path is
    // read into it directly, its length says how much of it is valid.
    unsafe {
        (*ev).syscall_nr = sys;
        (*ev).op = op;
        (*ev)._pad = 0;
        let n = bpf_probe_read_user_str(
            (*ev).path.as_mut_ptr().cast(),
            PATH_LEN as u32,
            path as *const _,
        );
        (*ev).path_len = if n > 1 { (n - 1) as u32 } else { 0 };
    }
    // Many in a row: the reader is woken by the ring's own rule, not each time.
    entry.submit(0);
    count_emitted(EventKind::FileChurn);
}

/// Counts one more for `tgid` in its current window; whether its names are sent now (hot, and
/// under the window's cap).
#[inline(always)]
fn bump(tgid: u32, now: u64) -> bool {
    if tgid == 0 {
        return false;
    }
    match CHURN.get_ptr_mut(&tgid) {
        Some(c) => {
            // SAFETY: a value of this map; concurrent bumps from other CPUs may be lost, which
            // only makes a count lower.
            let c = unsafe { &mut *c };
            if now.wrapping_sub(c.start_ns) > CHURN_WINDOW_NS {
                c.start_ns = now;
                c.count = 1;
            } else {
                c.count = c.count.saturating_add(1);
            }
            (CHURN_HOT..CHURN_HOT + CHURN_SENT_MAX).contains(&c.count)
        }
        None => {
            let first = ChurnCount {
                start_ns: now,
                count: 1,
                _pad: 0,
            };
            let _ = CHURN.insert(&tgid, &first, 0);
            false
        }
    }
}
