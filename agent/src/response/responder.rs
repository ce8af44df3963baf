//! The deciding half of the response stage. It lives in the process stage, next to the table it
//! reads, and turns execs, connects, security events and score rises into [`Decision`]s. It
//! never blocks: carrying a decision out (signals, cgroups, disk, journald) is the actor's job.
//!
//! Safety is decided here, before anything reaches the actor, and again by the actor and the
//! quarantine manager for the cases they can see (pid 1, kernel threads, vigil itself).

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use agent_common::{
    CHURN_CREATED, CHURN_REWRITTEN, EventKind, ExecEvent, FileChurnEvent, FileEvent,
    MEMORY_READ_PROC_ENVIRON, MEMORY_READ_PROC_MEM, MEMORY_WRITE_PROC_MEM, NetEvent,
    PathChangeEvent, PreloadEvent, PtraceEvent, S_IFIFO, S_IFSOCK, syscall_nr as nr,
};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::{
    actor::ActorMsg,
    decision::{Act, Decision, Target},
    downloads::{Download, NetPeers},
    exec_memo::{ExecMemo, ExecSeen, Served},
    encryption::{self, EncryptWatch},
    file_watches::FileWatchIndex,
    masquerade::kernel_thread_disguise,
    mass_replace::ReplaceWatch,
    piped::{
        Feed, Fetch, PipedWatch, code_argument, decodes, describe_relay, reads_program_from_stdin,
    },
    deleted_image::{DeletedImages, deleted_image},
    port_scan::ScanWatch,
    ratelimit::{Admit, RateLimit},
    scripts::{self, FileWriters},
};
use crate::{
    model::Verdict,
    pipeline::scorer::ScoreUpdate,
    policy::{
        Action, ConnectContext, EventContext, FileAccess, FileContext, Mode, Policy,
        SecurityEvent,
    },
    process::{ProcessKey, ProcessTable},
    sequence::BehaviourSequences,
};

/// Counters the status reports.
#[derive(Debug, Default)]
pub struct ResponseStats {
    pub decisions: AtomicU64,
    /// Decisions lost because the actor's queue was full.
    pub dropped: AtomicU64,
    /// Kernel protect/unprotect updates lost because the actor's queue was full.
    pub protect_updates_dropped: AtomicU64,
    pub suppressed: AtomicU64,
    /// File opens whose watch had been replaced before they were read (not matched).
    pub file_events_unnamed: AtomicU64,
    /// Processes whose connects were not followed for port scans: the table was full.
    pub scan_actors_untracked: AtomicU64,
    /// Processes whose file churn was not followed for mass replacement: the table was full.
    pub churn_actors_untracked: AtomicU64,
    /// Processes with an internet connection forgotten to keep that table bounded: a program
    /// one of them wrote no longer counts as downloaded.
    pub net_peers_forgotten: AtomicU64,
    /// Pipelines (and processes on a pipe) forgotten to keep the `curl | sh` watch bounded.
    pub pipelines_forgotten: AtomicU64,
}

/// Decisions wait here while the actor works (a quarantine takes milliseconds).
pub const ACTOR_QUEUE: usize = 1024;

/// A process as the responder's sets know it: (tgid, start in clock ticks). Keys seeded from
/// /proc are tick-rounded while event keys are exact; at tick precision both name the same
/// process.
type Id = (u32, u64);

fn id(key: ProcessKey) -> Id {
    (key.tgid, key.start_ticks())
}

pub struct Responder {
    policy: watch::Receiver<Arc<Policy>>,
    /// Processes found protected at any exec or at first sight stay protected until they exit:
    /// a protected daemon that execs something else is still the host's daemon.
    protected: HashSet<Id>,
    /// Why a process is suspicious beyond its score (a rule hit, ptrace, memfd...): what turns a
    /// model verdict into a quarantine or kill when the policy wants corroboration.
    corroborated: HashMap<Id, &'static str>,
    /// (process, reason) pairs already decided: one incident per cause, not one per event.
    decided: HashSet<(Id, String)>,
    /// Model verdicts held back for want of corroboration, re-decided when it arrives.
    held: HashMap<Id, ScoreUpdate>,
    execs: HashMap<Id, ExecSeen>,
    exec_memo: ExecMemo,
    limiter: RateLimit,
    /// Alerts have their own, larger budget: a rule that matches everything in monitor mode must
    /// not bury the journal either.
    alert_limiter: RateLimit,
    actor: mpsc::Sender<ActorMsg>,
    self_tgid: u32,
    /// Paths of the inodes the kernel watches for `rule.file`.
    files: FileWatchIndex,
    scans: ScanWatch<Id>,
    replacements: ReplaceWatch<Id>,
    encryptions: EncryptWatch<Id>,
    /// Processes that made or accepted an internet connection, for `rule.exec.downloaded`.
    net_peers: NetPeers,
    /// Shells reading a program from a pipe, and connections their siblings made.
    piped: PipedWatch,
    /// Processes found running a deleted program.
    deleted: DeletedImages,
    /// The kernel's writer of each file lately created, for scripts interpreters run.
    writers: Option<FileWriters>,
    /// Security services whose signals from others the kernel reports (`SIGNAL_GUARDED`).
    guarded: HashSet<Id>,
    /// Each process's working directory as its exec found it: a relative path it wrote is
    /// still resolved once it has exited.
    cwds: HashMap<Id, PathBuf>,
    pub stats: Arc<ResponseStats>,
}

impl Responder {
    pub fn new(
        policy: watch::Receiver<Arc<Policy>>,
        actor: mpsc::Sender<ActorMsg>,
        files: FileWatchIndex,
    ) -> Self {
        let limits = policy.borrow().response;
        Self {
            policy,
            protected: HashSet::new(),
            corroborated: HashMap::new(),
            decided: HashSet::new(),
            held: HashMap::new(),
            execs: HashMap::new(),
            exec_memo: ExecMemo::default(),
            limiter: RateLimit::new(limits.max_actions, Duration::from_secs(limits.per_seconds)),
            alert_limiter: RateLimit::new(
                limits.max_actions.saturating_mul(ALERTS_PER_ACTION),
                Duration::from_secs(limits.per_seconds),
            ),
            actor,
            self_tgid: std::process::id(),
            files,
            scans: ScanWatch::default(),
            replacements: ReplaceWatch::default(),
            encryptions: EncryptWatch::default(),
            net_peers: NetPeers::default(),
            piped: PipedWatch::default(),
            deleted: DeletedImages::default(),
            writers: None,
            guarded: HashSet::new(),
            cwds: HashMap::new(),
            stats: Arc::new(ResponseStats::default()),
        }
    }

    /// Gives the responder the kernel's map of file writers: without it, a script an
    /// interpreter runs is never found downloaded.
    pub fn set_file_writers(&mut self, writers: FileWriters) {
        self.writers = Some(writers);
    }

