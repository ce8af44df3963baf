//! `cargo xtask bench redis`: what a tracer costs a real server. `redis-benchmark` against
//! Debian's redis-server on a private unix socket, bare, under the empty raw_tp probe, under
//! vigil in monitor and in enforce, under vigil without its model and under vigil once it has
//! learned the server (diagnostics that split vigil's cost), and under auditd with an exec+connect rule set. Every round runs each mode once,
//! starting one mode later than the round before, and each mode's loss is taken against the same
//! round's bare run; each mode starts a fresh server after its tracer is attached. With two or more CPUs the server is pinned to CPU 0 and the
//! client to CPU 1; the tracers' own threads share both.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::bench_overhead::{LEARNED_AFTER, Mode, Modes, median, online_cpus, utc_now};
use crate::{bench_peer, cmd};

/// Largest acceptable throughput loss of vigil against bare, in percent.
const GOAL_LOSS_PERCENT: f64 = 12.0;
const TESTS: &str = "set,get";
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;
const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Opts {
    pub requests: u64,
    pub clients: u32,
    pub rounds: u32,
    pub modes: Vec<Mode>,
    /// Pin the server and the client to a CPU each (when there are two or more).
    pub pin: bool,
}

fn pinned(opts: &Opts) -> bool {
    opts.pin && online_cpus() >= 2
}

/// `cmd` as `taskset -c CPU cmd` when pinning.
fn on_cpu(pin: bool, cpu: usize, program: &str) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string(), program]);
        c
    } else {
        Command::new(program)
    }
}

/// A redis-server of our own: no persistence, no TCP, a unix socket under `dir`.
struct Server {
    child: Child,
    sock: PathBuf,
}

