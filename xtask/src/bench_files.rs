//! `cargo xtask bench files`: what file rules cost the opens of every process on the host. An
//! open+close loop, read-only and `O_WRONLY|O_CREAT|O_TRUNC`, bare vs vigil with the shipped
//! policy minus its file rules vs vigil as shipped, interleaved round by round. The difference
//! between the two vigil modes is the file rules' own cost: each successful open's inode (and,
//! for writes, its directories) looked up at syscall exit.

use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::bench_overhead::{self, Mode, Modes, median, utc_now};
use crate::cmd;

/// A file every Debian host has, opened read-only.
const READ_PATH: &str = "/usr/lib/os-release";
const O_TRUNC_FLAGS: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;

pub struct Opts {
    pub iterations: u64,
    pub rounds: u32,
}

const MODES: [Mode; 3] = [Mode::Bare, Mode::VigilNoFileRules, Mode::Vigil];

pub fn files(opts: &Opts) -> Result<()> {
    if opts.iterations == 0 || opts.rounds == 0 {
        bail!("need at least one iteration and one round");
    }
    let out_dir = cmd::target_dir().join("bench");
    let scratch = out_dir.join("files/a/b");
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let written = scratch.join("out");
    let modes = Modes::prepare(&MODES, &out_dir, "files-")?;
    let workloads: [(&str, PathBuf, i32); 2] = [
        ("read", PathBuf::from(READ_PATH), libc::O_RDONLY),
        ("trunc", written.clone(), O_TRUNC_FLAGS),
    ];
    let mut samples = vec![vec![Vec::new(); workloads.len()]; modes.run.len()];
    for round in 1..=opts.rounds {
        for (i, mode) in modes.run.iter().enumerate() {
            let tracer = modes.attach(*mode)?;
            for (w, (name, path, flags)) in workloads.iter().enumerate() {
                let ns = measure(opts.iterations, path, *flags)?;
                eprintln!(
                    "bench: round {round}/{} {:<20} {name:<5} {ns:8.1} ns/open+close",
                    opts.rounds,
                    mode.name()
                );
                samples[i][w].push(ns);
            }
            tracer.stop()?;
        }
    }
    let _ = fs::remove_file(&written);
    report(
        opts,
        &modes,
        &workloads,
        &samples,
        &out_dir.join("files.json"),
    )
}

/// The shipped policy without its `[[rule.file]]` tables: a table ends at the next header.
pub(crate) fn without_file_rules(policy: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in policy.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            skipping = t.starts_with("[[rule.file]]");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The hidden `bench-open-loop N PATH FLAGS` subcommand: pinned like `bench-loop`, prints the
/// elapsed ns of N open+close pairs.
pub fn open_loop(iterations: u64, path: &Path, flags: i32) -> Result<()> {
    bench_overhead::pin_loop_cpu()?;
    let c = CString::new(path.as_os_str().as_encoded_bytes()).context("path with a NUL")?;
    let once = || {
        // SAFETY: a valid C string; the fd is closed right away.
        let fd = unsafe { libc::open(c.as_ptr(), flags, 0o644) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd was just opened by us.
        unsafe { libc::close(fd) };
        Ok(())
    };
    for _ in 0..iterations / 10 {
        once().with_context(|| format!("open {}", path.display()))?;
    }
    let start = Instant::now();
    for _ in 0..iterations {
        once().with_context(|| format!("open {}", path.display()))?;
    }
    println!("{}", start.elapsed().as_nanos());
    Ok(())
}

fn measure(iterations: u64, path: &Path, flags: i32) -> Result<f64> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let mut c = Command::new(exe);
    c.args(["bench-open-loop", &iterations.to_string()])
        .arg(path)
        .arg(flags.to_string());
    let out = cmd::stdout_of(&mut c)?;
    let ns: f64 = out
        .trim()
        .parse()
        .with_context(|| format!("bench-open-loop printed {out:?}"))?;
    Ok(ns / iterations as f64)
}

fn report(
    opts: &Opts,
    modes: &Modes,
    workloads: &[(&str, PathBuf, i32)],
    samples: &[Vec<Vec<f64>>],
    json_path: &Path,
) -> Result<()> {
    let kernel =
        fs::read_to_string("/proc/sys/kernel/osrelease").context("reading kernel release")?;
    let date = utc_now();
    println!();
    println!(
        "open+close loop, {} iterations x {} rounds; kernel {}; {date}",
        opts.iterations,
        opts.rounds,
        kernel.trim()
    );
    let mut workloads_json = serde_json::Map::new();
    for (w, (name, path, flags)) in workloads.iter().enumerate() {
        let med = |m: Mode| {
            modes
                .run
                .iter()
                .position(|x| *x == m)
                .map(|i| median(&samples[i][w]))
        };
        let bare = med(Mode::Bare);
        let mut modes_json = serde_json::Map::new();
        println!("{name}: {} with flags {flags:#o}", path.display());
        for (i, mode) in modes.run.iter().enumerate() {
            let m = median(&samples[i][w]);
            let added = bare.map(|b| m - b);
            println!(
                "  {:<20} {m:8.1} ns   added vs bare {}",
                mode.name(),
                added.map_or("-".into(), |a| format!("{a:+.1}"))
            );
            modes_json.insert(
                mode.name().into(),
                json!({ "median_ns": m, "added_ns_vs_bare": added, "samples_ns": samples[i][w] }),
            );
        }
        let rules = med(Mode::Vigil)
            .zip(med(Mode::VigilNoFileRules))
            .map(|(v, n)| v - n);
        if let Some(r) = rules {
            println!("  file rules' own cost: {r:+.1} ns per open+close");
        }
        workloads_json.insert(
            (*name).into(),
            json!({ "path": path, "flags": flags, "modes": modes_json, "file_rules_ns": rules }),
        );
    }
    let doc = json!({
        "bench": "files",
        "date": date,
        "kernel": kernel.trim(),
        "nproc": bench_overhead::online_cpus(),
        "iterations": opts.iterations,
        "rounds": opts.rounds,
        "workloads": workloads_json,
    });
    fs::write(json_path, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("wrote {}", json_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_without_file_rules_keeps_everything_else() {
        let shipped =
            fs::read_to_string(cmd::workspace_root().join("packaging/policy.toml")).unwrap();
        let stripped = without_file_rules(&shipped);
        let (mut shipped, stripped): (toml::Table, toml::Table) = (
            toml::from_str(&shipped).expect("shipped policy"),
            toml::from_str(&stripped).expect("stripped policy"),
        );
        let rules = shipped["rule"].as_table_mut().expect("rule tables");
        assert!(rules.remove("file").is_some(), "the shipped policy has file rules");
        // Everything else, key for key: no rule lost, no file rule's key left on another.
        assert_eq!(shipped, stripped);
    }
}
