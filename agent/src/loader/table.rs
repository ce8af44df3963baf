//! The attach table: every program vigil ships, where it hooks, and what the kernel must offer.
//! The loader walks it in order; adding a sensor is adding a row. Every row needs only
//! tracepoints and raw tracepoints, which vigil cannot run without: a row that fails to attach
//! stops the daemon, except single watched syscalls (see `Hook::SyscallTps`).

use std::fmt;

use agent_common::names;

pub enum Hook {
    /// `raw_tp/<name>`: raw tracepoint with the tracepoint's TP_PROTO arguments.
    RawTp(&'static str),
    /// `tracepoint/<category>/<name>`.
    Tp(&'static str, &'static str),
    /// The same program on `syscalls:<prefix><name>` for every syscall in `WATCHED`.
    SyscallTps { prefix: &'static str },
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hook::RawTp(tp) => write!(f, "raw_tp/{tp}"),
            Hook::Tp(c, n) => write!(f, "tracepoint/{c}/{n}"),
            Hook::SyscallTps { prefix } => write!(f, "tracepoint/syscalls/{prefix}*"),
        }
    }
}

pub struct ProgramSpec {
    pub program: &'static str,
    pub hook: Hook,
}

pub static ATTACH_TABLE: &[ProgramSpec] = &[
    // Watch probes go first so a clone in flight while the rest attach still finds its flags.
    ProgramSpec { program: names::PROG_WATCH_ENTER, hook: Hook::SyscallTps { prefix: "sys_enter_" } },
    ProgramSpec { program: names::PROG_WATCH_EXIT, hook: Hook::SyscallTps { prefix: "sys_exit_" } },
    ProgramSpec { program: names::PROG_FORK, hook: Hook::RawTp("sched_process_fork") },
    ProgramSpec { program: names::PROG_EXEC, hook: Hook::Tp("sched", "sched_process_exec") },
    ProgramSpec { program: names::PROG_EXIT, hook: Hook::Tp("sched", "sched_process_exit") },
    ProgramSpec { program: names::PROG_SYS_ENTER, hook: Hook::RawTp("sys_enter") },
];
