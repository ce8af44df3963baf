//! Programs a network client wrote. The kernel's exec record names the process whose `O_CREAT`
//! open last made the image (`CreatedBy`, `agent-ebpf/src/created.rs`); this remembers which
//! processes made or accepted an internet connection, from the same event stream, so an exec
//! can say "written 2s before by curl, which connected" whatever the file is called and
//! wherever it lies. The writer's parent counts as well: `exec 3<>/dev/tcp/h/p; cat <&3 >x`
//! connects in the shell and writes in its forked child.

use std::{collections::HashMap, net::IpAddr, sync::Arc, time::Instant};

use agent_common::CreatedBy;

use crate::process::ProcessKey;

/// Processes remembered at most; past it the oldest quarter is forgotten at once, so a host
/// that connects from ever new processes pays for the eviction rarely.
const MAX_PEERS: usize = 8192;

/// A program written by a process that made or accepted an internet connection (or by the
/// child of one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Download {
    /// The executable of the process that connected, as it was at its last connect.
    pub downloader: Arc<str>,
    pub downloader_pid: u32,
    /// The process whose open created or truncated the image.
    pub writer_pid: u32,
    pub secs_before_exec: u64,
    /// The script an interpreter ran, when that is what was downloaded rather than the image.
    pub script: Option<Arc<str>>,
}

impl Download {
    /// For the incident's detail.
    pub fn describe(&self) -> String {
        let n = self.secs_before_exec;
        // The table may not have known the executable (a process older than vigil's scan).
        let who = if self.downloader.is_empty() {
            format!("pid {}", self.downloader_pid)
        } else {
            format!("{} (pid {})", self.downloader, self.downloader_pid)
        };
        let what = match &self.script {
            Some(path) => format!("script {path}"),
            None => "image".to_string(),
        };
        if self.writer_pid == self.downloader_pid {
            format!("{what} written {n}s before the exec by {who}, which made or accepted an internet connection")
        } else {
            format!(
                "{what} written {n}s before the exec by pid {}, a child of {who}, which made or accepted an internet connection",
                self.writer_pid
            )
        }
    }
}

struct Peer {
    exe: Arc<str>,
    /// The connecting process's start (`ProcessKey::start_ns`): a later process that reuses
    /// the pid did not connect.
    start_ns: u64,
    at: Instant,
    /// The peer of the last connection it accepted, if it ever accepted one: it serves.
    accepted_from: Option<IpAddr>,
}

/// tgid -> the executable it had when it last made or accepted an internet connection.
#[derive(Default)]
pub(super) struct NetPeers {
    by_tgid: HashMap<u32, Peer>,
    /// Processes forgotten to stay within `MAX_PEERS`; reported in status.
    pub forgotten: u64,
}

impl NetPeers {
    /// `accepted_from`: the peer, when it accepted the connection rather than made it.
    pub fn connected(&mut self, key: ProcessKey, exe: Arc<str>, accepted_from: Option<IpAddr>) {
        if self.by_tgid.len() >= MAX_PEERS && !self.by_tgid.contains_key(&key.tgid) {
            self.forget_oldest(MAX_PEERS / 4);
        }
        // A server that also connects out (to its database, an upstream) still serves.
        let served_before = self
            .by_tgid
            .get(&key.tgid)
            .filter(|p| p.start_ns == key.start_ns)
            .and_then(|p| p.accepted_from);
        self.by_tgid.insert(
            key.tgid,
            Peer {
                exe,
                start_ns: key.start_ns,
                at: Instant::now(),
                accepted_from: accepted_from.or(served_before),
            },
        );
    }

    /// The peer of the last internet connection this process (not an earlier one with its
    /// pid) accepted, if it accepted any since vigil started, as far as the table remembers.
    pub fn accepted_from(&self, key: ProcessKey) -> Option<IpAddr> {
        self.by_tgid
            .get(&key.tgid)
            .filter(|p| p.start_ns == key.start_ns)
            .and_then(|p| p.accepted_from)
    }

    /// Whether this process itself (not an earlier one with its pid) made or accepted an
    /// internet connection since vigil started, as far as the table remembers.
    pub fn has_connected(&self, key: ProcessKey) -> bool {
        self.by_tgid
            .get(&key.tgid)
            .is_some_and(|p| p.start_ns == key.start_ns)
    }

    fn forget_oldest(&mut self, n: usize) {
        let mut ages: Vec<(Instant, u32)> = self.by_tgid.iter().map(|(t, p)| (p.at, *t)).collect();
        ages.sort_unstable();
        for (_, tgid) in ages.into_iter().take(n) {
            self.by_tgid.remove(&tgid);
        }
        self.forgotten += n as u64;
    }

