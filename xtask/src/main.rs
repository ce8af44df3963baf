//! `cargo xtask`: the one entry point for bootstrapping, building, running, testing and
//! benchmarking vigil. Every external command is printed before it runs.

mod bench_all;
mod bench_files;
mod bench_load;
mod bench_model;
mod bench_overhead;
mod bench_peer;
mod bench_prog_stats;
mod bench_redis;
mod build;
mod cmd;
mod install;
mod run;
mod setup;
mod test;
mod train;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use bench_overhead::Mode;

#[derive(Parser)]
#[command(about = "vigil's build and test tasks", disable_help_subcommand = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing needs (rust-src, bpf-linker, Debian packages) and
    /// mount tracefs/bpffs. Idempotent.
    Setup,
    /// Build the agent and its eBPF object (release unless --debug).
    Build {
        #[arg(long)]
        debug: bool,
    },
    /// Setup, build, then run `vigil run --events-json -` in the foreground (root).
    Run {
        /// Extra arguments for `vigil run`, e.g. `cargo xtask run -- --config my.toml`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, build, then run every test in the workspace (root for the integration tests).
    Test,
    /// Setup, build the release agent, then install it, the model, the default policy and the
    /// systemd unit under PREFIX (root for /). Idempotent.
    Install {
        #[arg(long, default_value = "/")]
        prefix: std::path::PathBuf,
        /// Install this file as the default policy instead of packaging/policy.toml.
        #[arg(long)]
        policy: Option<std::path::PathBuf>,
    },
    /// Train and evaluate the behaviour model (Python venv in models/.venv; never run by CI).
    Train(train::Args),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
    /// The syscall loop that `bench overhead` times, in its own process.
    #[command(hide = true)]
    BenchLoop { iterations: u64 },
    /// N open+close pairs of PATH with FLAGS, for `bench files`.
    #[command(hide = true)]
    BenchOpenLoop {
        iterations: u64,
        path: std::path::PathBuf,
        flags: i32,
    },
    /// Cheap argument-less syscalls in a seeded random order at a steady rate, for `bench model` and `bench flood`.
    #[command(hide = true)]
    BenchPaced { rate: u64, seconds: u64 },
    /// /bin/true execs at a steady rate, for `bench exec`.
    #[command(hide = true)]
    BenchExec { rate: u64, seconds: u64 },
    /// fork + exit N times, for `bench flood`.
    #[command(hide = true)]
    BenchForks { n: u64 },
}

