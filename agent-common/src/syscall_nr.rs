//! x86-64 syscall numbers the probes treat specially. The full name table lives in user space
//! (the `syscalls` crate); these few are what the kernel side must know.

pub const OPEN: u32 = 2;
pub const MMAP: u32 = 9;
pub const RT_SIGRETURN: u32 = 15;
pub const SOCKET: u32 = 41;
pub const CONNECT: u32 = 42;
pub const RENAME: u32 = 82;
pub const UNLINK: u32 = 87;
pub const CHMOD: u32 = 90;
pub const FCHMOD: u32 = 91;
pub const ACCEPT: u32 = 43;
pub const BIND: u32 = 49;
pub const LISTEN: u32 = 50;
pub const CLONE: u32 = 56;
pub const FORK: u32 = 57;
pub const VFORK: u32 = 58;
pub const EXECVE: u32 = 59;
pub const EXIT: u32 = 60;
pub const PTRACE: u32 = 101;
pub const CREAT: u32 = 85;
pub const SETUID: u32 = 105;
pub const SETGID: u32 = 106;
pub const SETREUID: u32 = 113;
pub const SETREGID: u32 = 114;
pub const SETRESUID: u32 = 117;
pub const SETRESGID: u32 = 119;
pub const SETFSUID: u32 = 122;
pub const SETFSGID: u32 = 123;
pub const MOUNT: u32 = 165;
pub const INIT_MODULE: u32 = 175;
pub const SETXATTR: u32 = 188;
pub const LSETXATTR: u32 = 189;
pub const FSETXATTR: u32 = 190;
pub const EXIT_GROUP: u32 = 231;
pub const OPENAT: u32 = 257;
pub const UNLINKAT: u32 = 263;
pub const FCHMODAT: u32 = 268;
pub const RENAMEAT: u32 = 264;
pub const ACCEPT4: u32 = 288;
pub const PROCESS_VM_READV: u32 = 310;
pub const PROCESS_VM_WRITEV: u32 = 311;
pub const FINIT_MODULE: u32 = 313;
pub const RENAMEAT2: u32 = 316;
pub const MEMFD_CREATE: u32 = 319;
pub const BPF: u32 = 321;
pub const EXECVEAT: u32 = 322;
pub const CLONE3: u32 = 435;
pub const OPENAT2: u32 = 437;
pub const MOVE_MOUNT: u32 = 429;
pub const PRCTL: u32 = 157;
/// prctl(2) option that sets the calling thread's name (its `comm`).
pub const PR_SET_NAME: u64 = 15;
pub const FCHMODAT2: u32 = 452;
pub const SETXATTRAT: u32 = 463;

/// `BPF_PROG_LOAD` command of bpf(2).
pub const BPF_PROG_LOAD: u32 = 5;

/// Syscalls vigil inspects at exit beyond batching them, by name and number. The `sys_exit`
/// programs test membership in [`WATCHED_BITS`] and take a slow path only for these, reading
/// the arguments from the saved registers (x86-64 syscalls leave them there). A successful
/// open's file is always looked up, to its superblock's magic (procfs: another process's
/// `mem` or `environ`, a kernel setting); the opens, renames and unlinks are followed further
/// only while some file is watched (`FILE_WALK[0] != 0`), or when they create or remove a file
/// (churn, writers); a chmod when it asks for the set-user-ID bit, a socket when it is raw, a
/// setxattr when it sets file capabilities, a mount when its target is below `/proc`, an mmap
/// when it maps a file executable (as far as the file's inode: `preload`), a prctl when it
/// names a thread like a kernel thread.
pub const WATCHED: [(&str, u32); 42] = [
    ("connect", CONNECT),
    ("accept", ACCEPT),
    ("accept4", ACCEPT4),
    ("bind", BIND),
    ("listen", LISTEN),
    ("setuid", SETUID),
    ("setgid", SETGID),
    ("setreuid", SETREUID),
    ("setregid", SETREGID),
    ("setresuid", SETRESUID),
    ("setresgid", SETRESGID),
    ("setfsuid", SETFSUID),
    ("setfsgid", SETFSGID),
    ("ptrace", PTRACE),
    ("process_vm_readv", PROCESS_VM_READV),
    ("process_vm_writev", PROCESS_VM_WRITEV),
    ("memfd_create", MEMFD_CREATE),
    ("mmap", MMAP),
    ("init_module", INIT_MODULE),
    ("finit_module", FINIT_MODULE),
    ("bpf", BPF),
    ("open", OPEN),
    ("creat", CREAT),
    ("openat", OPENAT),
    ("openat2", OPENAT2),
    ("rename", RENAME),
    ("renameat", RENAMEAT),
    ("renameat2", RENAMEAT2),
    ("unlink", UNLINK),
    ("unlinkat", UNLINKAT),
    ("chmod", CHMOD),
    ("fchmod", FCHMOD),
    ("fchmodat", FCHMODAT),
    ("fchmodat2", FCHMODAT2),
    ("socket", SOCKET),
    ("setxattr", SETXATTR),
    ("lsetxattr", LSETXATTR),
    ("fsetxattr", FSETXATTR),
    ("setxattrat", SETXATTRAT),
    ("mount", MOUNT),
    ("move_mount", MOVE_MOUNT),
    ("prctl", PRCTL),
];

/// Bitmap of [`WATCHED`] over syscall numbers 0..512.
pub const WATCHED_BITS: [u64; 8] = bitmap();

const fn bitmap() -> [u64; 8] {
    let mut nrs = [0u32; WATCHED.len()];
    let mut i = 0;
    while i < WATCHED.len() {
        nrs[i] = WATCHED[i].1;
        i += 1;
    }
    bitmap_of(&nrs)
}

