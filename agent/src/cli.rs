//! The `vigil` command line. Each subcommand hands off to the library; this file only parses.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

mod operate;
mod score;

use crate::{
    control::{self, Request, Response},
    dataset::{Dataset, Label},
    loader::EmptyProbe,
    logging::{self, LogTarget},
    model,
    output::SinkTarget,
    pipeline::{self, RunConfig},
    record::{self, RecordConfig},
};

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    about = "eBPF endpoint agent: sensors, process table, behaviour sequences"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent in the foreground (as root).
    Run(RunArgs),
    /// Show the running agent's programs, event and loss counters, and process-table size.
    Status {
        /// Print the raw JSON status.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = control::DEFAULT_SOCKET_PATH)]
        control_socket: PathBuf,
    },
    /// Record the behaviour sequences of a command's process tree (or the whole host) into a
    /// labelled dataset.
    Record(RecordArgs),
    /// Score recorded datasets offline with the model, per process.
    Score(ScoreArgs),
    /// Validate, push and show policy.
    #[command(subcommand)]
    Policy(operate::PolicyCommand),
    /// List, inspect, release or kill quarantined processes.
    #[command(subcommand)]
    Quarantine(operate::QuarantineCommand),
    /// Work with recorded datasets.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Developer and benchmark helpers.
    #[command(hide = true, subcommand)]
    Debug(DebugCommand),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Write every event as one JSON object per line to PATH (`-` for stdout).
    #[arg(long, value_name = "PATH|-")]
    pub events_json: Option<SinkTarget>,
    /// Where logs go.
    #[arg(long, value_enum, default_value_t = LogTarget::Stderr)]
    pub log: LogTarget,
    /// Default log filter (RUST_LOG overrides it).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    #[arg(long, default_value = control::DEFAULT_SOCKET_PATH)]
    pub control_socket: PathBuf,
    /// Print `ready` on stdout once every program is attached.
    #[arg(long)]
    pub ready_line: bool,
    /// Flush a partial syscall batch once it is this old (at the thread's next syscall).
    #[arg(long, default_value_t = 200)]
    pub batch_age_ms: u64,
    /// Do not batch the syscalls of this process (repeatable); its lifecycle events still flow.
    #[arg(long = "ignore-pid", value_name = "PID")]
    pub ignore_pids: Vec<u32>,
    /// The behaviour model (ONNX, models/FEATURES.md contract).
    #[arg(long, default_value = model::DEFAULT_MODEL_PATH, conflicts_with = "no_model")]
    pub model: PathBuf,
    /// Run the sensors without scoring.
    #[arg(long)]
    pub no_model: bool,
    /// Seconds each executable's n-gram profile learns (from first sight) before it scores.
    #[arg(long, default_value_t = 600)]
    pub profile_learn_secs: u64,
    /// The shipped default policy, loaded before policy.d.
    #[arg(long, default_value = crate::response::DEFAULT_POLICY_PATH)]
    pub policy: PathBuf,
    /// The operator's policy files (*.toml, lexical order), watched for changes.
    #[arg(long, default_value = crate::response::DEFAULT_POLICY_DIR)]
    pub policy_dir: PathBuf,
    /// Action log and quarantine vault.
    #[arg(long, default_value = crate::response::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Detection only: no policy, no actions, no journald incidents.
    #[arg(long, conflicts_with_all = ["policy", "policy_dir"])]
    pub no_response: bool,
}

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Dataset file to write (`.vds`).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum)]
    pub label: Label,
    /// Attack family or benign workload name (held out one at a time in evaluation).
    #[arg(long)]
    pub family: String,
    #[arg(long)]
    pub scenario: Option<String>,
    /// Record the whole host for this many seconds instead of a command.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Kill the command's process group after this many seconds.
    #[arg(long, default_value_t = 120.0, value_name = "SECS")]
    pub timeout: f64,
    /// Tokens kept per process.
    #[arg(long, default_value_t = 20_000)]
    pub max_tokens: usize,
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// The command to record, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// Dataset files (`.vds`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long, default_value = model::DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// One JSON object per process instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Print a dataset as JSON lines, one recorded process per line.
    Export { file: PathBuf },
    /// Summarise a dataset: processes and tokens per label and family.
    Info { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Attach only an empty raw_tp sys_enter counter (the floor of any per-syscall tracer) until
    /// SIGTERM; prints `ready` once attached. Used by `cargo xtask bench overhead`.
    EmptyProbe,
    /// Time feature extraction and inference per window on this thread; prints JSON. Used by
    /// `cargo xtask bench model`.
    BenchModel {
        #[arg(long, default_value = model::DEFAULT_MODEL_PATH)]
        model: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        windows: usize,
    },
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => {
            logging::init(args.log, &args.log_level)?;
            let cfg = RunConfig {
                events_json: args.events_json,
                control_socket: args.control_socket,
                ready_line: args.ready_line,
                batch_max_age: Duration::from_millis(args.batch_age_ms),
                ignore_tgids: args.ignore_pids,
                model: (!args.no_model).then_some(args.model),
                profile_learn: Duration::from_secs(args.profile_learn_secs),
                response: (!args.no_response).then_some(crate::response::ResponseConfig {
                    default_policy: args.policy,
                    policy_dir: args.policy_dir,
                    state_dir: args.state_dir,
                    journal_socket: None,
                }),
                ..RunConfig::default()
            };
            pipeline::run(cfg).await.context("vigil run")
        }
        Command::Status {
            json,
            control_socket,
        } => {
            let response = control::request(&control_socket, &Request::Status).await?;
            match response {
                Response::Status(status) if json => {
                    println!("{}", serde_json::to_string_pretty(&status)?)
                }
                Response::Status(status) => print!("{}", control::render_human(&status)),
                Response::Error(e) => anyhow::bail!("vigil refused the request: {e}"),
                Response::Result(v) => println!("{v}"),
            }
            Ok(())
        }
        Command::Record(args) => {
            logging::init(LogTarget::Stderr, &args.log_level)?;
            let cfg = RecordConfig {
                out: args.out,
                label: args.label,
                scenario: args.scenario.unwrap_or_else(|| args.family.clone()),
                family: args.family,
                command: args.command,
                duration: args.duration.map(Duration::from_secs_f64),
                timeout: Duration::from_secs_f64(args.timeout),
                max_tokens: args.max_tokens,
                batch_max_age: Duration::from_millis(agent_common::DEFAULT_BATCH_MAX_AGE_MS),
            };
            let summary = record::record(cfg).await?;
            eprintln!(
                "recorded {} processes, {} tokens{}{}{}",
                summary.processes,
                summary.tokens,
                match summary.out_of_vocab {
                    0 => String::new(),
                    n => format!("; {n} syscall ids outside the vocabulary dropped"),
                },
                summary
                    .command_status
                    .map(|s| format!("; command exited with {s}"))
                    .unwrap_or_default(),
                if summary.timed_out {
                    "; the command timed out and was killed"
                } else {
                    ""
                },
            );
            if summary.timed_out || summary.command_status.is_some_and(|s| !s.success()) {
                anyhow::bail!("the recorded command did not finish successfully");
            }
            Ok(())
        }
        Command::Score(args) => score::run(&args.files, &args.model, args.json),
        Command::Policy(cmd) => operate::policy(cmd).await,
        Command::Quarantine(cmd) => operate::quarantine(cmd).await,
        Command::Dataset(DatasetCommand::Export { file }) => {
            let ds = Dataset::read(&file)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            ds.export_jsonl(&mut out)?;
            Ok(())
        }
        Command::Dataset(DatasetCommand::Info { file }) => {
            let ds = Dataset::read(&file)?;
            let mut by: std::collections::BTreeMap<(String, String), (usize, usize)> =
                Default::default();
            for p in &ds.processes {
                let e = by
                    .entry((format!("{:?}", p.label).to_lowercase(), p.family.clone()))
                    .or_default();
                e.0 += 1;
                e.1 += p.tokens.len();
            }
            println!(
                "{}: kernel {}, command {:?}",
                file.display(),
                ds.kernel,
                ds.command
            );
            for ((label, family), (n, t)) in by {
                println!("  {label:<9} {family:<24} {n:>5} processes {t:>9} tokens");
            }
            Ok(())
        }
        Command::Debug(DebugCommand::BenchModel { model, windows }) => bench_model(&model, windows),
        Command::Debug(DebugCommand::EmptyProbe) => {
            logging::init(LogTarget::Stderr, "info")?;
            crate::kernel::preflight().context("preflight")?;
            let _probe = EmptyProbe::load()?;
            println!("ready");
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(())
        }
    }
}

