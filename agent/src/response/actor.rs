//! The acting half of the response stage: one thread that owns everything with side effects —
//! the kernel response maps, the quarantine manager, the action log and the journal — and
//! carries decisions and operator commands out one at a time. One owner means a release can
//! never race the quarantine it undoes.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use serde_json::json;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use super::{
    actions_log::ActionLog,
    decision::{Act, Decision},
    kernel::KernelResponse,
    run_marker,
};
use crate::{
    control::{Command, Request, Response},
    incident::{Incident, IncidentKind, JournalWriter},
    model::Thresholds,
    policy::{Mode, Policy},
    quarantine::{
        self, KillOutcome, NetworkCut, QuarantineError, QuarantineManager, QuarantineRequest,
    },
    response::PolicyStore,
};

/// How long a kill waits for the pidfd to report the exit before recording "signalled".
const KILL_WAIT: Duration = Duration::from_secs(1);

pub enum ActorMsg {
    Act(Box<Decision>),
    Protect(u32),
    Unprotect(u32),
    /// Report signals other processes send this tgid (a security service).
    Guard(u32),
    Unguard(u32),
    /// The first decision over the rate limit: one escalated alert for the storm.
    RateLimited {
        first: Box<Decision>,
        max: u32,
        per_seconds: u64,
    },
    /// policy.d changed on disk.
    Reload,
    /// Resolve the file rules' globs again (files may have appeared since).
    RefreshFileWatches,
    Command(Command),
    /// Kernel or pipeline losses grew since the last report.
    Loss {
        message: String,
        lost: u64,
    },
    /// Finish what is queued before this, then stop.
    Shutdown,
}

#[derive(Debug, Default)]
pub struct ActorStats {
    pub alerts: AtomicU64,
    pub kills: AtomicU64,
    pub quarantines: AtomicU64,
    pub action_failures: AtomicU64,
}

pub struct Actor {
    pub kernel: Option<KernelResponse>,
    pub quarantine: Option<QuarantineManager>,
    pub journal: Arc<JournalWriter>,
    pub store: PolicyStore,
    pub policy_tx: watch::Sender<Arc<Policy>>,
    /// The scorer's live thresholds: the policy's override, else the model's.
    pub thresholds: Option<(Arc<RwLock<Thresholds>>, Thresholds)>,
    pub log: ActionLog,
    pub stats: Arc<ActorStats>,
    /// Journaled once at start (e.g. "policy.d is invalid, running the last good policy").
    pub startup_note: Option<String>,
    /// The previous vigil of this boot ended without shutting down (`run_marker`).
    pub startup_gap: Option<run_marker::Gap>,
    /// Paths of the watched files, shared with the responder.
    pub files: super::file_watches::FileWatchIndex,
}

/// The network cut a quarantine asks for, through the guards' map.
struct MapCut<'a>(Option<&'a mut KernelResponse>);

