//! `cargo xtask bench overhead`: what vigil adds to each syscall, next to the floor that any
//! per-syscall tracer pays (an empty raw_tp sys_enter counter) and a peer (auditd with an
//! exec+connect rule set), measured in one run with the modes interleaved round by round, their
//! order rotating by one each round, so that drift in the VM's speed hits all of them alike and
//! no mode always runs right after the same other one.

use std::fs::{self, File};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::os::unix::process::CommandExt as _;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use serde_json::json;

use crate::bench_peer::{self, Auditd, NoAuditContext};
use crate::{bench_prog_stats, build, cmd, setup};

/// Largest acceptable `(vigil - bare) / (empty - bare)`.
const GOAL_RATIO: f64 = 1.25;
/// How long a probe may take to attach before we give up on it.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The learn period of [`Mode::VigilLearned`] (the shipped default is 600 s).
pub(crate) const LEARNED_AFTER: Duration = Duration::from_secs(20);
/// The CPU the syscall loop runs on when there are at least two.
const LOOP_CPU: usize = 1;
/// Loops run per attachment; the round's sample is their median. A getppid loop's speed on
/// this VM wanders by ±15% over tenths of a second (an ALU loop beside it does not), and the
/// median of three drops a loop that such a stretch hit without adding an attach per loop.
const LOOPS_PER_ATTACH: usize = 3;
/// Resamples of the rounds for the ratio's interval.
const BOOTSTRAP_RESAMPLES: usize = 2000;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Nothing attached.
    Bare,
    /// `vigil debug empty-probe`: a raw_tp sys_enter that only bumps a per-CPU counter.
    EmptyProbe,
    /// The whole agent as deployed: `vigil run` (no JSON event stream), policy in monitor.
    Vigil,
    /// The same with the shipped policy in enforce.
    VigilEnforce,
    /// `vigil run` in monitor with its threads kept off the loop's CPU: what vigil's kernel side
    /// adds to each syscall when its user space never runs where the loop runs, to split
    /// vigil's figure (a diagnostic mode, overhead only; needs two or more CPUs).
    VigilOffLoopCpu,
    /// `vigil run` in monitor with `--no-model`: sensors, process table and policy without the
    /// scorer, to split vigil's cost into the kernel side and the scoring (a diagnostic mode).
    VigilNoModel,
    /// `vigil run` in monitor with each executable's learn period cut to
    /// [`LEARNED_AFTER`], measured after the server has run past it: the steady state of a
    /// host whose server vigil has already learned, where the profile gates most windows (a
    /// diagnostic mode, redis only: vigil is judged on its fresh start).
    VigilLearned,
    /// auditd with an exec+connect rule set (a peer baseline; skipped where the kernel or host
    /// has no audit).
    Auditd,
    /// `vigil run` in monitor with the shipped policy minus its file rules: what the file rules
    /// add (`bench files` only).
    VigilNoFileRules,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::EmptyProbe => "empty-probe",
            Mode::Vigil => "vigil",
            Mode::VigilEnforce => "vigil-enforce",
            Mode::VigilOffLoopCpu => "vigil-off-loop-cpu",
            Mode::VigilNoModel => "vigil-no-model",
            Mode::VigilLearned => "vigil-learned",
            Mode::Auditd => "auditd",
            Mode::VigilNoFileRules => "vigil-no-file-rules",
        }
    }

    pub(crate) const ALL: [Mode; 5] = [
        Mode::Bare,
        Mode::EmptyProbe,
        Mode::Vigil,
        Mode::VigilEnforce,
        Mode::Auditd,
    ];
}

/// What a mode has attached while it is measured.
pub(crate) enum Tracer {
    None(Option<NoAuditContext>),
    Probe(Probe, Option<NoAuditContext>),
    Auditd(Auditd),
}

impl Tracer {
    /// CPU seconds the tracer's own processes have used so far (vigil or the empty probe's
    /// loader; auditd with its kauditd thread); `None` with nothing attached.
    pub(crate) fn cpu_seconds(&self) -> Result<Option<f64>> {
        match self {
            Tracer::None(_) => Ok(None),
            Tracer::Probe(p, _) => crate::bench_model::cpu_seconds(p.pid()).map(Some),
            Tracer::Auditd(a) => a.cpu_seconds().map(Some),
        }
    }

