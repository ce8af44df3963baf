//! What a path a call passed names, as far as /proc still tells, and the `rule.event`s the
//! kernel's path calls can be: file capabilities that amount to root, a mount onto a process's
//! /proc directory, and a kernel setting opened for writing.

use std::path::Path;

use agent_common::{
    EventKind, PathCallEvent, VFS_CAP_FLAGS_EFFECTIVE, kernel_settings::KERNEL_SETTINGS,
};

use crate::{
    policy::SecurityEvent,
    sequence::{Token, token_name},
};

const AT_FDCWD: i32 = -100;

/// A path as a call passed it, made absolute from the caller's cwd or dirfd (read from
/// `/proc/TGID`, which may be gone: then `Relative` keeps what is known).
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    Absolute(String),
    Relative(String),
}

impl Named {
    pub fn text(&self) -> &str {
        match self {
            Named::Absolute(p) | Named::Relative(p) => p,
        }
    }
}

/// Names the file of a call's `(fd, path)`: an empty path is the fd itself (fchmod,
/// fsetxattr), a relative one is taken from the cwd (`AT_FDCWD`) or the dirfd.
pub fn name_path(proc_root: &Path, tgid: u32, fd: i32, path: &str) -> Named {
    let proc = proc_root.join(tgid.to_string());
    let link = |rel: String| {
        std::fs::read_link(proc.join(rel))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    };
    if path.is_empty() {
        return match link(format!("fd/{fd}")) {
            Some(file) => Named::Absolute(file),
            None => Named::Relative(format!("fd {fd}")),
        };
    }
    if path.starts_with('/') {
        return Named::Absolute(path.to_owned());
    }
    let base = if fd == AT_FDCWD {
        link("cwd".into())
    } else {
        link(format!("fd/{fd}"))
    };
    match base {
        Some(dir) => Named::Absolute(format!("{}/{path}", dir.trim_end_matches('/'))),
        None if fd == AT_FDCWD => Named::Relative(format!("{path} (relative to its cwd)")),
        None => Named::Relative(format!("{path} (relative to fd {fd})")),
    }
}

