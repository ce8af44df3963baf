//! `cargo xtask install [--prefix DIR]`: builds the release agent and lays out what the systemd
//! unit expects, under DIR (default `/`). Safe to repeat: each file is replaced atomically
//! (temp file + rename, so a running vigil or an interrupted install never sees half a file)
//! and only when its contents or mode differ; operator files under etc/vigil/policy.d are never
//! touched.

use std::fs::{self, DirBuilder, File, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{build, cmd, setup};

/// The unit's ExecStart binary; verify rewrites it when installing under a prefix.
const UNIT_BINARY: &str = "/usr/sbin/vigil";

pub struct Opts {
    pub prefix: PathBuf,
    /// Installed as usr/lib/vigil/policy.toml instead of packaging/policy.toml.
    pub policy: Option<PathBuf>,
}

pub fn install(opts: &Opts) -> Result<()> {
    let prefix = &std::path::absolute(&opts.prefix).context("resolving --prefix")?;
    let system = prefix == Path::new("/");
    if system && !cmd::is_root() {
        bail!(
            "installing to / needs root: run `sudo -E cargo xtask install`, or pass --prefix DIR"
        );
    }
    let root = cmd::workspace_root();
    let policy = opts
        .policy
        .clone()
        .unwrap_or_else(|| root.join("packaging/policy.toml"));
    let model = root.join("models/vigil.onnx");
    let unit = root.join("packaging/vigil.service");
    // Fail before the long build, not after it.
    for src in [&policy, &model, &unit] {
        if !src.is_file() {
            bail!("{} is missing; nothing to install it from", src.display());
        }
    }

    setup::setup()?;
    let bin = build::build(false)?;

    let files: [(&Path, &str, u32); 4] = [
        (&bin, "usr/sbin/vigil", 0o755),
        (&model, "usr/lib/vigil/vigil.onnx", 0o644),
        (&policy, "usr/lib/vigil/policy.toml", 0o644),
        (&unit, "lib/systemd/system/vigil.service", 0o644),
    ];
    for (src, rel, mode) in files {
        let dest = prefix.join(rel);
        if src == unit {
            // Checked before it replaces a working unit (verify needs the binary in place).
            verify_unit(&unit, &prefix.join(UNIT_BINARY.trim_start_matches('/')))?;
        }
        let changed = install_file(src, &dest, mode)?;
        eprintln!(
            "install: {} {dest} ({mode:o})",
            if changed { "installed" } else { "unchanged" },
            dest = dest.display()
        );
    }
    // Private: policy may name what vigil hunts for, and the vault holds live malware.
    for rel in [
        "etc/vigil",
        "etc/vigil/policy.d",
        "var/lib/vigil",
        "var/lib/vigil/quarantine",
    ] {
        let dir = prefix.join(rel);
        let what = private_dir(&dir)?;
        eprintln!("install: {what} {} (700)", dir.display());
    }

    if system && Path::new("/run/systemd/system").is_dir() {
        // sd_booted(): systemd is PID 1, so it can pick the new unit up now.
        cmd::run(Command::new("systemctl").arg("daemon-reload"))?;
        eprintln!("install: done; start it with `systemctl enable --now vigil`");
    } else if system {
        eprintln!(
            "install: done; systemd is not PID 1 here, so no daemon-reload. On a systemd host run \
             `systemctl daemon-reload && systemctl enable --now vigil`; without systemd run \
             `/usr/sbin/vigil run` as root"
        );
    } else {
        eprintln!(
            "install: done under {}; copy the tree to / on the target and run \
             `systemctl daemon-reload && systemctl enable --now vigil`",
            prefix.display()
        );
    }
    Ok(())
}

/// Copies `src` to `dest` with `mode` unless `dest` already has those bytes and that mode.
/// Returns whether it wrote.
fn install_file(src: &Path, dest: &Path, mode: u32) -> Result<bool> {
    let data = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    if let Ok(meta) = fs::metadata(dest)
        && meta.permissions().mode() & 0o7777 == mode
        && fs::read(dest).is_ok_and(|old| old == data)
    {
        return Ok(false);
    }
    let dir = dest
        .parent()
        .context("destination has no parent directory")?;
    public_dir(dir)?;
    let name = dest
        .file_name()
        .context("destination has no file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.xtask-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&data)?;
        file.set_permissions(Permissions::from_mode(mode))?;
        file.sync_all()?;
        // rename over the old file: replacing a running /usr/sbin/vigil in place would fail
        // with ETXTBSY, and readers see either the old file or the new one, never a mix.
        fs::rename(&tmp, dest)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e)
            .with_context(|| format!("installing {} as {}", src.display(), dest.display()));
    }
    Ok(true)
}

