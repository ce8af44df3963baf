//! The `vigil` command line. Each subcommand hands off to the library; this file only parses.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::{
    control::{self, Request, Response},
    loader::EmptyProbe,
    logging::{self, LogTarget},
    output::SinkTarget,
    pipeline::{self, RunConfig},
};

#[derive(Debug, Parser)]
#[command(name = "vigil", version, about = "eBPF endpoint agent: sensors, process table, behaviour sequences")]
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
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Attach only an empty raw_tp sys_enter counter (the floor of any per-syscall tracer) until
    /// SIGTERM; prints `ready` once attached. Used by `cargo xtask bench overhead`.
    EmptyProbe,
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
                ..RunConfig::default()
            };
            pipeline::run(cfg).await.context("vigil run")
        }
        Command::Status { json, control_socket } => {
            let response = control::request(&control_socket, &Request::Status).await?;
            match response {
                Response::Status(status) if json => println!("{}", serde_json::to_string_pretty(&status)?),
                Response::Status(status) => print!("{}", control::render_human(&status)),
                Response::Error(e) => anyhow::bail!("vigil refused the request: {e}"),
            }
            Ok(())
        }
        Command::Debug(DebugCommand::EmptyProbe) => {
            logging::init(LogTarget::Stderr, "info")?;
            crate::kernel::preflight().context("preflight")?;
            let _probe = EmptyProbe::load()?;
            println!("ready");
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(())
        }
    }
}