impl NetworkCut for MapCut<'_> {
    fn available(&self) -> bool {
        self.0.as_deref().is_some_and(|k| k.network_guards)
    }
    fn cut(&mut self, cgroup_id: u64) -> Result<(), String> {
        match self.0.as_deref_mut() {
            Some(k) if k.network_guards => k.cut_network(cgroup_id).map_err(|e| e.to_string()),
            _ => Err("network guards are not attached on this host".into()),
        }
    }
    fn restore(&mut self, cgroup_id: u64) -> Result<(), String> {
        match self.0.as_deref_mut() {
            Some(k) => k.restore_network(cgroup_id).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
    fn cut_tgid(&mut self, tgid: u32) -> Result<(), String> {
        match self.0.as_deref_mut() {
            Some(k) if k.network_guards => k.cut_tgid(tgid).map_err(|e| e.to_string()),
            _ => Err("network guards are not attached on this host".into()),
        }
    }
    fn restore_tgid(&mut self, tgid: u32) -> Result<(), String> {
        match self.0.as_deref_mut() {
            Some(k) => k.restore_tgid(tgid).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

impl Actor {
    /// Runs on its own thread until [`ActorMsg::Shutdown`]. Returns once the policy is in the
    /// kernel and earlier quarantines have their network cut again, so the daemon reports ready
    /// only when its policy is enforced.
    pub fn spawn(mut self, mut rx: mpsc::Receiver<ActorMsg>) -> std::thread::JoinHandle<()> {
        let (started_tx, started) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("vigil-response".into())
            .spawn(move || {
                if let Some(note) = self.startup_note.take() {
                    let inc = Incident::new(IncidentKind::Policy, note.clone()).with_priority(2).with_outcome("fallback: last good policy");
                    self.journal_send(&inc);
                }
                if let Some(gap) = self.startup_gap.take() {
                    let inc = Incident::new(IncidentKind::Loss, gap.message())
                        .with_extra("VIGIL_PREVIOUS_PID", gap.pid.to_string())
                        .with_extra("VIGIL_UNWATCHED_SECONDS", gap.unwatched.as_secs().to_string());
                    self.journal_send(&inc);
                }
                if let Err(e) = self.apply_current("started") {
                    error!("the kernel refused the policy at start: {e}; kernel enforcement may be incomplete");
                    let inc = Incident::new(IncidentKind::Policy, format!("vigil: the kernel refused policy {}: {e}", self.policy().version))
                        .with_priority(2)
                        .with_outcome(format!("failed: {e}"));
                    self.journal_send(&inc);
                }
                self.restore_quarantines();
                let _ = started_tx.send(());
                while let Some(msg) = rx.blocking_recv() {
                    if matches!(msg, ActorMsg::Shutdown) {
                        break;
                    }
                    self.handle(msg);
                }
            })
            .expect("spawning the response thread");
        // An error means the thread died starting up; its panic surfaces at join.
        let _ = started.recv();
        handle
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy_tx.borrow().clone()
    }

    fn handle(&mut self, msg: ActorMsg) {
        match msg {
            ActorMsg::Act(d) => self.act(*d),
            ActorMsg::Protect(tgid) => {
                if let Some(k) = self.kernel.as_mut()
                    && let Err(e) = k.protect_tgid(tgid)
                {
                    warn!(tgid, "cannot protect in the kernel: {e}");
                }
            }
            ActorMsg::Unprotect(tgid) => {
                if let Some(k) = self.kernel.as_mut() {
                    k.unprotect_tgid(tgid);
                }
            }
            ActorMsg::Guard(tgid) => {
                if let Some(k) = self.kernel.as_mut()
                    && let Err(e) = k.guard_tgid(tgid)
                {
                    warn!(tgid, "cannot guard the process's signals in the kernel: {e}");
                }
            }
            ActorMsg::Unguard(tgid) => {
                if let Some(k) = self.kernel.as_mut() {
                    k.unguard_tgid(tgid);
                }
            }
            ActorMsg::RateLimited {
                first,
                max,
                per_seconds,
            } => {
                let what = if first.act == Act::Alert {
                    "alerts"
                } else {
                    "kills and quarantines"
                };
                let msg = format!(
                    "vigil: response rate limit reached ({max} {what} per {per_seconds} s); further {what} are suppressed for this window, first suppressed: {} pid {} ({}) by {}",
                    first.act, first.target.key.tgid, first.target.exe, first.reason
                );
                let inc = self
                    .incident(IncidentKind::Alert, msg, &first)
                    .with_priority(2)
                    .with_outcome("suppressed (rate limit)");
                self.journal_send(&inc);
            }
            ActorMsg::Reload => self.reload(),
            ActorMsg::RefreshFileWatches => {
                let policy = self.policy();
                if let Err(e) = self.program_file_watches(&policy) {
                    warn!("cannot refresh the watched files: {e}");
                }
            }
            ActorMsg::Command(cmd) => {
                // The client gave up waiting (its timeout passed while decisions were ahead of
                // it): doing it now would contradict the error it was given.
                if cmd.reply.is_closed() {
                    warn!(request = ?cmd.request, "control command dropped: its client had already given up");
                    return;
                }
                let response = self.command(cmd.request);
                let _ = cmd.reply.send(response);
            }
            ActorMsg::Shutdown => {}
            ActorMsg::Loss { message, lost } => {
                let inc = Incident::new(IncidentKind::Loss, message)
                    .with_extra("VIGIL_LOST", lost.to_string());
                self.journal_send(&inc);
            }
        }
    }

    fn mode_name(&self) -> &'static str {
        match self.policy().mode {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }

    fn incident(&self, kind: IncidentKind, message: String, d: &Decision) -> Incident {
        let t = &d.target;
        let mut inc = Incident::new(kind, message)
            .with_pid(t.key.tgid)
            .with_ppid(t.ppid)
            .with_uid(t.uid)
            .with_reason(d.reason.clone())
            .with_ancestry(t.ancestry_line())
            .with_mode(self.mode_name());
        if !t.exe.is_empty() {
            inc = inc.with_exe(t.exe.clone());
        }
        if !t.cmdline.is_empty() {
            inc = inc.with_cmdline(t.cmdline.join(" "));
        }
        if let Some(s) = &t.sha256 {
            inc = inc.with_sha256(s.clone());
        }
        if let Some(s) = d.score {
            inc = inc.with_score(s);
        }
        if let Some(x) = &d.detail {
            inc = inc.with_extra("VIGIL_DETAIL", x.clone());
        }
        inc
    }

    fn journal_send(&self, inc: &Incident) {
        // The writer counts and logs its own failures; the daemon goes on either way.
        let _ = self.journal.send(inc);
    }

    fn act(&mut self, d: Decision) {
        let who = format!(
            "pid {} ({})",
            d.target.key.tgid,
            if d.target.exe.is_empty() {
                &d.target.comm
            } else {
                &d.target.exe
            }
        );
        match d.act {
            Act::Alert => {
                self.stats.alerts.fetch_add(1, Relaxed);
                let why = d
                    .held_back
                    .as_deref()
                    .map(|h| format!(" — {h}"))
                    .unwrap_or_default();
                let msg = format!("vigil: alert on {who} by {}{}{why}", d.reason, what(&d));
                let outcome = d.held_back.clone().unwrap_or_else(|| "alerted".into());
                let inc = self
                    .incident(IncidentKind::Alert, msg, &d)
                    .with_outcome(outcome);
                self.journal_send(&inc);
            }
            Act::Kill => self.kill(d, who),
            Act::Quarantine => self.quarantine(d, who),
        }
    }

    fn kill(&mut self, d: Decision, who: String) {
        if d.killed_in_kernel {
            self.stats.kills.fetch_add(1, Relaxed);
            let msg = format!(
                "vigil: killed {who} at exec by rule {} (in the kernel, before it ran)",
                d.reason
            );
            let inc = self
                .incident(IncidentKind::Kill, msg, &d)
                .with_outcome("applied: SIGKILL in the kernel at exec");
            self.journal_send(&inc);
            return;
        }
        // Recorded before it is done: a crash between the two lines leaves "begin" behind.
        let ticks = d.target.key.start_ticks();
        let entry = self.log.begin("kill", &d);
        // The same last-line checks as a quarantine, on one pidfd.
        let (done, outcome) = match quarantine::kill(d.target.key.tgid, ticks, KILL_WAIT) {
            Ok(k) => {
                self.stats.kills.fetch_add(1, Relaxed);
                let outcome = match k {
                    KillOutcome::Exited => "applied: SIGKILL, exit confirmed",
                    KillOutcome::Signalled => "applied: SIGKILL sent, exit not yet confirmed",
                };
                (true, outcome.to_string())
            }
            Err(e) => {
                self.stats.action_failures.fetch_add(1, Relaxed);
                (false, format!("failed: {e}"))
            }
        };
        self.log.end(entry, &outcome);
        let msg = if done {
            format!("vigil: killed {who} by {}{}", d.reason, what(&d))
        } else {
            format!(
                "vigil: could not kill {who} by {}: {}",
                d.reason,
                outcome.trim_start_matches("failed: ")
            )
        };
        let inc = self
            .incident(IncidentKind::Kill, msg, &d)
            .with_outcome(outcome);
        self.journal_send(&inc);
    }

    fn quarantine(&mut self, d: Decision, who: String) {
        let policy = self.policy();
        let Some(qm) = self.quarantine.as_mut() else {
            self.stats.action_failures.fetch_add(1, Relaxed);
            let msg = format!(
                "vigil: could not quarantine {who} by {}: no cgroup v2 freezer on this host",
                d.reason
            );
            let inc = self
                .incident(IncidentKind::Quarantine, msg, &d)
                .with_outcome("failed: quarantine unavailable");
            self.journal_send(&inc);
            return;
        };
        let t = &d.target;
        let req = QuarantineRequest {
            pid: t.key.tgid,
            start_ticks: t.key.start_ticks(),
            reason: d.reason.clone(),
            score: d.score,
            exe: t.exe.clone(),
            sha256: t.sha256.clone(),
            cmdline: t.cmdline.clone(),
            uid: t.uid,
            ancestry: t.ancestry.clone(),
            recent_tokens: t.recent_tokens.clone(),
            scores: d.score.into_iter().collect(),
            policy_version: policy.version.clone(),
            spare: d.spare.clone(),
        };
        let mut cut = MapCut(self.kernel.as_mut());
        let (inc_msg, outcome, qid) = match qm.quarantine(req, &mut cut) {
            Ok(rec) => {
                self.stats.quarantines.fetch_add(1, Relaxed);
                let net = if rec.network_cut {
                    "network cut"
                } else {
                    "network NOT cut"
                };
                let frozen = if rec.frozen_verified {
                    "frozen"
                } else {
                    "freeze NOT verified"
                };
                (
                    format!("vigil: quarantined {who} by {}{} [{}]", d.reason, what(&d), rec.id),
                    format!("applied: {frozen}, {net}, {} process(es)", rec.pids.len()),
                    Some(rec.id),
                )
            }
            // Already held (a second rule on the same process, or a descendant moved with its
            // parent): the goal is met, so this is a note on the existing quarantine.
            Err(QuarantineError::AlreadyQuarantined { cgroup, .. }) => {
                let id = cgroup.rsplit('/').next().unwrap_or_default().to_owned();
                let msg = format!(
                    "vigil: alert on {who} by {}: already held in quarantine {id}",
                    d.reason
                );
                let inc = self
                    .incident(IncidentKind::Alert, msg, &d)
                    .with_outcome("already quarantined")
                    .with_quarantine_id(id);
                self.journal_send(&inc);
                return;
            }
            Err(e) => {
                self.stats.action_failures.fetch_add(1, Relaxed);
                (
                    format!("vigil: could not quarantine {who} by {}: {e}", d.reason),
                    format!("failed: {e}"),
                    None,
                )
            }
        };
        let mut inc = self
            .incident(IncidentKind::Quarantine, inc_msg, &d)
            .with_outcome(outcome);
        if let Some(id) = qid {
            inc = inc.with_quarantine_id(id);
        }
        self.journal_send(&inc);
    }

    /// After a restart the maps are fresh: re-cut the network of every active quarantine.
    fn restore_quarantines(&mut self) {
        let Some(qm) = self.quarantine.as_ref() else {
            return;
        };
        let ids = qm.active_cgroup_ids();
        let mut cut = MapCut(self.kernel.as_mut());
        for id in ids {
            if let Err(e) = cut.cut(id) {
                warn!(
                    cgroup_id = id,
                    "cannot restore a quarantine's network cut: {e}"
                );
            }
        }
    }

    /// Programs the kernel maps for `policy`; the first error, if any.
    fn program_kernel(&mut self, policy: &Policy) -> Result<(), String> {
        let Some(k) = self.kernel.as_mut() else {
            return Ok(());
        };
        k.set_mode(policy.mode).map_err(|e| e.to_string())?;
        k.set_exec_denies(&policy.kernel_exec_denies())
            .map_err(|e| e.to_string())?;
        k.set_net_denies(&policy.kernel_connect_denies())
            .map_err(|e| e.to_string())?;
        k.set_protected_comms(&policy.protected_comms())
            .map_err(|e| e.to_string())?;
        self.program_file_watches(policy)
    }

    /// Resolves the file rules against the filesystem now and points the kernel at the result.
    fn program_file_watches(&mut self, policy: &Policy) -> Result<(), String> {
        let Some(k) = self.kernel.as_mut() else {
            return Ok(());
        };
        let r = super::file_watches::resolve(&policy.file_watch_plan());
        // Paths first: an event for a new watch must find its path, and one in flight for an
        // old watch still finds its own until the kernel has moved on.
        self.files.add_all(&r.paths);
        k.set_file_watches(&r.entries, &r.walk, &r.path_keys)
            .map_err(|e| e.to_string())?;
        self.files.replace(r.paths);
        debug!(inodes = r.entries.len(), walk = ?r.walk, "file watches programmed");
        Ok(())
    }

    /// Pushes the current policy into the kernel and the scorer, and journals it.
    fn apply_current(&mut self, why: &str) -> Result<(), String> {
        let policy = self.policy();
        self.program_kernel(&policy)?;
        if let Some((live, model)) = &self.thresholds {
            let t = policy.thresholds.as_ref().map_or(*model, |t| Thresholds {
                alert: t.alert,
                quarantine: t.quarantine,
                kill: t.kill,
            });
            *live.write().unwrap_or_else(|p| p.into_inner()) = t;
        }
        self.store.save_last_good(&policy);
        info!(version = %policy.version, mode = self.mode_name(), "policy in force ({why})");
        let inc = Incident::new(
            IncidentKind::Policy,
            format!(
                "vigil: policy {} in force ({why}), mode {}",
                policy.version,
                self.mode_name()
            ),
        )
        .with_mode(self.mode_name())
        .with_outcome("applied")
        .with_extra("VIGIL_POLICY_VERSION", policy.version.clone())
        .with_extra(
            "VIGIL_POLICY_SOURCES",
            policy
                .sources
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
        self.journal_send(&inc);
        Ok(())
    }

    /// Makes `policy` the one in force. If the kernel refuses it (a map limit), the previous
    /// policy is put back, in user space and in the kernel, and the error returned.
    fn install(&mut self, policy: Policy, why: &str) -> Result<bool, String> {
        if policy.version == self.policy().version {
            return Ok(false);
        }
        let previous = self.policy_tx.send_replace(Arc::new(policy));
        if let Err(e) = self.apply_current(why) {
            let rejected = self.policy_tx.send_replace(previous.clone());
            if let Err(again) = self.program_kernel(&previous) {
                error!(
                    "restoring policy {} in the kernel failed too: {again}",
                    previous.version
                );
            }
            return Err(format!(
                "the kernel refused policy {}: {e}",
                rejected.version
            ));
        }
        Ok(true)
    }

    fn rejected(&self, what: &str, e: &str) {
        let keeping = self.policy().version.clone();
        warn!("{what} rejected, keeping policy {keeping}: {e}");
        let inc = Incident::new(
            IncidentKind::Policy,
            format!("vigil: {what} rejected, keeping {keeping}: {e}"),
        )
        .with_priority(3)
        .with_outcome(format!("rejected: {e}"))
        .with_extra("VIGIL_POLICY_VERSION", keeping);
        self.journal_send(&inc);
    }

    fn reload(&mut self) {
        let result = self
            .store
            .load()
            .map_err(|e| e.to_string())
            .and_then(|p| self.install(p, "policy.d changed"));
        if let Err(e) = result {
            self.rejected("policy.d change", &e);
        }
    }

    fn command(&mut self, request: Request) -> Response {
        match request {
            Request::Status => Response::Error("status is answered by the control server".into()),
            Request::PolicyShow => Response::Result(self.policy().summary()),
            Request::PolicyPush { name, content } => {
                let pushed = match self.store.push(&name, &content) {
                    Ok(p) => p,
                    Err(e) => {
                        self.rejected(&format!("policy push of {name}"), &e.to_string());
                        return Response::Error(e.to_string());
                    }
                };
                let version = pushed.policy.version.clone();
                let path = pushed.path.clone();
                match self.install(pushed.policy.clone(), &format!("pushed {}", path.display())) {
                    Ok(changed) => Response::Result(
                        json!({"version": version, "file": path, "changed": changed}),
                    ),
                    Err(e) => {
                        // The file is already in policy.d: take it back out so the next start
                        // does not trip over it.
                        self.store.undo(&pushed);
                        self.rejected(&format!("policy push of {name}"), &e);
                        Response::Error(e)
                    }
                }
            }
            Request::QuarantineList => match &self.quarantine {
                Some(qm) => Response::Result(serde_json::to_value(qm.list()).unwrap_or_default()),
                None => {
                    Response::Error("quarantine is unavailable on this host (no cgroup v2)".into())
                }
            },
            Request::QuarantineShow { id } => {
                match self.quarantine.as_ref().and_then(|qm| qm.get(&id)) {
                    Some(rec) => Response::Result(serde_json::to_value(rec).unwrap_or_default()),
                    None => Response::Error(format!("no quarantine {id}")),
                }
            }
            Request::QuarantineRelease { id } => self.release_or_kill(&id, false),
            Request::QuarantineKill { id } => self.release_or_kill(&id, true),
        }
    }

    fn release_or_kill(&mut self, id: &str, kill: bool) -> Response {
        let Some(qm) = self.quarantine.as_mut() else {
            return Response::Error("quarantine is unavailable on this host (no cgroup v2)".into());
        };
        let mut cut = MapCut(self.kernel.as_mut());
        let result = if kill {
            qm.kill(id, &mut cut)
        } else {
            qm.release(id, &mut cut)
        };
        match result {
            Ok(rec) => {
                let (kind, verb) = if kill {
                    (IncidentKind::Kill, "killed")
                } else {
                    (IncidentKind::Release, "released")
                };
                let inc = Incident::new(
                    kind,
                    format!(
                        "vigil: {verb} quarantine {id} (pid {}, {})",
                        rec.pid, rec.exe
                    ),
                )
                .with_pid(rec.pid)
                .with_exe(rec.exe.clone())
                .with_reason(format!(
                    "operator: quarantine {}",
                    if kill { "kill" } else { "release" }
                ))
                .with_quarantine_id(id.to_owned())
                .with_mode(self.mode_name())
                .with_outcome("applied");
                self.journal_send(&inc);
                Response::Result(serde_json::to_value(rec).unwrap_or_default())
            }
            Err(e) => Response::Error(e.to_string()),
        }
    }
}

/// Processes the kernel must spare at exec from the start: the caller fills in more as it learns.
pub fn initial_protected() -> HashSet<u32> {
    HashSet::from([1, std::process::id()])
}

/// Where vigil keeps its state; the action log and quarantine vault live under it.
pub fn state_paths(state_dir: &std::path::Path) -> (PathBuf, PathBuf) {
    (
        state_dir.join("actions.jsonl"),
        state_dir.join("quarantine"),
    )
}

/// What the process did, for the end of an incident's message (": open of /etc/shadow ..."):
/// a rule's name says why, this says what happened.
fn what(d: &Decision) -> String {
    d.detail
        .as_deref()
        .map(|x| format!(": {x}"))
        .unwrap_or_default()
}
