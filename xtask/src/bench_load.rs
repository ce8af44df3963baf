//! `cargo xtask bench exec | flood | latency`: what vigil costs and how fast it answers under the
//! loads issue 5 names, each figure next to a baseline from the same run, written to
//! `target/bench/<name>.json` for `bench all` to collect into BENCHMARKS.md.
//!
//! - exec: /bin/true exec loops at steady rates; vigil's CPU per exec and at 1000 exec/s, every
//!   exec and exit received; vigil's RSS.
//! - flood: getppid at steady rates and a fork storm; generated vs kernel-counted vs lost.
//! - latency: deny-exec (did the image run, and its cost next to an allowed exec of the same
//!   binary), kernel exec timestamp → journald kill entry, exec → quarantine applied.

use std::{
    fs,
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::{
    bench_model::cpu_seconds,
    bench_overhead::{Probe, median, online_cpus, utc_now},
    bench_peer::{self, Auditd, NoAuditContext},
    build, cmd, setup,
};

/// A vigil daemon under test, with its control socket and event file.
struct Daemon {
    probe: Probe,
    socket: PathBuf,
    events: PathBuf,
    vigil: PathBuf,
}

impl Daemon {
    /// `events`: also write the JSON event stream (the latency bench reads kernel timestamps
    /// from it); the load benches run without it, as deployed.
    fn start(vigil: &Path, dir: &Path, mode: &str, extra_policy: Option<&str>, events: bool) -> Result<Self> {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir)?;
        let socket = dir.join("control.sock");
        let events_path = dir.join("events.jsonl");
        let args = crate::run::shipped_args(dir, mode)?;
        if let Some(text) = extra_policy {
            fs::write(dir.join("policy.d/50-bench.toml"), text)?;
        }
        let mut c = Command::new(vigil);
        c.args(["run", "--ready-line", "--control-socket"]).arg(&socket).args(args);
        if events {
            c.arg("--events-json").arg(&events_path);
        }
        let probe = Probe::start(c, &dir.join("vigil.stderr.log"))?;
        Ok(Self {
            probe,
            socket,
            events: events_path,
            vigil: vigil.to_path_buf(),
        })
    }

    fn status(&self) -> Result<Value> {
        let mut c = Command::new(&self.vigil);
        c.args(["status", "--json", "--control-socket"])
            .arg(&self.socket);
        let out = c.output().context("vigil status")?;
        if !out.status.success() {
            bail!("vigil status: {}", String::from_utf8_lossy(&out.stderr));
        }
        serde_json::from_slice(&out.stdout).context("vigil status JSON")
    }

    /// The status, once its once-a-second snapshot is newer than now.
    fn settled_status(&self) -> Result<Value> {
        thread::sleep(Duration::from_millis(1300));
        self.status()
    }

    fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.probe.pid())
    }

    fn rss_kib(&self) -> Result<(u64, u64)> {
        let text = fs::read_to_string(format!("/proc/{}/status", self.probe.pid()))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }

    fn events(&self) -> Vec<Value> {
        fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn counter(status: &Value, section: &str, key: &str) -> u64 {
    status[section][key].as_u64().unwrap_or(0)
}

fn total_losses(status: &Value) -> u64 {
    status["losses"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

fn prepare(name: &str) -> Result<(PathBuf, PathBuf)> {
    if !cmd::is_root() {
        bail!("`bench {name}` loads eBPF programs and needs root");
    }
    setup::setup()?;
    let vigil = build::build(false)?;
    let out = cmd::target_dir().join("bench");
    fs::create_dir_all(&out)?;
    Ok((vigil, out))
}

fn write_json(out: &Path, name: &str, value: &Value) -> Result<()> {
    let path = out.join(format!("{name}.json"));
    fs::write(&path, serde_json::to_string_pretty(value)?)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The hidden `bench-exec RATE SECONDS`: spawns /bin/true at about RATE per second; prints the
/// number of execs and the wall time. A spawn and wait of /bin/true takes ~1.5 ms of CPU on
/// these VMs, so one serial loop tops out near 650/s; one loop per CPU, each at its share of
/// the rate and staggered, reaches the higher rates (as Sysmon for Linux's method does).
pub fn exec_loop(rate: u64, seconds: u64) -> Result<()> {
    let loops = u32::try_from(online_cpus().max(1)).unwrap_or(1);
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let period = Duration::from_secs_f64(f64::from(loops) / rate.max(1) as f64);
    let counts = thread::scope(|scope| {
        let handles: Vec<_> = (0..loops)
            .map(|i| {
                scope.spawn(move || -> Result<u64> {
                    let mut next = start + period * i / loops;
                    let mut n = 0u64;
                    while Instant::now() < end {
                        if let Some(wait) = next.checked_duration_since(Instant::now()) {
                            thread::sleep(wait);
                        }
                        Command::new("/bin/true").status().context("/bin/true")?;
                        n += 1;
                        next += period;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("exec loop thread panicked"))
            .collect::<Result<Vec<u64>>>()
    })?;
    println!("{} {}", counts.iter().sum::<u64>(), start.elapsed().as_secs_f64());
    Ok(())
}

/// The hidden `bench-forks N`: N fork + immediate _exit, reaped; prints N and the wall time.
pub fn fork_storm(n: u64) -> Result<()> {
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: the child only calls _exit, which is async-signal-safe.
        match unsafe { libc::fork() } {
            0 => unsafe { libc::_exit(0) },
            -1 => bail!("fork: {}", std::io::Error::last_os_error()),
            child => {
                let mut status = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(child, &mut status, 0) };
            }
        }
    }
    println!("{n} {}", start.elapsed().as_secs_f64());
    Ok(())
}

fn run_self(args: &[String]) -> Result<(f64, f64)> {
    let mut c = Command::new(std::env::current_exe().context("locating xtask")?);
    c.args(args);
    let out = cmd::stdout_of(&mut c)?;
    let mut it = out.split_whitespace().map(|s| s.parse::<f64>().unwrap_or(0.0));
    Ok((it.next().unwrap_or(0.0), it.next().unwrap_or(1.0)))
}

/// CPU seconds (user + system) of our reaped children and theirs: the exec workload's own cost,
/// which includes what the tracers' kernel side adds to each exec.
fn children_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data that getrusage fills in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// The exec loads again under the peer: auditd with the exec+connect rule set (vigil stopped).
/// Its cost is the auditd daemon's CPU plus the kauditd kernel thread's, over the same window
/// as vigil's (the load and a 1.3 s drain).
fn exec_under_auditd(out: &Path, rates: &[u64], seconds: u64) -> Result<Vec<Value>> {
    let a = Auditd::start(&out.join("auditd"))?;
    thread::sleep(Duration::from_secs(1));
    let mut rows = Vec::new();
    for &rate in rates {
        thread::sleep(Duration::from_millis(1300));
        let (cpu0, lost0, work0) = (a.cpu_seconds()?, a.lost()?, children_cpu_seconds());
        let (n, wall) = run_self(&["bench-exec".into(), rate.to_string(), seconds.to_string()])?;
        let work = children_cpu_seconds() - work0;
        thread::sleep(Duration::from_millis(1300));
        let cpu = a.cpu_seconds()? - cpu0;
        let lost = a.lost()? - lost0;
        let row = json!({
            "target_rate": rate,
            "achieved_rate": n / wall,
            "execs": n as u64,
            "audit_records_lost": lost,
            "auditd_cpu_us_per_exec": 1e6 * cpu / n.max(1.0),
            "auditd_cpu_percent": 100.0 * cpu / (wall + 1.3),
            "workload_cpu_us_per_exec": 1e6 * work / n.max(1.0),
        });
        eprintln!("bench: exec under auditd {row}");
        rows.push(row);
    }
    a.stop()?;
    Ok(rows)
}

pub fn exec(rates: &[u64], seconds: u64) -> Result<()> {
    let (vigil, out) = prepare("exec")?;
    setup::bench_setup()?;
    let auditd_unavailable = bench_peer::unavailable();
    // As in `bench overhead`: while vigil is measured, new processes carry no audit context.
    let never = match auditd_unavailable {
        None => Some(NoAuditContext::load()?),
        Some(_) => None,
    };
    let d = Daemon::start(&vigil, &out.join("exec-run"), "monitor", None, false)?;
    thread::sleep(Duration::from_secs(3));
    let idle_cpu0 = d.cpu_seconds()?;
    thread::sleep(Duration::from_secs(5));
    let idle_cpu = 100.0 * (d.cpu_seconds()? - idle_cpu0) / 5.0;
    let (idle_rss, _) = d.rss_kib()?;
    let mut rows = Vec::new();
    for &rate in rates {
        let before = d.settled_status()?;
        let cpu0 = d.cpu_seconds()?;
        let work0 = children_cpu_seconds();
        let (n, wall) = run_self(&["bench-exec".into(), rate.to_string(), seconds.to_string()])?;
        let work = children_cpu_seconds() - work0;
        let after = d.settled_status()?;
        let cpu = d.cpu_seconds()? - cpu0;
        let (rss, hwm) = d.rss_kib()?;
        let received = counter(&after, "events", "exec") - counter(&before, "events", "exec");
        let lost = total_losses(&after) - total_losses(&before);
        // The settle sleeps count as wall time for vigil's CPU: it keeps draining then.
        let row = json!({
            "target_rate": rate,
            "achieved_rate": n / wall,
            "execs": n as u64,
            "exec_events_received": received,
            "events_lost": lost,
            "vigil_cpu_us_per_exec": 1e6 * cpu / n.max(1.0),
            "vigil_cpu_percent": 100.0 * cpu / (wall + 1.3),
            "vigil_rss_kib": rss,
            "vigil_peak_rss_kib": hwm,
            "workload_cpu_us_per_exec": 1e6 * work / n.max(1.0),
        });
        eprintln!("bench: exec {row}");
        rows.push(row);
    }
    d.probe.stop()?;
    drop(never);
    let (auditd_rows, auditd_skipped) = match auditd_unavailable {
        Some(reason) => {
            eprintln!("bench: exec under auditd skipped: {reason}");
            (Vec::new(), Some(reason))
        }
        None => (exec_under_auditd(&out, rates, seconds)?, None),
    };
    let median_of = |rows: &[Value], key: &str| {
        median(&rows.iter().filter_map(|r| r[key].as_f64()).collect::<Vec<_>>())
    };
    let per_exec = median_of(&rows, "vigil_cpu_us_per_exec");
    let auditd_per_exec = (!auditd_rows.is_empty())
        .then(|| median_of(&auditd_rows, "auditd_cpu_us_per_exec"));
    let points: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((r["achieved_rate"].as_f64()?, r["vigil_cpu_percent"].as_f64()?)))
        .collect();
    let at_1000 = percent_at(&points, 1000.0);
    println!("\nexec loads ({seconds} s each), {}", utc_now());
    for r in &rows {
        println!(
            "  {:>5}/s target, {:>7.0}/s achieved: vigil {:>6.1} µs CPU per exec, {:>5.1}% of a core, {} exec events received of {}, {} lost",
            r["target_rate"],
            r["achieved_rate"].as_f64().unwrap_or(0.0),
            r["vigil_cpu_us_per_exec"].as_f64().unwrap_or(0.0),
            r["vigil_cpu_percent"].as_f64().unwrap_or(0.0),
            r["exec_events_received"],
            r["execs"],
            r["events_lost"]
        );
    }
    println!(
        "median {per_exec:.1} µs per exec; {at_1000:.1}% of a core at 1000 exec/s (between the measured rates)   goal <= 5 ({})",
        if at_1000 <= 5.0 { "met" } else { "NOT met" }
    );
    println!("idle: {idle_cpu:.2}% of a core, RSS {} MiB", idle_rss / 1024);
    match &auditd_skipped {
        Some(reason) => println!("auditd (exec+connect rules): skipped: {reason}"),
        None => {
            println!("the same loads under auditd (exec+connect rules; auditd + kauditd CPU):");
            for (a, v) in auditd_rows.iter().zip(&rows) {
                println!(
                    "  {:>5}/s target, {:>7.0}/s achieved: auditd {:>6.1} µs CPU per exec ({:>5.1}% of a core), vigil {:>6.1} µs; workload {:.0} µs per exec under auditd vs {:.0} under vigil; {} audit records lost",
                    a["target_rate"],
                    a["achieved_rate"].as_f64().unwrap_or(0.0),
                    a["auditd_cpu_us_per_exec"].as_f64().unwrap_or(0.0),
                    a["auditd_cpu_percent"].as_f64().unwrap_or(0.0),
                    v["vigil_cpu_us_per_exec"].as_f64().unwrap_or(0.0),
                    a["workload_cpu_us_per_exec"].as_f64().unwrap_or(0.0),
                    v["workload_cpu_us_per_exec"].as_f64().unwrap_or(0.0),
                    a["audit_records_lost"]
                );
            }
            if let Some(a) = auditd_per_exec {
                println!(
                    "median: vigil {per_exec:.1} µs vs auditd {a:.1} µs per exec ({:.1}x)   goal: below auditd ({})",
                    per_exec / a,
                    if per_exec < a { "met" } else { "NOT met" }
                );
            }
        }
    }
    write_json(
        &out,
        "exec",
        &json!({
            "bench": "exec", "date": utc_now(), "seconds": seconds, "rows": rows,
            "median_cpu_us_per_exec": per_exec, "cpu_percent_at_1000_per_s": at_1000,
            "idle_cpu_percent": idle_cpu, "idle_rss_kib": idle_rss,
            "auditd_rows": auditd_rows, "auditd_median_cpu_us_per_exec": auditd_per_exec,
            "auditd_skipped": auditd_skipped, "auditd_rules": bench_peer::rule_text(),
        }),
    )
}

pub fn flood(rates: &[u64], seconds: u64, forks: u64) -> Result<()> {
    let (vigil, out) = prepare("flood")?;
    let d = Daemon::start(&vigil, &out.join("flood-run"), "monitor", None, false)?;
    let mut rows = Vec::new();
    for &rate in rates {
        let before = d.settled_status()?;
        let (cpu0, started) = (d.cpu_seconds()?, Instant::now());
        let (n, wall) = run_self(&["bench-paced".into(), rate.to_string(), seconds.to_string()])?;
        let cpu = 100.0 * (d.cpu_seconds()? - cpu0) / started.elapsed().as_secs_f64();
        let after = d.settled_status()?;
        let batched = counter(&after, "kernel_emitted", "syscalls_batched")
            - counter(&before, "kernel_emitted", "syscalls_batched");
        let lost_syscalls = counter(&after, "losses", "syscalls_in_lost_batches")
            - counter(&before, "losses", "syscalls_in_lost_batches");
        let lost = total_losses(&after) - total_losses(&before);
        let row = json!({
            "target_rate": rate, "achieved_rate": n / wall, "generated": n as u64,
            "kernel_counted_host_wide": batched, "syscalls_lost": lost_syscalls, "all_losses": lost,
            "vigil_cpu_percent": cpu,
        });
        eprintln!("bench: flood {row}");
        rows.push(row);
    }
    let before = d.settled_status()?;
    let (cpu0, started) = (d.cpu_seconds()?, Instant::now());
    let (n, wall) = run_self(&["bench-forks".into(), forks.to_string()])?;
    let cpu = 100.0 * (d.cpu_seconds()? - cpu0) / started.elapsed().as_secs_f64();
    let after = d.settled_status()?;
    let delta = |section: &str, key: &str| counter(&after, section, key) - counter(&before, section, key);
    let storm = json!({
        "forks": n as u64, "forks_per_s": n / wall,
        "fork_emitted": delta("kernel_emitted", "fork"), "fork_received": delta("events", "fork"),
        "exit_emitted": delta("kernel_emitted", "exit"), "exit_received": delta("events", "exit"),
        "fork_lost": delta("losses", "fork"), "exit_lost": delta("losses", "exit"),
        "all_losses": total_losses(&after) - total_losses(&before),
        "vigil_cpu_percent": cpu,
    });
    let (rss, hwm) = d.rss_kib()?;
    d.probe.stop()?;
    println!("\nsyscall floods ({seconds} s each) and a fork storm, {}", utc_now());
    for r in &rows {
        println!(
            "  {:>8}/s target, {:>9.0}/s achieved: generated {}, kernel-counted (host) {}, lost {} ({} loss counters); vigil {:.1}% of a core",
            r["target_rate"], r["achieved_rate"].as_f64().unwrap_or(0.0), r["generated"],
            r["kernel_counted_host_wide"], r["syscalls_lost"], r["all_losses"],
            r["vigil_cpu_percent"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "  fork storm: {} forks at {:.0}/s; fork events emitted {} received {}, exit emitted {} received {}, lost {}",
        storm["forks"], storm["forks_per_s"].as_f64().unwrap_or(0.0), storm["fork_emitted"],
        storm["fork_received"], storm["exit_emitted"], storm["exit_received"], storm["all_losses"]
    );
    println!("peak RSS {} MiB", hwm / 1024);
    write_json(
        &out,
        "flood",
        &json!({"bench": "flood", "date": utc_now(), "seconds": seconds, "rows": rows, "fork_storm": storm, "rss_kib": rss, "peak_rss_kib": hwm}),
    )
}

/// journald's receive time (`__MONOTONIC_TIMESTAMP`, µs) of vigil's entries of `event`, by pid.
fn journal_monotonic(event: &str) -> Vec<(u32, u64)> {
    let _ = Command::new("journalctl").arg("--sync").stderr(Stdio::null()).status();
    let out = Command::new("journalctl")
        .args(["-o", "json", "--no-pager", "-t", "vigil", "--since", "-10min"])
        .arg(format!("VIGIL_EVENT={event}"))
        .output();
    let Ok(out) = out else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| {
            let pid = e["VIGIL_PID"].as_str()?.parse().ok()?;
            let mono = e["__MONOTONIC_TIMESTAMP"].as_str()?.parse().ok()?;
            Some((pid, mono))
        })
        .collect()
}

fn copy_exe(from: &str, to: &Path) -> Result<()> {
    fs::create_dir_all(to.parent().context("no parent")?)?;
    fs::copy(from, to).with_context(|| format!("copying {from}"))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

pub fn latency(runs: usize) -> Result<()> {
    let (vigil, out) = prepare("latency")?;
    let journald = Path::new("/run/systemd/journal/socket").exists();
    let dir = out.join("latency-run");
    let work = out.join("latency-work");
    let _ = fs::remove_dir_all(&work);
    let (denied, allowed, held) = (work.join("deny/touch"), work.join("allow/touch"), work.join("q/sleep"));
    copy_exe("/usr/bin/touch", &denied)?;
    copy_exe("/usr/bin/touch", &allowed)?;
    copy_exe("/usr/bin/sleep", &held)?;
    let policy = format!(
        "[[rule.exec]]\nname = \"bench-deny\"\naction = \"kill\"\npath = [\"{}/deny/**\"]\n\n\
         [[rule.exec]]\nname = \"bench-quarantine\"\naction = \"quarantine\"\npath = [\"{}\"]\n\n\
         [response]\nmax_actions = 1000\nper_seconds = 60\n",
        work.display(),
        held.display()
    );
    let d = Daemon::start(&vigil, &dir, "enforce", Some(&policy), true)?;

    // Deny-exec: the same binary, denied vs allowed; the denied one must never write its marker.
    let (mut t_denied, mut t_allowed, mut ran, mut denied_pids) = (Vec::new(), Vec::new(), 0, Vec::new());
    for i in 0..runs {
        for (bin, times) in [(&denied, &mut t_denied), (&allowed, &mut t_allowed)] {
            let marker = work.join(format!("marker-{i}"));
            let t0 = Instant::now();
            let mut child = Command::new(bin).arg(&marker).spawn()?;
            let status = child.wait()?;
            times.push(t0.elapsed().as_secs_f64() * 1e6);
            if bin == &denied {
                denied_pids.push(child.id());
                if status.signal() != Some(libc::SIGKILL) || marker.exists() {
                    ran += 1;
                }
            }
            let _ = fs::remove_file(&marker);
        }
    }

    // Quarantines of a rule-matched process, then killed to clean up.
    let mut q_pids = Vec::new();
    for _ in 0..runs.min(10) {
        let child = Command::new(&held).arg("30").spawn()?;
        q_pids.push(child.id());
        thread::sleep(Duration::from_millis(300));
    }
    thread::sleep(Duration::from_millis(1500));
    let list = Command::new(&vigil)
        .args(["quarantine", "list", "--json", "--control-socket"])
        .arg(&d.socket)
        .output()?;
    let records: Vec<Value> = serde_json::from_slice::<Value>(&list.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    // Per record: first step -> "contained:" (stopped, network cut by tgid) and -> the last
    // step (active: frozen cgroup, cut by cgroup, evidence vaulted).
    let (mut contained_ms, mut record_ms) = (Vec::new(), Vec::new());
    for r in &records {
        let id = r["id"].as_str().unwrap_or_default();
        let steps: Vec<&str> = r["events"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let first = steps.first().and_then(|l| clock_ms(l));
        let contained = steps
            .iter()
            .find(|l| l.get(25..).is_some_and(|t| t.starts_with("contained:")))
            .and_then(|l| clock_ms(l));
        if let (Some(first), Some(last)) = (first, steps.last().and_then(|l| clock_ms(l))) {
            record_ms.push(last - first);
        }
        if let (Some(first), Some(c)) = (first, contained) {
            contained_ms.push(c - first);
        }
        let _ = Command::new(&vigil)
            .args(["quarantine", "kill", id, "--control-socket"])
            .arg(&d.socket)
            .output();
    }

    // Kernel exec time -> journald receive time, for kills and quarantines.
    thread::sleep(Duration::from_millis(1500));
    let events = d.events();
    let exec_ns = |pid: u32| {
        events
            .iter()
            .find(|e| e["type"] == "exec" && e["pid"] == pid)
            .and_then(|e| e["ktime_ns"].as_u64())
    };
    let to_journal = |event: &str, pids: &[u32]| -> Vec<f64> {
        if !journald {
            return Vec::new();
        }
        let entries = journal_monotonic(event);
        pids.iter()
            .filter_map(|&pid| {
                let k = exec_ns(pid)?;
                let (_, mono) = entries.iter().find(|(p, _)| *p == pid)?;
                Some((*mono as f64 - k as f64 / 1e3) / 1e3)
            })
            .collect()
    };
    let kill_ms = to_journal("kill", &denied_pids);
    let quarantine_ms = to_journal("quarantine", &q_pids);
    let (rss, hwm) = d.rss_kib()?;
    d.probe.stop()?;

    let (md, ma) = (median(&t_denied), median(&t_allowed));
    println!("\nresponse latency ({runs} runs), {}", utc_now());
    println!(
        "deny-exec: {ran} of {runs} denied images ran (goal 0); spawn->reaped {md:.0} µs denied vs {ma:.0} µs allowed (ratio {:.2})",
        md / ma
    );
    let show = |v: &[f64]| if v.is_empty() { "n/a (no journald)".to_string() } else { format!("median {:.1} ms, max {:.1} ms over {}", median(v), v.iter().cloned().fold(0.0, f64::max), v.len()) };
    println!("kernel exec timestamp -> journald kill entry: {}", show(&kill_ms));
    println!("kernel exec timestamp -> journald quarantine entry (frozen, network cut): {}", show(&quarantine_ms));
    println!(
        "quarantine record, first step -> contained (stopped, network cut): median {:.1} ms over {}   goal (verdict -> quarantine) <= 10 ({})",
        median(&contained_ms),
        contained_ms.len(),
        if median(&contained_ms) <= 10.0 { "met" } else { "NOT met" }
    );
    println!(
        "quarantine record, first step -> active (frozen cgroup, evidence vaulted): median {:.1} ms over {}",
        median(&record_ms),
        record_ms.len(),
    );
    write_json(
        &out,
        "latency",
        &json!({
            "bench": "latency", "date": utc_now(), "runs": runs,
            "denied_images_that_ran": ran, "denied_spawn_us": md, "allowed_spawn_us": ma,
            "exec_to_journald_kill_ms": kill_ms, "exec_to_journald_quarantine_ms": quarantine_ms,
            "quarantine_record_to_active_ms": record_ms,
            "quarantine_record_to_contained_ms": contained_ms, "rss_kib": rss, "peak_rss_kib": hwm,
        }),
    )
}

/// vigil's % of a core at `rate` execs/s, from (achieved rate, % of a core) points: linear
/// between the two measured rates around it, or the nearest point scaled by rate outside them.
fn percent_at(points: &[(f64, f64)], rate: f64) -> f64 {
    let mut p: Vec<(f64, f64)> = points.iter().copied().filter(|(r, _)| *r > 0.0).collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in p.windows(2) {
        let ((r0, c0), (r1, c1)) = (w[0], w[1]);
        if r0 <= rate && rate <= r1 && r1 > r0 {
            return c0 + (c1 - c0) * (rate - r0) / (r1 - r0);
        }
    }
    let nearest = p.iter().min_by(|a, b| (a.0 - rate).abs().total_cmp(&(b.0 - rate).abs()));
    nearest.map_or(f64::NAN, |(r, c)| c * rate / r)
}

/// "2026-11-25T18:22:20.101Z step" -> ms since midnight.
fn clock_ms(line: &str) -> Option<f64> {
    let t = line.get(11..23)?;
    let mut p = t.split(':');
    let (h, m, s): (f64, f64, f64) = (p.next()?.parse().ok()?, p.next()?.parse().ok()?, p.next()?.parse().ok()?);
    Some(((h * 60.0 + m) * 60.0 + s) * 1e3)
}

#[cfg(test)]
mod tests {
    use super::percent_at;

    #[test]
    fn percent_at_interpolates_between_rates_and_scales_outside() {
        let pts = [(100.0, 4.0), (800.0, 7.0), (1012.0, 8.0)];
        assert!((percent_at(&pts, 1000.0) - (7.0 + 1.0 * 200.0 / 212.0)).abs() < 1e-9);
        assert!((percent_at(&pts[..2], 1000.0) - 7.0 * 1000.0 / 800.0).abs() < 1e-9);
        assert!(percent_at(&[], 1000.0).is_nan());
    }
}
