//! `cargo xtask bench model`: what behaviour scoring costs.
//!
//! - per window, on one core: `vigil debug bench-model` times the daemon's scoring path
//!   (features, split first layer, tract for the rest) and the whole graph on dense features
//!   (goal ≤ 50 µs per window);
//! - in the daemon: vigil's own CPU while a paced workload makes ~100k syscalls/s in an order
//!   no window repeats, with and without the model, alternating in rounds of one run; the
//!   difference is scoring's CPU (goal ≤ 10% of a core).

use std::{
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    bench_overhead::{Probe, median, utc_now},
    build, cmd, setup,
};

pub struct Opts {
    pub model: Option<PathBuf>,
    pub rate: u64,
    pub seconds: u64,
    pub rounds: u32,
}

/// Cheap calls without arguments or side effects, for [`paced`] to mix.
const PACED_CALLS: [libc::c_long; 8] = [
    libc::SYS_getppid,
    libc::SYS_getpid,
    libc::SYS_getuid,
    libc::SYS_getgid,
    libc::SYS_geteuid,
    libc::SYS_getegid,
    libc::SYS_gettid,
    libc::SYS_getpgrp,
];

/// The hidden `bench-paced RATE SECONDS`: about RATE syscalls per second, in 1 ms slices, each
/// drawn from [`PACED_CALLS`] by a seeded generator. One call over and over would make every
/// window the same, and the daemon scores a window it has just scored from memory: the figure
/// would be the memo's, not the model's. Random order makes every window new to the memo and
/// to the profile, so each one goes to the model, the scorer's worst case.
pub fn paced(rate: u64, seconds: u64) -> Result<()> {
    let per_ms = (rate / 1000).max(1);
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut calls = 0u64;
    let mut slice = start;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    while Instant::now() < end {
        for _ in 0..per_ms {
            // xorshift64: three bits per call are all the mix needs.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let nr = PACED_CALLS[(state >> 61) as usize];
            // SAFETY: the calls in PACED_CALLS take no arguments and cannot fail.
            std::hint::black_box(unsafe { libc::syscall(nr) });
        }
        calls += per_ms;
        slice += Duration::from_millis(1);
        if let Some(wait) = slice.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    println!("{calls} {}", start.elapsed().as_secs_f64());
    Ok(())
}

/// utime + stime of `pid`, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).context("malformed stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks: f64 = fields.get(11..13).context("short stat")?.iter().map(|f| f.parse::<f64>().unwrap_or(0.0)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

/// vigil's CPU share (of one core) while the paced workload runs.
fn daemon_cpu(vigil: &Path, model: Option<&Path>, opts: &Opts, log: &Path) -> Result<(f64, f64)> {
    let mut c = Command::new(vigil);
    c.args(["run", "--ready-line", "--control-socket", "/run/vigil/bench-model.sock"]);
    let dir = log.with_extension("run");
    let mut args = crate::run::shipped_args(&dir, "monitor")?;
    // shipped_args names the work tree's model first: swap it for this run's choice.
    args.drain(..2);
    c.args(args);
    match model {
        Some(m) => c.arg("--model").arg(m),
        None => c.arg("--no-model"),
    };
    let probe = Probe::start(c, log)?;
    let before = cpu_seconds(probe.pid())?;
    let mut load = Command::new(std::env::current_exe().context("locating xtask")?);
    load.args(["bench-paced", &opts.rate.to_string(), &opts.seconds.to_string()]);
    let t0 = Instant::now();
    let out = cmd::stdout_of(&mut load)?;
    let wall = t0.elapsed().as_secs_f64();
    // Let the last batches (drained every 10 ms) and their windows go through.
    thread::sleep(Duration::from_millis(300));
    let used = cpu_seconds(probe.pid())? - before;
    probe.stop()?;
    let calls: f64 = out.split_whitespace().next().and_then(|s| s.parse().ok()).context("bench-paced output")?;
    Ok((100.0 * used / (wall + 0.3), calls / wall))
}

pub fn model(opts: &Opts) -> Result<()> {
    if !cmd::is_root() {
        bail!("the daemon half of this benchmark loads eBPF programs and needs root");
    }
    setup::setup()?;
    let vigil = build::build(false)?;
    let model = opts.model.clone().unwrap_or_else(|| cmd::workspace_root().join("models/vigil.onnx"));
    let out_dir = cmd::workspace_root().join("target/bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let mut micro = Command::new("taskset");
    micro.args(["-c", "1"]).arg(&vigil).args(["debug", "bench-model", "--model"]).arg(&model);
    let micro: serde_json::Value = serde_json::from_str(cmd::stdout_of(&mut micro)?.trim()).context("bench-model output")?;

    let (mut without, mut with, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=opts.rounds {
        let (cpu, rate) = daemon_cpu(&vigil, None, opts, &out_dir.join("model-off.stderr.log"))?;
        eprintln!("bench: round {round}: vigil --no-model {cpu:.2}% of a core at {rate:.0} syscalls/s");
        without.push(cpu);
        rates.push(rate);
        let (cpu, rate) = daemon_cpu(&vigil, Some(&model), opts, &out_dir.join("model-on.stderr.log"))?;
        eprintln!("bench: round {round}: vigil --model    {cpu:.2}% of a core at {rate:.0} syscalls/s");
        with.push(cpu);
        rates.push(rate);
    }
    let (off, on) = (median(&without), median(&with));
    let us_window = micro["us_per_window"].as_f64().unwrap_or(f64::NAN);
    println!("\nbehaviour model {}, {}", model.display(), utc_now());
    println!(
        "per window (one core), the daemon's path: {us_window:.1} µs (whole graph on dense features: {:.1} µs)   goal <= 50 ({})",
        micro["dense_us_per_window"].as_f64().unwrap_or(f64::NAN),
        if us_window <= 50.0 { "met" } else { "NOT met" }
    );
    println!("per syscall: {:.2} µs (a window every {} syscalls)", micro["us_per_syscall"].as_f64().unwrap_or(f64::NAN), 32);
    println!(
        "daemon at {:.0} syscalls/s (median of {} rounds): vigil {off:.2}% of a core without the model, {on:.2}% with it;\n\
         scoring adds {:.2}% of a core   goal <= 10 ({})",
        median(&rates),
        opts.rounds,
        on - off,
        if on - off <= 10.0 { "met" } else { "NOT met" }
    );
    let json = serde_json::json!({
        "date": utc_now(), "model": model.display().to_string(), "micro": micro,
        "rate": median(&rates), "cpu_percent_without_model": without, "cpu_percent_with_model": with,
        "scoring_cpu_percent": on - off,
    });
    let path = out_dir.join("model.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