    /// A script a network client wrote, run by `key`'s interpreter: the image is long
    /// installed, the program is the script.
    fn script_download(
        &self,
        table: &ProcessTable,
        key: ProcessKey,
        filename: &str,
        image: Option<&str>,
        argv: &[String],
        at_ns: u64,
    ) -> Option<Download> {
        let writers = self.writers.as_ref()?;
        let script = scripts::script_operand(filename, image, argv)?;
        // Through the process's own root and directory. Once it has exited (a short script),
        // the path as given, or, relative, through its parent's directory, which the shell
        // that typed `sh x.sh` shares with it.
        let parent = table.get_key(&key).and_then(|p| p.parent_key()).map(|k| k.tgid);
        let by = writers
            .writer_of(&scripts::in_process(key.tgid, script))
            .or_else(|| {
                if script.starts_with('/') {
                    writers.writer_of(Path::new(script))
                } else {
                    writers.writer_of(&scripts::in_process(parent?, script))
                }
            })?;
        let mut download = self.net_peers.download(&by, at_ns)?;
        download.script = Some(script.into());
        Some(download)
    }

    fn current(&mut self) -> Arc<Policy> {
        if self.policy.has_changed().unwrap_or(false) {
            let p = self.policy.borrow_and_update().clone();
            self.limiter.reconfigure(
                p.response.max_actions,
                Duration::from_secs(p.response.per_seconds),
            );
            self.alert_limiter.reconfigure(
                p.response.max_actions.saturating_mul(ALERTS_PER_ACTION),
                Duration::from_secs(p.response.per_seconds),
            );
            // Protection follows the policy: recomputed at each process's next exec.
            return p;
        }
        self.policy.borrow().clone()
    }

    /// Every process in the table at start, so protected daemons are known before they exec.
    pub fn seed(&mut self, table: &ProcessTable) {
        let policy = self.current();
        for p in table.iter() {
            if self.is_protected(&policy, p.key, &p.exe, &p.comm, p.kernel_thread) {
                self.protect(p.key, p.kernel_thread);
            }
            self.guard_if_security_service(p.key, &p.exe);
        }
    }

    /// Guards the signals of a security service (by its image's name), and stops guarding a
    /// process that exec'd something else.
    fn guard_if_security_service(&mut self, key: ProcessKey, image: &str) {
        let service = is_security_service(image);
        if service && self.guarded.insert(id(key)) {
            self.send_protect(ActorMsg::Guard(key.tgid));
        } else if !service && self.guarded.remove(&id(key)) {
            self.send_protect(ActorMsg::Unguard(key.tgid));
        }
    }

    /// pid 1, kthreadd and kernel threads, vigil, and what the policy protects, judged on the
    /// image the process actually runs (`/proc/PID/exe`) when it can be read: the exec'd name
    /// may be a relative path or a symlink.
    fn is_protected(
        &self,
        policy: &Policy,
        key: ProcessKey,
        exe: &str,
        comm: &str,
        kthread: bool,
    ) -> bool {
        self.is_protected_image(
            policy,
            key,
            image_of(key.tgid).as_deref(),
            exe,
            comm,
            kthread,
        )
    }

    /// [`Self::is_protected`] with the image already read (an exec reads it once for both).
    fn is_protected_image(
        &self,
        policy: &Policy,
        key: ProcessKey,
        image: Option<&str>,
        exe: &str,
        comm: &str,
        kthread: bool,
    ) -> bool {
        key.tgid <= 2
            || kthread
            || key.tgid == self.self_tgid
            || policy.protected(image.unwrap_or(exe), comm)
    }

    fn protect(&mut self, key: ProcessKey, kthread: bool) {
        // The kernel spares pid 1, kthreadd and vigil itself on its own, and kernel threads
        // never exec: only the rest is worth a map entry.
        let in_kernel = !(key.tgid <= 2 || kthread || key.tgid == self.self_tgid);
        if self.protected.insert(id(key)) && in_kernel {
            self.send_protect(ActorMsg::Protect(key.tgid));
        }
    }

