//! The auditd peer baseline of the benchmarks: Debian's auditd carrying an exec + connect rule
//! set, started and torn down by the bench itself (there is no systemd to ask).
//!
//! [`Auditd::start`] notes the kernel's audit state (enabled flag, backlog limit, rules), starts
//! `auditd -n -s nochange -c DIR` as a child with a private config whose log rotates within
//! `target/bench/auditd/` (at most `NUM_LOGS` x `MAX_LOG_MB`), enables auditing and adds the
//! rules. Stopping it, or dropping it on an error or a panic, deletes exactly those rules, puts
//! the enabled flag and backlog limit back and stops the daemon. An auditd that was already
//! running is used as it is and left running. A watchdog shell in its own process group does the
//! same if xtask dies without unwinding (Ctrl-C, SIGKILL).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::bench_model::cpu_seconds;
use crate::cmd;

/// The rule keys, so our rules are told apart from anyone else's.
const EXEC_KEY: &str = "vigil-bench-exec";
const CONNECT_KEY: &str = "vigil-bench-connect";
/// What Debian's shipped audit.rules sets (the kernel's default, 64, drops or blocks at once).
const BACKLOG_LIMIT: i64 = 8192;
const MAX_LOG_MB: u32 = 8;
const NUM_LOGS: u32 = 4;
const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The rule set, each as the arguments that follow `auditctl -a` (and `-d` to delete it). The
/// 32-bit variants are optional: a kernel without IA32 emulation refuses them.
fn rules() -> Vec<(Vec<String>, bool)> {
    let mut out = Vec::new();
    for (syscalls, key) in [("execve,execveat", EXEC_KEY), ("connect", CONNECT_KEY)] {
        for (arch, required) in [("b64", true), ("b32", false)] {
            let args = [
                "always,exit",
                "-F",
                &format!("arch={arch}"),
                "-S",
                syscalls,
                "-k",
                key,
            ];
            out.push((args.iter().map(|s| s.to_string()).collect(), required));
        }
    }
    out
}

/// The rule set as `auditctl` lines, for the reports.
pub(crate) fn rule_text() -> String {
    rules()
        .iter()
        .map(|(r, _)| format!("-a {}", r.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `auditctl -s` as key -> number (`enabled 1`, `pid 123`, `backlog_limit 8192`, `lost 0`...).
pub(crate) fn parse_status(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let key = f.next()?;
            let value = f.next()?.parse().ok()?;
            Some((key.to_string(), value))
        })
        .collect()
}

fn status() -> Result<BTreeMap<String, i64>> {
    let mut c = Command::new("auditctl");
    c.arg("-s");
    let out = cmd::probe(&mut c)?;
    if !out.status.success() {
        bail!(
            "`auditctl -s` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_status(&String::from_utf8_lossy(&out.stdout)))
}

fn auditctl(args: &[&str]) -> Result<String> {
    cmd::stdout_of(Command::new("auditctl").args(args))
}

fn rule_list() -> Result<String> {
    let mut c = Command::new("auditctl");
    c.arg("-l");
    let out = cmd::probe(&mut c)?;
    if !out.status.success() {
        bail!(
            "`auditctl -l` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `auditctl -l` output lists any rule carrying one of our keys.
pub(crate) fn lists_our_rules(listing: &str) -> bool {
    listing.lines().any(|l| {
        l.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| {
                (w[0] == "-k" || w[0] == "-F") && {
                    let v = w[1].trim_start_matches("key=");
                    v == EXEC_KEY || v == CONNECT_KEY
                }
            })
    })
}

fn alive(pid: i64) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// None when auditd can be benchmarked here, otherwise why not (the rows then say "skipped").
pub(crate) fn unavailable() -> Option<String> {
    if !cmd::is_root() {
        return Some("needs root".into());
    }
    if !Path::new("/proc/self/loginuid").exists() {
        return Some("the kernel has no audit support (CONFIG_AUDIT)".into());
    }
    for bin in ["auditd", "auditctl"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{bin} is not installed"));
        }
    }
    match status() {
        Err(e) => Some(format!("{e:#}")),
        Ok(s) if s.get("enabled") == Some(&2) => {
            Some("the audit configuration is locked (auditctl -s: enabled 2)".into())
        }
        Ok(_) => None,
    }
}

/// `-a task,never` for the other modes of a run that also measures auditd. Once auditing has
/// been enabled the kernel gives every process forked from then on an audit context
/// (`audit_ever_enabled` is never reset), which puts even its untraced syscalls on the slow
/// entry path; a `task,never` rule keeps new processes without one, so the bare and probe modes
/// measure the same kernel whether or not auditd ran earlier in the run (or since boot).
pub(crate) struct NoAuditContext {
    loaded: bool,
    watchdog: Option<Child>,
}

const NEVER_RULE: [&str; 2] = ["-a", "task,never"];

impl NoAuditContext {
    pub(crate) fn load() -> Result<Self> {
        if rule_list()?.lines().any(|l| l.trim() == "-a never,task") {
            // Someone else's; leave it to them.
            return Ok(NoAuditContext {
                loaded: false,
                watchdog: None,
            });
        }
        auditctl(&NEVER_RULE)?;
        let mut me = NoAuditContext {
            loaded: true,
            watchdog: None,
        };
        me.watchdog = Some(watchdog("auditctl -d task,never\n")?);
        Ok(me)
    }
}

impl Drop for NoAuditContext {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        if self.loaded
            && let Err(e) = auditctl(&["-d", "task,never"])
        {
            eprintln!("bench: warning: deleting the task,never audit rule: {e:#}");
        }
    }
}

/// The kernel thread that hands audit records to auditd.
fn kauditd_pid() -> Option<u32> {
    fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim() == "kauditd").then_some(pid)
        })
}