    /// The tracer's process, for a probe mode.
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Tracer::Probe(p, _) => Some(p.pid()),
            Tracer::None(_) | Tracer::Auditd(_) => None,
        }
    }

    pub(crate) fn stop(self) -> Result<()> {
        match self {
            Tracer::None(never) => {
                drop(never);
                Ok(())
            }
            Tracer::Probe(p, never) => {
                let stopped = p.stop();
                drop(never);
                stopped
            }
            Tracer::Auditd(a) => a.stop(),
        }
    }
}

/// Everything the modes of one bench need, prepared once before its rounds.
pub(crate) struct Modes {
    /// The modes that run, in round order (auditd left out when it is skipped).
    pub(crate) run: Vec<Mode>,
    /// Why the auditd mode was skipped, if it was asked for and cannot run here.
    pub(crate) auditd_skipped: Option<String>,
    vigil: Option<PathBuf>,
    out_dir: PathBuf,
    /// Prefix of the per-mode logs and vigil state directories under `out_dir`.
    tag: String,
    /// auditd runs in this bench: the other modes keep new processes free of audit contexts.
    audit: bool,
}

impl Modes {
    /// Checks root, bootstraps and builds vigil when a probe mode is asked for, and finds out
    /// whether auditd can run.
    pub(crate) fn prepare(modes: &[Mode], out_dir: &Path, tag: &str) -> Result<Self> {
        let probes = modes.iter().any(|m| *m != Mode::Bare);
        if probes && !cmd::is_root() {
            bail!("the empty-probe, vigil and auditd modes need root");
        }
        let vigil = if probes {
            setup::setup()?;
            setup::bench_setup()?;
            Some(build::build(false)?)
        } else {
            None
        };
        let mut run = modes.to_vec();
        let mut auditd_skipped = None;
        if modes.contains(&Mode::Auditd)
            && let Some(reason) = bench_peer::unavailable()
        {
            eprintln!("bench: auditd mode skipped: {reason}");
            run.retain(|m| *m != Mode::Auditd);
            auditd_skipped = Some(reason);
        }
        Ok(Modes {
            audit: run.contains(&Mode::Auditd),
            run,
            auditd_skipped,
            vigil,
            out_dir: out_dir.to_path_buf(),
            tag: tag.to_string(),
        })
    }

    /// `vigil status --json` of the vigil a vigil mode attached (on the default control socket).
    pub(crate) fn vigil_status(&self) -> Result<serde_json::Value> {
        let bin = self.vigil.as_deref().context("vigil is built whenever a probe mode is selected")?;
        let text = cmd::stdout_of(Command::new(bin).args(["status", "--json"]))?;
        serde_json::from_str(&text).context("parsing `vigil status --json`")
    }

    /// Attaches what `mode` measures under. Processes measured in the other modes of a bench
    /// that also runs auditd are kept free of audit contexts; see [`NoAuditContext`].
    pub(crate) fn attach(&self, mode: Mode) -> Result<Tracer> {
        let never = || -> Result<Option<NoAuditContext>> {
            if self.audit {
                NoAuditContext::load().map(Some)
            } else {
                Ok(None)
            }
        };
        let log = self
            .out_dir
            .join(format!("{}{}.stderr.log", self.tag, mode.name()));
        let bin = || {
            self.vigil
                .as_deref()
                .context("vigil is built whenever a probe mode is selected")
        };
        let vigil_run = |policy_mode: &str, dir: &str| -> Result<Tracer> {
            let mut c = Command::new(bin()?);
            c.args(["run", "--ready-line"]);
            let mut args = crate::run::shipped_args(
                &self.out_dir.join(format!("{}{dir}", self.tag)),
                policy_mode,
            )?;
            if mode == Mode::VigilNoModel
                && let Some(at) = args.iter().position(|a| a == "--model")
            {
                args.splice(at..at + 2, ["--no-model".into()]);
            }
            if mode == Mode::VigilNoFileRules
                && let Some(at) = args.iter().position(|a| a == "--policy")
            {
                let shipped = fs::read_to_string(&args[at + 1])
                    .with_context(|| format!("reading {}", args[at + 1].to_string_lossy()))?;
                let stripped = self.out_dir.join(format!("{}policy-no-file-rules.toml", self.tag));
                fs::write(&stripped, crate::bench_files::without_file_rules(&shipped))
                    .with_context(|| format!("writing {}", stripped.display()))?;
                args[at + 1] = stripped.into_os_string();
            }
            if mode == Mode::VigilLearned {
                args.extend(["--profile-learn-secs".into(), LEARNED_AFTER.as_secs().to_string().into()]);
            }
            if mode == Mode::VigilOffLoopCpu {
                let lc = loop_cpu().context("vigil-off-loop-cpu needs two or more CPUs")?;
                let others: Vec<usize> = (0..online_cpus()).filter(|&c| c != lc).collect();
                // SAFETY: runs in the child between fork and exec, and only calls the
                // async-signal-safe sched_setaffinity on a set built on the stack.
                unsafe {
                    c.pre_exec(move || {
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        for &cpu in &others {
                            libc::CPU_SET(cpu, &mut set);
                        }
                        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    })
                };
            }
            c.args(args);
            let n = never()?;
            Ok(Tracer::Probe(Probe::start(c, &log)?, n))
        };
        match mode {
            Mode::Bare => Ok(Tracer::None(never()?)),
            Mode::EmptyProbe => {
                let mut c = Command::new(bin()?);
                c.args(["debug", "empty-probe"]);
                let n = never()?;
                Ok(Tracer::Probe(Probe::start(c, &log)?, n))
            }
            Mode::Vigil => vigil_run("monitor", "vigil-run"),
            Mode::VigilEnforce => vigil_run("enforce", "vigil-enforce-run"),
            Mode::VigilOffLoopCpu => vigil_run("monitor", "vigil-off-loop-cpu-run"),
            Mode::VigilNoModel => vigil_run("monitor", "vigil-no-model-run"),
            Mode::VigilLearned => vigil_run("monitor", "vigil-learned-run"),
            Mode::VigilNoFileRules => vigil_run("monitor", "vigil-no-file-rules-run"),
            Mode::Auditd => Ok(Tracer::Auditd(Auditd::start(
                &self.out_dir.join("auditd"),
            )?)),
        }
    }
}