    /// `running`: the image the process runs (`/proc/PID/exe`), read by the caller along with
    /// the image it hashes; `None` once the process has exited.
    pub fn on_exec(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        ev: &ExecEvent,
        running: Option<String>,
    ) {
        let policy = self.current();
        let Some(info) = table.get_key(&key) else {
            return;
        };
        if self.is_protected_image(
            &policy,
            key,
            running.as_deref(),
            &info.exe,
            &info.comm,
            info.kernel_thread,
        ) {
            self.protect(key, info.kernel_thread);
        }
        self.guard_if_security_service(key, running.as_deref().unwrap_or(&info.exe));
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{}/cwd", key.tgid)) {
            self.cwds.insert(id(key), cwd);
        }
        let filename = ev.filename();
        let args = &ev.args[..(ev.args_len as usize).min(ev.args.len())];
        let disguise = kernel_thread_disguise(args, &filename);
        let fileless = running.as_deref().is_some_and(|p| p.starts_with("/memfd:"));
        // fexecve of a memfd shows as /dev/fd/N, a script as itself: the running image says
        // what it really is (the interpreter, /memfd:name).
        let image = running.filter(|p| *p != filename);
        let parent_exe = info
            .parent_key()
            .and_then(|k| table.get_key(&k))
            .map(|p| p.exe.to_string());
        let download = self
            .net_peers
            .download(&ev.written_by, ev.header.ktime_ns)
            .or_else(|| {
                self.script_download(
                    table,
                    key,
                    &filename,
                    image.as_deref(),
                    &info.cmdline,
                    ev.header.ktime_ns,
                )
            });
        let seen = ExecSeen {
            filename,
            image,
            parent_exe,
            stdio_socket: ev.stdio_socket(),
            parent_stdio_socket: ev.parent_stdio_socket(),
            image_changed_secs_ago: policy
                .max_changed_within()
                .and_then(|max| changed_secs_ago(&ev.image).filter(|age| *age <= max)),
            download,
            served_by: self.server_of(table, key),
        };
        let kernel_rule = ev
            .denied_by()
            .and_then(|i| policy.rule_name(i).map(str::to_owned));
        // Fileless execution corroborates whatever the rules say about it. memfd_create alone
        // does not: systemd, JVMs, browsers and Wayland clients use memfds all the time.
        if fileless {
            self.corroborate(table, seqs, key, "memfd exec");
        }
        let hits = self
            .exec_memo
            .hits(&policy, &seen, None, &info.cmdline);
        let matched = Matched::Exec {
            changed: seen.image_changed_secs_ago,
            download: seen.download.as_ref().map(Download::describe),
            served: seen.served_by.as_ref().map(Served::describe),
        };
        self.execs.insert(id(key), seen);
        if let Some(rule) = kernel_rule {
            let target = Target::from_table(table, seqs, key);
            self.corroborate(table, seqs, key, "rule");
            self.decided.insert((id(key), rule.clone()));
            self.emit(Decision {
                act: Act::Kill,
                target,
                reason: rule,
                score: None,
                held_back: None,
                killed_in_kernel: true,
                spare: Vec::new(),
                detail: None,
            });
            return;
        }
        self.rule_hits(&policy, table, seqs, key, hits, matched);
        if let Some(detail) = disguise {
            self.on_security_event(table, seqs, key, SecurityEvent::FakeKernelThread, detail);
        }
        let (stdin_pipe, stdout_pipe) = (ev.stdio_modes[0] == S_IFIFO, ev.stdio_modes[1] == S_IFIFO);
        // A socket pair, or any socket but an internet one (`shell-on-socket` has those).
        let stdin_local_socket = ev.stdio_modes[0] == S_IFSOCK && ev.stdio_inet & 1 == 0;
        // An argument that is not UTF-8 reads as a script path: not a reader of stdin.
        let argv = || -> Vec<&str> {
            args.split(|&b| b == 0)
                .skip(1)
                .filter(|a| !a.is_empty())
                .map(|a| std::str::from_utf8(a).unwrap_or("?"))
                .collect()
        };
        let exe = exe_of(table, key);
        let parent = table.get_key(&key).map_or(0, |p| p.ppid);
        // Output into the parent's own stdout (a script whose output is piped to a log) feeds
        // nothing the parent reads or passes on; under a forking wrapper (`timeout 5 curl`),
        // whether the wrapper's own stdout was such a pipe decides.
        let stdout_pipe = stdout_pipe
            && (!ev.stdout_inherited()
                || info.parent_key().is_some_and(|p| {
                    self.piped.stdout_piped(p)
                        && table.get_key(&p).is_some_and(|w| forks_its_command(&w.exe))
                }));
        self.piped.exec_stdio(key, parent, stdin_pipe, stdout_pipe, Instant::now());
        self.note_piped_forgotten();
        if let Some(fetch) = self.piped.substituted(key, parent, Instant::now())
            && code_argument(&exe, &argv())
                .is_some_and(|code| code.contains('\n') || code.starts_with("#!"))
        {
            let event = match fetch.feed {
                Feed::Connection => SecurityEvent::PipedDownload,
                Feed::Decoder => SecurityEvent::PipedDecode,
            };
            let detail = fetch.describe_substituted(&exe);
            self.on_security_event(table, seqs, key, event, detail);
        }
        if stdin_pipe || stdout_pipe || stdin_local_socket {
            let argv = argv();
            let reader = (stdin_pipe || stdin_local_socket) && reads_program_from_stdin(&exe, &argv);
            if reader && stdin_pipe {
                // Started through a wrapper that forks it (`timeout 5 sh -i <f`), the reader
                // sits in its grandparent's pipeline, beside the wrapper.
                let pipeline = table
                    .get(parent)
                    .filter(|p| forks_its_command(&p.exe))
                    .map_or(parent, |p| p.ppid);
                let fetched = self.piped.reader(key, Arc::clone(&exe), pipeline, Instant::now());
                self.note_piped_forgotten();
                if let Some(fetch) = fetched {
                    self.piped_feed(table, seqs, key, &exe, &fetch);
                }
            }
            if reader {
                let over = if stdin_pipe { "pipe" } else { "socket pair" };
                self.relay_reader(table, seqs, key, Arc::clone(&exe), over);
            }
            if stdout_pipe && decodes(&exe, &argv) {
                self.feeder(table, seqs, key, exe, Feed::Decoder, true);
            }
        }
    }

    /// sha256 rules can only match once the hasher is done with the image; the rest of the
    /// exec's context is what the exec showed.
    pub fn on_hash(&mut self, table: &ProcessTable, seqs: &BehaviourSequences, key: ProcessKey) {
        let policy = self.current();
        let Some(info) = table.get_key(&key) else {
            return;
        };
        let Some(sha) = info.exe_sha256.clone() else {
            return;
        };
        let seen = self
            .execs
            .get(&id(key))
            .cloned()
            .unwrap_or_else(|| ExecSeen {
                filename: info.exe.to_string(),
                ..Default::default()
            });
        let hits = self
            .exec_memo
            .hits(&policy, &seen, Some(&sha), &info.cmdline);
        let matched = Matched::Exec {
            changed: seen.image_changed_secs_ago,
            download: seen.download.as_ref().map(Download::describe),
            served: seen.served_by.as_ref().map(Served::describe),
        };
        self.rule_hits(&policy, table, seqs, key, hits, matched);
    }

    /// `key` can feed a sibling's pipe (it connected, or it decodes into a pipe): completes
    /// the readers of their program from a pipe started beside it. `made`: it made its
    /// connection rather than accepted it (what a command substitution's download does).
    fn feeder(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        exe: Arc<str>,
        feed: Feed,
        made: bool,
    ) {
        let parent = table.get_key(&key).map_or(0, |p| p.ppid);
        let grandparent = table.get(parent).map_or(0, |p| p.ppid);
        let into_pipe = feed == Feed::Decoder || self.piped.stdout_piped(key);
        let fetch = Fetch { pid: key.tgid, start_ns: key.start_ns, exe, feed, into_pipe, parent, made };
        let readers = self.piped.fetched(fetch, parent, grandparent, Instant::now());
        self.note_piped_forgotten();
        for (reader, reader_exe, fetch) in readers {
            self.piped_feed(table, seqs, reader, &reader_exe, &fetch);
        }
    }

    fn piped_feed(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        reader: ProcessKey,
        exe: &str,
        fetch: &Fetch,
    ) {
        let detail = fetch.describe(exe);
        let event = match fetch.feed {
            Feed::Connection => SecurityEvent::PipedDownload,
            Feed::Decoder => SecurityEvent::PipedDecode,
        };
        self.on_security_event(table, seqs, reader, event, detail);
    }

    /// A reader of its program from a pipe or socket pair its parent set up: a relay when
    /// that parent made or accepted an internet connection, now or within the window (see
    /// `response::piped`). A protected parent never counts (`ssh host sh <script` is sshd's).
    fn relay_reader(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        exe: Arc<str>,
        over: &'static str,
    ) {
        let Some(parent) = table.get_key(&key).and_then(|p| p.parent_key()) else {
            return;
        };
        if parent.tgid <= 2 || parent.tgid == self.self_tgid || self.protected.contains(&id(parent)) {
            return;
        }
        if self.net_peers.has_connected(parent) {
            self.relay_fed(table, seqs, key, &exe, over, parent);
        } else {
            self.piped.relay_reader(key, exe, over, parent, Instant::now());
            self.note_piped_forgotten();
        }
    }

    fn relay_fed(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        reader: ProcessKey,
        exe: &str,
        over: &str,
        parent: ProcessKey,
    ) {
        let detail = describe_relay(exe, over, &exe_of(table, parent), parent.tgid);
        self.on_security_event(table, seqs, reader, SecurityEvent::RelayShell, detail);
    }

    fn note_piped_forgotten(&self) {
        self.stats
            .pipelines_forgotten
            .store(self.piped.forgotten, Relaxed);
    }

    /// The network server that started `key`: its parent if that accepted an internet
    /// connection, else its grandparent if the parent is a worker that server forked without
    /// exec'ing (a forking server hands each connection to one). A protected server (sshd)
    /// starts sessions, not web shells.
    fn server_of(&self, table: &ProcessTable, key: ProcessKey) -> Option<Served> {
        let parent = table.get_key(&key)?.parent_key()?;
        let parent_info = table.get_key(&parent)?;
        let (server, from) = match self.net_peers.accepted_from(parent) {
            Some(from) => (parent, from),
            None => {
                let grandparent = parent_info.parent_key()?;
                if table.get_key(&grandparent)?.exe != parent_info.exe {
                    return None;
                }
                (grandparent, self.net_peers.accepted_from(grandparent)?)
            }
        };
        if server.tgid <= 2 || server.tgid == self.self_tgid || self.protected.contains(&id(server)) {
            return None;
        }
        Some(Served { server: exe_of(table, server), server_pid: server.tgid, from })
    }

    /// Remembers a process that made (or has in progress) or accepted an internet connection,
    /// for programs it writes and pipelines it feeds.
    fn note_net_peer(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        ev: &NetEvent,
    ) {
        // A non-blocking connect (curl, wget) answers EINPROGRESS; the answer comes later.
        const EINPROGRESS: i32 = -115;
        let kind = ev.header.kind;
        let made = kind == EventKind::Connect as u16 && (ev.ret == 0 || ev.ret == EINPROGRESS);
        let accepted = kind == EventKind::Accept as u16 && ev.ret >= 0;
        if (made || accepted) && ev.addr.ip().is_some_and(|a| !a.is_unspecified()) {
            let exe = exe_of(table, key);
            self.net_peers.connected(key, Arc::clone(&exe), ev.addr.ip().filter(|_| accepted));
            self.stats
                .net_peers_forgotten
                .store(self.net_peers.forgotten, Relaxed);
            for (reader, reader_exe, over) in self.piped.relay_connected(key, Instant::now()) {
                self.relay_fed(table, seqs, reader, &reader_exe, over, key);
            }
            self.feeder(table, seqs, key, exe, Feed::Connection, made);
        }
    }

    pub fn on_net(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        ev: &NetEvent,
    ) {
        self.note_net_peer(table, seqs, key, ev);
        if ev.header.kind != EventKind::Connect as u16 {
            return;
        }
        let Some(addr) = ev.addr.ip() else { return };
        if addr.is_unspecified() {
            return;
        }
        let policy = self.current();
        let exe = exe_of(table, key);
        let ctx = ConnectContext {
            exe: &exe,
            addr,
            port: ev.addr.port,
        };
        let hits: Vec<(String, Action)> = policy
            .connect_rules(&ctx)
            .into_iter()
            .map(|r| r.owned())
            .collect();
        self.rule_hits(
            &policy,
            table,
            seqs,
            key,
            hits,
            Matched::Connect {
                addr,
                port: ev.addr.port,
                ret: ev.ret,
            },
        );
        self.scan_check(table, seqs, key, addr, ev.addr.port, ev.ret);
    }

    /// Counts the connect for the process and its parent (the shell that runs one connecting
    /// child per port); a scan found is a `port_scan` security event of whichever showed it.
    fn scan_check(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        addr: IpAddr,
        port: u16,
        ret: i32,
    ) {
        let (keys, n) = self.with_parent(table, key);
        let ids = keys.map(id);
        let scan = self.scans.on_connect(&ids[..n], addr, port, ret, Instant::now());
        self.stats
            .scan_actors_untracked
            .store(self.scans.untracked(), Relaxed);
        if let Some(scan) = scan {
            let who = keys[scan.actor];
            self.on_security_event(table, seqs, who, SecurityEvent::PortScan, scan.detail);
        }
    }

    /// Every [`deleted_image::SWEEP_EVERY`], the running processes whose program's file was
    /// deleted with nothing put in its place (`response::deleted_image`); each is a
    /// `deleted_image` security event, once. pid 1, kernel threads, vigil and protected
    /// processes are not looked at.
    pub fn sweep_deleted_images(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        proc_root: &Path,
        now: Instant,
    ) {
        if !self.deleted.due(now) {
            return;
        }
        let mut found = Vec::new();
        for p in table.iter() {
            if !p.is_running()
                || p.kernel_thread
                || p.key.tgid <= 2
                || p.key.tgid == self.self_tgid
                || self.protected.contains(&id(p.key))
            {
                continue;
            }
            if let Some(path) = deleted_image(proc_root, p.key.tgid)
                && self.deleted.report(id(p.key), p.parent_key().map(id), &path)
            {
                found.push((p.key, path));
            }
        }
        for (key, path) in found {
            let detail = format!("runs {path}, whose file was deleted with nothing put in its place");
            self.on_security_event(table, seqs, key, SecurityEvent::DeletedImage, detail);
        }
    }

    /// A write into another process's memory without attaching to it: process_vm_writev, or
    /// `/proc/PID/mem` opened for writing. Into itself is not that; MPI ranks, which copy their
    /// messages into each other with process_vm_writev (Cross Memory Attach), are excepted by
    /// their launcher in the policy (`except_parent`).
    pub fn on_memory_write(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        ev: &PtraceEvent,
    ) {
        let Some((target, exe)) = other_process(table, key, ev) else {
            return;
        };
        let detail = if ev.request == MEMORY_WRITE_PROC_MEM {
            format!("open of /proc/{target}/mem{exe} for writing (fd {})", ev.ret)
        } else {
            format!("process_vm_writev into pid {target}{exe} (result {})", ev.ret)
        };
        self.on_security_event(table, seqs, key, SecurityEvent::ProcessMemoryWrite, detail);
    }

    /// A read of another process's memory without attaching to it: process_vm_readv, its
    /// `/proc/PID/mem` opened for reading only (a `process_memory_read`), or its
    /// `/proc/PID/environ` opened (an `environ_read`). Of itself is not that.
    pub fn on_memory_read(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        ev: &PtraceEvent,
    ) {
        let Some((target, exe)) = other_process(table, key, ev) else {
            return;
        };
        let (event, detail) = match ev.request {
            MEMORY_READ_PROC_MEM => (
                SecurityEvent::ProcessMemoryRead,
                format!("open of /proc/{target}/mem{exe} for reading (fd {})", ev.ret),
            ),
            MEMORY_READ_PROC_ENVIRON => (
                SecurityEvent::EnvironRead,
                format!("open of /proc/{target}/environ{exe} (fd {})", ev.ret),
            ),
            _ => (
                SecurityEvent::ProcessMemoryRead,
                format!("process_vm_readv of pid {target}{exe} (result {})", ev.ret),
            ),
        };
        self.on_security_event(table, seqs, key, event, detail);
    }

    /// A signal another process sent to vigil, or to a security service it guards. SIGCONT
    /// only undoes a stop, which was reported itself; a service is reported only for signals
    /// that stop or end it (its reloads and log rotations are signals too).
    pub fn on_guarded_signal(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        ev: &PtraceEvent,
    ) {
        if ev.target_pid == self.self_tgid {
            if let Some(detail) = agent_signal_detail(ev) {
                self.on_security_event(table, seqs, key, SecurityEvent::AgentSignalled, detail);
            }
            return;
        }
        let exe = table.get(ev.target_pid).map(|p| p.exe.to_string()).unwrap_or_default();
        if let Some(detail) = service_signal_detail(ev, &exe) {
            self.on_security_event(table, seqs, key, SecurityEvent::SecurityServiceSignalled, detail);
        }
    }

    /// A library another process wrote lately, mapped as code under `LD_PRELOAD` or `LD_AUDIT`:
    /// named with the variable's value and the library's writer, while the table still knows it.
    pub fn on_preload(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        ev: &PreloadEvent,
    ) {
        let writer = ev.created_by.tgid;
        let by = table
            .get(writer)
            .map(|p| format!("{} (pid {writer})", p.exe))
            .unwrap_or_else(|| format!("pid {writer}"));
        let age_ms = ev.header.ktime_ns.saturating_sub(ev.created_by.ns) / 1_000_000;
        let detail = format!(
            "maps {} as code with {}={}; the library was written {}.{:03} s before by {by}",
            ev.name(),
            ev.variable(),
            ev.preload(),
            age_ms / 1000,
            age_ms % 1000
        );
        self.on_security_event(table, seqs, key, SecurityEvent::PreloadLibrary, detail);
    }

    /// A name created, removed or written over while the process or an ancestor churns files:
    /// counted for the process, its parent and its grandparent (`xargs` → a shell per batch →
    /// one encryptor per file), and a mass replacement or encryption found is a security event
    /// of whichever showed it.
    pub fn on_churn(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        ev: &FileChurnEvent,
    ) {
        // What the policy excepts (compressors, log rotation) does not count towards its
        // ancestors either: a shell that ran `gzip -r` has replaced nothing.
        let policy = self.current();
        let exe = exe_of(table, key);
        let parent = parent_exe_of(table, key);
        let wanted = |event| {
            !policy
                .event_rules(&EventContext { event, exe: &exe, parent: &parent })
                .is_empty()
        };
        // A rename's new name counts as written over: an encrypted copy moved onto its
        // original (`openssl enc -in f -out f.tmp && mv f.tmp f`) replaces it all the same.
        let renamed_onto = ev.op == CHURN_CREATED
            && matches!(ev.syscall_nr, nr::RENAME | nr::RENAMEAT | nr::RENAMEAT2);
        let (replace, encrypt) = (
            wanted(SecurityEvent::MassReplace),
            (ev.op == CHURN_REWRITTEN || renamed_onto) && wanted(SecurityEvent::MassEncryption),
        );
        if !replace && !encrypt {
            return;
        }
        let (keys, n) = self.with_ancestors(table, key);
        let ids = keys.map(id);
        let path = ev.path();
        let now = Instant::now();
        if replace
            && let Some(r) = self.replacements.on_churn(&ids[..n], ev.op, &path, now)
        {
            let who = keys[r.actor];
            self.on_security_event(table, seqs, who, SecurityEvent::MassReplace, r.detail);
        }
        if encrypt
            && let Some(file) = encryption::absolute(
                &path,
                key.tgid,
                self.cwds.get(&id(key)).map(PathBuf::as_path),
                keys[1.min(n - 1)].tgid,
            )
            && let Some(look) = self.encryptions.on_rewrite(&ids[..n], &file, now)
        {
            // Eight reads of 4 KiB at most, from the page cache the writer just filled, after
            // every 12 new rewrites: cheap enough for this thread.
            let contents = encryption::weigh_files(&look.files);
            debug!(
                pid = keys[look.actor].tgid,
                rewritten = look.rewritten,
                contents = ?contents,
                "mass-encryption look"
            );
            if let Some((actor, detail)) = self.encryptions.weighed(&ids[..n], &look, &contents) {
                let who = keys[actor];
                self.on_security_event(table, seqs, who, SecurityEvent::MassEncryption, detail);
            }
        }
        self.stats.churn_actors_untracked.store(
            self.replacements.untracked() + self.encryptions.untracked(),
            Relaxed,
        );
    }

    /// The process and, unless it is the host's own (pid 1, kthreadd, vigil, anything
    /// protected), its parent: what the behaviour detectors count for, the parent for tools
    /// that do one step per child. Everything a protected daemon starts would add up to it.
    fn with_parent(&self, table: &ProcessTable, key: ProcessKey) -> ([ProcessKey; 2], usize) {
        let (keys, n) = self.with_ancestors(table, key);
        ([keys[0], keys[1]], n.min(2))
    }

    /// [`Self::with_parent`] and the grandparent, on the same terms.
    fn with_ancestors(&self, table: &ProcessTable, key: ProcessKey) -> ([ProcessKey; 3], usize) {
        let mut keys = [key; 3];
        let mut n = 1;
        while n < keys.len() {
            let Some(up) = table.get_key(&keys[n - 1]).and_then(|p| p.parent_key()) else {
                break;
            };
            if up.tgid <= 2 || up.tgid == self.self_tgid || self.protected.contains(&id(up)) {
                break;
            }
            keys[n] = up;
            n += 1;
        }
        (keys, n)
    }

    /// A security event: matched against `rule.event`, and (all but memfd_create, which
    /// systemd, JVMs, browsers and Wayland clients make all the time) corroboration of a model
    /// verdict by itself. A verdict held back for want of one is decided again now.
    pub fn on_security_event(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        event: SecurityEvent,
        detail: String,
    ) {
        if event != SecurityEvent::MemfdCreate {
            self.corroborate(table, seqs, key, event.name());
        }
        let policy = self.current();
        let exe = exe_of(table, key);
        let parent = parent_exe_of(table, key);
        let hits: Vec<(String, Action)> = policy
            .event_rules(&EventContext {
                event,
                exe: &exe,
                parent: &parent,
            })
            .into_iter()
            .map(|r| r.owned())
            .collect();
        self.rule_hits(&policy, table, seqs, key, hits, Matched::Event(&detail));
    }

    /// An open of a watched file: `rule.file` decides, with the rebuilt path.
    pub fn on_file_open(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        ev: &FileEvent,
    ) {
        let Some(path) = self.files.path_of(ev) else {
            self.stats.file_events_unnamed.fetch_add(1, Relaxed);
            debug!(pid = key.tgid, ino = ev.ino, "file open under a watch that is gone");
            return;
        };
        let access = FileAccess::from_bits(ev.access);
        let detail = format!(
            "open of {path} for {} (fd {})",
            access.names().join("+"),
            ev.fd
        );
        self.file_rule_hits(table, seqs, key, &path, access, detail);
    }

    /// A rename or unlink of a watched path: `rule.file` decides, as for an open.
    pub fn on_path_change(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        ev: &PathChangeEvent,
    ) {
        let Some(path) = self.files.path_changed(ev) else {
            self.stats.file_events_unnamed.fetch_add(1, Relaxed);
            debug!(pid = key.tgid, "rename or unlink under a watch that is gone");
            return;
        };
        if self.files.path_changed_at(&path) {
            debug!(pid = key.tgid, path, "a watched path now names another inode: watches resolved again");
        }
        let what = match ev.role {
            agent_common::PATH_ROLE_RENAMED_TO => "rename onto",
            agent_common::PATH_ROLE_RENAMED_FROM => "rename away of",
            _ => "unlink of",
        };
        let detail = format!(
            "{what} {path} ({})",
            crate::sequence::token_name(ev.syscall_nr as crate::sequence::Token)
        );
        self.file_rule_hits(table, seqs, key, &path, FileAccess::from_bits(ev.access), detail);
    }

    fn file_rule_hits(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        path: &str,
        access: FileAccess,
        detail: String,
    ) {
        let policy = self.current();
        let exe = exe_of(table, key);
        let hits: Vec<(String, Action)> = policy
            .file_rules(&FileContext {
                path,
                access,
                exe: &exe,
            })
            .into_iter()
            .map(|r| r.owned())
            .collect();
        self.rule_hits(&policy, table, seqs, key, hits, Matched::Event(&detail));
    }

    /// Records `what` as evidence beyond the score for `key` and its descendants, unless `key`
    /// is protected: pid 1, sshd, container runtimes and the like load BPF programs, trace and
    /// gain privileges as the host's own machinery, and everything descends from them. Taken
    /// as evidence, one `bpf()` by systemd would let a model verdict alone quarantine any
    /// process on the host.
    fn corroborate(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        what: &'static str,
    ) {
        let policy = self.current();
        let protected = key.tgid <= 2
            || self.protected.contains(&id(key))
            || table.get_key(&key).is_some_and(|p| {
                self.is_protected(&policy, key, &p.exe, &p.comm, p.kernel_thread)
            });
        if protected {
            debug!(pid = key.tgid, what, "protected process: not taken as corroboration");
            return;
        }
        self.corroborated.entry(id(key)).or_insert(what);
        // The process itself, or a descendant whose verdict waits on its ancestors.
        let waiting: Vec<ScoreUpdate> = self
            .held
            .iter()
            .filter(|(held, _)| **held == id(key) || self.descends_from(table, **held, id(key)))
            .map(|(_, u)| u.clone())
            .collect();
        for update in waiting {
            self.held.remove(&(
                update.pid,
                ProcessKey::new(update.pid, update.start_ns).start_ticks(),
            ));
            self.on_score(table, seqs, &update);
        }
    }

    fn descends_from(&self, table: &ProcessTable, child: Id, ancestor: Id) -> bool {
        let Some(mut cur) = table.get(child.0).filter(|p| id(p.key) == child) else {
            return false;
        };
        for _ in 0..MAX_ANCESTRY {
            let Some(parent) = cur.parent_key().and_then(|k| table.get_key(&k)) else {
                return false;
            };
            if id(parent.key) == ancestor {
                return true;
            }
            cur = parent;
        }
        false
    }

    pub fn on_exit(&mut self, key: ProcessKey) {
        let k = id(key);
        if self.protected.remove(&k) {
            self.send_protect(ActorMsg::Unprotect(key.tgid));
        }
        if self.guarded.remove(&k) {
            self.send_protect(ActorMsg::Unguard(key.tgid));
        }
        self.cwds.remove(&k);
        self.corroborated.remove(&k);
        self.scans.on_exit(&k);
        self.replacements.on_exit(&k);
        self.encryptions.on_exit(&k);
        self.deleted.on_exit(k);
        self.held.remove(&k);
        self.execs.remove(&k);
        self.piped.exited(key);
        self.decided.retain(|(d, _)| *d != k);
    }

    pub fn on_score(
        &mut self,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        update: &ScoreUpdate,
    ) {
        let policy = self.current();
        let key = ProcessKey::new(update.pid, update.start_ns);
        let action = match update.verdict {
            Verdict::Normal => return,
            Verdict::Alert => policy.model.on_alert,
            Verdict::Quarantine => policy.model.on_quarantine,
            Verdict::Kill => policy.model.on_kill,
        };
        let verdict = serde_json::to_value(update.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let reason = format!("model:{verdict}");
        let mut act = to_act(action);
        let mut held_back = None;
        if act > Act::Alert
            && policy.model.require_corroboration
            && self.corroboration(table, key).is_none()
        {
            held_back = Some(format!("{act} held back: no corroborating event"));
            // Remembered: a corroborating event later decides it again, at full strength.
            self.held.insert(id(key), update.clone());
            act = Act::Alert;
        }
        // The same verdict is alerted once; a held-back one may still be acted on once.
        let dedupe = if held_back.is_some() {
            format!("{reason}:held")
        } else {
            reason.clone()
        };
        if !self.decided.insert((id(key), dedupe)) {
            return;
        }
        let target = Target::from_table(table, seqs, key);
        if policy.allowlisted(
            &target.exe,
            target.sha256.as_deref(),
            target.uid,
            cgroup_path(key.tgid).as_deref(),
        ) {
            debug!(pid = key.tgid, exe = %target.exe, "allowlisted: score not acted on");
            return;
        }
        self.decide(
            &policy,
            Decision {
                act,
                target,
                reason,
                score: Some(update.score),
                held_back,
                killed_in_kernel: false,
                spare: Vec::new(),
                detail: None,
            },
        );
    }

    /// The process's own corroborating event, or its nearest ancestor's.
    fn corroboration(&self, table: &ProcessTable, key: ProcessKey) -> Option<&'static str> {
        if let Some(w) = self.corroborated.get(&id(key)) {
            return Some(w);
        }
        let mut cur = table.get_key(&key)?;
        for _ in 0..MAX_ANCESTRY {
            let parent = cur.parent_key().and_then(|k| table.get_key(&k))?;
            if let Some(w) = self.corroborated.get(&id(parent.key)) {
                return Some(w);
            }
            cur = parent;
        }
        None
    }

    fn rule_hits(
        &mut self,
        policy: &Policy,
        table: &ProcessTable,
        seqs: &BehaviourSequences,
        key: ProcessKey,
        hits: Vec<(String, Action)>,
        what: Matched,
    ) {
        if hits.is_empty() {
            return;
        }
        let detail = what.detail();
        let target = Target::from_table(table, seqs, key);
        if policy.allowlisted(
            &target.exe,
            target.sha256.as_deref(),
            target.uid,
            cgroup_path(key.tgid).as_deref(),
        ) {
            debug!(pid = key.tgid, exe = %target.exe, "allowlisted: rules not acted on");
            return;
        }
        self.corroborate(table, seqs, key, "rule");
        // The strongest action first: a process hit by a kill and a quarantine rule is killed.
        let mut hits = hits;
        hits.sort_by_key(|(_, a)| std::cmp::Reverse(to_act(*a)));
        let mut acted = false;
        for (rule, action) in hits {
            if !self.decided.insert((id(key), rule.clone())) {
                continue;
            }
            let mut held_back = None;
            let mut act = match action {
                // The kernel refused the connect (when enforcing); what is left is telling.
                Action::Deny => {
                    if let Matched::Connect { addr, port, ret } = what {
                        held_back = Some(if ret == -libc::EPERM {
                            format!("connect to {addr} port {port} denied in the kernel")
                        } else {
                            format!("connect to {addr} port {port} not denied (result {ret})")
                        });
                    }
                    Act::Alert
                }
                other => to_act(other),
            };
            // One action per process: further rules only add to the record.
            if act > Act::Alert && acted {
                held_back = Some(format!(
                    "{act} not repeated: already acted on by an earlier rule"
                ));
                act = Act::Alert;
            }
            acted |= act > Act::Alert;
            self.decide(
                policy,
                Decision {
                    act,
                    target: target.clone(),
                    reason: rule,
                    score: None,
                    held_back,
                    killed_in_kernel: false,
                    spare: Vec::new(),
                    detail: detail.clone(),
                },
            );
        }
    }

    /// The safety gate every decision passes: protection, mode, rate limit.
    fn decide(&mut self, policy: &Policy, mut d: Decision) {
        if d.act > Act::Alert {
            let key = d.target.key;
            let protected = self.protected.contains(&id(key))
                || self.is_protected(
                    policy,
                    key,
                    &d.target.exe,
                    &d.target.comm,
                    d.target.kernel_thread,
                );
            if protected {
                d.held_back = Some(format!("{} refused: {} is protected", d.act, d.target.exe));
                d.act = Act::Alert;
            } else if policy.mode == Mode::Monitor {
                d.held_back = Some(format!("monitor mode: would {}", d.act));
                d.act = Act::Alert;
            } else {
                match self.limiter.admit(Instant::now()) {
                    Admit::Yes => {}
                    Admit::Escalate => {
                        self.stats.suppressed.fetch_add(1, Relaxed);
                        warn!(
                            "response rate limit reached: further actions are suppressed for this window"
                        );
                        self.send(ActorMsg::RateLimited {
                            first: Box::new(d.clone()),
                            max: policy.response.max_actions,
                            per_seconds: policy.response.per_seconds,
                        });
                        return;
                    }
                    Admit::No => {
                        self.stats.suppressed.fetch_add(1, Relaxed);
                        return;
                    }
                }
            }
            if d.act == Act::Quarantine {
                // Protected descendants stay out of the freezer.
                d.spare = self.protected.iter().map(|(tgid, _)| *tgid).collect();
            }
        }
        if d.act == Act::Alert {
            match self.alert_limiter.admit(Instant::now()) {
                Admit::Yes => {}
                Admit::Escalate => {
                    self.stats.suppressed.fetch_add(1, Relaxed);
                    warn!(
                        "alert rate limit reached: further alerts are suppressed for this window"
                    );
                    self.send(ActorMsg::RateLimited {
                        first: Box::new(d),
                        max: policy
                            .response
                            .max_actions
                            .saturating_mul(ALERTS_PER_ACTION),
                        per_seconds: policy.response.per_seconds,
                    });
                    return;
                }
                Admit::No => {
                    self.stats.suppressed.fetch_add(1, Relaxed);
                    return;
                }
            }
        }
        self.emit(d);
    }

    fn emit(&mut self, d: Decision) {
        self.stats.decisions.fetch_add(1, Relaxed);
        self.send(ActorMsg::Act(Box::new(d)));
    }

    fn send(&self, msg: ActorMsg) {
        if self.actor.try_send(msg).is_err() {
            self.stats.dropped.fetch_add(1, Relaxed);
            warn!("response actor queue full: a decision was dropped (counted in status)");
        }
    }

    fn send_protect(&self, msg: ActorMsg) {
        if self.actor.try_send(msg).is_err() {
            self.stats.protect_updates_dropped.fetch_add(1, Relaxed);
        }
    }
}

