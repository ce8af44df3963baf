//! `cargo xtask build`: builds the agent; agent/build.rs builds the eBPF object with nightly
//! through aya-build and embeds it.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::cmd;

/// Builds `vigil` (release unless `debug`) and returns the path of the binary.
pub fn build(debug: bool) -> Result<PathBuf> {
    let mut cargo = cmd::cargo();
    cargo.args(["build", "-p", "agent"]);
    if !debug {
        cargo.arg("--release");
    }
    cmd::run(&mut cargo)?;
    let bin = vigil_path(debug);
    if !bin.is_file() {
        bail!("cargo build succeeded but {} is missing", bin.display());
    }
    eprintln!("build: {}", bin.display());
    Ok(bin)
}

pub fn vigil_path(debug: bool) -> PathBuf {
    cmd::target_dir()
        .join(if debug { "debug" } else { "release" })
        .join("vigil")
}
