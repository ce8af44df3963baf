//! The few `/proc` reads quarantine needs: stat (parent, state, start time), the v2 cgroup line,
//! and who a process's children are.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub(super) use crate::process::proc_seed::{KTHREADD_PID, StatFields as Stat};
use crate::process::proc_seed::parse_stat;

fn proc_path(pid: u32, rest: &str) -> PathBuf {
    Path::new("/proc").join(pid.to_string()).join(rest)
}

fn read_stat_at(path: &Path) -> io::Result<Stat> {
    // open, read, close: quarantine reads every process's stat per descendant scan, while
    // `read_to_string` would add a statx and several growing reads (procfs sizes are 0).
    let mut buf = [0_u8; 2048];
    let mut file = fs::File::open(path)?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // A stat line always ends in a newline; without one it was cut short. Lossy: a process
    // must not hide from the scans by naming itself in invalid UTF-8.
    let text = String::from_utf8_lossy(&buf[..n]);
    Some(&*text)
        .filter(|t| t.ends_with('\n'))
        .and_then(parse_stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))
}

pub(super) fn read_stat(pid: u32) -> io::Result<Stat> {
    read_stat_at(&proc_path(pid, "stat"))
}

/// The thread-group id of `pid`, which differs from it when `pid` names a thread.
pub(super) fn read_tgid(pid: u32) -> io::Result<u32> {
    let text = fs::read_to_string(proc_path(pid, "status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Tgid in status"))
}

/// Whether `/proc/PID/exe` resolves; kernel threads (and zombies) have no executable.
pub(super) fn has_exe(pid: u32) -> bool {
    fs::read_link(proc_path(pid, "exe")).is_ok()
}

/// The v2 path from the `0::/path` line of `/proc/PID/cgroup`, relative to the cgroup2 root.
pub(super) fn v2_cgroup(pid: u32) -> io::Result<String> {
    let text = fs::read_to_string(proc_path(pid, "cgroup"))?;
    parse_v2_cgroup(&text)
        .map(str::to_owned)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup v2 line"))
}

pub(super) fn parse_v2_cgroup(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// Thread-group ids in `/proc` (threads are not listed there).
pub(super) fn list_pids() -> io::Result<Vec<u32>> {
    Ok(fs::read_dir("/proc")?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect())
}

/// Children of every thread of `pid` from `/proc/PID/task/*/children` (empty when the kernel
/// lacks CONFIG_PROC_CHILDREN). Quicker than a full scan, but only a hint: the file is not
/// guaranteed complete, so the caller also scans ppids.
pub(super) fn task_children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(proc_path(pid, "task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| {
            text.split_ascii_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// `(tid, state)` of every thread of `pid`.
pub(super) fn thread_states(pid: u32) -> Vec<(u32, char)> {
    let Ok(tasks) = fs::read_dir(proc_path(pid, "task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| {
            let tid = t.file_name().to_str()?.parse().ok()?;
            Some((tid, read_stat_at(&t.path().join("stat")).ok()?.state))
        })
        .collect()
}

/// The calling process and its ancestors up to pid 1: freezing any of them would freeze vigil.
pub(super) fn self_and_ancestors() -> Vec<u32> {
    let mut chain = vec![std::process::id()];
    let mut pid = std::process::id();
    // The bound guards against a ppid loop from a racing read; real chains are short.
    for _ in 0..4096 {
        match read_stat(pid) {
            Ok(stat) if stat.ppid != 0 => {
                chain.push(stat.ppid);
                pid = stat.ppid;
            }
            _ => break,
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_comm() {
        let text = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 \
                    1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_stat(text).unwrap();
        assert_eq!(&*stat.comm, "a) b (c)");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 17);
        assert_eq!(stat.start_ticks, 987_654);
        assert!(!stat.is_kernel_thread());
    }

    #[test]
    fn finds_the_v2_line_in_a_hybrid_cgroup_file() {
        let text = "12:pids:/user.slice\n1:name=systemd:/user.slice\n0::/user.slice/x.scope\n";
        assert_eq!(parse_v2_cgroup(text), Some("/user.slice/x.scope"));
        assert_eq!(parse_v2_cgroup("3:cpu:/\n"), None);
    }

    #[test]
    fn own_stat_reads_and_is_not_a_kernel_thread() {
        let me = read_stat(std::process::id()).unwrap();
        assert!(!me.is_kernel_thread());
        assert!(self_and_ancestors().contains(&1) || me.ppid == 0);
    }
}
