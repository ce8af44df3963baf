//! The kernel's tick rate (CONFIG_HZ), to express the batch age in jiffies. User space has no
//! direct view of HZ (`sysconf(_SC_CLK_TCK)` is USER_HZ, always 100), so measure it: sample the
//! `jiffies:` line of /proc/timer_list across a known interval and round to the nearest rate a
//! kernel can be built with.

use std::{
    fs,
    time::{Duration, Instant},
};

use agent_common::FALLBACK_HZ;
use tracing::{debug, warn};

const TIMER_LIST: &str = "/proc/timer_list";
const CONFIG_HZ_CHOICES: [u64; 4] = [100, 250, 300, 1000];
const SAMPLE: Duration = Duration::from_millis(200);

fn read_jiffies() -> Option<u64> {
    let text = fs::read_to_string(TIMER_LIST).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("jiffies: "))
        .and_then(|v| v.trim().parse().ok())
}

/// Rounds a measured rate to the nearest buildable CONFIG_HZ.
pub fn nearest_hz(measured: f64) -> u64 {
    CONFIG_HZ_CHOICES
        .into_iter()
        .min_by(|a, b| {
            let da = (*a as f64 - measured).abs();
            let db = (*b as f64 - measured).abs();
            da.total_cmp(&db)
        })
        .unwrap_or(FALLBACK_HZ)
}

/// Measures HZ (takes ~200 ms); falls back to [`FALLBACK_HZ`] with a warning.
pub fn kernel_hz() -> u64 {
    let (Some(j0), t0) = (read_jiffies(), Instant::now()) else {
        warn!("{TIMER_LIST} unreadable; assuming HZ={FALLBACK_HZ} (batch ageing may run long)");
        return FALLBACK_HZ;
    };
    std::thread::sleep(SAMPLE);
    let Some(j1) = read_jiffies() else {
        warn!("{TIMER_LIST} unreadable; assuming HZ={FALLBACK_HZ}");
        return FALLBACK_HZ;
    };
    let measured = j1.saturating_sub(j0) as f64 / t0.elapsed().as_secs_f64();
    let hz = nearest_hz(measured);
    debug!(measured, hz, "kernel tick rate");
    hz
}

/// `duration` in jiffies at `hz`, at least one.
pub fn to_jiffies(duration: Duration, hz: u64) -> u64 {
    ((duration.as_millis() as u64 * hz) / 1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_buildable_rates() {
        assert_eq!(nearest_hz(248.0), 250);
        assert_eq!(nearest_hz(262.4), 250);
        assert_eq!(nearest_hz(290.0), 300);
        assert_eq!(nearest_hz(95.0), 100);
        assert_eq!(nearest_hz(990.0), 1000);
    }

    #[test]
    fn converts_durations() {
        assert_eq!(to_jiffies(Duration::from_millis(200), 250), 50);
        assert_eq!(to_jiffies(Duration::from_millis(1), 100), 1, "never zero");
    }

    #[test]
    fn measures_this_kernel() {
        // /proc/timer_list is root-only; measure only where readable.
        if read_jiffies().is_none() {
            eprintln!("skipped: {TIMER_LIST} not readable here");
            return;
        }
        assert!(CONFIG_HZ_CHOICES.contains(&kernel_hz()));
    }
}
