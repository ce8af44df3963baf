//! `cargo xtask bench overhead`: what vigil adds to each syscall, next to the floor that any
//! per-syscall tracer pays (an empty raw_tp sys_enter counter), measured in one run with the
//! modes interleaved round by round so that drift in the VM's speed hits all of them alike.

use std::fs::{self, File};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use serde_json::json;

use crate::{build, cmd, setup};

/// Largest acceptable `(vigil - bare) / (empty - bare)`.
const GOAL_RATIO: f64 = 1.25;
/// How long a probe may take to attach before we give up on it.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The CPU the syscall loop runs on when there are at least two.
const LOOP_CPU: usize = 1;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Nothing attached.
    Bare,
    /// `vigil debug empty-probe`: a raw_tp sys_enter that only bumps a per-CPU counter.
    EmptyProbe,
    /// The whole agent as deployed: `vigil run` (no JSON event stream).
    Vigil,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::EmptyProbe => "empty-probe",
            Mode::Vigil => "vigil",
        }
    }
}

pub struct Opts {
    pub iterations: u64,
    pub rounds: u32,
    pub modes: Vec<Mode>,
}

fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

fn loop_cpu() -> Option<usize> {
    (online_cpus() >= 2).then_some(LOOP_CPU)
}

/// The hidden `bench-loop N` subcommand: runs in its own process, pinned, and prints the
/// elapsed nanoseconds of N getppid syscalls.
pub fn bench_loop(iterations: u64) -> Result<()> {
    if let Some(cpu) = loop_cpu() {
        // SAFETY: cpu_set_t is plain data; CPU_SET stays within it for cpu < CPU_SETSIZE.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("sched_setaffinity to CPU {cpu}"));
        }
    }
    // Warm caches and let the scheduler settle on the pinned CPU.
    syscall_loop(iterations / 10);
    let start = Instant::now();
    syscall_loop(iterations);
    println!("{}", start.elapsed().as_nanos());
    Ok(())
}

/// A plain `while` so that even an unoptimised xtask build adds only a few ns per call; that
/// constant cancels out of every difference the report makes.
fn syscall_loop(iterations: u64) {
    let mut i = 0u64;
    while i < iterations {
        // SAFETY: getppid takes no arguments and cannot fail.
        std::hint::black_box(unsafe { libc::syscall(libc::SYS_getppid) });
        i = i.wrapping_add(1);
    }
}

/// Runs the loop in a child process and returns ns per syscall.
fn measure(iterations: u64) -> Result<f64> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench-loop", &iterations.to_string()]);
    let out = cmd::stdout_of(&mut cmd)?;
    let ns: f64 = out
        .trim()
        .parse()
        .with_context(|| format!("bench-loop printed {out:?}"))?;
    Ok(ns / iterations as f64)
}

/// A process that has attached its programs (it printed `ready`), stopped with SIGTERM.
pub(crate) struct Probe {
    child: Child,
    what: String,
    log: PathBuf,
}

impl Probe {
    pub(crate) fn start(mut cmd: Command, log: &Path) -> Result<Self> {
        let log_file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(Stdio::piped()).stderr(log_file);
        let what = cmd::display(&cmd);
        cmd::announce(&cmd);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("failed to start `{what}`"))?;
        let stdout = child.stdout.take().context("probe stdout was not piped")?;
        let mut probe = Probe {
            child,
            what,
            log: log.to_path_buf(),
        };

