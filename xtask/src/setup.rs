//! `cargo xtask setup`: installs what building and testing vigil needs, on a fresh Debian
//! machine that only has rustup's stable and nightly toolchains. Every step checks first, so a
//! second run does nothing.

use std::env;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, is_root};

const BPF_LINKER_VERSION: &str = "0.13.0";
/// The LLVM major that bpf-linker is built against; it must match the nightly rustc's LLVM,
/// because rustc hands bpf-linker bitcode of that version.
const LLVM_MAJOR: &str = "22";
/// Debian packages the integration tests use.
const DEB_PACKAGES: &[&str] = &["iproute2", "procps", "systemd"];
/// Debian packages only the benchmarks use: the peer baselines (auditd with an exec+connect rule
/// set, redis-benchmark against Debian's redis-server). Not part of `setup`, so `cargo xtask test`
/// never installs them.
const BENCH_DEB_PACKAGES: &[&str] = &["auditd", "redis-server", "redis-tools"];

pub fn setup() -> Result<()> {
    rust_src()?;
    bpf_linker()?;
    debian_packages(DEB_PACKAGES)?;
    mounts()?;
    eprintln!("setup: done");
    Ok(())
}

/// What the benchmarks need beyond `setup`: the peer baselines' Debian packages.
pub fn bench_setup() -> Result<()> {
    debian_packages(BENCH_DEB_PACKAGES)
}

fn nightly_sysroot() -> Result<PathBuf> {
    let mut cmd = Command::new("rustc");
    cmd.args(["+nightly", "--print", "sysroot"]);
    let out = cmd::probe(&mut cmd)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}); install the nightly toolchain with `rustup toolchain install nightly`\n{}",
            cmd::display(&cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sysroot = String::from_utf8(out.stdout).context("nightly sysroot is not UTF-8")?;
    Ok(PathBuf::from(sysroot.trim()))
}

/// The eBPF crate is built with `-Z build-std=core`, which needs nightly's rust-src.
fn rust_src() -> Result<()> {
    let library = nightly_sysroot()?.join("lib/rustlib/src/rust/library");
    if library.is_dir() {
        eprintln!("setup: nightly rust-src present");
        return Ok(());
    }
    cmd::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

fn bpf_linker_ok() -> bool {
    let Ok(out) = Command::new("bpf-linker").arg("--version").output() else {
        return false;
    };
    out.status.success()
        && String::from_utf8_lossy(&out.stdout).trim() == format!("bpf-linker {BPF_LINKER_VERSION}")
}

fn bpf_linker() -> Result<()> {
    if bpf_linker_ok() {
        eprintln!("setup: bpf-linker {BPF_LINKER_VERSION} present");
        return Ok(());
    }
    let prefix = match nightly_llvm_prefix()? {
        Some(prefix) => prefix,
        None => {
            let pkg = format!("llvm-{LLVM_MAJOR}-dev");
            eprintln!("setup: nightly libLLVM {LLVM_MAJOR} not found; using Debian's {pkg}");
            debian_packages(&[pkg.as_str()])?;
            PathBuf::from(format!("/usr/lib/llvm-{LLVM_MAJOR}"))
        }
    };
    cmd::run(
        cmd::cargo()
            .env("LLVM_PREFIX", &prefix)
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{LLVM_MAJOR}"),
                "--force",
            ]),
    )?;
    cmd::run(Command::new("bpf-linker").arg("--version"))?;
    if !bpf_linker_ok() {
        bail!("bpf-linker on PATH is still not {BPF_LINKER_VERSION} after installing it");
    }
    Ok(())
}

/// Makes `$HOME/.cache/vigil/llvm-<major>/lib/` hold `libLLVM.so` and the soname file, both
/// linking to the nightly toolchain's libLLVM. bpf-linker's build links against `libLLVM.so`
/// there and records that directory as its RUNPATH and the soname as NEEDED, so the binary
/// keeps working as long as the nightly toolchain stays. None when nightly ships no LLVM
/// `LLVM_MAJOR`.
fn nightly_llvm_prefix() -> Result<Option<PathBuf>> {
    let lib = nightly_sysroot()?.join("lib");
    let soname = fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with(&format!("libLLVM.so.{LLVM_MAJOR}.")));
    let Some(soname) = soname else {
        return Ok(None);
    };
    let target = lib.join(&soname);

    let home = env::var_os("HOME").context("HOME is not set")?;
    let prefix = Path::new(&home).join(format!(".cache/vigil/llvm-{LLVM_MAJOR}"));
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    for name in ["libLLVM.so", soname.as_str()] {
        let link = prefix_lib.join(name);
        if fs::read_link(&link).is_ok_and(|t| t == target) {
            continue;
        }
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link).with_context(|| format!("removing {}", link.display()))?;
        }
        eprintln!("$ ln -s {} {}", target.display(), link.display());
        symlink(&target, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(Some(prefix))
}

fn deb_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout == b"install ok installed")
}

fn debian_packages(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !deb_installed(p)).collect();
    if missing.is_empty() {
        eprintln!("setup: Debian packages present: {}", pkgs.join(" "));
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {}; run `cargo xtask setup` as root",
            missing.join(" ")
        );
    }
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .arg("update"),
    )?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )
}

/// tracefs for tracepoints and bpffs for pinning; the agent mounts them too.
fn mounts() -> Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    for (fstype, dir) in [("tracefs", "/sys/kernel/tracing"), ("bpf", "/sys/fs/bpf")] {
        let mounted = mounts.lines().any(|line| {
            let mut f = line.split_whitespace();
            let (_src, mnt, ty) = (f.next(), f.next(), f.next());
            mnt == Some(dir) && ty == Some(fstype)
        });
        if mounted {
            eprintln!("setup: {fstype} mounted at {dir}");
        } else if !is_root() {
            eprintln!("setup: {fstype} not mounted at {dir}; skipped (not root)");
        } else {
            cmd::run(Command::new("mount").args(["-t", fstype, fstype, dir]))?;
        }
    }
    Ok(())
}
