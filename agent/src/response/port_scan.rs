//! Port scans, told from a program's ordinary connects by their shape: many ports of one host
//! (a vertical scan) or one port of many hosts (a sweep) within a few seconds, mostly finding
//! nothing there. No rule can name the target of a scan in advance; its shape is the same
//! whatever tool makes it.
//!
//! Connects count for the process that made them and for its parent: a shell sweep
//! (`for p in ...; do (echo >/dev/tcp/$h/$p); done`) connects once from each of hundreds of
//! subshells, and `xargs -P` or `parallel` drive `nc` the same way.
//!
//! Why "mostly nothing there": test suites and service meshes connect to many ports of
//! localhost too, and find every one of them listening. A non-blocking connect (nmap -sT,
//! `nc -z`, every async client) returns before the answer, so its outcome is unknown here and
//! it never counts as a success.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    time::{Duration, Instant},
};

use super::actors::{Activity, Actors};

/// How far back connects count.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Distinct ports of one host, within [`WINDOW`], of which at most a quarter accepted: a
/// vertical scan. Monitoring agents probe a handful of local services per interval; 32 is
/// above what one does, and far below what any scan of the well-known ports makes.
pub const PORTS_OF_ONE_HOST: usize = 32;
/// Distinct hosts on one port, within [`WINDOW`], of which at least half refused or were
/// unreachable: a sweep. Crawlers and proxies reach as many hosts, but find them there.
pub const HOSTS_ON_ONE_PORT: usize = 64;
/// Processes (and parents) followed at once. Past this, ones idle for a window are forgotten
/// (a scan reported already and resumed later is deduplicated by the responder); a new one
/// finding the table still full is not followed, and counted.
const MAX_ACTORS: usize = 4096;
/// Hosts (or ports) followed per process; past this, the stale ones are forgotten.
const MAX_KEYS: usize = 1024;

/// What a connect's result says about what was there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Connected,
    /// Non-blocking: the answer comes later, unseen here.
    Pending,
    /// Nothing listening, or no route to it.
    Refused,
    /// Anything else (a local refusal such as a deny rule's EPERM, a bad address).
    Other,
}

impl Outcome {
    pub fn of(ret: i32) -> Self {
        if ret == 0 {
            return Outcome::Connected;
        }
        match -ret {
            libc::EINPROGRESS | libc::EALREADY | libc::EAGAIN => Outcome::Pending,
            libc::ECONNREFUSED
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::ETIMEDOUT
            | libc::EHOSTDOWN
            | libc::ECONNRESET => Outcome::Refused,
            _ => Outcome::Other,
        }
    }
}

/// The outcomes of the distinct connects in a window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    total: usize,
    connected: usize,
    pending: usize,
    refused: usize,
    other: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            (self.connected, "accepted"),
            (self.refused, "refused or unreachable"),
            (self.pending, "in progress"),
            (self.other, "failed otherwise"),
        ];
        let shown: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        f.write_str(&shown.join(", "))
    }
}

/// A scan found: what the operator reads in the incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Index into the actors passed to [`ScanWatch::on_connect`]: who gets the incident.
    pub actor: usize,
    pub detail: String,
}

/// The distinct keys (ports of a host, or hosts on a port) seen lately, each with its last
/// outcome.
struct Distinct<K>(HashMap<K, (Instant, Outcome)>);

impl<K: Hash + Eq + Copy> Distinct<K> {
    /// Adds one connect; once `threshold` keys are within the window, returns their outcomes.
    /// Holds at most `threshold` keys.
    fn add(&mut self, key: K, now: Instant, outcome: Outcome, threshold: usize) -> Option<Tally> {
        self.0.insert(key, (now, outcome));
        if self.0.len() < threshold {
            return None;
        }
        self.0.retain(|_, (t, _)| now.duration_since(*t) <= WINDOW);
        if self.0.len() < threshold {
            return None;
        }
        let mut found = Tally {
            total: self.0.len(),
            ..Tally::default()
        };
        for (_, o) in self.0.values() {
            *match o {
                Outcome::Connected => &mut found.connected,
                Outcome::Pending => &mut found.pending,
                Outcome::Refused => &mut found.refused,
                Outcome::Other => &mut found.other,
            } += 1;
        }
        // Keep the newest threshold - 1: each further connect is judged on a full window.
        if let Some(oldest) = self.0.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k) {
            self.0.remove(&oldest);
        }
        Some(found)
    }

    fn is_stale(&self, now: Instant) -> bool {
        self.0
            .values()
            .all(|(t, _)| now.duration_since(*t) > WINDOW)
    }
}

