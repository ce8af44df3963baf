//! Pseudo-filesystems vigil needs. Minimal VMs (and some containers) boot without them, so
//! preflight mounts what is missing instead of failing later with an obscure attach error.
//! Each `ensure_*` is idempotent: an existing mount of the right type is left alone.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sys::statfs::{
    BPF_FS_MAGIC, CGROUP2_SUPER_MAGIC, FsType, SECURITYFS_MAGIC, TRACEFS_MAGIC, statfs,
};
use thiserror::Error;
use tracing::{debug, info};

pub const TRACEFS_PATH: &str = "/sys/kernel/tracing";
/// Where tracefs lived before 4.1; debugfs still automounts it there.
pub const TRACEFS_LEGACY_PATH: &str = "/sys/kernel/debug/tracing";
pub const BPFFS_PATH: &str = "/sys/fs/bpf";
pub const SECURITYFS_PATH: &str = "/sys/kernel/security";
/// cgroup v2: the whole of /sys/fs/cgroup on unified hosts, a sub-mount on hybrid ones.
pub const CGROUP2_PATHS: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

#[derive(Debug, Error)]
pub enum MountError {
    #[error(
        "{fstype} is not mounted at {target} and mounting it failed: {errno} — vigil needs {fstype} {purpose}"
    )]
    Mount {
        fstype: &'static str,
        target: PathBuf,
        errno: Errno,
        purpose: &'static str,
    },
    #[error(
        "mounted {fstype} at {target} but it still does not look like {fstype} — vigil needs {fstype} {purpose}"
    )]
    NotEffective {
        fstype: &'static str,
        target: PathBuf,
        purpose: &'static str,
    },
}

struct PseudoFs {
    fstype: &'static str,
    target: &'static str,
    magic: FsType,
    purpose: &'static str,
}

const TRACEFS: PseudoFs = PseudoFs {
    fstype: "tracefs",
    target: TRACEFS_PATH,
    magic: TRACEFS_MAGIC,
    purpose: "for tracepoints",
};
const BPFFS: PseudoFs = PseudoFs {
    fstype: "bpf",
    target: BPFFS_PATH,
    magic: BPF_FS_MAGIC,
    purpose: "to pin maps and links",
};
const SECURITYFS: PseudoFs = PseudoFs {
    fstype: "securityfs",
    target: SECURITYFS_PATH,
    magic: SECURITYFS_MAGIC,
    purpose: "to read the lockdown mode and active LSMs",
};

/// Returns the tracefs root (the directory holding `events/`), mounting it if needed.
pub fn ensure_tracefs() -> Result<PathBuf, MountError> {
    for root in [TRACEFS_PATH, TRACEFS_LEGACY_PATH] {
        if Path::new(root).join("events").is_dir() {
            debug!(path = root, "tracefs already available");
            return Ok(PathBuf::from(root));
        }
    }
    ensure(&TRACEFS)
}

/// Returns the bpffs mount point, mounting it if needed.
pub fn ensure_bpffs() -> Result<PathBuf, MountError> {
    ensure(&BPFFS)
}

/// Returns the securityfs mount point, mounting it if needed.
pub fn ensure_securityfs() -> Result<PathBuf, MountError> {
    ensure(&SECURITYFS)
}

const CGROUP2: PseudoFs = PseudoFs {
    fstype: "cgroup2",
    target: "/sys/fs/cgroup/unified",
    magic: CGROUP2_SUPER_MAGIC,
    purpose: "for the quarantine freezer and the network guards",
};

/// Returns the cgroup v2 root (unified or hybrid layout), mounting it at
/// `/sys/fs/cgroup/unified` when neither layout has it.
pub fn ensure_cgroup2() -> Result<PathBuf, MountError> {
    for root in CGROUP2_PATHS {
        if statfs(root).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC) {
            return Ok(PathBuf::from(root));
        }
    }
    if !Path::new(CGROUP2.target).is_dir() {
        let _ = std::fs::create_dir(CGROUP2.target);
    }
    ensure(&CGROUP2)
}

fn is_mounted(fs: &PseudoFs) -> bool {
    statfs(fs.target).is_ok_and(|s| s.filesystem_type() == fs.magic)
}

fn ensure(fs: &PseudoFs) -> Result<PathBuf, MountError> {
    let target = PathBuf::from(fs.target);
    if is_mounted(fs) {
        debug!(fstype = fs.fstype, path = fs.target, "already mounted");
        return Ok(target);
    }
    // Same flags the distributions use for these mounts: nothing here should be executable.
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some(fs.fstype),
        fs.target,
        Some(fs.fstype),
        flags,
        None::<&str>,
    )
    .map_err(|errno| MountError::Mount {
        fstype: fs.fstype,
        target: target.clone(),
        errno,
        purpose: fs.purpose,
    })?;
    if !is_mounted(fs) {
        return Err(MountError::NotEffective {
            fstype: fs.fstype,
            target,
            purpose: fs.purpose,
        });
    }
    info!(
        fstype = fs.fstype,
        path = fs.target,
        "mounted {} {}",
        fs.fstype,
        fs.purpose
    );
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn ensure_is_idempotent() {
        if !is_root() {
            println!("skipped: mounting needs root");
            return;
        }
        let first = ensure_tracefs().expect("tracefs");
        assert!(first.join("events").is_dir());
        assert_eq!(ensure_tracefs().expect("tracefs again"), first);
        assert_eq!(ensure_bpffs().expect("bpffs"), PathBuf::from(BPFFS_PATH));
        assert_eq!(
            ensure_bpffs().expect("bpffs again"),
            PathBuf::from(BPFFS_PATH)
        );
        assert!(is_mounted(&BPFFS));
    }

    #[test]
    fn mount_error_reads_well() {
        let err = MountError::Mount {
            fstype: "tracefs",
            target: PathBuf::from(TRACEFS_PATH),
            errno: Errno::EPERM,
            purpose: "for tracepoints",
        };
        let text = err.to_string();
        assert!(text.starts_with(
            "tracefs is not mounted at /sys/kernel/tracing and mounting it failed: EPERM"
        ));
        assert!(
            text.ends_with("vigil needs tracefs for tracepoints"),
            "{text}"
        );
    }
}
