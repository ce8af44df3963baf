//! Reading processes from `/proc`. Used to seed the table at startup and, lazily, for events
//! about processes the table has not seen. Every process may vanish between two reads: a read
//! that finds it gone yields `Ok(None)`, never an error.

use std::fs;
use std::path::Path;

use tracing::trace;

use super::error::{ProcessError, is_vanished_io};
use super::info::{EXIT_CODE_UNKNOWN, ProcessInfo, ProcessSource, ProcessState};
use super::key::ProcessKey;

/// `PF_KTHREAD` in `/proc/PID/stat` field 9.
pub const PF_KTHREAD: u32 = 0x0020_0000;
/// kthreadd, the parent of every kernel thread.
pub const KTHREADD_PID: u32 = 2;

/// The fields of `/proc/PID/stat` the table uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatFields {
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    pub flags: u32,
    pub start_ticks: u64,
    /// Field 52 (Linux 3.5+), meaningful for zombies.
    pub exit_code: Option<u32>,
}

impl StatFields {
    /// A kernel thread: flagged so, or a child of kthreadd.
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0 || self.ppid == KTHREADD_PID
    }
}

/// Parses `/proc/PID/stat`. `comm` may itself contain spaces and parentheses, so it spans from
/// the first '(' to the LAST ')'; the numeric fields follow.
pub fn parse_stat(text: &str) -> Option<StatFields> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    // Index 0 is field 3 (state), so field N is at index N - 3.
    let rest: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    let state = field(3)?.chars().next()?;
    Some(StatFields {
        comm,
        state,
        ppid: field(4)?.parse().ok()?,
        flags: field(9)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
        exit_code: field(52).and_then(|f| f.parse().ok()),
    })
}

/// Real and effective ids from the `Uid:` and `Gid:` lines of `/proc/PID/status`:
/// `(uid, euid, gid, egid)`.
pub fn parse_status_ids(text: &str) -> Option<(u32, u32, u32, u32)> {
    parse_status_creds(text).map(|c| (c.uid, c.euid, c.gid, c.egid))
}

/// All four ids of each kind from the `Uid:` and `Gid:` lines of `/proc/PID/status` (real,
/// effective, saved, filesystem: the kernel always prints the four).
pub fn parse_status_creds(text: &str) -> Option<agent_common::Creds> {
    let ids = |prefix: &str| -> Option<[u32; 4]> {
        let line = text.lines().find_map(|l| l.strip_prefix(prefix))?;
        let mut it = line.split_ascii_whitespace().map(str::parse::<u32>);
        let mut out = [0; 4];
        for id in &mut out {
            *id = it.next()?.ok()?;
        }
        Some(out)
    };
    let [uid, euid, suid, fsuid] = ids("Uid:")?;
    let [gid, egid, sgid, fsgid] = ids("Gid:")?;
    Some(agent_common::Creds { uid, euid, suid, fsuid, gid, egid, sgid, fsgid })
}

/// `/proc/PID/cmdline` is NUL-terminated arguments; the final terminator does not start another.
pub fn split_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Numeric entries of `proc_root`: the thread-group ids (threads are not listed there).
pub fn list_pids(proc_root: &Path) -> Result<Vec<u32>, ProcessError> {
    let dir = fs::read_dir(proc_root).map_err(|e| ProcessError::io(proc_root, e))?;
    let mut pids: Vec<u32> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // Ascending pid order reads parents before most of their children; it also makes seeding
    // deterministic.
    pids.sort_unstable();
    Ok(pids)
}

/// What `/proc/PID` said about one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcSnapshot {
    pub tgid: u32,
    pub stat: StatFields,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    pub cmdline: Vec<String>,
    pub exe: String,
    pub kernel_thread: bool,
}

impl ProcSnapshot {
    pub fn key(&self) -> ProcessKey {
        ProcessKey::from_proc_ticks(self.tgid, self.stat.start_ticks)
    }

    /// A zombie has exited; only its parent's wait() is missing.
    pub fn is_zombie(&self) -> bool {
        matches!(self.stat.state, 'Z' | 'X')
    }

    pub fn into_info(self, source: ProcessSource, now: std::time::Instant) -> ProcessInfo {
        let mut info = ProcessInfo::minimal(self.key(), source, now);
        if self.is_zombie() {
            info.state = ProcessState::Exited {
                exit_code: self.stat.exit_code.unwrap_or(EXIT_CODE_UNKNOWN),
                at: now,
            };
        }
        info.ppid = self.stat.ppid;
        info.comm = self.stat.comm.into();
        info.exe = self.exe.into();
        info.cmdline = self.cmdline.into();
        info.uid = self.uid;
        info.euid = self.euid;
        info.gid = self.gid;
        info.egid = self.egid;
        info.kernel_thread = self.kernel_thread;
        info
    }
}

