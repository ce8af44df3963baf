//! The attach table: every program vigil ships, where it hooks, and what the kernel must offer.
//! The loader walks it in order; adding a sensor is adding a row. Every row needs only
//! tracepoints and raw tracepoints, which vigil cannot run without: a row that fails to attach
//! stops the daemon with an error naming it.

use std::fmt;

use agent_common::names;

pub enum Hook {
    /// `tp_btf/<name>`: raw tracepoint with BTF-typed arguments (direct loads, no probe reads).
    BtfTp(&'static str),
    /// `raw_tp/<name>`: raw tracepoint with the tracepoint's TP_PROTO arguments.
    RawTp(&'static str),
    /// `tracepoint/<category>/<name>`.
    Tp(&'static str, &'static str),
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hook::BtfTp(tp) => write!(f, "tp_btf/{tp}"),
            Hook::RawTp(tp) => write!(f, "raw_tp/{tp}"),
            Hook::Tp(c, n) => write!(f, "tracepoint/{c}/{n}"),
        }
    }
}

pub struct ProgramSpec {
    pub program: &'static str,
    pub hook: Hook,
    /// Tried when `program` cannot be loaded or attached (e.g. a kernel without tp_btf); the
    /// skipped preference and its reason are logged and shown by `vigil status`.
    pub fallback: Option<(&'static str, Hook)>,
}

pub static ATTACH_TABLE: &[ProgramSpec] = &[
    // The switch program before sys_exit: a CPU's batch slot must be released whenever its task
    // leaves the CPU from the first batched syscall on.
    ProgramSpec { program: names::PROG_SCHED_SWITCH, hook: Hook::RawTp("sched_switch"), fallback: None },
    // The fork and exec probes before sys_exit: they record the ids a setuid-family call's exit
    // starts from (`CREDS`; user space seeds the threads older than vigil once all are attached).
    ProgramSpec { program: names::PROG_FORK, hook: Hook::RawTp("sched_process_fork"), fallback: None },
    ProgramSpec { program: names::PROG_EXEC, hook: Hook::Tp("sched", "sched_process_exec"), fallback: None },
    ProgramSpec { program: names::PROG_EXIT, hook: Hook::Tp("sched", "sched_process_exit"), fallback: None },
    // Signals sent to vigil itself, seen in the sender's context.
    ProgramSpec { program: names::PROG_SIGNAL, hook: Hook::RawTp("signal_generate"), fallback: None },
    // The one per-syscall program: it batches every syscall and reports the watched ones.
    ProgramSpec {
        program: names::PROG_SYS_EXIT,
        hook: Hook::BtfTp("sys_exit"),
        fallback: Some((names::PROG_SYS_EXIT_RAW, Hook::RawTp("sys_exit"))),
    },
];
