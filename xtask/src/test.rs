//! `cargo xtask test`: bootstraps, builds the agent (and so the eBPF object) and runs every
//! test in the workspace, including the privileged integration tests in agent/tests/.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};

use crate::{build, cmd, setup};

/// Counts summed over every `test result:` line cargo test prints.
#[derive(Default, Debug, PartialEq)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Tally {
    /// Adds `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; ...`.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match label {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

pub fn test() -> Result<()> {
    if !cmd::is_root() {
        eprintln!("test: warning: not root; the privileged integration tests need root");
    }
    setup::setup()?;
    build::build(false)?;
    // Install into a scratch prefix, as on a fresh machine; tests/tests/install.rs runs that tree.
    let prefix = cmd::workspace_root().join("target/install-test");
    crate::install::install(&crate::install::Opts { prefix: prefix.clone(), policy: None })?;

    // agent-ebpf only builds for the BPF target; agent/build.rs builds it.
    let mut cargo = cmd::cargo();
    cargo
        .args([
            "test",
            "--release",
            "--workspace",
            "--exclude",
            "agent-ebpf",
            "--no-fail-fast",
        ])
        .env("VIGIL_INSTALLED_PREFIX", &prefix)
        .stdout(Stdio::piped());
    cmd::announce(&cargo);
    let mut child = cargo
        .spawn()
        .with_context(|| format!("failed to start `{}`", cmd::display(&cargo)))?;
    let stdout = child
        .stdout
        .take()
        .context("cargo test stdout was not piped")?;
    let mut tally = Tally::default();
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        tally.add_line(&line);
        writeln!(out, "{line}").context("writing to stdout")?;
    }
    drop(out);
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{}`", cmd::display(&cargo)))?;

    println!(
        "summary: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.ignored
    );
    if !status.success() {
        bail!("`{}` failed: {status}", cmd::display(&cargo));
    }
    if tally.failed > 0 {
        bail!("{} tests failed", tally.failed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn sums_result_lines() {
        let mut t = Tally::default();
        t.add_line("running 4 tests");
        t.add_line("test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        t.add_line("test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s");
        assert_eq!(
            t,
            Tally {
                passed: 5,
                failed: 1,
                ignored: 1
            }
        );
    }
}