/// Reads one process. `Ok(None)` when it vanished while being read.
///
/// `stat` is read last: if it still answers, the process outlived the earlier reads, and the
/// start time it reports names the process they described (a pid recycled within one call
/// would need the whole pid space to wrap in microseconds).
pub fn read_process(proc_root: &Path, pid: u32) -> Result<Option<ProcSnapshot>, ProcessError> {
    let dir = proc_root.join(pid.to_string());

    let exe_path = dir.join("exe");
    let exe = match fs::read_link(&exe_path) {
        Ok(p) => p.to_string_lossy().into_owned(),
        // Kernel threads and zombies have no image; an unprivileged agent may not read other
        // users' links. Neither is a reason to drop the process.
        Err(e) => {
            trace!(pid, error = %e, "no exe link");
            String::new()
        }
    };

    let Some(cmdline) = read_optional(&dir.join("cmdline"))? else {
        return Ok(None);
    };
    let status_path = dir.join("status");
    let Some(status) = read_optional(&status_path)? else {
        return Ok(None);
    };
    let (uid, euid, gid, egid) =
        parse_status_ids(&String::from_utf8_lossy(&status)).ok_or(ProcessError::Parse {
            path: status_path,
            what: "Uid/Gid lines",
        })?;
    let stat_path = dir.join("stat");
    let Some(stat) = read_optional(&stat_path)? else {
        return Ok(None);
    };
    let stat = parse_stat(&String::from_utf8_lossy(&stat)).ok_or(ProcessError::Parse {
        path: stat_path,
        what: "stat line",
    })?;

    let kernel_thread = pid == KTHREADD_PID || stat.is_kernel_thread();
    Ok(Some(ProcSnapshot {
        tgid: pid,
        stat,
        uid,
        euid,
        gid,
        egid,
        cmdline: split_cmdline(&cmdline),
        exe,
        kernel_thread,
    }))
}

/// The file's bytes, or `None` when the process it belongs to is gone.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, ProcessError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if is_vanished_io(&e) => Ok(None),
        Err(e) => Err(ProcessError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_TAIL: &str = "0 0 4194560 100 0 0 0 3 1 0 0 20 0 1 0 5555 1000 10";

    #[test]
    fn stat_comm_with_spaces_and_parens() {
        let text = format!("123 (a) b (c)) S 77 123 123 {STAT_TAIL}\n");
        let s = parse_stat(&text).unwrap();
        assert_eq!(&*s.comm, "a) b (c)");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 77);
        assert_eq!(s.flags, 4194560);
        assert_eq!(s.start_ticks, 5555);
        assert_eq!(s.exit_code, None, "short line has no field 52");
    }

    #[test]
    fn stat_garbage_is_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("1 (x"), None);
        assert_eq!(parse_stat("1 (x) S 0"), None);
        assert_eq!(parse_stat("1 (x) S notanumber 1 1 0 0 0"), None);
    }

    #[test]
    fn status_real_and_effective_ids() {
        let text = "Name:\tsu\nUid:\t1000\t0\t0\t0\nGid:\t100\t101\t101\t101\n";
        assert_eq!(parse_status_ids(text), Some((1000, 0, 100, 101)));
        assert_eq!(parse_status_ids("Name:\tx\n"), None);
    }

    #[test]
    fn all_four_ids_of_each_kind_are_read() {
        let text = "Name:\tsu\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t100\t101\t102\t103\nGroups:\t4 24\n";
        assert_eq!(
            parse_status_creds(text),
            Some(agent_common::Creds {
                uid: 1000,
                euid: 0,
                suid: 0,
                fsuid: 0,
                gid: 100,
                egid: 101,
                sgid: 102,
                fsgid: 103
            })
        );
    }

    #[test]
    fn a_short_or_missing_line_is_no_answer() {
        assert_eq!(
            parse_status_creds("Uid:\t1\t2\t3\nGid:\t1\t2\t3\t4\n"),
            None
        );
        assert_eq!(parse_status_creds("Uid:\t1\t2\t3\t4\n"), None);
        assert_eq!(
            parse_status_creds("Uid:\t1\tx\t3\t4\nGid:\t1\t2\t3\t4\n"),
            None
        );
    }

    #[test]
    fn cmdline_split() {
        assert_eq!(split_cmdline(b"ls\0-l\0\0x\0"), ["ls", "-l", "", "x"]);
        assert_eq!(split_cmdline(b"no-nul"), ["no-nul"]);
        assert!(split_cmdline(b"").is_empty());
        assert!(split_cmdline(b"\0").is_empty());
    }
}