impl<K> Default for Distinct<K> {
    fn default() -> Self {
        Distinct(HashMap::new())
    }
}

#[derive(Default)]
pub(super) struct Fanout {
    ports_of_host: HashMap<IpAddr, Distinct<u16>>,
    hosts_on_port: HashMap<u16, Distinct<IpAddr>>,
    last: Option<Instant>,
    /// One incident per actor: a scan of 65535 ports is one scan.
    reported: bool,
}

impl Activity for Fanout {
    fn last(&self) -> Option<Instant> {
        self.last
    }
}

impl Fanout {
    fn add(&mut self, addr: IpAddr, port: u16, outcome: Outcome, now: Instant) -> Option<String> {
        self.last = Some(now);
        bound(&mut self.ports_of_host, now);
        bound(&mut self.hosts_on_port, now);
        let vertical =
            self.ports_of_host
                .entry(addr)
                .or_default()
                .add(port, now, outcome, PORTS_OF_ONE_HOST);
        if let Some(t) = vertical
            && t.connected * 4 <= t.total
        {
            return Some(format!(
                "connects to {} ports of {addr} within {}s: {t}",
                t.total,
                WINDOW.as_secs()
            ));
        }
        let sweep =
            self.hosts_on_port
                .entry(port)
                .or_default()
                .add(addr, now, outcome, HOSTS_ON_ONE_PORT);
        if let Some(t) = sweep
            && t.refused * 2 >= t.total
        {
            return Some(format!(
                "connects to port {port} of {} hosts within {}s: {t}",
                t.total,
                WINDOW.as_secs()
            ));
        }
        None
    }
}

/// Forgets the stale keys of a map grown past [`MAX_KEYS`], and all of them if none is stale:
/// a process connecting everywhere all the time (a crawler) cannot grow vigil without bound.
fn bound<K: Hash + Eq, D: Hash + Eq + Copy>(map: &mut HashMap<K, Distinct<D>>, now: Instant) {
    if map.len() >= MAX_KEYS {
        map.retain(|_, d| !d.is_stale(now));
        if map.len() >= MAX_KEYS {
            map.clear();
        }
    }
}

/// Connect fan-out per process and per parent, keyed by whatever identifies a process for the
/// caller.
pub struct ScanWatch<Id> {
    actors: Actors<Id, Fanout>,
}

impl<Id: Hash + Eq + Copy> Default for ScanWatch<Id> {
    fn default() -> Self {
        ScanWatch {
            actors: Actors::new(MAX_ACTORS, WINDOW),
        }
    }
}

impl<Id: Hash + Eq + Copy> ScanWatch<Id> {
    /// One outbound connect by `actors[0]`, counted for every actor given (the process, then
    /// its parent). Returns the first actor this connect shows to be scanning.
    pub fn on_connect(
        &mut self,
        actors: &[Id],
        addr: IpAddr,
        port: u16,
        ret: i32,
        now: Instant,
    ) -> Option<Scan> {
        let outcome = Outcome::of(ret);
        let mut found = None;
        for (i, actor) in actors.iter().enumerate() {
            let Some(fanout) = self.actors.follow(*actor, now) else {
                continue;
            };
            if fanout.reported {
                continue;
            }
            if let Some(detail) = fanout.add(addr, port, outcome, now) {
                fanout.reported = true;
                // Its keys are no longer needed; the flag stays until it exits.
                fanout.ports_of_host.clear();
                fanout.hosts_on_port.clear();
                found.get_or_insert(Scan { actor: i, detail });
            }
        }
        found
    }

    pub fn on_exit(&mut self, actor: &Id) {
        self.actors.remove(actor);
    }

    /// Processes not followed because the table was full of active ones.
    pub fn untracked(&self) -> u64 {
        self.actors.untracked
    }
}

#[cfg(test)]
#[path = "port_scan_tests.rs"]
mod tests;