/// Bitmap of a list of syscall numbers (each < 512) over 0..512.
pub const fn bitmap_of(nrs: &[u32]) -> [u64; 8] {
    let mut bits = [0u64; 8];
    let mut i = 0;
    while i < nrs.len() {
        bits[nrs[i] as usize / 64] |= 1 << (nrs[i] % 64);
        i += 1;
    }
    bits
}

/// Whether `nr` is in [`WATCHED`]; one load and a bit test, for the per-syscall hot path.
#[inline(always)]
pub fn is_watched(nr: u64) -> bool {
    test_bit(&WATCHED_BITS, nr)
}

/// Whether bit `nr` of a 512-bit map is set; false beyond it.
#[inline(always)]
pub fn test_bit(bits: &[u64; 8], nr: u64) -> bool {
    match bits.get((nr / 64) as usize) {
        Some(word) => word & (1 << (nr % 64)) != 0,
        None => false,
    }
}

/// Calls whose successful return (0) is seen a second time by a task that did not make the
/// call: a new clone child returns from its parent's clone, a new image from the execve that
/// loaded it.
#[inline(always)]
pub const fn returns_twice(nr: u64) -> bool {
    matches!(nr as u32, CLONE | FORK | VFORK | CLONE3 | EXECVE | EXECVEAT) && nr <= u32::MAX as u64
}

/// Calls that never return to their exit when they succeed: the exit probe records them.
pub const fn never_returns(nr: u64) -> bool {
    nr == EXIT as u64 || nr == EXIT_GROUP as u64
}

pub const fn is_open(nr: u32) -> bool {
    matches!(nr, OPEN | CREAT | OPENAT | OPENAT2)
}

/// Calls that change which file a path names.
pub const fn is_path_change(nr: u32) -> bool {
    matches!(nr, RENAME | RENAMEAT | RENAMEAT2 | UNLINK | UNLINKAT)
}

pub const fn is_chmod(nr: u32) -> bool {
    matches!(nr, CHMOD | FCHMOD | FCHMODAT | FCHMODAT2)
}

/// A chmod's (dirfd or fd, path pointer, mode) from its first three arguments; the path is 0
/// for fchmod, the dirfd `AT_FDCWD` for chmod.
pub const fn chmod_args(nr: u32, args: [u64; 3]) -> (i32, u64, u32) {
    const AT_FDCWD: i32 = -100;
    match nr {
        CHMOD => (AT_FDCWD, args[0], args[1] as u32),
        FCHMOD => (args[0] as i32, 0, args[1] as u32),
        _ => (args[0] as i32, args[1], args[2] as u32),
    }
}

pub const fn is_setxattr(nr: u32) -> bool {
    matches!(nr, SETXATTR | LSETXATTR | FSETXATTR | SETXATTRAT)
}

/// A setxattr's (dirfd or fd, path pointer, name pointer, value pointer) from its first five
/// arguments. The path is 0 for fsetxattr, the dirfd `AT_FDCWD` for setxattr and lsetxattr.
/// setxattrat passes its value inside a `struct xattr_args`, whose address (its first field is
/// the value's) is returned in the value's place: `indirect` says so.
pub const fn setxattr_args(nr: u32, args: [u64; 5]) -> SetxattrArgs {
    const AT_FDCWD: i32 = -100;
    match nr {
        FSETXATTR => SetxattrArgs { fd: args[0] as i32, path: 0, name: args[1], value: args[2], indirect: false },
        SETXATTRAT => SetxattrArgs { fd: args[0] as i32, path: args[1], name: args[3], value: args[4], indirect: true },
        _ => SetxattrArgs { fd: AT_FDCWD, path: args[0], name: args[1], value: args[2], indirect: false },
    }
}

/// See [`setxattr_args`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetxattrArgs {
    pub fd: i32,
    pub path: u64,
    pub name: u64,
    pub value: u64,
    pub indirect: bool,
}

pub const fn is_mount(nr: u32) -> bool {
    matches!(nr, MOUNT | MOVE_MOUNT)
}

/// A mount's (dirfd, target pointer, flags): mount(2)'s target is taken from the cwd,
/// move_mount(2)'s from its `to_dfd`.
pub const fn mount_target(nr: u32, args: [u64; 5]) -> (i32, u64, u64) {
    const AT_FDCWD: i32 = -100;
    match nr {
        MOVE_MOUNT => (args[2] as i32, args[3], args[4]),
        _ => (AT_FDCWD, args[1], args[3]),
    }
}

pub const fn is_cred_change(nr: u32) -> bool {
    matches!(
        nr,
        SETUID | SETGID | SETREUID | SETREGID | SETRESUID | SETRESGID | SETFSUID | SETFSGID
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_matches_the_list() {
        for nr in 0..600u64 {
            let listed = WATCHED.iter().any(|(_, n)| u64::from(*n) == nr);
            assert_eq!(is_watched(nr), listed, "syscall {nr}");
        }
        assert!(is_watched(CONNECT as u64) && is_watched(OPENAT as u64));
        assert!(!is_watched(u64::MAX), "-1 (no syscall) is not watched");
    }

    #[test]
    fn only_the_clone_and_exec_families_return_twice() {
        for nr in [CLONE, FORK, VFORK, CLONE3, EXECVE, EXECVEAT] {
            assert!(returns_twice(nr as u64), "{nr}");
        }
        for nr in [OPENAT, CONNECT, EXIT_GROUP, 0] {
            assert!(!returns_twice(nr as u64), "{nr}");
        }
        // A number that truncates to clone's is not clone.
        assert!(!returns_twice((1u64 << 32) | CLONE as u64));
        assert!(never_returns(EXIT as u64) && never_returns(EXIT_GROUP as u64));
        assert!(!never_returns(EXECVE as u64));
    }
}
