//! The event JSON schema (documented in README.md). Field names are stable: tests and operators'
//! scripts parse them.

use std::net::IpAddr;

use agent_common::{
    Creds, EXEC_FLAG_ARGS_TRUNCATED, EXEC_FLAG_ARGS_UNREADABLE, EXEC_FLAG_FILENAME_TRUNCATED,
    EventKind, FORK_FLAG_DERIVED, FlushReason,
    decode::{Event, c_str},
};
use serde::Serialize;

/// What the process table adds to a kernel record.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Enrichment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct EventJson {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// CLOCK_MONOTONIC ns when the kernel wrote the record.
    pub ktime_ns: u64,
    /// Process id (kernel tgid).
    pub pid: u32,
    /// Thread id (kernel pid).
    pub tid: u32,
    /// Process start (boot-time ns); with `pid` a boot-unique process identity.
    pub start_ns: u64,
    #[serde(flatten)]
    pub process: Enrichment,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Body {
    Exec {
        filename: String,
        argv: Vec<String>,
        comm: String,
        parent_pid: u32,
        parent_start_ns: u64,
        old_tid: u32,
        uid: u32,
        euid: u32,
        gid: u32,
        egid: u32,
        cgroup_id: u64,
        truncated: Vec<&'static str>,
        /// Killed in the kernel at exec under a deny rule (the image never ran).
        denied: bool,
        /// stdin or stdout of the new image is a socket.
        stdio_socket: bool,
        /// The parent's stdin or stdout was an internet socket at the exec.
        parent_stdio_socket: bool,
        /// The process whose `O_CREAT` open last made the image, when vigil saw it.
        #[serde(skip_serializing_if = "Option::is_none")]
        image_writer_pid: Option<u32>,
    },
    Fork {
        child_pid: u32,
        child_start_ns: u64,
        clone_flags: String,
        clone_flags_derived: bool,
    },
    Exit {
        /// Raw wait(2) status.
        exit_status: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<u32>,
    },
    SyscallBatch {
        seq: u32,
        reason: &'static str,
        first_ns: u64,
        syscalls: Vec<u16>,
        names: Vec<&'static str>,
    },
    Net {
        fd: i32,
        ret: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        family: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        addr: Option<IpAddr>,
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        backlog: Option<i32>,
    },
    CredChange {
        syscall: &'static str,
        ret: i32,
        requested: [u32; 3],
        before: Creds,
        after: Creds,
    },
    Ptrace {
        request: i64,
        target_pid: u32,
        ret: i32,
    },
    Memfd {
        name: String,
        flags: u32,
        ret: i32,
    },
    ModuleLoad {
        syscall: &'static str,
        fd: i32,
        len: u64,
        ret: i32,
    },
    BpfProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        prog_name: String,
        ret: i32,
    },
    ProbeError {
        probe: u16,
        code: i32,
    },
    /// A chmod asking for the set-user-ID bit.
    SetuidChmod {
        syscall: &'static str,
        /// Octal, as chmod(1) writes it.
        mode: String,
        /// fchmod's fd, or the dirfd a relative path is taken from (-100: the cwd).
        fd: i32,
        /// As the call passed it; empty for fchmod.
        path: String,
        ret: i32,
    },
    /// File capabilities set (`security.capability`), a mount onto /proc/PID, or a kernel
    /// setting opened for writing. The record's `type` (`file_capability`, `proc_mount`,
    /// `kernel_setting`) says which.
    PathCall {
        syscall: &'static str,
        /// fsetxattr's fd, or the dirfd a relative path is taken from (-100: the cwd); -1 for
        /// a kernel setting.
        fd: i32,
        /// As the call passed it: the file, or the mount's target; a kernel setting's name.
        path: String,
        /// The permitted capabilities (bit N is capability N), the mount flags, or the open's
        /// flags.
        value: u64,
        ret: i32,
    },
    /// A library written lately by another process, mapped as code by a process running with
    /// `LD_PRELOAD` or `LD_AUDIT` set.
    PreloadLibrary {
        /// The library's file name.
        library: String,
        /// The variable's value.
        preload: String,
        /// `LD_PRELOAD` or `LD_AUDIT`.
        variable: &'static str,
        dev: u32,
        ino: u64,
        /// The library's writer, and how long before the mapping it wrote it.
        written_by_pid: u32,
        written_ms_before: u64,
    },
    /// A name created, removed or written over during a burst of file churn.
    FileChurn {
        syscall: &'static str,
        /// `created`, `removed` or `rewritten`.
        op: &'static str,
        /// As the call passed it.
        path: String,
    },
    /// A raw IP or packet socket created.
    RawSocket {
        family: &'static str,
        /// socket(2)'s type argument, `SOCK_*` flags included.
        sock_type: u32,
        protocol: u32,
        /// The new fd.
        ret: i32,
    },
    /// A rename or unlink of a watched path.
    PathChange {
        syscall: &'static str,
        role: &'static str,
        /// As the call passed it.
        path: String,
        access: Vec<&'static str>,
        /// For a relative path: the watched inode and the components from it to the base
        /// directory the path is relative to.
        #[serde(skip_serializing_if = "Option::is_none")]
        relative_to: Option<RelativeTo>,
    },
    /// An open of a watched file: the watched inode and the path below it.
    FileOpen {
        fd: i32,
        flags: String,
        access: Vec<&'static str>,
        watch_dev: u32,
        watch_ino: u64,
        below_watch: Vec<String>,
        ino: u64,
    },
}

