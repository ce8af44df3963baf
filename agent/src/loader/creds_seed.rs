//! Seeds the kernel's per-thread record of credentials (`CREDS`) with the threads that were
//! running before vigil attached. The kernel side records a thread's ids at fork, at exec and
//! after each setuid-family call, and takes a call's "before" from that record, since it does
//! not trace syscall entries; without a seed, a thread older than vigil that changes its ids
//! would be reported with unknown ids before (and counted as `cred_change_before_unknown`).

use std::{fs, path::Path};

use agent_common::{Creds, names};
use aya::maps::{HashMap, Map, MapData};
use tracing::{debug, info};

use super::LoadError;
use crate::process::proc_seed;

/// `BPF_NOEXIST`: a thread the fork or exec probe recorded since attaching is newer than what
/// /proc said a moment before.
const NO_EXIST: u64 = 1;

/// What one seeding pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub seeded: usize,
    /// Threads gone, or whose status could not be parsed, between listing and reading.
    pub unreadable: usize,
    /// Threads the probes had recorded already (or the map refused).
    pub kept: usize,
}

/// Every thread under `proc_root` with its ids, as (tid, creds); unreadable ones counted.
pub fn threads(proc_root: &Path) -> (Vec<(u32, Creds)>, usize) {
    let mut out = Vec::new();
    let mut unreadable = 0;
    for pid in proc_seed::list_pids(proc_root).unwrap_or_default() {
        let Ok(tasks) = fs::read_dir(proc_root.join(pid.to_string()).join("task")) else {
            unreadable += 1;
            continue;
        };
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let status = fs::read_to_string(task.path().join("status")).ok();
            match status.as_deref().and_then(proc_seed::parse_status_creds) {
                Some(c) => out.push((tid, c)),
                None => unreadable += 1,
            }
        }
    }
    (out, unreadable)
}

/// Writes every thread's ids into `CREDS` unless the probes recorded that thread already.
pub fn seed(map: &mut Map, proc_root: &Path) -> Result<SeedReport, LoadError> {
    let name = names::MAP_CREDS;
    let mut creds: HashMap<&mut MapData, u32, Creds> =
        HashMap::try_from(map).map_err(|source| LoadError::Map { name, source })?;
    let (threads, unreadable) = threads(proc_root);
    let mut report = SeedReport {
        unreadable,
        ..Default::default()
    };
    for (tid, c) in threads {
        match creds.insert(tid, c, NO_EXIST) {
            Ok(()) => report.seeded += 1,
            Err(e) => {
                debug!(tid, error = %e, "thread's ids not seeded");
                report.kept += 1;
            }
        }
    }
    info!(
        seeded = report.seeded,
        kept = report.kept,
        unreadable = report.unreadable,
        "seeded the kernel's record of thread credentials from /proc"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_listed_per_task_and_the_unreadable_counted() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("10/task/11");
        fs::create_dir_all(&ok).unwrap();
        fs::write(ok.join("status"), "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n").unwrap();
        let bad = dir.path().join("10/task/12");
        fs::create_dir_all(&bad).unwrap();
        fs::write(bad.join("status"), "Uid:\t0\n").unwrap();
        fs::create_dir_all(dir.path().join("self")).unwrap();
        let (threads, unreadable) = threads(dir.path());
        assert_eq!(threads.len(), 1);
        assert_eq!(threads[0].0, 11);
        assert_eq!(unreadable, 1);
    }
}
