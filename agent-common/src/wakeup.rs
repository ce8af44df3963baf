//! When a record response acts on (exec, connect, ptrace...) wakes the reader at once.
//!
//! A forced ring wakeup costs the writing task ~20 µs here (an irq_work self-IPI, then the
//! reader's wakeup: VM exits) and the reader a context switch, so records close together share
//! one. The window they share depends on the pace: a lone exec, or a short `sh -c "a; b"`, is
//! read within ~`QUIET_WINDOW_NS`, and so is an attack chain of dozens of commands; only a
//! sustained run of wakeups (a build, a busy shell loop: `BURST_STREAK` wakeups in a row, each
//! within `BURST_GAP_NS` of the one before, i.e. at least 100 ms of it) widens the window to
//! `BURST_WINDOW_NS`. CPU is spent over seconds, so nothing is lost by waiting that long to
//! widen. Measured with a /bin/true loop at ~800 exec/s, vigil's CPU per exec (three alternating
//! runs each): 69–75 µs with a fixed 2 ms window, 50–53 µs with a fixed 6 ms one, 53–58 µs
//! paced this way.
//!
//! The kernel keeps [`PromptPace`] in a map and asks [`PromptPace::due`] per record; the reader
//! keeps its own copy, fed with the wakeups it sees, to know when the records a wakeup left
//! behind are due to be drained ([`PromptPace::drain_after_ns`]).

/// Window after a wakeup while wakeups are sparse.
pub const QUIET_WINDOW_NS: u64 = 2_000_000;
/// Window after a wakeup in a sustained burst.
pub const BURST_WINDOW_NS: u64 = 6_000_000;
/// Wakeups closer than this to the one before continue a burst.
pub const BURST_GAP_NS: u64 = 10_000_000;
/// Consecutive close wakeups before the window widens: 50 quiet windows, ≥ 100 ms.
pub const BURST_STREAK: u64 = 50;
/// The reader's drain after a wakeup comes this long after the window closes.
pub const DRAIN_MARGIN_NS: u64 = 1_000_000;

/// The pacing state: the last forced wakeup and how many close ones led up to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PromptPace {
    pub last_ns: u64,
    pub streak: u64,
}

impl PromptPace {
    /// How long after the last wakeup records share it.
    #[inline(always)]
    pub fn window_ns(&self) -> u64 {
        if self.streak >= BURST_STREAK {
            BURST_WINDOW_NS
        } else {
            QUIET_WINDOW_NS
        }
    }

    /// Whether a record written at `now_ns` forces a wakeup; if so, it is recorded as one.
    #[inline(always)]
    pub fn due(&mut self, now_ns: u64) -> bool {
        if now_ns.wrapping_sub(self.last_ns) < self.window_ns() {
            return false;
        }
        self.woke(now_ns);
        true
    }

    /// Records a wakeup at `now_ns`.
    #[inline(always)]
    pub fn woke(&mut self, now_ns: u64) {
        self.streak = if now_ns.wrapping_sub(self.last_ns) < BURST_GAP_NS {
            // Bounded so the count never wraps back to a quiet window mid-burst.
            if self.streak < BURST_STREAK {
                self.streak + 1
            } else {
                BURST_STREAK
            }
        } else {
            0
        };
        self.last_ns = now_ns;
    }

    /// After the wakeup just recorded, when the records it left behind are to be drained.
    #[inline(always)]
    pub fn drain_after_ns(&self) -> u64 {
        self.window_ns() + DRAIN_MARGIN_NS
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec::Vec;

    const MS: u64 = 1_000_000;

    /// Forced wakeups for records written at `times` (ms), from a fresh state.
    fn wakeups(times: &[f64]) -> Vec<f64> {
        let mut pace = PromptPace::default();
        times
            .iter()
            .copied()
            .filter(|&t| pace.due(1_000 * MS + (t * MS as f64) as u64))
            .collect()
    }

    #[test]
    fn a_lone_record_and_a_short_sequence_keep_the_quiet_window() {
        assert_eq!(wakeups(&[0.0]), [0.0]);
        // sh -c "a; b; c": records 1.5 ms apart share a 2 ms window, no more.
        assert_eq!(wakeups(&[0.0, 1.5, 3.0, 4.5, 6.0]), [0.0, 3.0, 6.0]);
    }

    #[test]
    fn a_sustained_burst_widens_the_window_and_a_pause_narrows_it() {
        // A record every 1.25 ms (800/s) for 500 ms.
        let times: Vec<f64> = (0..400).map(|i| f64::from(i) * 1.25).collect();
        let woke = wakeups(&times);
        let gaps: Vec<f64> = woke.windows(2).map(|w| w[1] - w[0]).collect();
        // 2.5 ms apart while the streak builds, then 6.25 (the first record past 6 ms).
        let streak = BURST_STREAK as usize;
        assert!(gaps[..streak].iter().all(|&g| g == 2.5), "{gaps:?}");
        assert!(gaps[streak..].iter().all(|&g| g == 6.25), "{gaps:?}");
        assert!(gaps.len() > streak + 10, "{gaps:?}");
        // After a pause longer than the burst gap, the next records are paced as quiet again.
        let mut pace = PromptPace::default();
        for &t in &times {
            pace.due((t * MS as f64) as u64 + 1_000 * MS);
        }
        assert_eq!(pace.window_ns(), BURST_WINDOW_NS);
        let after = 1_000 * MS + 600 * MS;
        assert!(pace.due(after));
        assert_eq!(pace.window_ns(), QUIET_WINDOW_NS);
        assert!(!pace.due(after + MS));
        assert!(pace.due(after + 2 * MS));
    }

    #[test]
    fn the_reader_drains_past_the_window_the_kernel_uses() {
        let mut kernel = PromptPace::default();
        let mut reader = PromptPace::default();
        for i in 0..400u64 {
            let t = 1_000 * MS + i * 1_250_000;
            if kernel.due(t) {
                // The reader sees the wakeup a little later.
                reader.woke(t + 50_000);
                assert!(reader.drain_after_ns() > kernel.window_ns(), "at {i}");
            }
        }
    }
}
