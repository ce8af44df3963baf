//! What kind of call a syscall was, beyond its number: how it failed, or for a few calls what
//! their arguments asked for (an open that creates, memory made executable, an internet socket).
//! The kernel puts the class in the top bits of a batch id ([`batch_id`]); user space turns
//! (number, class) into a token of vocabulary 2. A syscall number alone cannot tell a directory
//! walk from a mass rewrite, a port scan's refused connects from a client's, or a loader's
//! executable mapping from a shellcode's writable and executable one.
//!
//! Only what the call's registers and result hold: no user memory is read, so the class costs
//! the per-syscall path a branch on the result and one bitmap test.

use crate::syscall_nr as nr;

/// Bits of a batch id below the class: syscall numbers are < 512 on x86-64.
pub const CLASS_SHIFT: u32 = 9;
pub const NR_MASK: u16 = (1 << CLASS_SHIFT) - 1;

/// No class: the call succeeded and its arguments are not classified.
pub const NONE: u16 = 0;
/// Failed with EPERM or EACCES.
pub const ERR_PERM: u16 = 1;
/// Failed with ENOENT.
pub const ERR_NOENT: u16 = 2;
/// Failed because it would block or was interrupted: EAGAIN, EINTR, EINPROGRESS, EALREADY and
/// the kernel's restart codes.
pub const ERR_AGAIN: u16 = 3;
/// Failed on the network: ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH.
pub const ERR_NET: u16 = 4;
/// Failed with any other error.
pub const ERR_OTHER: u16 = 5;
/// open/openat with O_CREAT, or creat.
pub const OPEN_CREATE: u16 = 6;
/// open/openat for writing (O_WRONLY, O_RDWR or O_TRUNC) without O_CREAT.
pub const OPEN_WRITE: u16 = 7;
/// open/openat of a directory for reading (O_DIRECTORY).
pub const OPEN_DIR: u16 = 8;
/// mmap/mprotect/pkey_mprotect with PROT_EXEC and without PROT_WRITE.
pub const MAP_EXEC: u16 = 9;
/// mmap/mprotect/pkey_mprotect with PROT_WRITE and PROT_EXEC together.
pub const MAP_WRITE_EXEC: u16 = 10;
/// socket of AF_INET or AF_INET6 (not raw).
pub const SOCK_INET: u16 = 11;
/// socket of AF_NETLINK.
pub const SOCK_NETLINK: u16 = 12;
/// socket below TCP and UDP: AF_PACKET, or SOCK_RAW of AF_INET/AF_INET6.
pub const SOCK_RAW: u16 = 13;
/// dup2/dup3 onto standard input, output or error.
pub const DUP_STDIO: u16 = 14;
/// chmod family with an execute bit in the mode.
pub const MODE_EXEC: u16 = 15;
/// Classes in use: `1..=COUNT`.
pub const COUNT: u16 = 15;

/// Short names, index = class - 1, for token names and docs.
pub const NAMES: [&str; COUNT as usize] = [
    "err_perm",
    "err_noent",
    "err_again",
    "err_net",
    "err_other",
    "create",
    "write",
    "dir",
    "exec",
    "write_exec",
    "inet",
    "netlink",
    "raw",
    "stdio",
    "mode_exec",
];

const MMAP: u32 = 9;
const MPROTECT: u32 = 10;
const DUP2: u32 = 33;
const DUP3: u32 = 292;
const PKEY_MPROTECT: u32 = 329;

/// Calls whose arguments [`arg_class`] reads. Results are classed for every call.
pub const ARG_CLASSED: [u32; 14] = [
    nr::OPEN,
    nr::CREAT,
    nr::OPENAT,
    MMAP,
    MPROTECT,
    PKEY_MPROTECT,
    nr::SOCKET,
    DUP2,
    DUP3,
    nr::CHMOD,
    nr::FCHMOD,
    nr::FCHMODAT,
    nr::FCHMODAT2,
    // openat2's flags are in user memory (struct open_how): only its result is classed.
    nr::OPENAT2,
];

/// Bitmap of [`ARG_CLASSED`] over syscall numbers 0..512, for the per-syscall path.
pub const ARG_CLASSED_BITS: [u64; 8] = nr::bitmap_of(&ARG_CLASSED);

/// Whether `nr` may have an argument class; one load and a bit test.
#[inline(always)]
pub fn has_arg_class(nr: u64) -> bool {
    nr::test_bit(&ARG_CLASSED_BITS, nr)
}