#[derive(Subcommand)]
enum Bench {
    /// Per-syscall cost: bare vs an empty raw_tp probe vs vigil (monitor, enforce) vs auditd,
    /// interleaved in rounds.
    Overhead {
        /// getppid calls per loop; each attach runs three loops and keeps their median.
        #[arg(long, default_value_t = 5_000_000)]
        iterations: u64,
        /// Rounds; each round measures every mode once.
        #[arg(long, default_value_t = 9)]
        rounds: u32,
        /// Modes to measure, in the first round's order; each later round starts one further on.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = Mode::ALL)]
        modes: Vec<Mode>,
    },
    /// redis-benchmark against Debian's redis-server: requests/s bare vs an empty raw_tp probe
    /// vs vigil (monitor, enforce) vs auditd, interleaved in rounds.
    Redis {
        /// Requests per test (SET, GET) per measurement.
        #[arg(long, default_value_t = 200_000)]
        requests: u64,
        /// Parallel client connections.
        #[arg(long, default_value_t = 50)]
        clients: u32,
        /// Rounds; each round measures every mode once.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Modes to measure, in round order.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = Mode::ALL)]
        modes: Vec<Mode>,
        /// Leave the server and the client unpinned (default: server on CPU 0, client on 1).
        #[arg(long)]
        no_pin: bool,
    },
    /// Scoring cost: µs per window on one core, and the daemon's scoring CPU at a steady
    /// syscall rate (with vs without the model, in rounds).
    Model {
        /// The model (default: models/vigil.onnx).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
        /// Syscalls per second the paced workload makes.
        #[arg(long, default_value_t = 100_000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// /bin/true exec loops at steady rates: vigil's CPU per exec, events received, RSS; then the
    /// same rates under auditd (exec+connect rules): auditd + kauditd CPU per exec.
    Exec {
        #[arg(long, value_delimiter = ',', default_values_t = [100, 200, 400, 800, 1600])]
        rates: Vec<u64>,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Syscall floods at steady rates and a fork storm: generated vs counted vs lost.
    Flood {
        #[arg(long, value_delimiter = ',', default_values_t = [500_000, 1_000_000, 2_000_000])]
        rates: Vec<u64>,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        #[arg(long, default_value_t = 20_000)]
        forks: u64,
    },
    /// What file rules cost every open on the host: open+close loops (read-only, and
    /// O_WRONLY|O_CREAT|O_TRUNC) bare vs vigil without file rules vs vigil as shipped.
    Files {
        #[arg(long, default_value_t = 200_000)]
        iterations: u64,
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// Deny-exec (did the image run?), exec -> journald, exec -> quarantine.
    Latency {
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Everything above in one run, then BENCHMARKS.md from its results.
    All,
    /// Rewrite BENCHMARKS.md from the results of the last run (target/bench/*.json).
    Report,
}

/// Errors print as their context chain only: with RUST_BACKTRACE set (as under cargo) anyhow's
/// Debug form would add a backtrace of xtask itself, which never helps.
fn main() -> ExitCode {
    match dispatch(Cli::parse().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Setup => setup::setup(),
        Cmd::Build { debug } => build::build(debug).map(drop),
        Cmd::Run { args } => run::run(&args),
        Cmd::Test => test::test(),
        Cmd::Install { prefix, policy } => install::install(&install::Opts { prefix, policy }),
        Cmd::Train(args) => train::train(&args),
        Cmd::Bench {
            bench:
                Bench::Overhead {
                    iterations,
                    rounds,
                    modes,
                },
        } => bench_overhead::overhead(&bench_overhead::Opts {
            iterations,
            rounds,
            modes,
        }),
        Cmd::Bench {
            bench:
                Bench::Model {
                    model,
                    rate,
                    seconds,
                    rounds,
                },
        } => bench_model::model(&bench_model::Opts {
            model,
            rate,
            seconds,
            rounds,
        }),
        Cmd::Bench {
            bench:
                Bench::Redis {
                    requests,
                    clients,
                    rounds,
                    modes,
                    no_pin,
                },
        } => bench_redis::redis(&bench_redis::Opts {
            requests,
            clients,
            rounds,
            modes,
            pin: !no_pin,
        }),
        Cmd::BenchLoop { iterations } => bench_overhead::bench_loop(iterations),
        Cmd::BenchOpenLoop {
            iterations,
            path,
            flags,
        } => bench_files::open_loop(iterations, &path, flags),
        Cmd::Bench {
            bench: Bench::Files { iterations, rounds },
        } => bench_files::files(&bench_files::Opts { iterations, rounds }),
        Cmd::BenchPaced { rate, seconds } => bench_model::paced(rate, seconds),
        Cmd::BenchExec { rate, seconds } => bench_load::exec_loop(rate, seconds),
        Cmd::BenchForks { n } => bench_load::fork_storm(n),
        Cmd::Bench { bench: Bench::Exec { rates, seconds } } => bench_load::exec(&rates, seconds),
        Cmd::Bench { bench: Bench::Flood { rates, seconds, forks } } => bench_load::flood(&rates, seconds, forks),
        Cmd::Bench { bench: Bench::Latency { runs } } => bench_load::latency(runs),
        Cmd::Bench { bench: Bench::All } => bench_all::all(),
        Cmd::Bench { bench: Bench::Report } => bench_all::report(),
    }
}
