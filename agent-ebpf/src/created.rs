//! Who created each file: every successful `O_CREAT` open is remembered by inode (`CREATED`,
//! LRU), and an exec reports its image's entry. User space, which sees every connect and
//! accept, can then tell a program a network client wrote (`curl -o`, `wget`, Python's
//! urllib, the shell child that reads `/dev/tcp` into a file) from one a compiler or a
//! package manager wrote. Nothing is sent at the create: a download matters once it runs.
//!
//! The create is remembered before anyone knows whether the writer will connect: `curl URL >x`
//! creates `x` in the forked shell child before that child becomes curl and connects. Shell
//! scripts are exec'd through their interpreter (`mm->exe_file` is /bin/sh), so only native
//! programs are named this way.

use agent_common::{CreatedBy, FileKey, ImageId, LOSS_CREATED_UNRECORDED};
use aya_ebpf::helpers::bpf_ktime_get_ns;

use crate::{
    emit::{bump, current_ids},
    maps::CREATED,
    task::{KPtr, config, offsets},
};

/// The current process's `O_CREAT` open of `file` (a `struct file *`, 0 when unknown)
/// succeeded. A plain address, not an `Option`: a two-register argument to a BPF function
/// leaves one register unset on the `None` path, which the verifier refuses.
#[inline(never)]
pub fn opened(file: u64) {
    let (_, tgid) = current_ids();
    if tgid == config().self_tgid {
        return;
    }
    if record(tgid, file).is_none() {
        bump(LOSS_CREATED_UNRECORDED, 1);
    }
}

#[inline(always)]
fn record(tgid: u32, file: u64) -> Option<()> {
    if file == 0 {
        return None;
    }
    let o = offsets();
    let inode = KPtr::from_raw(file as *const u8).read_ptr(o.file_inode)?;
    // `i_sb` and `i_ino` sit close together in `struct inode`: one read.
    let (sb, ino) = inode.read_pair(o.inode_sb, o.inode_ino)?;
    let dev = KPtr::from_raw(sb as *const u8).read::<u32>(o.sb_dev)?;
    // init's and kthreadd's children are every service on the host: their parent says nothing.
    let parent_tgid = KPtr::current_task()
        .read_ptr(o.task_real_parent)
        .and_then(|p| p.read::<u32>(o.task_tgid))
        .filter(|p| *p > 2)
        .unwrap_or(0);
    let by = CreatedBy {
        tgid,
        parent_tgid,
        // SAFETY: helper without preconditions.
        ns: unsafe { bpf_ktime_get_ns() },
    };
    let key = FileKey { ino, dev, _pad: 0 };
    // A file written again (a log, a cache, a temp name reused) is updated where it lies:
    // an insert would allocate a node and free the old one.
    match CREATED.get_ptr_mut(&key) {
        // SAFETY: a pointer to the map's value, valid for this program's run.
        Some(v) => unsafe { *v = by },
        None => CREATED.insert(key, by, 0).ok()?,
    }
    Some(())
}

/// The last `O_CREAT` open of `image` seen; all zero when none was.
#[inline(always)]
pub fn by(image: &ImageId) -> CreatedBy {
    if image.ino == 0 {
        return CreatedBy::default();
    }
    let key = FileKey {
        ino: image.ino,
        dev: image.dev,
        _pad: 0,
    };
    // SAFETY: read-only lookup, copied out at once.
    unsafe { CREATED.get(&key) }.copied().unwrap_or_default()
}