/// Creates `dir` and missing parents with mode 0755; existing directories keep their mode.
fn public_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Makes `dir` exist with mode 0700 (tightening a looser existing mode); its contents are left
/// alone. Returns what it did.
fn private_dir(dir: &Path) -> Result<&'static str> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => bail!("{} exists and is not a directory", dir.display()),
        Ok(meta) if meta.permissions().mode() & 0o7777 == 0o700 => Ok("unchanged"),
        Ok(_) => {
            fs::set_permissions(dir, Permissions::from_mode(0o700))
                .with_context(|| format!("chmod 700 {}", dir.display()))?;
            Ok("tightened")
        }
        Err(_) => {
            public_dir(dir.parent().context("directory has no parent")?)?;
            DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            // mkdir's mode is filtered by the umask; say exactly what we mean.
            fs::set_permissions(dir, Permissions::from_mode(0o700))
                .with_context(|| format!("chmod 700 {}", dir.display()))?;
            Ok("created")
        }
    }
}

/// `systemd-analyze verify` on the unit about to be installed. Verify checks that ExecStart
/// exists on this host (and `--root` breaks its lookup of sysinit.target), so it checks a
/// temporary copy whose ExecStart points at `binary`, the binary just installed (the same path
/// when installing to /). It exits 0 even for keys and values it ignores, so any line naming
/// the unit counts as an error. Without systemd-analyze this is only a warning.
fn verify_unit(unit: &Path, binary: &Path) -> Result<()> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "install: warning: systemd-analyze not found; {} not verified",
            unit.display()
        );
        return Ok(());
    }
    let text = fs::read_to_string(unit).with_context(|| format!("reading {}", unit.display()))?;
    let exec = format!("ExecStart={UNIT_BINARY} ");
    if !text.lines().any(|l| l.starts_with(&exec)) {
        bail!(
            "{}: ExecStart no longer runs {UNIT_BINARY}; update UNIT_BINARY in xtask/src/install.rs",
            unit.display()
        );
    }
    let text = text.replace(&exec, &format!("ExecStart={} ", binary.display()));
    let scratch = std::env::temp_dir().join(format!("vigil-verify-{}", std::process::id()));
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    // Same file name: systemd derives the unit name from it.
    let copy = scratch.join("vigil.service");
    let mut verify = Command::new("systemd-analyze");
    verify
        .args(["verify", "--man=no", "--generators=no"])
        .arg(&copy);
    let out = fs::write(&copy, text)
        .with_context(|| format!("writing {}", copy.display()))
        .and_then(|()| {
            cmd::announce(&verify);
            cmd::probe(&mut verify)
        });
    let _ = fs::remove_dir_all(&scratch);
    let out = out?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (about_unit, other): (Vec<&str>, Vec<&str>) = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .partition(|l| l.contains("vigil.service"));
    for line in &other {
        eprintln!("install: warning: systemd-analyze: {line}");
    }
    if !out.status.success() || !about_unit.is_empty() {
        bail!(
            "systemd-analyze verify rejected {} ({}):\n{}",
            unit.display(),
            out.status,
            about_unit.join("\n")
        );
    }
    eprintln!("install: systemd-analyze verify: {} OK", unit.display());
    Ok(())
}
