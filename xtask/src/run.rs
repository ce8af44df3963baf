//! `cargo xtask run`: bootstraps, builds and then becomes `vigil run` in the foreground, so
//! Ctrl-C and SIGTERM reach the agent directly.

use std::os::unix::process::CommandExt as _;
use std::process::Command;

use anyhow::{Result, bail};

use crate::{build, cmd, setup};

pub fn run(extra: &[String]) -> Result<()> {
    if !cmd::is_root() {
        bail!("vigil loads eBPF programs and needs root: run `sudo -E cargo xtask run` or as root");
    }
    setup::setup()?;
    let bin = build::build(false)?;
    // The shipped model and policy, from the work tree (`cargo xtask install` puts them in
    // /usr/lib/vigil).
    let model = cmd::workspace_root().join("models/vigil.onnx");
    let mut vigil = Command::new(&bin);
    vigil
        .args(["run", "--events-json", "-", "--model"])
        .arg(&model);
    // The shipped default policy, from the work tree; operator files still come from
    // /etc/vigil/policy.d, as on an installed host.
    if !extra
        .iter()
        .any(|a| a == "--policy" || a == "--no-response")
    {
        vigil
            .arg("--policy")
            .arg(cmd::workspace_root().join("packaging/policy.toml"));
    }
    vigil.args(extra);
    cmd::announce(&vigil);
    // exec only returns on failure.
    let err = vigil.exec();
    Err(anyhow::Error::new(err).context(format!("failed to exec `{}`", cmd::display(&vigil))))
}

/// Arguments that make `vigil run` use the work tree's model and default policy, with its own
/// policy.d and state under `dir` and the policy in `mode` ("monitor" or "enforce"): what the
/// benchmarks run, so they need nothing installed and never act on the host unless asked to.
pub fn shipped_args(dir: &std::path::Path, mode: &str) -> Result<Vec<std::ffi::OsString>> {
    let root = cmd::workspace_root();
    let policy_d = dir.join("policy.d");
    std::fs::create_dir_all(&policy_d)?;
    std::fs::write(policy_d.join("00-mode.toml"), format!("mode = \"{mode}\"\n"))?;
    Ok([
        "--model".into(),
        root.join("models/vigil.onnx").into_os_string(),
        "--policy".into(),
        root.join("packaging/policy.toml").into_os_string(),
        "--policy-dir".into(),
        policy_d.into_os_string(),
        "--state-dir".into(),
        dir.join("state").into_os_string(),
    ]
    .into())
}