    /// Whether the image an exec at `exec_ktime_ns` runs was written by a network client:
    /// the writer itself, else the parent it was forked from.
    pub fn download(&self, written: &CreatedBy, exec_ktime_ns: u64) -> Option<Download> {
        if written.tgid == 0 {
            return None;
        }
        let (pid, peer) = [written.tgid, written.parent_tgid]
            .into_iter()
            .filter(|t| *t != 0)
            .find_map(|t| self.by_tgid.get(&t).map(|p| (t, p)))?;
        Some(Download {
            downloader: Arc::clone(&peer.exe),
            downloader_pid: pid,
            writer_pid: written.tgid,
            secs_before_exec: exec_ktime_ns.saturating_sub(written.ns) / 1_000_000_000,
            script: None,
        })
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_tgid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(tgid: u32, parent_tgid: u32, ns: u64) -> CreatedBy {
        CreatedBy { tgid, parent_tgid, ns }
    }

    #[test]
    fn the_writer_or_its_parent_must_have_connected() {
        let mut peers = NetPeers::default();
        peers.connected(ProcessKey::new(100, 0), "/usr/bin/curl".into(), None);
        peers.connected(ProcessKey::new(200, 0), "/usr/bin/bash".into(), None);
        let curl = peers.download(&written(100, 50, 1_000_000_000), 4_500_000_000).expect("curl wrote it");
        assert_eq!((curl.downloader.as_ref(), curl.downloader_pid, curl.writer_pid), ("/usr/bin/curl", 100, 100));
        assert_eq!(curl.secs_before_exec, 3);
        assert_eq!(
            curl.describe(),
            "image written 3s before the exec by /usr/bin/curl (pid 100), which made or accepted an internet connection"
        );
        // A shell child that wrote what its parent's /dev/tcp connection read.
        let child = peers.download(&written(201, 200, 0), 0).expect("the parent connected");
        assert_eq!((child.downloader_pid, child.writer_pid), (200, 201));
        assert!(child.describe().contains("by pid 201, a child of /usr/bin/bash (pid 200)"), "{}", child.describe());
        // cp, a compiler, an unpacker: nobody in the line connected.
        assert_eq!(peers.download(&written(300, 301, 0), 0), None);
        // No create seen (the image predates vigil): nothing to say.
        assert_eq!(peers.download(&CreatedBy::default(), 0), None);
        peers.connected(ProcessKey::new(500, 0), "".into(), None);
        let unknown = peers.download(&written(500, 0, 0), 0).expect("connected");
        assert!(unknown.describe().contains("by pid 500, which made"), "{}", unknown.describe());
        // Init's children carry parent 0, which names nobody.
        peers.connected(ProcessKey::new(0, 0), "/sbin/init".into(), None);
        assert_eq!(peers.download(&written(400, 0, 0), 0), None);
    }

    #[test]
    fn a_connection_belongs_to_the_process_that_made_it_not_its_pid() {
        let mut peers = NetPeers::default();
        peers.connected(ProcessKey::new(100, 5_000), "/usr/bin/python3".into(), None);
        assert!(peers.has_connected(ProcessKey::new(100, 5_000)));
        // The pid reused by a later process, and a process that never connected.
        assert!(!peers.has_connected(ProcessKey::new(100, 9_000)));
        assert!(!peers.has_connected(ProcessKey::new(101, 5_000)));
    }

    #[test]
    fn a_server_stays_one_when_it_connects_out_and_its_pid_is_not_it() {
        let mut peers = NetPeers::default();
        let server = ProcessKey::new(100, 5_000);
        let client = IpAddr::from([192, 0, 2, 7]);
        peers.connected(server, "/usr/bin/python3".into(), None);
        assert_eq!(peers.accepted_from(server), None, "it only connected");
        peers.connected(server, "/usr/bin/python3".into(), Some(client));
        peers.connected(server, "/usr/bin/python3".into(), None);
        assert_eq!(peers.accepted_from(server), Some(client), "connecting to its database after");
        assert!(peers.has_connected(server));
        assert_eq!(peers.accepted_from(ProcessKey::new(100, 9_000)), None, "the pid reused");
        peers.connected(ProcessKey::new(100, 9_000), "/usr/bin/curl".into(), None);
        assert_eq!(peers.accepted_from(ProcessKey::new(100, 9_000)), None, "nothing inherited from the pid");
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest() {
        let mut peers = NetPeers::default();
        for t in 1..=MAX_PEERS as u32 {
            peers.connected(ProcessKey::new(t, 0), "/usr/bin/curl".into(), None);
        }
        assert_eq!(peers.len(), MAX_PEERS);
        // Reconnecting a known process is an update, not growth.
        peers.connected(ProcessKey::new(MAX_PEERS as u32, 0), "/usr/bin/wget".into(), None);
        assert_eq!((peers.len(), peers.forgotten), (MAX_PEERS, 0));
        peers.connected(ProcessKey::new(MAX_PEERS as u32 + 1, 0), "/usr/bin/curl".into(), None);
        assert_eq!(peers.len(), MAX_PEERS - MAX_PEERS / 4 + 1);
        assert_eq!(peers.forgotten, (MAX_PEERS / 4) as u64);
        assert!(peers.download(&written(1, 0, 0), 0).is_none(), "the oldest went first");
        assert!(peers.download(&written(MAX_PEERS as u32 + 1, 0, 0), 0).is_some());
        let w = peers.download(&written(MAX_PEERS as u32, 0, 0), 0).expect("kept");
        assert_eq!(w.downloader.as_ref(), "/usr/bin/wget");
    }
}