fn config(dir: &Path) -> String {
    // Debian's /etc/audit/auditd.conf (auditd 3.0.9) but for where the log goes, how much of it
    // is kept, the plugins (none) and verify_email (no DNS lookup at start).
    format!(
        "local_events = yes\nwrite_logs = yes\nlog_file = {log}\nlog_group = root\n\
         log_format = ENRICHED\nflush = INCREMENTAL_ASYNC\nfreq = 50\n\
         max_log_file = {MAX_LOG_MB}\nnum_logs = {NUM_LOGS}\npriority_boost = 4\n\
         name_format = NONE\nmax_log_file_action = ROTATE\nspace_left = 75\n\
         space_left_action = SYSLOG\nverify_email = no\naction_mail_acct = root\n\
         admin_space_left = 50\nadmin_space_left_action = SUSPEND\ndisk_full_action = SUSPEND\n\
         disk_error_action = SUSPEND\nuse_libwrap = yes\ntcp_listen_queue = 5\n\
         tcp_max_per_addr = 1\ntcp_client_max_idle = 0\ntransport = TCP\n\
         distribute_network = no\nq_depth = 2000\noverflow_action = SYSLOG\nmax_restarts = 10\n\
         plugin_dir = {plugins}\nend_of_event_timeout = 2\n",
        log = dir.join("audit.log").display(),
        plugins = dir.join("plugins.d").display(),
    )
}

/// auditd with the bench's rules loaded; see the module doc.
pub(crate) struct Auditd {
    /// The daemon we started; None when one was already running.
    child: Option<Child>,
    pid: u32,
    kauditd: Option<u32>,
    prev_enabled: i64,
    prev_backlog_limit: Option<i64>,
    no_rules_before: bool,
    added: Vec<Vec<String>>,
    log: PathBuf,
    cleaned: bool,
    /// Cleans up if xtask goes away without running Drop; killed before a normal cleanup.
    watchdog: Option<Child>,
}