/// What a process did that rules were matched against.
#[derive(Clone)]
enum Matched<'a> {
    /// With the seconds since its image changed, when a `changed_within` made them matter,
    /// and who downloaded it, when a network client wrote it.
    Exec {
        changed: Option<u64>,
        download: Option<String>,
        /// The network server that started it, when one did.
        served: Option<String>,
    },
    Connect { addr: IpAddr, port: u16, ret: i32 },
    /// A security event, described for the operator.
    Event(&'a str),
}

impl Matched<'_> {
    /// For the incident's `VIGIL_DETAIL`; an exec is already the incident's exe and cmdline,
    /// and only the age of its image, who downloaded it and the server that started it are
    /// added.
    fn detail(&self) -> Option<String> {
        match self {
            Matched::Exec { changed, download, served } => {
                let changed = changed.map(|secs| format!("image changed {secs}s before the exec"));
                let parts: Vec<String> = [changed, download.clone(), served.clone()]
                    .into_iter()
                    .flatten()
                    .collect();
                (!parts.is_empty()).then(|| parts.join("; "))
            }
            Matched::Connect { addr, port, ret } => {
                Some(format!("connect to {addr} port {port} (result {ret})"))
            }
            Matched::Event(what) => Some((*what).to_owned()),
        }
    }
}

