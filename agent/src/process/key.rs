//! Process identity that survives pid reuse.

use std::sync::OnceLock;

use agent_common::EventHeader;

/// Names one process for the lifetime of a boot: a `tgid` alone is recycled, but no two processes
/// share both `tgid` and the thread-group leader's start time.
///
/// `start_ns` is `start_boottime` in ns since boot, exact when it came from a kernel event and
/// rounded down to a clock tick when it was read from `/proc/PID/stat`. Derived `Eq`/`Hash`
/// compare exactly; use [`ProcessKey::same_process`] whenever one side may come from `/proc`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessKey {
    pub tgid: u32,
    pub start_ns: u64,
}

impl ProcessKey {
    pub const fn new(tgid: u32, start_ns: u64) -> Self {
        Self { tgid, start_ns }
    }

    pub const fn from_event_header(header: &EventHeader) -> Self {
        Self::new(header.tgid, header.start_ns)
    }

    /// From `/proc/PID/stat` field 22 (start time in clock ticks since boot).
    pub fn from_proc_ticks(tgid: u32, start_ticks: u64) -> Self {
        Self::new(tgid, start_ticks.saturating_mul(ns_per_tick()))
    }

    /// The start time in clock ticks, the precision `/proc` offers.
    pub fn start_ticks(&self) -> u64 {
        self.start_ns / ns_per_tick()
    }

    /// Same process, comparing start times at clock-tick granularity so a key seeded from
    /// `/proc` matches the exact key a kernel event carries. The kernel converts with a floor
    /// division (`nsec_to_clock_t`), which is what this does too.
    pub fn same_process(&self, other: &Self) -> bool {
        self.same_process_at(other, ns_per_tick())
    }

    /// [`Self::same_process`] with an explicit tick length (tests, or a non-default `USER_HZ`).
    pub fn same_process_at(&self, other: &Self, ns_per_tick: u64) -> bool {
        let t = ns_per_tick.max(1);
        self.tgid == other.tgid && self.start_ns / t == other.start_ns / t
    }
}

/// Nanoseconds per `/proc` clock tick (`1e9 / sysconf(_SC_CLK_TCK)`, normally 10 ms).
/// Read once: it is a constant of the running kernel's ABI.
pub fn ns_per_tick() -> u64 {
    static NS_PER_TICK: OnceLock<u64> = OnceLock::new();
    *NS_PER_TICK.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it only reads a system constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // USER_HZ is 100 on every Linux architecture this agent targets; fall back to it rather
        // than fail if sysconf is somehow unavailable.
        let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
        1_000_000_000 / hz
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_process_compares_at_tick_granularity() {
        let t = ns_per_tick();
        let seeded = ProcessKey::from_proc_ticks(42, 1234);
        let exact = ProcessKey::new(42, 1234 * t + t / 2);
        assert!(seeded.same_process(&exact));
        assert!(exact.same_process(&seeded));
        assert_ne!(seeded, exact, "exact equality stays exact");
        assert!(!seeded.same_process(&ProcessKey::new(42, 1235 * t)));
        assert!(!seeded.same_process(&ProcessKey::new(43, 1234 * t)));
        assert_eq!(exact.start_ticks(), 1234);
    }

    #[test]
    fn from_event_header_takes_tgid_not_pid() {
        let h = EventHeader {
            pid: 7,
            tgid: 5,
            start_ns: 99,
            ..Default::default()
        };
        assert_eq!(ProcessKey::from_event_header(&h), ProcessKey::new(5, 99));
    }
}