impl Auditd {
    /// `dir` holds the private config and the (rotated) log.
    pub(crate) fn start(dir: &Path) -> Result<Self> {
        let before = status()?;
        let prev_enabled = *before
            .get("enabled")
            .context("`auditctl -s` shows no `enabled`")?;
        if prev_enabled == 2 {
            bail!("the audit configuration is locked (enabled 2)");
        }
        let no_rules_before = !rule_list()?.lines().any(|l| l.starts_with('-'));
        fs::create_dir_all(dir.join("plugins.d"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let log = dir.join("auditd.stderr.log");
        // From here on, Drop puts back whatever has been changed.
        let mut a = Auditd {
            child: None,
            pid: 0,
            kauditd: None,
            prev_enabled,
            prev_backlog_limit: before.get("backlog_limit").copied(),
            no_rules_before,
            added: Vec::new(),
            log: log.clone(),
            cleaned: false,
            watchdog: None,
        };
        let running = before.get("pid").copied().unwrap_or(0);
        if alive(running) {
            eprintln!("bench: using the auditd that is already running (pid {running})");
            a.pid = u32::try_from(running).context("auditd pid out of range")?;
        } else {
            let conf = dir.join("auditd.conf");
            fs::write(&conf, config(dir)).with_context(|| format!("writing {}", conf.display()))?;
            // auditd refuses a config that others can write.
            fs::set_permissions(&conf, fs::Permissions::from_mode(0o640))?;
            let log_file = fs::File::create(&log)?;
            let mut c = Command::new("auditd");
            c.args(["-n", "-s", "nochange", "-c"]).arg(dir);
            c.stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file);
            cmd::announce(&c);
            let child = c
                .spawn()
                .with_context(|| format!("failed to start `{}`", cmd::display(&c)))?;
            a.pid = child.id();
            a.child = Some(child);
            a.wait_registered()?;
        }
        auditctl(&["-b", &BACKLOG_LIMIT.to_string()])?;
        auditctl(&["-e", "1"])?;
        for (rule, required) in rules() {
            let mut args = vec!["-a"];
            args.extend(rule.iter().map(String::as_str));
            match auditctl(&args) {
                Ok(_) => a.added.push(rule),
                Err(e) if !required => eprintln!("bench: optional audit rule not loaded: {e:#}"),
                Err(e) => return Err(e),
            }
        }
        a.watchdog = Some(a.spawn_watchdog()?);
        let now = status()?;
        if now.get("enabled") != Some(&1) || now.get("pid") != Some(&i64::from(a.pid)) {
            bail!(
                "auditctl -s after setup shows {now:?}, expected enabled 1 and pid {}",
                a.pid
            );
        }
        a.kauditd = kauditd_pid();
        eprintln!(
            "bench: auditd pid {} enabled, {} rules (kauditd pid {:?})",
            a.pid,
            a.added.len(),
            a.kauditd
        );
        Ok(a)
    }

    /// The cleanup as a shell script.
    fn watchdog_script(&self) -> String {
        let mut script = String::new();
        for rule in &self.added {
            script += &format!("auditctl -d {}\n", rule.join(" "));
        }
        if let Some(limit) = self.prev_backlog_limit {
            script += &format!("auditctl -b {limit}\n");
        }
        script += &format!("auditctl -e {}\n", self.prev_enabled);
        if self.child.is_some() {
            script += &format!("kill -TERM {}\n", self.pid);
        }
        script
    }

    fn spawn_watchdog(&self) -> Result<Child> {
        watchdog(&self.watchdog_script())
    }

    /// Until the kernel shows our daemon as the audit pid.
    fn wait_registered(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(st) = child.try_wait()?
            {
                bail!(
                    "auditd exited ({st}) while starting; see {}",
                    self.log.display()
                );
            }
            if status()?.get("pid") == Some(&i64::from(self.pid)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "auditd (pid {}) did not register with the kernel within {START_TIMEOUT:?}; see {}",
                    self.pid,
                    self.log.display()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// CPU seconds of the auditd process and of the kauditd kernel thread.
    pub(crate) fn cpu_seconds(&self) -> Result<f64> {
        let kernel = match self.kauditd {
            Some(pid) => cpu_seconds(pid)?,
            None => 0.0,
        };
        Ok(cpu_seconds(self.pid)? + kernel)
    }

    /// The kernel's count of audit records lost.
    pub(crate) fn lost(&self) -> Result<i64> {
        Ok(status()?.get("lost").copied().unwrap_or(0))
    }

    pub(crate) fn stop(mut self) -> Result<()> {
        self.cleanup()
    }

    fn cleanup(&mut self) -> Result<()> {
        if self.cleaned {
            return Ok(());
        }
        self.cleaned = true;
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let mut errors = Vec::new();
        for rule in std::mem::take(&mut self.added) {
            let mut args = vec!["-d"];
            args.extend(rule.iter().map(String::as_str));
            if let Err(e) = auditctl(&args) {
                errors.push(format!("{e:#}"));
            }
        }
        // If deleting one by one failed and there were no rules before, clear them all.
        if self.no_rules_before
            && rule_list().is_ok_and(|l| lists_our_rules(&l))
            && let Err(e) = auditctl(&["-D"])
        {
            errors.push(format!("{e:#}"));
        }
        if let Some(limit) = self.prev_backlog_limit
            && let Err(e) = auditctl(&["-b", &limit.to_string()])
        {
            errors.push(format!("{e:#}"));
        }
        if let Err(e) = auditctl(&["-e", &self.prev_enabled.to_string()]) {
            errors.push(format!("{e:#}"));
        }
        if let Some(mut child) = self.child.take()
            && let Err(e) = stop_child(&mut child)
        {
            errors.push(format!("{e:#}"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("cleaning up after auditd: {}", errors.join("; "))
        }
    }
}

/// A shell that runs `cleanup` once xtask has gone away without cleaning up itself (Ctrl-C,
/// SIGKILL); the normal path kills it first.
fn watchdog(cleanup: &str) -> Result<Child> {
    let script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done\n{cleanup}",
        std::process::id()
    );
    let mut c = Command::new("sh");
    c.args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C that ends xtask does not end it.
        .process_group(0);
    c.spawn().context("starting an audit cleanup watchdog")
}

fn stop_child(child: &mut Child) -> Result<()> {
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    eprintln!("$ kill -TERM {pid}   # auditd");
    // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("auditd (pid {pid}) did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed")
}

impl Drop for Auditd {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            eprintln!("bench: warning: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{lists_our_rules, parse_status, rules};

    #[test]
    fn parses_auditctl_status() {
        let s = parse_status(
            "enabled 1\nfailure 1\npid 4242\nrate_limit 0\nbacklog_limit 8192\nlost 7\nbacklog 0\n\
             backlog_wait_time 60000\nbacklog_wait_time_actual 0\nloginuid_immutable 0 unlocked\n",
        );
        assert_eq!(s["enabled"], 1);
        assert_eq!(s["pid"], 4242);
        assert_eq!(s["backlog_limit"], 8192);
        assert_eq!(s["lost"], 7);
        assert_eq!(s["loginuid_immutable"], 0);
    }

    #[test]
    fn recognises_our_rules_only() {
        assert!(!lists_our_rules("No rules\n"));
        assert!(!lists_our_rules(
            "-a always,exit -F arch=b64 -S execve -F key=other\n"
        ));
        assert!(lists_our_rules(
            "-a always,exit -F arch=b64 -S execve,execveat -F key=vigil-bench-exec\n"
        ));
        assert!(lists_our_rules(
            "-a always,exit -S connect -k vigil-bench-connect\n"
        ));
    }

    #[test]
    fn rule_set_is_exec_and_connect_with_b64_required() {
        let r = rules();
        assert_eq!(r.len(), 4);
        assert!(
            r.iter()
                .filter(|(_, req)| *req)
                .all(|(a, _)| a.contains(&"arch=b64".to_string()))
        );
        assert!(
            r.iter()
                .any(|(a, _)| a.contains(&"execve,execveat".to_string()))
        );
        assert!(r.iter().any(|(a, _)| a.contains(&"connect".to_string())));
    }
}