/// Seconds from the image's last inode change (ctime, which `touch` cannot set back) to now;
/// `None` when the exec could not read it. A ctime ahead of the clock counts as now.
fn changed_secs_ago(image: &agent_common::ImageId) -> Option<u64> {
    if image.ino == 0 {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    Some(now.saturating_sub(image.ctime_sec).max(0) as u64)
}

/// The pid a write or read into memory reached, with its exe as ` (exe)` when the table knows
/// it; `None` when that is the process itself (or one of its threads' own pid).
fn other_process(table: &ProcessTable, key: ProcessKey, ev: &PtraceEvent) -> Option<(u32, String)> {
    let target = ev.target_pid;
    if target == key.tgid || target == ev.header.pid {
        return None;
    }
    let exe = table
        .get(target)
        .map(|p| format!(" ({})", p.exe))
        .filter(|e| e != " ()")
        .unwrap_or_default();
    Some((target, exe))
}

/// A signal's name, for the details below.
fn signal_name(sig: i32) -> String {
    use libc::{
        SIGABRT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGSTOP, SIGTERM, SIGTSTP, SIGTTIN, SIGTTOU,
        SIGUSR1, SIGUSR2,
    };
    let name = match sig {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        SIGQUIT => "SIGQUIT",
        SIGABRT => "SIGABRT",
        SIGKILL => "SIGKILL",
        SIGUSR1 => "SIGUSR1",
        SIGUSR2 => "SIGUSR2",
        SIGTERM => "SIGTERM",
        SIGSTOP => "SIGSTOP",
        SIGTSTP => "SIGTSTP",
        SIGTTIN => "SIGTTIN",
        SIGTTOU => "SIGTTOU",
        n => return format!("signal {n}"),
    };
    name.to_owned()
}

/// What a signal to vigil itself says, or `None` for SIGCONT.
pub(crate) fn agent_signal_detail(ev: &PtraceEvent) -> Option<String> {
    use libc::{SIGINT, SIGSTOP, SIGTERM, SIGTSTP, SIGTTIN, SIGTTOU};
    let sig = i32::try_from(ev.request).unwrap_or(0);
    if sig == libc::SIGCONT {
        return None;
    }
    let name = signal_name(sig);
    let effect = match sig {
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => {
            ", which stops it: nothing is acted on until it is continued"
        }
        // The two it shuts down cleanly on; the default of most others is to end it.
        SIGINT | SIGTERM => ", which shuts it down",
        libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH => "",
        _ => ", which ends it at once (the next vigil reports the gap)",
    };
    let outcome = if ev.ret == 0 { "" } else { " (not delivered)" };
    Some(format!("{name} sent to vigil (pid {}){outcome}{effect}", ev.target_pid))
}

/// Security services by their image's name: audit, logging and detection daemons, whose
/// signals from other processes the kernel reports. A process called so is guarded wherever
/// it lies: guarding one too many costs only a report when it is killed.
const SECURITY_SERVICES: &[&str] = &[
    "auditd", "audispd", "rsyslogd", "syslog-ng", "systemd-journald", "falco", "osqueryd",
    "wazuh-agentd", "wazuh-modulesd", "wazuh-logcollector", "wazuh-syscheckd", "ossec-agentd",
    "ossec-syscheckd", "ossec-logcollector", "clamd", "fail2ban-server", "auditbeat",
    "filebeat", "tetragon", "tracee", "sysmon", "falcon-sensor", "elastic-agent",
    "elastic-endpoint", "crowdsec", "aide", "fluent-bit", "td-agent-bit", "vector",
];

fn is_security_service(image: &str) -> bool {
    let name = image.rsplit('/').next().unwrap_or(image);
    let name = name.strip_suffix(" (deleted)").unwrap_or(name);
    SECURITY_SERVICES.contains(&name)
}

/// What a signal to a guarded security service says, or `None` for the ones that neither stop
/// nor end it (reloads, log rotations, SIGCONT).
pub(crate) fn service_signal_detail(ev: &PtraceEvent, exe: &str) -> Option<String> {
    use libc::{SIGABRT, SIGINT, SIGKILL, SIGQUIT, SIGSTOP, SIGTERM, SIGTSTP};
    let sig = i32::try_from(ev.request).unwrap_or(0);
    if !matches!(sig, SIGKILL | SIGTERM | SIGSTOP | SIGTSTP | SIGINT | SIGQUIT | SIGABRT) {
        return None;
    }
    let name = signal_name(sig);
    let who = if exe.is_empty() {
        format!("pid {}", ev.target_pid)
    } else {
        format!("{exe} (pid {})", ev.target_pid)
    };
    let outcome = if ev.ret == 0 { "" } else { " (not delivered)" };
    Some(format!("{name} sent to the security service {who}{outcome}"))
}

/// Whether a program runs the command it is given as its child rather than by exec'ing it:
/// `timeout`, `flock`, `sudo` and `doas` (`nice`, `nohup`, `setsid` and `env` exec it in place).
fn forks_its_command(exe: &str) -> bool {
    matches!(exe.rsplit('/').next(), Some("timeout" | "flock" | "sudo" | "doas"))
}

/// The process's executable as the table knows it; empty when it does not.
fn exe_of(table: &ProcessTable, key: ProcessKey) -> Arc<str> {
    table
        .get_key(&key)
        .map(|p| p.exe.clone())
        .unwrap_or_default()
}

fn parent_exe_of(table: &ProcessTable, key: ProcessKey) -> Arc<str> {
    table
        .get_key(&key)
        .and_then(|p| p.parent_key())
        .map_or_else(Arc::default, |parent| exe_of(table, parent))
}

/// Alerts allowed per window for each allowed action.
const ALERTS_PER_ACTION: u32 = 10;

/// Bound on ancestry walks (the table's own bound on ancestry lines is similar).
const MAX_ANCESTRY: usize = 32;

fn to_act(a: Action) -> Act {
    match a {
        Action::Alert | Action::Deny => Act::Alert,
        Action::Kill => Act::Kill,
        Action::Quarantine => Act::Quarantine,
    }
}

/// The image a process runs, from `/proc/PID/exe` (`None` once it has exited).
fn image_of(tgid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{tgid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The process's cgroup v2 path, for cgroup allowlists.
fn cgroup_path(tgid: u32) -> Option<String> {
    crate::quarantine::cgroup_of(tgid)
}

#[cfg(test)]
#[path = "security_event_tests.rs"]
mod security_event_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const KILL_ALL: &str = r#"
[[rule.exec]]
name = "kill-everything"
action = "kill"
path = ["/**"]

[protected]
exe = ["/opt/site/guarded"]

[response]
max_actions = 3
per_seconds = 60
"#;

    fn responder(extra: &str) -> (Responder, mpsc::Receiver<ActorMsg>, Arc<Policy>) {
        let policy = Arc::new(
            Policy::from_sources(&[("/test/policy.toml".into(), format!("{extra}\n{KILL_ALL}"))])
                .expect("policy"),
        );
        let (_tx, rx_policy) = watch::channel(policy.clone());
        let (actor, rx) = mpsc::channel(64);
        let mut r = Responder::new(rx_policy, actor, Default::default());
        // The policy channel's sender is gone; the responder keeps the last value.
        r.policy.mark_unchanged();
        (r, rx, policy)
    }

    fn target(tgid: u32, exe: &str, comm: &str) -> Target {
        Target {
            key: ProcessKey::new(tgid, 1),
            exe: exe.into(),
            comm: comm.into(),
            ..Default::default()
        }
    }

    fn kill(t: Target) -> Decision {
        Decision {
            act: Act::Kill,
            target: t,
            reason: "kill-everything".into(),
            score: None,
            held_back: None,
            killed_in_kernel: false,
            spare: Vec::new(),
            detail: None,
        }
    }

    fn next(rx: &mut mpsc::Receiver<ActorMsg>) -> Decision {
        match rx.try_recv().expect("a message for the actor") {
            ActorMsg::Act(d) => *d,
            _ => panic!("expected a decision"),
        }
    }

    #[test]
    fn the_host_is_never_acted_on_whatever_the_rule_says() {
        let (mut r, mut rx, policy) = responder("");
        let me = std::process::id();
        let mut kthread = target(77, "", "kworker/0:1");
        kthread.kernel_thread = true;
        for t in [
            target(1, "/usr/lib/systemd/systemd", "systemd"),
            target(2, "", "kthreadd"),
            kthread,
            target(me, "/usr/sbin/vigil", "vigil"),
            target(400, "/usr/lib/systemd/systemd-journald", "systemd-journal"),
            target(401, "/usr/sbin/sshd", "sshd"),
            target(402, "/opt/site/guarded", "guarded"),
        ] {
            let exe = t.exe.clone();
            r.decide(&policy, kill(t));
            let d = next(&mut rx);
            assert_eq!(d.act, Act::Alert, "{exe} was not spared");
            assert!(
                d.held_back
                    .as_deref()
                    .is_some_and(|h| h.contains("protected")),
                "{exe}: {:?}",
                d.held_back
            );
        }
        // An ordinary process is killed.
        r.decide(&policy, kill(target(500, "/tmp/evil", "evil")));
        assert_eq!(next(&mut rx).act, Act::Kill);
    }

    #[test]
    fn monitor_mode_only_alerts_with_what_it_would_do() {
        let (mut r, mut rx, policy) = responder("mode = \"monitor\"");
        r.decide(&policy, kill(target(500, "/tmp/evil", "evil")));
        let d = next(&mut rx);
        assert_eq!(d.act, Act::Alert);
        assert_eq!(d.held_back.as_deref(), Some("monitor mode: would kill"));
    }

    #[test]
    fn a_storm_of_alerts_in_monitor_mode_is_bounded_too() {
        let (mut r, mut rx, policy) = responder("mode = \"monitor\"");
        for pid in 1000..1100 {
            r.decide(&policy, kill(target(pid, "/tmp/evil", "evil")));
        }
        let (mut alerts, mut escalations) = (0, 0);
        while let Ok(msg) = rx.try_recv() {
            match msg {
                ActorMsg::Act(d) if d.act == Act::Alert => alerts += 1,
                ActorMsg::RateLimited { .. } => escalations += 1,
                _ => panic!("unexpected message"),
            }
        }
        // max_actions 3 in the test policy: 30 alerts per window, then one escalation.
        assert_eq!((alerts, escalations), (30, 1));
    }

    #[test]
    fn a_storm_of_kills_becomes_one_escalated_alert() {
        let (mut r, mut rx, policy) = responder("");
        for pid in 1000..1020 {
            r.decide(&policy, kill(target(pid, "/tmp/evil", "evil")));
        }
        let mut kills = 0;
        let mut escalations = 0;
        while let Ok(msg) = rx.try_recv() {
            match msg {
                ActorMsg::Act(d) if d.act == Act::Kill => kills += 1,
                ActorMsg::RateLimited { .. } => escalations += 1,
                _ => panic!("unexpected message"),
            }
        }
        assert_eq!((kills, escalations), (3, 1));
        assert_eq!(r.stats.suppressed.load(Relaxed), 17);
    }
}