/// The class of a call's result, [`NONE`] when it succeeded. `ret` is the raw return value:
/// failures are -4095..-1 (anything else is a result, mmap's addresses included).
#[inline(always)]
pub const fn result_class(ret: i64) -> u16 {
    if ret >= 0 || ret < -4095 {
        return NONE;
    }
    match -ret {
        1 | 13 => ERR_PERM,
        2 => ERR_NOENT,
        // EINTR, EAGAIN, EALREADY, EINPROGRESS; ERESTARTSYS..ERESTART_RESTARTBLOCK (512..516)
        // are what an interrupted call shows before its restart.
        4 | 11 | 114 | 115 | 512..=516 => ERR_AGAIN,
        // ENETUNREACH, ECONNRESET, ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH
        101 | 104 | 110 | 111 | 113 => ERR_NET,
        _ => ERR_OTHER,
    }
}

/// The class of a successful call from its first three arguments; [`NONE`] for calls not in
/// [`ARG_CLASSED`] and for arguments that ask for nothing notable.
#[inline(always)]
pub const fn arg_class(nr: u32, args: [u64; 3]) -> u16 {
    const O_ACCMODE: u64 = 0o3;
    const O_CREAT: u64 = 0o100;
    const O_TRUNC: u64 = 0o1000;
    const O_DIRECTORY: u64 = 0o200000;
    const PROT_WRITE: u64 = 2;
    const PROT_EXEC: u64 = 4;
    const AF_INET: u64 = 2;
    const AF_INET6: u64 = 10;
    const AF_NETLINK: u64 = 16;
    const AF_PACKET: u64 = 17;
    const SOCK_TYPE_MASK: u64 = 0xf;
    const SOCK_RAW_TYPE: u64 = 3;
    let open_flags = match nr {
        nr::OPEN => Some(args[1]),
        nr::OPENAT => Some(args[2]),
        nr::CREAT => return OPEN_CREATE,
        _ => None,
    };
    if let Some(f) = open_flags {
        return if f & O_CREAT != 0 {
            OPEN_CREATE
        } else if f & O_ACCMODE != 0 || f & O_TRUNC != 0 {
            OPEN_WRITE
        } else if f & O_DIRECTORY != 0 {
            OPEN_DIR
        } else {
            NONE
        };
    }
    match nr {
        MMAP | MPROTECT | PKEY_MPROTECT => {
            let prot = args[2];
            if prot & PROT_EXEC == 0 {
                NONE
            } else if prot & PROT_WRITE != 0 {
                MAP_WRITE_EXEC
            } else {
                MAP_EXEC
            }
        }
        nr::SOCKET => match args[0] {
            AF_INET | AF_INET6 if args[1] & SOCK_TYPE_MASK == SOCK_RAW_TYPE => SOCK_RAW,
            AF_INET | AF_INET6 => SOCK_INET,
            AF_PACKET => SOCK_RAW,
            AF_NETLINK => SOCK_NETLINK,
            _ => NONE,
        },
        DUP2 | DUP3 if args[1] <= 2 => DUP_STDIO,
        nr::CHMOD | nr::FCHMOD if args[1] & 0o111 != 0 => MODE_EXEC,
        nr::FCHMODAT | nr::FCHMODAT2 if args[2] & 0o111 != 0 => MODE_EXEC,
        _ => NONE,
    }
}

/// A batch id: the syscall number, and the class in the bits above it. A number that does not
/// fit below the class (an x32 call has bit 30 set) becomes [`OUT_OF_RANGE`], which user space
/// counts as out of vocabulary instead of reading its low bits as another call.
#[inline(always)]
pub const fn batch_id(nr: u64, class: u16) -> u64 {
    if nr > NR_MASK as u64 {
        return OUT_OF_RANGE as u64;
    }
    nr | ((class as u64) << CLASS_SHIFT)
}

/// The id of a call whose number is out of range: class 127, which no vocabulary has.
pub const OUT_OF_RANGE: u16 = u16::MAX;