fn bench_model(path: &std::path::Path, windows: usize) -> anyhow::Result<()> {
    use std::time::Instant;

    use crate::model::{DIM, Model, STRIDE, WINDOW, window_features};

    let model = Model::load(path)?;
    // Deterministic token windows drawn from the syscall range, so runs are comparable.
    let mut x: u32 = 0x2545_f491;
    let tokens: Vec<u16> = (0..windows + WINDOW)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 335) as u16
        })
        .collect();
    let mut features = vec![0.0f32; DIM];
    let mut checksum = 0.0f32;
    let t0 = Instant::now();
    for i in 0..windows {
        window_features(&tokens[i..i + WINDOW], &mut features);
        checksum += features[i % DIM];
    }
    let features_ns = t0.elapsed().as_nanos() as f64 / windows as f64;
    let t1 = Instant::now();
    for _ in 0..windows {
        checksum += model.score(&features)?;
    }
    let infer_ns = t1.elapsed().as_nanos() as f64 / windows as f64;
    let dense_us = (features_ns + infer_ns) / 1e3;
    // The daemon's path: features on the touched buckets, the split first layer, tract for the
    // rest (every window distinct, so no memo hits).
    let mut scratch = vec![0.0f32; DIM];
    let t2 = Instant::now();
    for i in 0..windows {
        checksum += model.score_window(&tokens[i..i + WINDOW], &mut scratch)?;
    }
    let total_us = t2.elapsed().as_nanos() as f64 / windows as f64 / 1e3;
    println!(
        "{}",
        serde_json::json!({
            "windows": windows,
            "split_first_layer": model.is_sparse(),
            "us_per_window": total_us,
            // Each syscall token opens one window in STRIDE.
            "us_per_syscall": total_us / STRIDE as f64,
            "dense_features_us_per_window": features_ns / 1e3,
            "dense_inference_us_per_window": infer_ns / 1e3,
            "dense_us_per_window": dense_us,
            "checksum": checksum,
        })
    );
    Ok(())
}