impl Server {
    fn start(dir: &Path, pin: bool) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let sock = dir.join("redis.sock");
        let _ = fs::remove_file(&sock);
        let log = fs::File::create(dir.join("redis-server.log"))?;
        let mut c = on_cpu(pin, SERVER_CPU, "redis-server");
        c.args(["--port", "0", "--unixsocket"])
            .arg(&sock)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--dir"])
            .arg(dir);
        c.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        cmd::announce(&c);
        let child = c
            .spawn()
            .with_context(|| format!("failed to start `{}`", cmd::display(&c)))?;
        let mut server = Server { child, sock };
        let deadline = Instant::now() + START_TIMEOUT;
        while !ping(&server.sock) {
            if let Some(st) = server.child.try_wait()? {
                bail!(
                    "redis-server exited ({st}) while starting; see {}",
                    dir.join("redis-server.log").display()
                );
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING within {START_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    fn stop(mut self) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        bail!("redis-server did not exit within {STOP_TIMEOUT:?} of SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn ping(sock: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// `redis-benchmark --csv` output as (test, requests per second), in the order printed.
pub(crate) fn parse_csv(text: &str) -> Result<Vec<(String, f64)>> {
    let mut lines = text.lines().map(str::trim).filter(|l| l.starts_with('"'));
    let fields = |l: &str| -> Vec<String> {
        l.split(',')
            .map(|f| f.trim().trim_matches('"').to_string())
            .collect()
    };
    let header = fields(
        lines
            .next()
            .context("redis-benchmark printed no CSV header")?,
    );
    let test = header
        .iter()
        .position(|h| h == "test")
        .context("no `test` column")?;
    let rps = header
        .iter()
        .position(|h| h == "rps")
        .context("no `rps` column")?;
    let rows: Vec<(String, f64)> = lines
        .map(|l| {
            let f = fields(l);
            let name = f.get(test).context("short CSV row")?.clone();
            let value = f
                .get(rps)
                .context("short CSV row")?
                .parse()
                .with_context(|| format!("rps in {l:?}"))?;
            Ok((name, value))
        })
        .collect::<Result<_>>()?;
    if rows.is_empty() {
        bail!("redis-benchmark printed no results");
    }
    Ok(rows)
}

/// Requests per second over all tests together: total requests / total time.
pub(crate) fn combined_rps(rows: &[(String, f64)]) -> f64 {
    rows.len() as f64 / rows.iter().map(|(_, r)| 1.0 / r).sum::<f64>()
}

fn benchmark(sock: &Path, opts: &Opts) -> Result<Vec<(String, f64)>> {
    let mut c = on_cpu(pinned(opts), CLIENT_CPU, "redis-benchmark");
    c.arg("-s").arg(sock).args([
        "-n",
        &opts.requests.to_string(),
        "-c",
        &opts.clients.to_string(),
        "-P",
        "1",
        "-t",
        TESTS,
        "-q",
        "--csv",
    ]);
    parse_csv(&cmd::stdout_of(&mut c)?)
}

/// vigil's (windows gated, windows scored by the model) so far, once its status snapshot (taken
/// every second) is newer than the benchmark before.
fn scorer_windows(modes: &Modes) -> Result<(f64, f64)> {
    thread::sleep(Duration::from_millis(1300));
    let s = modes.vigil_status()?;
    let get = |k: &str| s["scorer"][k].as_f64().with_context(|| format!("status has no scorer.{k}"));
    Ok((get("windows_gated")?, get("windows_scored")?))
}

fn redis_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

pub fn redis(opts: &Opts) -> Result<()> {
    if opts.requests == 0 || opts.clients == 0 || opts.rounds == 0 || opts.modes.is_empty() {
        bail!("need at least one request, client, round and mode");
    }
    if !cmd::is_root() {
        bail!("`bench redis` installs packages and loads eBPF programs: it needs root");
    }
    crate::setup::bench_setup()?;
    let out_dir = cmd::target_dir().join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let modes = Modes::prepare(&opts.modes, &out_dir, "redis-")?;
    let server_dir = out_dir.join("redis-server");

    // Per mode: combined rps per round, and per test rps per round. Each round runs every mode
    // once, starting one mode later than the round before: throughput on this VM drifts by
    // tens of percent between minutes, so a loss is taken against the bare run of its own round
    // and no mode always runs first or right after another's teardown.
    let n = modes.run.len();
    let mut combined: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut per_test: Vec<BTreeMap<String, Vec<f64>>> = vec![BTreeMap::new(); n];
    // The tracer's own CPU (% of a core) over each measured benchmark.
    let mut tracer_cpu: Vec<Vec<f64>> = vec![Vec::new(); n];
    // vigil-learned: the share of windows the profile gated while it was measured, per round.
    let mut gated_share: Vec<f64> = Vec::new();
    for round in 1..=opts.rounds {
        for i in (0..n).map(|k| (k + round as usize - 1) % n) {
            let mode = &modes.run[i];
            let tracer = modes.attach(*mode)?;
            let server = Server::start(&server_dir, pinned(opts))?;
            let learned_mode = *mode == Mode::VigilLearned;
            let mut windows_before = None;
            if learned_mode {
                // The server and the client learn from their first sight, which was just now.
                let learned = Instant::now() + LEARNED_AFTER + Duration::from_secs(2);
                while Instant::now() < learned {
                    benchmark(&server.sock, opts)?;
                }
                windows_before = Some(scorer_windows(&modes)?);
            }
            let (cpu0, started) = (tracer.cpu_seconds()?, Instant::now());
            let rows = benchmark(&server.sock, opts)?;
            if let (Some(c0), Some(c1)) = (cpu0, tracer.cpu_seconds()?) {
                tracer_cpu[i].push(100.0 * (c1 - c0) / started.elapsed().as_secs_f64());
            }
            if let Some((gated0, scored0)) = windows_before {
                let (gated1, scored1) = scorer_windows(&modes)?;
                let (gated, scored) = (gated1 - gated0, scored1 - scored0);
                let share = 100.0 * gated / (gated + scored).max(1.0);
                eprintln!("bench: round {round} vigil-learned: {gated} windows gated, {scored} scored by the model ({share:.1}% gated)");
                gated_share.push(share);
            }
            server.stop()?;
            tracer.stop()?;
            let all = combined_rps(&rows);
            let detail: Vec<String> = rows.iter().map(|(t, r)| format!("{t} {r:.0}")).collect();
            eprintln!(
                "bench: round {round}/{} {:<13} {all:9.0} req/s ({})",
                opts.rounds,
                mode.name(),
                detail.join(", ")
            );
            combined[i].push(all);
            for (t, r) in rows {
                per_test[i].entry(t).or_default().push(r);
            }
        }
    }

    let medians: Vec<f64> = combined.iter().map(|s| median(s)).collect();
    let index = |m: Mode| modes.run.iter().position(|x| *x == m);
    let bare = index(Mode::Bare);
    // Loss against the same round's bare run, per round; the figure is their median.
    let round_losses = |m: Mode| -> Option<Vec<f64>> {
        let (b, i) = (bare?, index(m)?);
        Some(combined[b].iter().zip(&combined[i]).map(|(b, v)| 100.0 * (b - v) / b).collect())
    };
    let loss = |m: Mode| round_losses(m).map(|l| median(&l));
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let pin_txt = if pinned(opts) {
        format!("server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}")
    } else {
        "not pinned".to_string()
    };
    println!();
    println!(
        "redis-benchmark -n {} -c {} -P 1 -t {TESTS} over a unix socket, redis {}, {} rounds, {pin_txt}",
        opts.requests,
        opts.clients,
        redis_version(),
        opts.rounds
    );
    println!(
        "machine: kernel {}, {} CPUs; {}",
        kernel.trim(),
        online_cpus(),
        utc_now()
    );
    println!(
        "{:<14} {:>12} {:>10}   per test (median req/s); per round (req/s, all tests)",
        "mode", "median req/s", "loss"
    );
    println!("(loss: median over rounds of the loss against that round's bare run)");
    let mut modes_json = serde_json::Map::new();
    for (i, mode) in modes.run.iter().enumerate() {
        let l = loss(*mode);
        let tests: serde_json::Map<String, serde_json::Value> = per_test[i]
            .iter()
            .map(|(t, s)| {
                (
                    t.clone(),
                    json!({ "median_rps": median(s), "samples_rps": s }),
                )
            })
            .collect();
        let tests_txt: Vec<String> = per_test[i]
            .iter()
            .map(|(t, s)| format!("{t} {:.0}", median(s)))
            .collect();
        let rounds_txt: Vec<String> = combined[i].iter().map(|x| format!("{x:.0}")).collect();
        let per_round = round_losses(*mode).unwrap_or_default();
        let losses_txt: Vec<String> = per_round.iter().map(|x| format!("{x:.1}%")).collect();
        println!(
            "{:<14} {:>12.0} {:>10}   {}; {}{}{}",
            mode.name(),
            medians[i],
            l.map_or("-".into(), |l| format!("{l:.1}%")),
            tests_txt.join(", "),
            rounds_txt.join(" "),
            if *mode == Mode::Bare { String::new() } else { format!("; losses {}", losses_txt.join(" ")) },
            if tracer_cpu[i].is_empty() { String::new() } else { format!("; tracer CPU {:.1}% of a core", median(&tracer_cpu[i])) }
        );
        modes_json.insert(
            mode.name().to_string(),
            json!({
                "median_rps": medians[i],
                "loss_percent_vs_bare": l,
                "loss_percent_per_round": per_round,
                "samples_rps": combined[i],
                "tests": tests,
                "tracer_cpu_percent": (!tracer_cpu[i].is_empty()).then(|| median(&tracer_cpu[i])),
                "tracer_cpu_percent_per_round": tracer_cpu[i],
            }),
        );
        if *mode == Mode::VigilLearned {
            modes_json[mode.name()]["gated_percent_per_round"] = json!(gated_share);
        }
    }
    if let Some(reason) = &modes.auditd_skipped {
        println!("{:<14} skipped: {reason}", Mode::Auditd.name());
    }
    let auditd_loss = loss(Mode::Auditd);
    let mut verdicts = serde_json::Map::new();
    for m in [Mode::Vigil, Mode::VigilEnforce] {
        let Some(l) = loss(m) else { continue };
        let within = l <= GOAL_LOSS_PERCENT;
        let below = auditd_loss.map(|a| l < a);
        println!(
            "{} loss {l:.1}%   goal <= {GOAL_LOSS_PERCENT}% ({}){}",
            m.name(),
            if within { "met" } else { "NOT met" },
            match (below, auditd_loss) {
                (Some(b), Some(a)) => format!(
                    "; below auditd's {a:.1}% ({})",
                    if b { "met" } else { "NOT met" }
                ),
                _ => String::new(),
            }
        );
        verdicts.insert(
            m.name().to_string(),
            json!({ "loss_within_goal": within, "below_auditd": below }),
        );
    }

    let doc = json!({
        "bench": "redis",
        "date": utc_now(),
        "kernel": kernel.trim(),
        "nproc": online_cpus(),
        "redis_version": redis_version(),
        "transport": "unix socket",
        "pinned": pinned(opts),
        "server_cpu": pinned(opts).then_some(SERVER_CPU),
        "client_cpu": pinned(opts).then_some(CLIENT_CPU),
        "requests": opts.requests,
        "clients": opts.clients,
        "pipeline": 1,
        "tests": TESTS,
        "rounds": opts.rounds,
        "learned_after": format!("{} s", LEARNED_AFTER.as_secs()),
        "loss_method": "per round, against that round's bare run; median over rounds; the modes' order rotates by one each round",
        "modes": modes_json,
        "goal_loss_percent": GOAL_LOSS_PERCENT,
        "verdicts": verdicts,
        "auditd_skipped": modes.auditd_skipped,
        "auditd_rules": bench_peer::rule_text(),
    });
    let path = out_dir.join("redis.json");
    let text = serde_json::to_string_pretty(&doc).context("serializing the report")?;
    fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{combined_rps, parse_csv};

    #[test]
    fn parses_redis_benchmark_csv() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"SET\",\"82644.62\",\"0.317\",\"0.096\",\"0.295\",\"0.439\",\"0.983\",\"2.439\"\n\
                   \"GET\",\"107526.88\",\"0.237\",\"0.088\",\"0.223\",\"0.311\",\"0.359\",\"1.471\"\n";
        let rows = parse_csv(out).unwrap();
        assert_eq!(
            rows,
            vec![
                ("SET".to_string(), 82644.62),
                ("GET".to_string(), 107526.88)
            ]
        );
    }

    #[test]
    fn ignores_non_csv_lines_and_crlf() {
        let out = "WARNING: something\r\n\"test\",\"rps\"\r\n\"GET\",\"1000.00\"\r\n";
        let rows = parse_csv(out).unwrap();
        assert_eq!(rows, vec![("GET".to_string(), 1000.0)]);
    }

    #[test]
    fn rejects_output_without_results() {
        assert!(parse_csv("").is_err());
        assert!(parse_csv("\"test\",\"rps\"\n").is_err());
        assert!(parse_csv("\"test\",\"x\"\n\"GET\",\"1\"\n").is_err());
        assert!(parse_csv("\"test\",\"rps\"\n\"GET\",\"fast\"\n").is_err());
    }

    #[test]
    fn combined_is_total_requests_over_total_time() {
        let rows = vec![("SET".to_string(), 100.0), ("GET".to_string(), 300.0)];
        // 1 request each at 100/s and 300/s: 2 requests in 1/100 + 1/300 s = 150/s.
        assert!((combined_rps(&rows) - 150.0).abs() < 1e-9);
    }
}