pub struct Opts {
    pub iterations: u64,
    pub rounds: u32,
    pub modes: Vec<Mode>,
}

pub(crate) fn online_cpus() -> usize {
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
    pin_loop_cpu()?;
    // Warm caches and let the scheduler settle on the pinned CPU.
    syscall_loop(iterations / 10);
    let start = Instant::now();
    syscall_loop(iterations);
    println!("{}", start.elapsed().as_nanos());
    Ok(())
}

/// Pins the calling process to the loop CPU, when there are two or more.
pub(crate) fn pin_loop_cpu() -> Result<()> {
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

pub(crate) fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The 5th and 95th percentiles of `(median(v) - median(b)) / (median(e) - median(b))` over
/// resamples of the rounds, drawn with replacement and the same for all three modes, since a
/// round's modes ran side by side. `None` with fewer than three rounds, or when most resamples
/// leave the empty probe no cost above bare. The seed is fixed, so the interval is reproducible
/// from the samples in the report.
pub(crate) fn ratio_interval(b: &[f64], e: &[f64], v: &[f64]) -> Option<(f64, f64)> {
    let n = b.len();
    if n < 3 || e.len() != n || v.len() != n {
        return None;
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    // splitmix64: enough to pick rounds, and no dependency for it.
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as usize % n
    };
    let (mut rb, mut re, mut rv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut ratios = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    for _ in 0..BOOTSTRAP_RESAMPLES {
        for k in 0..n {
            let r = next();
            (rb[k], re[k], rv[k]) = (b[r], e[r], v[r]);
        }
        let (mb, me) = (median(&rb), median(&re));
        if me > mb {
            ratios.push((median(&rv) - mb) / (me - mb));
        }
    }
    if ratios.len() * 2 < BOOTSTRAP_RESAMPLES {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some((at(0.05), at(0.95)))
}

pub fn overhead(opts: &Opts) -> Result<()> {
    if opts.iterations == 0 || opts.rounds == 0 || opts.modes.is_empty() {
        bail!("need at least one iteration, one round and one mode");
    }
    if opts.modes.contains(&Mode::VigilLearned) {
        bail!("mode vigil-learned needs a workload that runs through the learn period: redis only");
    }
    let out_dir = cmd::target_dir().join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let modes = Modes::prepare(&opts.modes, &out_dir, "")?;

    let n = modes.run.len();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 1..=opts.rounds {
        for i in (0..n).map(|k| (k + round as usize - 1) % n) {
            let mode = modes.run[i];
            let tracer = modes.attach(mode)?;
            let loops = (0..LOOPS_PER_ATTACH)
                .map(|_| measure(opts.iterations))
                .collect::<Result<Vec<f64>>>()?;
            tracer.stop()?;
            let ns = median(&loops);
            eprintln!(
                "bench: round {round}/{} {:<18} {ns:8.1} ns/syscall (loops {})",
                opts.rounds,
                mode.name(),
                loops.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" ")
            );
            samples[i].push(ns);
        }
    }
    // A diagnostic: where the kernel will not give its statistics, the rounds still stand.
    let programs = program_pass(opts, &modes).unwrap_or_else(|e| {
        eprintln!("bench: bpf_stats pass skipped: {e:#}");
        serde_json::Map::new()
    });
    report(opts, &modes, &samples, &programs, &out_dir.join("overhead.json"))
}

/// One more loop under the empty probe and under vigil with the kernel's BPF statistics on:
/// ns per run of each one's per-syscall program. Kept out of the rounds, since the statistics
/// add a clock read to every run.
fn program_pass(opts: &Opts, modes: &Modes) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut out = serde_json::Map::new();
    let wanted = [Mode::EmptyProbe, Mode::Vigil];
    if !wanted.iter().all(|m| modes.run.contains(m)) {
        return Ok(out);
    }
    let _stats = bench_prog_stats::StatsEnabled::on()?;
    for mode in wanted {
        let tracer = modes.attach(mode)?;
        let pid = tracer.pid().context("a probe mode has a process")?;
        let before = bench_prog_stats::of_process(pid)?;
        measure(opts.iterations)?;
        let after = bench_prog_stats::of_process(pid)?;
        tracer.stop()?;
        let (ns, runs) = bench_prog_stats::busiest(&before, &after)
            .with_context(|| format!("no program of {} ran during the loop", mode.name()))?;
        eprintln!("bench: bpf_stats {:<13} {ns:6.1} ns per run ({runs} runs)", mode.name());
        out.insert(mode.name().to_string(), json!({ "ns_per_run": ns, "runs": runs }));
    }
    Ok(out)
}

fn report(
    opts: &Opts,
    modes: &Modes,
    samples: &[Vec<f64>],
    programs: &serde_json::Map<String, serde_json::Value>,
    json_path: &Path,
) -> Result<()> {
    let kernel =
        fs::read_to_string("/proc/sys/kernel/osrelease").context("reading kernel release")?;
    let kernel = kernel.trim();
    let nproc = online_cpus();
    let date = utc_now();
    let medians: Vec<f64> = samples.iter().map(|s| median(s)).collect();
    let get = |m: Mode| modes.run.iter().position(|x| *x == m).map(|i| medians[i]);
    let bare = get(Mode::Bare);
    let ratio_of = |m: Mode| match (bare, get(Mode::EmptyProbe), get(m)) {
        (Some(b), Some(e), Some(v)) if e > b => Some((v - b) / (e - b)),
        _ => None,
    };
    let ratio = ratio_of(Mode::Vigil);
    let ratio_enforce = ratio_of(Mode::VigilEnforce);
    let of = |m: Mode| modes.run.iter().position(|x| *x == m).map(|i| samples[i].as_slice());
    let interval_of = |m: Mode| match (of(Mode::Bare), of(Mode::EmptyProbe), of(m)) {
        (Some(b), Some(e), Some(v)) => ratio_interval(b, e, v),
        _ => None,
    };
    let interval_json = |m: Mode| interval_of(m).map(|(lo, hi)| json!([lo, hi]));
    let added = |m: Mode| bare.zip(get(m)).map(|(b, v)| v - b);

    let pinned = loop_cpu().map_or("not pinned".to_string(), |c| format!("pinned to CPU {c}"));
    println!();
    println!(
        "getppid loop, {} iterations, median of {LOOPS_PER_ATTACH} loops per attach x {} rounds, {pinned}",
        opts.iterations, opts.rounds
    );
    println!("machine: kernel {kernel}, {nproc} CPUs; {date}");
    println!(
        "{:<18} {:>14} {:>14}   per round (ns/syscall)",
        "mode", "median ns/sc", "added vs bare"
    );
    let mut modes_json = serde_json::Map::new();
    for ((mode, s), med) in modes.run.iter().zip(samples).zip(&medians) {
        let added = bare.map(|b| med - b);
        let added_txt = added.map_or("-".to_string(), |a| format!("{a:+.1}"));
        let rounds_txt: Vec<String> = s.iter().map(|x| format!("{x:.1}")).collect();
        println!(
            "{:<18} {med:>14.1} {added_txt:>14}   {}",
            mode.name(),
            rounds_txt.join(" ")
        );
        modes_json.insert(
            mode.name().to_string(),
            json!({ "median_ns": med, "added_ns_vs_bare": added, "samples_ns": s }),
        );
    }
    if let Some(reason) = &modes.auditd_skipped {
        println!("{:<18} skipped: {reason}", Mode::Auditd.name());
    }
    for (mode, r) in [(Mode::Vigil, ratio), (Mode::VigilEnforce, ratio_enforce)] {
        let name = mode.name();
        match r {
            Some(r) => {
                let verdict = if r <= GOAL_RATIO { "met" } else { "NOT met" };
                let interval = interval_of(mode).map_or(String::new(), |(lo, hi)| {
                    format!(", 90% interval over rounds {lo:.2}-{hi:.2}")
                });
                println!(
                    "ratio ({name} - bare) / (empty - bare) = {r:.2}{interval}   goal <= {GOAL_RATIO} ({verdict})"
                );
            }
            None => {
                println!("ratio ({name} - bare) / (empty - bare) = n/a   goal <= {GOAL_RATIO}")
            }
        }
    }
    let per_run = |m: Mode| programs.get(m.name()).and_then(|v| v["ns_per_run"].as_f64());
    if let (Some(e), Some(v)) = (per_run(Mode::EmptyProbe), per_run(Mode::Vigil)) {
        println!(
            "bpf_stats, one more loop each: the per-syscall program's own time per run: empty-probe {e:.1} ns, vigil {v:.1} ns ({:+.1} ns)",
            v - e
        );
    }
    let below_auditd = |m: Mode| added(m).zip(added(Mode::Auditd)).map(|(v, a)| v < a);
    for m in [Mode::Vigil, Mode::VigilEnforce] {
        if let (Some(v), Some(a)) = (added(m), added(Mode::Auditd)) {
            let verdict = if v < a { "met" } else { "NOT met" };
            println!(
                "{} adds {v:+.1} ns vs auditd {a:+.1} ns   goal: below auditd ({verdict})",
                m.name()
            );
        }
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
        "ratio_enforce": ratio_enforce,
        "ratio_off_loop_cpu": ratio_of(Mode::VigilOffLoopCpu),
        "ratio_interval_90": interval_json(Mode::Vigil),
        "ratio_enforce_interval_90": interval_json(Mode::VigilEnforce),
        "ratio_off_loop_cpu_interval_90": interval_json(Mode::VigilOffLoopCpu),
        "loops_per_attach": LOOPS_PER_ATTACH,
        "program_stats": programs,
        "method": "per attach, the median of its loops; per mode, the median over rounds; the modes' order rotates by one each round; intervals: 5th-95th percentile over 2000 resamples of the rounds",
        "goal_ratio": GOAL_RATIO,
        "auditd_skipped": modes.auditd_skipped,
        "vigil_below_auditd": below_auditd(Mode::Vigil),
        "vigil_enforce_below_auditd": below_auditd(Mode::VigilEnforce),
        "auditd_rules": bench_peer::rule_text(),
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

    use super::{Probe, median, ratio_interval};

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
    fn ratio_interval_brackets_the_ratio_and_narrows_with_agreeing_rounds() {
        let b = [100.0, 102.0, 98.0, 101.0, 99.0];
        let e = [150.0, 152.0, 148.0, 151.0, 149.0];
        // vigil exactly 1.2x the probe's added cost in every round: no spread at all.
        let v: Vec<f64> = b.iter().map(|x| x + 60.0).collect();
        let (lo, hi) = ratio_interval(&b, &e, &v).expect("five rounds");
        assert!((lo - 1.2).abs() < 1e-9 && (hi - 1.2).abs() < 1e-9, "{lo} {hi}");
        // One slow vigil round widens the interval upwards, and it still brackets the median.
        let mut v2 = v.clone();
        v2[2] += 40.0;
        let (lo, hi) = ratio_interval(&b, &e, &v2).expect("five rounds");
        assert!(lo <= 1.2 + 1e-9 && hi > 1.2, "{lo} {hi}");
        assert!(ratio_interval(&b[..2], &e[..2], &v[..2]).is_none(), "two rounds give no interval");
        // An empty probe that costs nothing above bare leaves the ratio undefined.
        assert!(ratio_interval(&b, &b, &v).is_none());
    }

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
