//! The kernel's own account of a BPF program's time (`kernel.bpf_stats_enabled`): run time and
//! run count per program, read from the `fdinfo` of the program fds a tracer holds. It times the
//! program body alone, without the tracepoint dispatch that every per-syscall tracer pays alike
//! and without what else the loop pays, so it isolates what vigil's program adds over the empty
//! probe's; it moves with the VM's speed too, by a few ns between runs here.

use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result};

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// One program's counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProgStats {
    pub id: u32,
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

/// Turns the statistics on while it lives (they cost every program run a clock read, so they
/// are on only for the pass that reads them), and restores the previous setting on drop.
pub(crate) struct StatsEnabled {
    previous: String,
}

impl StatsEnabled {
    pub(crate) fn on() -> Result<Self> {
        let previous = fs::read_to_string(SYSCTL).with_context(|| format!("reading {SYSCTL}"))?;
        fs::write(SYSCTL, "1\n").with_context(|| format!("writing 1 to {SYSCTL}"))?;
        Ok(Self { previous })
    }
}

impl Drop for StatsEnabled {
    fn drop(&mut self) {
        if let Err(e) = fs::write(SYSCTL, &self.previous) {
            eprintln!("bench: could not restore {SYSCTL}: {e}");
        }
    }
}

/// The counters of every BPF program process `pid` holds an fd of, one entry per program id.
pub(crate) fn of_process(pid: u32) -> Result<Vec<ProgStats>> {
    let fd_dir = format!("/proc/{pid}/fd");
    let mut out: Vec<ProgStats> = Vec::new();
    for entry in fs::read_dir(&fd_dir).with_context(|| format!("listing {fd_dir}"))? {
        let entry = entry.with_context(|| format!("listing {fd_dir}"))?;
        // An fd closed since the listing is simply not a program any more.
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        if target != Path::new("anon_inode:bpf-prog") {
            continue;
        }
        let info_path = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
        let Ok(info) = fs::read_to_string(&info_path) else {
            continue;
        };
        let stats = parse_fdinfo(&info).with_context(|| format!("parsing {info_path}"))?;
        if !out.iter().any(|s| s.id == stats.id) {
            out.push(stats);
        }
    }
    Ok(out)
}

/// `prog_id`, `run_time_ns` and `run_cnt` from a program fd's fdinfo text.
pub(crate) fn parse_fdinfo(text: &str) -> Result<ProgStats> {
    let field = |name: &str| -> Result<u64> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .with_context(|| format!("no `{name}` line"))?;
        line.trim()
            .parse()
            .with_context(|| format!("`{name}` is not a number: {:?}", line.trim()))
    };
    Ok(ProgStats {
        id: u32::try_from(field("prog_id")?).context("`prog_id` past u32")?,
        run_time_ns: field("run_time_ns")?,
        run_cnt: field("run_cnt")?,
    })
}

/// ns per run of the program that ran most between two snapshots (the per-syscall one, under a
/// syscall loop), with its run count; `None` if none ran.
pub(crate) fn busiest(before: &[ProgStats], after: &[ProgStats]) -> Option<(f64, u64)> {
    after
        .iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.id == a.id)?;
            let runs = a.run_cnt.checked_sub(b.run_cnt)?;
            let ns = a.run_time_ns.checked_sub(b.run_time_ns)?;
            (runs > 0).then_some((ns as f64 / runs as f64, runs))
        })
        .max_by_key(|&(_, runs)| runs)
}

#[cfg(test)]
mod tests {
    use super::{ProgStats, busiest, parse_fdinfo};

    const FDINFO: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t26\n\
                          prog_jited:\t1\nprog_tag:\t1b1d2e4c2c8bd4f3\nmemlock:\t4096\n\
                          prog_id:\t42\nrun_time_ns:\t123456\nrun_cnt:\t789\n\
                          recursion_misses:\t0\nverified_insns:\t312\n";

    #[test]
    fn fdinfo_fields_are_read_by_name() {
        let s = parse_fdinfo(FDINFO).expect("valid fdinfo");
        assert_eq!(
            s,
            ProgStats {
                id: 42,
                run_time_ns: 123456,
                run_cnt: 789
            }
        );
        let err = parse_fdinfo("prog_id:\t1\nrun_cnt:\t2\n").unwrap_err();
        assert!(format!("{err:#}").contains("run_time_ns"), "{err:#}");
        let err = parse_fdinfo("prog_id:\tx\nrun_time_ns:\t1\nrun_cnt:\t2\n").unwrap_err();
        assert!(format!("{err:#}").contains("prog_id"), "{err:#}");
    }

    #[test]
    fn the_busiest_program_is_the_one_that_ran_most() {
        let s = |id, run_time_ns, run_cnt| ProgStats {
            id,
            run_time_ns,
            run_cnt,
        };
        let before = [s(1, 1_000, 10), s(2, 0, 0)];
        let after = [s(1, 2_000, 20), s(2, 50_000, 1_000), s(3, 9, 9)];
        // Program 3 appeared after the first snapshot: nothing to compare it with.
        assert_eq!(busiest(&before, &after), Some((50.0, 1_000)));
        assert_eq!(busiest(&before, &before), None);
    }
}