/// (syscall number, class) of a batch id.
#[inline(always)]
pub const fn split(id: u16) -> (u16, u16) {
    (id & NR_MASK, id >> CLASS_SHIFT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classed_by_errno_and_results_are_not() {
        assert_eq!(result_class(0), NONE);
        assert_eq!(result_class(3), NONE);
        // An mmap address far above the error range, and one that looks negative as i64.
        assert_eq!(result_class(0x7f00_0000_0000), NONE);
        assert_eq!(result_class(-4096), NONE);
        assert_eq!(result_class(-1), ERR_PERM);
        assert_eq!(result_class(-13), ERR_PERM);
        assert_eq!(result_class(-2), ERR_NOENT);
        assert_eq!(result_class(-11), ERR_AGAIN);
        assert_eq!(result_class(-512), ERR_AGAIN);
        assert_eq!(result_class(-111), ERR_NET);
        assert_eq!(result_class(-9), ERR_OTHER);
        assert_eq!(result_class(-4095), ERR_OTHER);
    }

    #[test]
    fn arguments_are_classed_for_the_listed_calls_only() {
        const RDONLY_CLOEXEC: u64 = 0o2000000;
        assert_eq!(arg_class(nr::OPENAT, [0, 0, RDONLY_CLOEXEC]), NONE);
        assert_eq!(
            arg_class(nr::OPENAT, [0, 0, 0o1 | 0o100 | 0o1000]),
            OPEN_CREATE
        );
        assert_eq!(arg_class(nr::OPENAT, [0, 0, 0o2]), OPEN_WRITE);
        assert_eq!(arg_class(nr::OPENAT, [0, 0, 0o1000]), OPEN_WRITE);
        assert_eq!(arg_class(nr::OPENAT, [0, 0, 0o200000 | 0o4000]), OPEN_DIR);
        assert_eq!(arg_class(nr::OPEN, [0, 0o101, 0]), OPEN_CREATE);
        // open's flags are its second argument, not its third.
        assert_eq!(arg_class(nr::OPEN, [0, 0, 0o101]), NONE);
        assert_eq!(arg_class(nr::CREAT, [0, 0o644, 0]), OPEN_CREATE);
        assert_eq!(arg_class(MMAP, [0, 4096, 1 | 4]), MAP_EXEC);
        assert_eq!(arg_class(MMAP, [0, 4096, 1 | 2]), NONE);
        assert_eq!(arg_class(MPROTECT, [0, 4096, 7]), MAP_WRITE_EXEC);
        assert_eq!(arg_class(nr::SOCKET, [2, 1, 0]), SOCK_INET);
        assert_eq!(arg_class(nr::SOCKET, [10, 2 | 0o2000000, 0]), SOCK_INET);
        assert_eq!(arg_class(nr::SOCKET, [2, 3, 1]), SOCK_RAW);
        assert_eq!(arg_class(nr::SOCKET, [17, 3, 0]), SOCK_RAW);
        assert_eq!(arg_class(nr::SOCKET, [16, 3, 0]), SOCK_NETLINK);
        assert_eq!(arg_class(nr::SOCKET, [1, 1, 0]), NONE);
        assert_eq!(arg_class(DUP2, [3, 0, 0]), DUP_STDIO);
        assert_eq!(arg_class(DUP3, [3, 2, 0]), DUP_STDIO);
        assert_eq!(arg_class(DUP2, [3, 10, 0]), NONE);
        assert_eq!(arg_class(nr::CHMOD, [0, 0o755, 0]), MODE_EXEC);
        assert_eq!(arg_class(nr::FCHMODAT, [0, 0, 0o644]), NONE);
        assert_eq!(arg_class(nr::FCHMODAT2, [0, 0, 0o700]), MODE_EXEC);
        assert_eq!(arg_class(nr::OPENAT2, [0, 0, 0o101]), NONE);
        assert_eq!(arg_class(nr::CONNECT, [3, 0, 16]), NONE);
        for nr in 0..512u64 {
            if arg_class(nr as u32, [2, 0o755, 0o1777]) != NONE {
                assert!(has_arg_class(nr), "{nr} is classed but not in the bitmap");
            }
        }
        assert!(!has_arg_class(u64::MAX));
    }

    #[test]
    fn ids_keep_the_number_and_the_class_apart() {
        for nr in [0u64, 42, 257, 511] {
            for class in 0..=COUNT {
                let id = batch_id(nr, class);
                assert!(id <= u64::from(u16::MAX));
                assert_eq!(split(id as u16), (nr as u16, class));
            }
        }
        assert_eq!(batch_id(512, NONE), u64::from(OUT_OF_RANGE));
        assert_eq!(batch_id((1 << 30) | 42, ERR_PERM), u64::from(OUT_OF_RANGE));
        assert!(split(OUT_OF_RANGE).1 > COUNT);
    }
}
