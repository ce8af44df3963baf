//! `vigil policy …` and `vigil quarantine …`: the operator's commands. Everything but
//! `policy check` talks to the running daemon over the control socket.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;

use crate::{
    control::{self, Request},
    policy,
};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files (as one merged set, in the given order); exit 0 or 1.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Send a policy file to the running daemon: validated, written atomically into policy.d
    /// under its file name, applied without restart. Rejected files change nothing.
    Push {
        file: PathBuf,
        /// Name in policy.d (default: the file's own name).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = control::DEFAULT_SOCKET_PATH)]
        control_socket: PathBuf,
    },
    /// The active merged policy and its version.
    Show {
        #[arg(long, default_value = control::DEFAULT_SOCKET_PATH)]
        control_socket: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Every quarantine, newest last.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = control::DEFAULT_SOCKET_PATH)]
        control_socket: PathBuf,
    },
    /// One quarantine's record (processes, evidence, audit trail).
    Show {
        id: String,
        #[arg(long, default_value = control::DEFAULT_SOCKET_PATH)]
        control_socket: PathBuf,
    },
    /// Thaw the processes, move them back and restore their network.
    Release {
        id: String,
        #[arg(long, default_value = control::DEFAULT_SOCKET_PATH)]
        control_socket: PathBuf,
    },
    /// Kill every process of the quarantine.
    Kill {
        id: String,
        #[arg(long, default_value = control::DEFAULT_SOCKET_PATH)]
        control_socket: PathBuf,
    },
}

pub async fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Check { files } => match policy::check_files(&files) {
            Ok(p) => {
                println!("ok: {} file(s), policy version {}", files.len(), p.version);
                Ok(())
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        },
        PolicyCommand::Push {
            file,
            name,
            control_socket,
        } => {
            let content = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let name = match name {
                Some(n) => n,
                None => file_name(&file)?,
            };
            let answer =
                control::command(&control_socket, &Request::PolicyPush { name, content }).await;
            match answer {
                Ok(v) => {
                    println!(
                        "applied: policy version {} ({})",
                        v["version"].as_str().unwrap_or("?"),
                        v["file"].as_str().unwrap_or("?")
                    );
                    Ok(())
                }
                Err(control::ControlError::Remote(e)) => {
                    eprintln!("rejected: {e}");
                    std::process::exit(1);
                }
                Err(e) => Err(e.into()),
            }
        }
        PolicyCommand::Show { control_socket } => {
            let v = control::command(&control_socket, &Request::PolicyShow).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
    }
}

pub async fn quarantine(cmd: QuarantineCommand) -> anyhow::Result<()> {
    let (socket, req, json) = match cmd {
        QuarantineCommand::List {
            json,
            control_socket,
        } => (control_socket, Request::QuarantineList, json),
        QuarantineCommand::Show { id, control_socket } => {
            (control_socket, Request::QuarantineShow { id }, true)
        }
        QuarantineCommand::Release { id, control_socket } => {
            (control_socket, Request::QuarantineRelease { id }, true)
        }
        QuarantineCommand::Kill { id, control_socket } => {
            (control_socket, Request::QuarantineKill { id }, true)
        }
    };
    let v = control::command(&socket, &req).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no quarantines");
    }
    for q in list {
        println!(
            "{:<28} {:<12} pid {:<8} {:<40} {}",
            q["id"].as_str().unwrap_or("?"),
            state_name(&q["state"]),
            q["pid"],
            q["exe"].as_str().unwrap_or(""),
            q["reason"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn state_name(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
        other => other.to_string(),
    }
}

fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no file name; pass --name", path.display()))
}
