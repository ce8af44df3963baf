//! `cargo xtask train`: trains and evaluates the behaviour model with the Python code in
//! `models/train/` and writes `models/vigil.onnx`, `golden.json`, `eval.json` and `README.md`.
//! Reproducible (pinned requirements, fixed seed) and deliberately out of CI's path: CI only
//! checks the committed model against its golden scores.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// The seed `python -m train.main` uses unless told otherwise; changing it changes the model.
const SEED: u64 = 1234;

#[derive(clap::Args)]
pub struct Args {
    /// ADFA-LD directory (ADFA-LD.zip and i386_to_x86_64.tsv) [default: ../shared/datasets/adfa-ld]
    #[arg(long)]
    adfa: Option<PathBuf>,
    /// Directory of own datasets exported as *.jsonl [default: models/data]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Random seed for splits and training.
    #[arg(long, default_value_t = SEED)]
    seed: u64,
    /// Own malicious processes the shipped model trains on: whole scenario trees, or only the
    /// attack steps `models/scenarios/attack-steps.toml` names. The card compares both either way.
    #[arg(long, value_parser = ["trees", "steps"], default_value = "trees")]
    labels: String,
    /// Token vocabulary the shipped model trains on: 2 as recorded (with call classes), or 1
    /// (classes dropped). The card compares both either way.
    #[arg(long, value_parser = ["1", "2"], default_value = "1")]
    vocab: String,
    /// Run the trainer's unit tests instead of training.
    #[arg(long)]
    test: bool,
}

pub fn train(args: &Args) -> Result<()> {
    let root = cmd::workspace_root();
    let models = root.join("models");
    let python = venv(&models)?;

    if args.test {
        let mut py = Command::new(&python);
        py.args(["-m", "unittest", "discover", "-s", "train/tests", "-t", "."])
            .current_dir(&models);
        return cmd::run(&mut py);
    }

    let adfa = resolve(args.adfa.as_deref(), || {
        root.join("..")
            .join("shared")
            .join("datasets")
            .join("adfa-ld")
    })?;
    let data = resolve(args.data.as_deref(), || models.join("data"))?;
    export_datasets(&data)?;
    if !adfa.join("ADFA-LD.zip").is_file() {
        bail!("{} has no ADFA-LD.zip; pass --adfa DIR", adfa.display());
    }
    let mut py = Command::new(&python);
    py.args(["-m", "train.main", "--adfa"])
        .arg(&adfa)
        .arg("--data")
        .arg(&data)
        .args(["--seed", &args.seed.to_string()])
        .args(["--labels", &args.labels])
        .args(["--vocab", &args.vocab])
        .current_dir(&models)
        // Same numbers on every run: no hash randomisation, one BLAS thread order.
        .env("PYTHONHASHSEED", "0")
        .env("OMP_NUM_THREADS", "1");
    cmd::run(&mut py)?;
    eprintln!(
        "train: wrote {} (and golden.json, eval.json, README.md)",
        models.join("vigil.onnx").display()
    );
    Ok(())
}

/// The recorded datasets are committed as `raw/*.vds`; the trainer reads them as JSON lines,
/// written next to `raw/` by `vigil dataset export` (and not committed).
fn export_datasets(data: &Path) -> Result<()> {
    let raw = data.join("raw");
    let Ok(entries) = fs::read_dir(&raw) else {
        eprintln!("train: no {}; training on ADFA-LD only", raw.display());
        return Ok(());
    };
    let vigil = crate::build::build(false)?;
    for entry in entries {
        let path = entry.with_context(|| format!("listing {}", raw.display()))?.path();
        if path.extension().is_none_or(|e| e != "vds") {
            continue;
        }
        let stem = path.file_stem().context("dataset file name")?;
        let out = data.join(stem).with_extension("jsonl");
        let mut export = Command::new(&vigil);
        export.args(["dataset", "export"]).arg(&path);
        let jsonl = cmd::stdout_of(&mut export)?;
        fs::write(&out, jsonl).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// A user-given path is taken relative to where `cargo xtask` was run; defaults are absolute.
fn resolve(given: Option<&Path>, default: impl FnOnce() -> PathBuf) -> Result<PathBuf> {
    let path = match given {
        Some(p) => std::path::absolute(p).with_context(|| format!("bad path {}", p.display()))?,
        None => default(),
    };
    Ok(fs::canonicalize(&path).unwrap_or(path))
}

/// `models/.venv` with `models/train/requirements.txt` installed; returns its python. pip
/// runs only when the requirements differ from what was last installed into this venv.
fn venv(models: &Path) -> Result<PathBuf> {
    let dir = models.join(".venv");
    let python = dir.join("bin").join("python");
    if !python.is_file() {
        cmd::run(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(&dir)
                .current_dir(models),
        )
        .context("creating the venv needs python3 with the venv module (Debian: python3-venv)")?;
    }
    let requirements = models.join("train").join("requirements.txt");
    let wanted = fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = dir.join("vigil-requirements.txt");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        eprintln!("train: {} up to date", dir.display());
        return Ok(python);
    }
    cmd::run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .current_dir(models),
    )?;
    fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}
