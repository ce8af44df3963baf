//! The kernel's per-CPU loss and emission counters, summed across CPUs.

use std::collections::BTreeMap;

use agent_common::{
    COUNT_SYSCALLS_BATCHED, COUNTER_SLOTS, COUNT_UNSWITCHED_SLOTS, EventKind,
    LOSS_CREDS_BEFORE_UNKNOWN, LOSS_CREDS_UNRECORDED, LOSS_SYSCALLS_IN_LOST_BATCHES, emitted_index, loss_index,
};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};

use aya::maps::{Map, MapData, PerCpuArray};

use super::SensorError;

const MAP: &str = agent_common::names::MAP_COUNTERS;

pub struct KernelCounters {
    map: PerCpuArray<MapData, u64>,
    /// vigil's tracing programs, whose skipped runs the kernel counts itself.
    programs: Vec<(&'static str, OwnedFd)>,
}

/// One reading of every counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Failed ring-buffer reservations per kind.
    pub lost: BTreeMap<EventKind, u64>,
    /// Records submitted per kind.
    pub emitted: BTreeMap<EventKind, u64>,
    pub syscalls_in_lost_batches: u64,
    /// Runs of vigil's programs the kernel skipped because one of them was already running on
    /// that CPU (a task preempted inside a program, or a program firing inside another):
    /// whatever those runs would have recorded is lost.
    pub program_runs_skipped: u64,
    pub syscalls_batched: u64,
    /// Batches started in a CPU slot that still named another task (a diagnostic that should
    /// stay 0; see `agent_common::loss`).
    pub unswitched_slots: u64,
    /// Threads whose ids the kernel could not remember, and setuid-family calls that changed
    /// ids nobody had recorded (their events say "unknown" for the ids before).
    pub creds_unrecorded: u64,
    pub creds_before_unknown: u64,
    /// File churn names the kernel held back to keep half the events ring for the rest.
    pub churn_ring_busy: u64,
    /// `O_CREAT` opens whose writer the kernel could not remember.
    pub created_unrecorded: u64,
    /// Kernel enforcement: execs killed, deny signals that failed, connects refused.
    pub exec_denied: u64,
    pub exec_deny_signal_failed: u64,
    pub net_denied_quarantine: u64,
    pub net_denied_rule: u64,
}

impl CounterSnapshot {
    /// Every loss counter by a stable name, for status, logs and journald.
    pub fn losses(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = self
            .lost
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), *v))
            .collect();
        out.insert(
            "syscalls_in_lost_batches".into(),
            self.syscalls_in_lost_batches,
        );
        out.insert("creds_unrecorded".into(), self.creds_unrecorded);
        out.insert("program_runs_skipped".into(), self.program_runs_skipped);
        out.insert("cred_change_before_unknown".into(), self.creds_before_unknown);
        out.insert("churn_names_ring_busy".into(), self.churn_ring_busy);
        out.insert("created_writer_unrecorded".into(), self.created_unrecorded);
        out
    }

    pub fn total_lost(&self) -> u64 {
        self.lost.values().sum::<u64>() + self.program_runs_skipped
    }
}

impl KernelCounters {
    pub fn new(map: Map, programs: Vec<(&'static str, OwnedFd)>) -> Result<Self, SensorError> {
        let map = PerCpuArray::try_from(map)
            .map_err(|source| SensorError::MapType { name: MAP, source })?;
        Ok(Self { map, programs })
    }

    fn sum(&self, index: u32) -> Result<u64, SensorError> {
        debug_assert!(index < COUNTER_SLOTS);
        let values = self
            .map
            .get(&index, 0)
            .map_err(|source| SensorError::MapRead { name: MAP, source })?;
        Ok(values.iter().sum())
    }

    pub fn snapshot(&self) -> Result<CounterSnapshot, SensorError> {
        let mut s = CounterSnapshot::default();
        for kind in EventKind::ALL {
            s.lost.insert(kind, self.sum(loss_index(kind))?);
            s.emitted.insert(kind, self.sum(emitted_index(kind))?);
        }
        s.syscalls_in_lost_batches = self.sum(LOSS_SYSCALLS_IN_LOST_BATCHES)?;
        s.syscalls_batched = self.sum(COUNT_SYSCALLS_BATCHED)?;
        s.unswitched_slots = self.sum(COUNT_UNSWITCHED_SLOTS)?;
        s.creds_unrecorded = self.sum(LOSS_CREDS_UNRECORDED)?;
        for (name, fd) in &self.programs {
            s.program_runs_skipped += recursion_misses(fd.as_fd())
                .map_err(|source| SensorError::ProgramInfo { name, source })?;
        }
        s.creds_before_unknown = self.sum(LOSS_CREDS_BEFORE_UNKNOWN)?;
        s.churn_ring_busy = self.sum(agent_common::LOSS_CHURN_RING_BUSY)?;
        s.created_unrecorded = self.sum(agent_common::LOSS_CREATED_UNRECORDED)?;
        s.exec_denied = self.sum(agent_common::COUNT_EXEC_DENIED)?;
        s.exec_deny_signal_failed = self.sum(agent_common::COUNT_EXEC_DENY_SIGNAL_FAILED)?;
        s.net_denied_quarantine = self.sum(agent_common::COUNT_NET_DENIED_QUARANTINE)?;
        s.net_denied_rule = self.sum(agent_common::COUNT_NET_DENIED_RULE)?;
        Ok(s)
    }
}

/// `bpf_prog_info.recursion_misses` of a program (kernel 5.12+; 0 before): aya does not expose
/// it, so this is the one `BPF_OBJ_GET_INFO_BY_FD` call vigil makes itself.
fn recursion_misses(prog: BorrowedFd<'_>) -> std::io::Result<u64> {
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    /// The `info` member of `union bpf_attr`.
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // SAFETY: bpf_prog_info is plain integers; all-zero is what the kernel expects on input.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    let attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: std::ptr::addr_of_mut!(info) as u64,
    };
    // SAFETY: a valid attr of the size passed, pointing at a writable info of `info_len` bytes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            std::ptr::addr_of!(attr),
            std::mem::size_of::<InfoAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(info.recursion_misses)
}
