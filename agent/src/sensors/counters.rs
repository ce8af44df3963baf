//! The kernel's per-CPU loss and emission counters, summed across CPUs.

use std::collections::BTreeMap;

use agent_common::{
    COUNT_SYSCALLS_BATCHED, COUNTER_SLOTS, COUNT_UNSWITCHED_SLOTS, EventKind, LOSS_PENDING_MAP_FULL,
    LOSS_PENDING_MISSING, LOSS_SYSCALLS_IN_LOST_BATCHES, emitted_index, loss_index,
};
use aya::maps::{Map, MapData, PerCpuArray};

use super::SensorError;

const MAP: &str = agent_common::names::MAP_COUNTERS;

pub struct KernelCounters {
    map: PerCpuArray<MapData, u64>,
}

/// One reading of every counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Failed ring-buffer reservations per kind.
    pub lost: BTreeMap<EventKind, u64>,
    /// Records submitted per kind.
    pub emitted: BTreeMap<EventKind, u64>,
    pub syscalls_in_lost_batches: u64,
    pub syscalls_batched: u64,
    /// Batches found in a CPU's slot under another task (sent then; see agent_common::loss).
    pub unswitched_slots: u64,
    pub pending_map_full: u64,
    pub pending_missing: u64,
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
        out.insert("pending_map_full".into(), self.pending_map_full);
        out.insert("pending_missing".into(), self.pending_missing);
        out
    }

    pub fn total_lost(&self) -> u64 {
        self.lost.values().sum::<u64>() + self.pending_map_full
    }
}

impl KernelCounters {
    pub fn new(map: Map) -> Result<Self, SensorError> {
        let map = PerCpuArray::try_from(map)
            .map_err(|source| SensorError::MapType { name: MAP, source })?;
        Ok(Self { map })
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
        s.pending_map_full = self.sum(LOSS_PENDING_MAP_FULL)?;
        s.pending_missing = self.sum(LOSS_PENDING_MISSING)?;
        s.exec_denied = self.sum(agent_common::COUNT_EXEC_DENIED)?;
        s.exec_deny_signal_failed = self.sum(agent_common::COUNT_EXEC_DENY_SIGNAL_FAILED)?;
        s.net_denied_quarantine = self.sum(agent_common::COUNT_NET_DENIED_QUARANTINE)?;
        s.net_denied_rule = self.sum(agent_common::COUNT_NET_DENIED_RULE)?;
        Ok(s)
    }
}