        // Read stdout on a thread for the whole life of the process, so it never blocks on a
        // full pipe; the first `ready` line is passed on.
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim() == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(()) => Ok(probe),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!(
                    "`{}` did not print `ready` within {READY_TIMEOUT:?}; see {}",
                    probe.what,
                    probe.log.display()
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = probe
                    .child
                    .wait()
                    .with_context(|| format!("waiting for `{}`", probe.what))?;
                bail!(
                    "`{}` exited ({status}) before printing `ready`; see {}",
                    probe.what,
                    probe.log.display()
                )
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stop(mut self) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("SIGTERM to `{}`", self.what));
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .with_context(|| format!("waiting for `{}`", self.what))?
            {
                if !status.success() {
                    eprintln!(
                        "bench: warning: `{}` exited with {status} after SIGTERM; see {}",
                        self.what,
                        self.log.display()
                    );
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "`{}` did not exit within {STOP_TIMEOUT:?} of SIGTERM",
                    self.what
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Probe {
    /// On error paths, never leave a tracer attached behind us.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn measure_under(cmd: Command, log: &Path, iterations: u64) -> Result<f64> {
    let probe = Probe::start(cmd, log)?;
    let ns = measure(iterations)?;
    probe.stop()?;
    Ok(ns)
}

pub(crate) fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

pub fn overhead(opts: &Opts) -> Result<()> {
    if opts.iterations == 0 || opts.rounds == 0 || opts.modes.is_empty() {
        bail!("need at least one iteration, one round and one mode");
    }
    let probes = opts.modes.iter().any(|m| *m != Mode::Bare);
    let vigil = if probes {
        if !cmd::is_root() {
            bail!("the empty-probe and vigil modes load eBPF programs and need root");
        }
        setup::setup()?;
        Some(build::build(false)?)
    } else {
        None
    };
    let out_dir = cmd::target_dir().join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); opts.modes.len()];
    for round in 1..=opts.rounds {
        for (i, mode) in opts.modes.iter().enumerate() {
            let log = out_dir.join(format!("{}.stderr.log", mode.name()));
            let ns = match (mode, &vigil) {
                (Mode::Bare, _) => measure(opts.iterations)?,
                (Mode::EmptyProbe, Some(bin)) => {
                    let mut c = Command::new(bin);
                    c.args(["debug", "empty-probe"]);
                    measure_under(c, &log, opts.iterations)?
                }
                (Mode::Vigil, Some(bin)) => {
                    let mut c = Command::new(bin);
                    c.args(["run", "--ready-line"]);
                    c.args(crate::run::shipped_args(&out_dir.join("vigil-run"), "monitor")?);
                    measure_under(c, &log, opts.iterations)?
                }
                (_, None) => unreachable!("vigil is built whenever a probe mode is selected"),
            };
            eprintln!(
                "bench: round {round}/{} {:<11} {ns:8.1} ns/syscall",
                opts.rounds,
                mode.name()
            );
            samples[i].push(ns);
        }
    }
    report(opts, &samples, &out_dir.join("overhead.json"))
}

fn report(opts: &Opts, samples: &[Vec<f64>], json_path: &Path) -> Result<()> {
    let kernel =
        fs::read_to_string("/proc/sys/kernel/osrelease").context("reading kernel release")?;
    let kernel = kernel.trim();
    let nproc = online_cpus();
    let date = utc_now();
    let medians: Vec<f64> = samples.iter().map(|s| median(s)).collect();
    let get = |m: Mode| opts.modes.iter().position(|x| *x == m).map(|i| medians[i]);
    let bare = get(Mode::Bare);
    let ratio = match (bare, get(Mode::EmptyProbe), get(Mode::Vigil)) {
        (Some(b), Some(e), Some(v)) if e > b => Some((v - b) / (e - b)),
        _ => None,
    };

    let pinned = loop_cpu().map_or("not pinned".to_string(), |c| format!("pinned to CPU {c}"));
    println!();
    println!(
        "getppid loop, {} iterations x {} rounds, {pinned}",
        opts.iterations, opts.rounds
    );
    println!("machine: kernel {kernel}, {nproc} CPUs; {date}");
    println!(
        "{:<12} {:>14} {:>14}   per round (ns/syscall)",
        "mode", "median ns/sc", "added vs bare"
    );
    let mut modes_json = serde_json::Map::new();
    for ((mode, s), med) in opts.modes.iter().zip(samples).zip(&medians) {
        let added = bare.map(|b| med - b);
        let added_txt = added.map_or("-".to_string(), |a| format!("{a:+.1}"));
        let rounds_txt: Vec<String> = s.iter().map(|x| format!("{x:.1}")).collect();
        println!(
            "{:<12} {med:>14.1} {added_txt:>14}   {}",
            mode.name(),
            rounds_txt.join(" ")
        );
        modes_json.insert(
            mode.name().to_string(),
            json!({ "median_ns": med, "added_ns_vs_bare": added, "samples_ns": s }),
        );
    }
    match ratio {
        Some(r) => {
            let verdict = if r <= GOAL_RATIO { "met" } else { "NOT met" };
            println!(
                "ratio (vigil - bare) / (empty - bare) = {r:.2}   goal <= {GOAL_RATIO} ({verdict})"
            );
        }
        None => println!("ratio (vigil - bare) / (empty - bare) = n/a   goal <= {GOAL_RATIO}"),
    }

    let doc = json!({
        "bench": "overhead",
        "workload": "getppid",
        "date": date,
        "kernel": kernel,
        "nproc": nproc,
        "loop_cpu": loop_cpu(),
        "iterations": opts.iterations,
        "rounds": opts.rounds,
        "modes": modes_json,
        "ratio": ratio,
        "goal_ratio": GOAL_RATIO,
    });
    let text = serde_json::to_string_pretty(&doc).context("serializing the report")?;
    fs::write(json_path, text + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("wrote {}", json_path.display());
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for now, without a date crate.
pub(crate) fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::{Probe, median};

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn probe_waits_for_ready_and_stops_on_sigterm() {
        let log = std::env::temp_dir().join(format!("xtask-probe-{}.log", std::process::id()));
        let probe = Probe::start(sh("echo starting; echo ready; exec sleep 60"), &log).unwrap();
        probe.stop().unwrap();
        let _ = std::fs::remove_file(log);
    }

    #[test]
    fn probe_that_exits_early_is_an_error() {
        let log =
            std::env::temp_dir().join(format!("xtask-probe-early-{}.log", std::process::id()));
        let err = Probe::start(sh("echo oops >&2; exit 3"), &log)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("before printing `ready`"),
            "{err:#}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "oops\n");
        let _ = std::fs::remove_file(log);
    }

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