/// Capability names by number (`capability.h`), as getcap and setcap write them.
const CAP_NAMES: [&str; 41] = [
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

/// Capabilities a program can turn into root, or into reading and writing any file, on its
/// own: change its uid or gid, bypass file permissions or ownership, write other processes or
/// raw devices, load kernel code, or hand capabilities on. What packages give their programs
/// (`cap_net_raw` for ping, `cap_net_bind_service` and `cap_net_admin` for servers and network
/// tools, `cap_ipc_lock`, `cap_sys_nice`, `cap_sys_resource`, `cap_perfmon`) is not among them.
const ROOT_EQUIVALENT: [usize; 13] = [0, 1, 2, 3, 6, 7, 8, 16, 17, 19, 21, 31, 39];

fn cap_bits(caps: &[usize]) -> u64 {
    caps.iter().fold(0, |bits, &c| bits | 1 << c)
}

/// `a,b,c` for the set bits, by name (`cap_N` for numbers the table lacks).
fn cap_list(bits: u64) -> String {
    (0..64)
        .filter(|&c| bits & (1 << c) != 0)
        .map(|c| {
            CAP_NAMES
                .get(c)
                .map_or_else(|| format!("cap_{c}"), |n| (*n).to_owned())
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The `rule.event` a successful path call is, with what an operator reads about it; `None`
/// for a failed call, capabilities short of root, or a mount that is not onto a process.
pub fn security_event(
    c: &PathCallEvent,
    proc_root: &Path,
    tgid: u32,
) -> Option<(SecurityEvent, String)> {
    // An open's result is its fd; the others' is 0 on success.
    let failed = if c.header.kind == EventKind::KernelSetting as u16 {
        c.ret < 0
    } else {
        c.ret != 0
    };
    if failed {
        return None;
    }
    let call = token_name(c.syscall_nr as Token);
    match EventKind::from_u16(c.header.kind)? {
        EventKind::FileCapability => {
            let root = c.value & cap_bits(&ROOT_EQUIVALENT);
            if root == 0 {
                return None;
            }
            let file = name_path(proc_root, tgid, c.fd, &c.path());
            let sets = if c.aux & VFS_CAP_FLAGS_EFFECTIVE != 0 {
                "ep"
            } else {
                "p"
            };
            Some((
                SecurityEvent::FileCapability,
                format!(
                    "{call} of security.capability on {}: {}={sets} (root-equivalent: {}) (result {})",
                    file.text(),
                    cap_list(c.value),
                    cap_list(root),
                    c.ret
                ),
            ))
        }
        EventKind::ProcMount => {
            let Named::Absolute(target) = name_path(proc_root, tgid, c.fd, &c.path()) else {
                return None;
            };
            let pid = process_dir(&target)?;
            Some((
                SecurityEvent::ProcHidden,
                format!(
                    "{call} onto {target} ({}) covers pid {pid} (result {})",
                    mount_flags(c.syscall_nr, c.value),
                    c.ret
                ),
            ))
        }
        EventKind::ThreadRenamed => {
            let detail = crate::response::masquerade::renamed_thread_disguise(&c.path(), c.value)?;
            Some((SecurityEvent::FakeKernelThread, detail))
        }
        EventKind::KernelSetting => {
            let name = c.path();
            let path = KERNEL_SETTINGS
                .iter()
                .find(|p| p.rsplit('/').next() == Some(name.as_str()))
                .map_or_else(|| format!("procfs file {name}"), |p| (*p).to_owned());
            Some((
                SecurityEvent::KernelSetting,
                format!("{call} of {path} for write (fd {})", c.ret),
            ))
        }
        _ => None,
    }
}

/// The pid whose /proc entries `target` covers: `/proc/PID` or a path below it, except
/// through an fd's magic link (`/proc/PID/fd/N`, `/proc/PID/task/TID/fd/N`), which mounts onto
/// the file the fd holds, as container runtimes do.
pub fn process_dir(target: &str) -> Option<u32> {
    let rest = target.strip_prefix("/proc/")?;
    let mut parts = rest.split('/').filter(|p| !p.is_empty() && *p != ".");
    let pid = parts.next()?;
    if !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid = pid.parse().ok()?;
    // `..` could climb out of the pid's directory: such a target is not judged here.
    let below: Vec<&str> = parts.collect();
    if below.iter().any(|p| matches!(*p, "fd" | "..")) {
        return None;
    }
    Some(pid)
}

/// mount(2)'s flags that say what kind of mount it was (move_mount's are shown as a number:
/// the same bits mean other things there).
fn mount_flags(syscall_nr: u32, flags: u64) -> String {
    if syscall_nr != agent_common::syscall_nr::MOUNT {
        return format!("flags {flags:#x}");
    }
    const NAMED: [(u64, &str); 4] = [
        (0x1000, "MS_BIND"),
        (0x2000, "MS_MOVE"),
        (0x4000, "MS_REC"),
        (0x20, "MS_REMOUNT"),
    ];
    let names: Vec<&str> = NAMED
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        format!("flags {flags:#x}")
    } else {
        format!("flags {flags:#x}: {}", names.join("|"))
    }
}

#[cfg(test)]
mod tests {
    use agent_common::{ABI_VERSION, EventHeader, syscall_nr as nr};

    use super::*;

    fn call(kind: EventKind, nr: u32, fd: i32, path: &str, value: u64, aux: u32) -> PathCallEvent {
        // SAFETY: all-zero is a valid value of every ABI record.
        let mut c: PathCallEvent = unsafe { core::mem::zeroed() };
        c.header = EventHeader {
            kind: kind as u16,
            abi_version: ABI_VERSION,
            size: size_of::<PathCallEvent>() as u32,
            ..c.header
        };
        (c.syscall_nr, c.fd, c.value, c.aux, c.path_len) = (nr, fd, value, aux, path.len() as u32);
        c.path[..path.len()].copy_from_slice(path.as_bytes());
        c
    }

    #[test]
    fn root_equivalent_capabilities_are_an_event_and_a_service_s_are_not() {
        let proc = tempfile::tempdir().expect("tempdir");
        // cap_setuid (7) and cap_net_raw (13), effective, revision 2.
        let setuid = call(
            EventKind::FileCapability,
            nr::SETXATTR,
            -100,
            "/tmp/py",
            1 << 7 | 1 << 13,
            0x0200_0001,
        );
        let (event, detail) = security_event(&setuid, proc.path(), 1).expect("cap_setuid");
        assert_eq!(event, SecurityEvent::FileCapability);
        assert_eq!(
            detail,
            "setxattr of security.capability on /tmp/py: cap_setuid,cap_net_raw=ep (root-equivalent: cap_setuid) (result 0)"
        );
        // cap_bpf (39) sits in the high word.
        let bpf = call(
            EventKind::FileCapability,
            nr::SETXATTR,
            -100,
            "/tmp/t",
            1 << 39,
            0x0200_0000,
        );
        assert!(
            security_event(&bpf, proc.path(), 1)
                .expect("cap_bpf")
                .1
                .contains("cap_bpf=p")
        );
        let ping = call(
            EventKind::FileCapability,
            nr::SETXATTR,
            -100,
            "/bin/ping",
            1 << 13,
            0x0200_0001,
        );
        assert!(
            security_event(&ping, proc.path(), 1).is_none(),
            "cap_net_raw is what ping gets"
        );
        let mut refused = setuid;
        refused.ret = -1;
        assert!(security_event(&refused, proc.path(), 1).is_none());
    }

    #[test]
    fn a_mount_onto_a_process_is_an_event_and_through_an_fd_or_elsewhere_is_not() {
        let proc = tempfile::tempdir().expect("tempdir");
        let pid = proc.path().join("4242");
        std::fs::create_dir_all(&pid).expect("pid dir");
        std::os::unix::fs::symlink("/proc", pid.join("cwd")).expect("cwd link");
        let mount = |path: &str| call(EventKind::ProcMount, nr::MOUNT, -100, path, 0x1000, 0);
        let (event, detail) =
            security_event(&mount("/proc/1234"), proc.path(), 4242).expect("onto a pid");
        assert_eq!(event, SecurityEvent::ProcHidden);
        assert_eq!(
            detail,
            "mount onto /proc/1234 (flags 0x1000: MS_BIND) covers pid 1234 (result 0)"
        );
        let cmdline =
            security_event(&mount("/proc/77/cmdline"), proc.path(), 4242).expect("cmdline");
        assert!(
            cmdline.1.ends_with("covers pid 77 (result 0)"),
            "{}",
            cmdline.1
        );
        // Relative to a cwd of /proc; unknown once the process is gone.
        assert!(security_event(&mount("1234"), proc.path(), 4242).is_some());
        assert!(security_event(&mount("1234"), proc.path(), 7).is_none());
        for elsewhere in [
            "/proc/self/fd/7",
            "/proc/12/fd/7",
            "/proc/12/task/12/fd/3",
            "/proc/sys/kernel",
            "/proc/12/../sys",
            "/mnt/proc/12",
        ] {
            assert!(
                security_event(&mount(elsewhere), proc.path(), 4242).is_none(),
                "{elsewhere}"
            );
        }
        // MOVE_MOUNT_T_AUTOMOUNTS is mount(2)'s MS_REMOUNT bit: not named as such.
        let moved = call(
            EventKind::ProcMount,
            nr::MOVE_MOUNT,
            -100,
            "/proc/9",
            0x24,
            0,
        );
        assert_eq!(
            security_event(&moved, proc.path(), 4242)
                .expect("move_mount")
                .1,
            "move_mount onto /proc/9 (flags 0x24) covers pid 9 (result 0)"
        );
    }

    #[test]
    fn a_kernel_setting_is_named_by_its_full_path() {
        let proc = tempfile::tempdir().expect("tempdir");
        let mut core = call(
            EventKind::KernelSetting,
            nr::OPENAT,
            -1,
            "core_pattern",
            0o1101,
            0,
        );
        core.ret = 3;
        let (event, detail) = security_event(&core, proc.path(), 1).expect("core_pattern");
        assert_eq!(event, SecurityEvent::KernelSetting);
        assert_eq!(
            detail,
            "openat of /proc/sys/kernel/core_pattern for write (fd 3)"
        );
        let mut trigger = call(
            EventKind::KernelSetting,
            nr::OPEN,
            -1,
            "sysrq-trigger",
            1,
            0,
        );
        trigger.ret = 0;
        assert_eq!(
            security_event(&trigger, proc.path(), 1).expect("fd 0").1,
            "open of /proc/sysrq-trigger for write (fd 0)"
        );
    }

    #[test]
    fn paths_are_named_from_the_cwd_or_the_fd() {
        let proc = tempfile::tempdir().expect("tempdir");
        let pid = proc.path().join("4242");
        std::fs::create_dir_all(pid.join("fd")).expect("fd dir");
        std::os::unix::fs::symlink("/srv/app", pid.join("cwd")).expect("cwd link");
        std::os::unix::fs::symlink("/tmp/.b", pid.join("fd/3")).expect("fd link");
        assert_eq!(
            name_path(proc.path(), 4242, -100, "bin/x"),
            Named::Absolute("/srv/app/bin/x".into())
        );
        assert_eq!(
            name_path(proc.path(), 4242, 3, ""),
            Named::Absolute("/tmp/.b".into())
        );
        assert_eq!(
            name_path(proc.path(), 7, 3, ""),
            Named::Relative("fd 3".into())
        );
        assert_eq!(
            name_path(proc.path(), 7, 5, "x"),
            Named::Relative("x (relative to fd 5)".into())
        );
    }
}