pub fn syscall_name(nr: u32) -> &'static str {
    syscalls::Sysno::new(nr as usize).map_or("unknown", |s| s.name())
}

#[derive(Debug, Serialize)]
pub struct RelativeTo {
    pub watch_dev: u32,
    pub watch_ino: u64,
    pub below_watch: Vec<String>,
}

pub fn path_role(role: u32) -> &'static str {
    match role {
        agent_common::PATH_ROLE_RENAMED_TO => "renamed_to",
        agent_common::PATH_ROLE_RENAMED_FROM => "renamed_from",
        agent_common::PATH_ROLE_UNLINKED => "unlinked",
        _ => "unknown",
    }
}

fn flush_reason(r: u16) -> &'static str {
    match r {
        x if x == FlushReason::Full as u16 => "full",
        x if x == FlushReason::Exec as u16 => "exec",
        x if x == FlushReason::Exit as u16 => "exit",
        x if x == FlushReason::Age as u16 => "age",
        x if x == FlushReason::Switch as u16 => "switch",
        _ => "unknown",
    }
}

impl EventJson {
    pub fn new(event: &Event, process: Enrichment) -> Self {
        let h = event.header();
        let kind = event.kind();
        let body = match event {
            Event::Exec(e) => Body::Exec {
                filename: e.filename(),
                argv: e.argv(),
                comm: e.comm(),
                parent_pid: e.ppid,
                parent_start_ns: e.parent_start_ns,
                old_tid: e.old_pid,
                uid: e.uid,
                euid: e.euid,
                gid: e.gid,
                egid: e.egid,
                cgroup_id: e.cgroup_id,
                truncated: [
                    (EXEC_FLAG_FILENAME_TRUNCATED, "filename"),
                    (EXEC_FLAG_ARGS_TRUNCATED, "argv"),
                    (EXEC_FLAG_ARGS_UNREADABLE, "argv_unreadable"),
                ]
                .into_iter()
                .filter(|(bit, _)| e.flags & bit != 0)
                .map(|(_, name)| name)
                .collect(),
                denied: e.flags & agent_common::EXEC_FLAG_DENIED != 0,
                stdio_socket: e.stdio_socket(),
                parent_stdio_socket: e.parent_stdio_socket(),
                image_writer_pid: (e.written_by.tgid != 0).then_some(e.written_by.tgid),
            },
            Event::Fork(e) => Body::Fork {
                child_pid: e.child_tgid,
                child_start_ns: e.child_start_ns,
                clone_flags: format!("{:#x}", e.clone_flags),
                clone_flags_derived: e.flags & FORK_FLAG_DERIVED != 0,
            },
            Event::Exit(e) => {
                // wait(2) encoding: low 7 bits = terminating signal, else code in bits 8..16.
                let sig = e.exit_code & 0x7f;
                Body::Exit {
                    exit_status: e.exit_code,
                    exit_code: (sig == 0).then_some((e.exit_code >> 8) & 0xff),
                    signal: (sig != 0).then_some(sig),
                }
            }
            Event::SyscallBatch(b) => Body::SyscallBatch {
                seq: b.seq,
                reason: flush_reason(b.reason),
                first_ns: b.first_ns,
                syscalls: b.ids().to_vec(),
                names: b.ids().iter().map(|&n| syscall_name(n.into())).collect(),
            },
            Event::Net(n) => Body::Net {
                fd: n.fd,
                ret: n.ret,
                family: match n.addr.family {
                    1 => Some("unix"),
                    2 => Some("inet"),
                    10 => Some("inet6"),
                    _ => None,
                },
                addr: n.addr.ip(),
                port: n.addr.ip().map(|_| n.addr.port),
                backlog: (kind == EventKind::Listen).then_some(n.backlog),
            },
            Event::CredChange(c) => Body::CredChange {
                syscall: syscall_name(c.syscall_nr),
                ret: c.ret,
                requested: c.requested,
                before: c.before,
                after: c.after,
            },
            Event::Ptrace(p) => Body::Ptrace {
                request: p.request,
                target_pid: p.target_pid,
                ret: p.ret,
            },
            Event::Memfd(m) => Body::Memfd {
                name: c_str(&m.name, m.name.len()),
                flags: m.flags,
                ret: m.ret,
            },
            Event::ModuleLoad(m) => Body::ModuleLoad {
                syscall: syscall_name(m.syscall_nr),
                fd: m.fd,
                len: m.len,
                ret: m.ret,
            },
            Event::BpfProgLoad(b) => Body::BpfProgLoad {
                prog_type: b.prog_type,
                insn_cnt: b.insn_cnt,
                prog_name: c_str(&b.prog_name, b.prog_name.len()),
                ret: b.ret,
            },
            Event::ProbeError(p) => Body::ProbeError {
                probe: p.probe,
                code: p.code,
            },
            Event::SetuidChmod(c) => Body::SetuidChmod {
                syscall: syscall_name(c.syscall_nr),
                mode: format!("{:o}", c.mode),
                fd: c.fd,
                path: c.path(),
                ret: c.ret,
            },
            Event::Preload(p) => Body::PreloadLibrary {
                library: p.name(),
                preload: p.preload(),
                variable: p.variable(),
                dev: p.dev,
                ino: p.ino,
                written_by_pid: p.created_by.tgid,
                written_ms_before: p.header.ktime_ns.saturating_sub(p.created_by.ns) / 1_000_000,
            },
            Event::PathCall(c) => Body::PathCall {
                syscall: syscall_name(c.syscall_nr),
                fd: c.fd,
                path: c.path(),
                value: c.value,
                ret: c.ret,
            },
            Event::FileChurn(c) => Body::FileChurn {
                syscall: syscall_name(c.syscall_nr),
                op: match c.op {
                    agent_common::CHURN_CREATED => "created",
                    agent_common::CHURN_REWRITTEN => "rewritten",
                    _ => "removed",
                },
                path: c.path(),
            },
            Event::RawSocket(r) => Body::RawSocket {
                family: r.family_name(),
                sock_type: r.sock_type,
                protocol: r.protocol,
                ret: r.ret,
            },
            Event::PathChange(c) => Body::PathChange {
                syscall: syscall_name(c.syscall_nr),
                role: path_role(c.role),
                path: c.path(),
                access: crate::policy::FileAccess::from_bits(c.access).names(),
                relative_to: (c.relative != 0).then(|| RelativeTo {
                    watch_dev: c.watch_dev,
                    watch_ino: c.watch_ino,
                    below_watch: c.components(),
                }),
            },
            Event::File(f) => Body::FileOpen {
                fd: f.fd,
                flags: format!("{:#o}", f.flags),
                access: crate::policy::FileAccess::from_bits(f.access).names(),
                watch_dev: f.watch_dev,
                watch_ino: f.watch_ino,
                below_watch: f.components(),
                ino: f.ino,
            },
        };
        Self {
            kind: kind.as_str(),
            ktime_ns: h.ktime_ns,
            pid: h.tgid,
            tid: h.pid,
            start_ns: h.start_ns,
            process,
            body,
        }
    }
}
