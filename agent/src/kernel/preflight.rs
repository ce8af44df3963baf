//! Checks run once at startup, before any eBPF object is loaded, so that a missing privilege or
//! kernel feature is reported as one clear sentence rather than as an errno from deep in aya.

use std::fs;
use std::path::{Path, PathBuf};

use agent_common::config::KernelOffsets;
use nix::sys::resource::{RLIM_INFINITY, Resource, setrlimit};
use nix::unistd::geteuid;
use serde::Serialize;
use thiserror::Error;
use tracing::{info, warn};

use super::btf_offsets::{self, BtfError, MissingField, VMLINUX_BTF};
use super::mounts::{self, MountError, SECURITYFS_PATH};

const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";
const MOUNTINFO: &str = "/proc/self/mountinfo";

#[derive(Debug, Error)]
pub enum PreflightError {
    #[error("vigil must run as root (needs CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)")]
    NotRoot,
    #[error("kernel BTF not found at {VMLINUX_BTF}; vigil needs CONFIG_DEBUG_INFO_BTF=y")]
    NoBtf,
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("cannot read the kernel release from {OSRELEASE}: {0}")]
    Release(#[source] std::io::Error),
    #[error(transparent)]
    Offsets(#[from] BtfError),
}

/// What preflight learned about the running kernel; the loader consumes `offsets`.
#[derive(Clone, Debug)]
pub struct KernelInfo {
    pub release: String,
    /// The active lockdown mode (`none`, `integrity`, `confidentiality`), if securityfs tells.
    pub lockdown: Option<String>,
    pub offsets: KernelOffsets,
    pub missing_fields: Vec<MissingField>,
    pub tracefs: PathBuf,
    pub bpffs: PathBuf,
}

/// Which hooks this kernel can offer, for the loader's attach table to explain what it skipped.
/// These are necessary conditions read from sysfs/procfs, not proofs: e.g. an active `bpf` LSM
/// does not guarantee BPF_PROG_LOAD accepts LSM programs, so the loader still handles refusal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FeatureSet {
    /// The kprobe PMU exists, so kprobes can attach through perf_event_open.
    pub kprobe_pmu: bool,
    /// `bpf` is among the active LSMs (needed for BPF LSM programs).
    pub lsm_bpf: bool,
    /// Kernel BTF is exposed (needed for tp_btf, fentry and LSM programs).
    pub btf: bool,
    /// Where the cgroup v2 hierarchy is mounted (needed for cgroup_sock_addr programs).
    pub cgroup2_path: Option<PathBuf>,
    /// Active LSMs in stacking order, empty if securityfs is not mounted.
    pub lsms: Vec<String>,
}

/// Verifies privileges and BTF, prepares mounts and rlimits, and resolves kernel offsets.
pub fn preflight() -> Result<KernelInfo, PreflightError> {
    if !geteuid().is_root() {
        return Err(PreflightError::NotRoot);
    }
    if !Path::new(VMLINUX_BTF).exists() {
        return Err(PreflightError::NoBtf);
    }
    let tracefs = mounts::ensure_tracefs()?;
    let bpffs = mounts::ensure_bpffs()?;
    // securityfs only tells us the lockdown mode and LSM list: report, don't refuse to start.
    if let Err(e) = mounts::ensure_securityfs() {
        warn!(error = %e, "lockdown mode and LSM list will be unknown");
    }
    raise_memlock();
    let release = fs::read_to_string(OSRELEASE)
        .map_err(PreflightError::Release)?
        .trim()
        .to_owned();
    let lockdown = read_lockdown();
    let (offsets, missing_fields) = btf_offsets::resolve_from_sys()?;
    info!(
        %release,
        lockdown = lockdown.as_deref().unwrap_or("unknown"),
        missing_fields = missing_fields.len(),
        "kernel preflight passed"
    );
    Ok(KernelInfo {
        release,
        lockdown,
        offsets,
        missing_fields,
        tracefs,
        bpffs,
    })
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; newer ones use memcg and ignore it.
/// A failure is only a warning: on new kernels it changes nothing, on old ones map creation
/// will then fail with its own error.
fn raise_memlock() {
    if let Err(errno) = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY) {
        warn!(%errno, "cannot raise RLIMIT_MEMLOCK; map creation may fail on kernels before 5.11");
    }
}

fn read_lockdown() -> Option<String> {
    let text = fs::read_to_string(Path::new(SECURITYFS_PATH).join("lockdown")).ok()?;
    parse_lockdown(&text)
}

/// `none [integrity] confidentiality` -> `integrity`: the kernel brackets the active mode.
fn parse_lockdown(text: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
        .map(str::to_owned)
}

/// Reads what the kernel offers; cheap, no side effects (run [`preflight`] first so securityfs
/// is mounted, otherwise `lsm_bpf` reads false).
pub fn probe_features() -> FeatureSet {
    let lsms: Vec<String> = fs::read_to_string(Path::new(SECURITYFS_PATH).join("lsm"))
        .map(|text| {
            text.trim()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    FeatureSet {
        kprobe_pmu: Path::new(KPROBE_PMU).exists(),
        lsm_bpf: lsms.iter().any(|l| l == "bpf"),
        btf: Path::new(VMLINUX_BTF).exists(),
        cgroup2_path: fs::read_to_string(MOUNTINFO)
            .ok()
            .and_then(|m| parse_cgroup2_mount(&m)),
        lsms,
    }
}

/// First cgroup2 mount point in a mountinfo table. Fields: id, parent, dev, root, mount point,
/// options, optional fields..., `-`, fstype, source, super options.
fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_octal(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], code) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::config::OFFSET_UNKNOWN;

    #[test]
    fn lockdown_mode_is_the_bracketed_word() {
        assert_eq!(
            parse_lockdown("none [integrity] confidentiality\n").as_deref(),
            Some("integrity")
        );
        assert_eq!(
            parse_lockdown("[none] integrity confidentiality").as_deref(),
            Some("none")
        );
        assert_eq!(parse_lockdown(""), None);
    }

    #[test]
    fn cgroup2_mount_is_found_past_optional_fields() {
        let table = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:7 - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/my\\040unified rw,relatime shared:9 master:2 - cgroup2 cgroup2 rw
";
        assert_eq!(
            parse_cgroup2_mount(table),
            Some(PathBuf::from("/sys/fs/cgroup/my unified"))
        );
        assert_eq!(
            parse_cgroup2_mount("22 27 0:21 / /proc rw - proc proc rw\n"),
            None
        );
    }

    #[test]
    fn preflight_on_this_kernel() {
        if !geteuid().is_root() {
            println!("skipped: preflight needs root");
            return;
        }
        if !Path::new(VMLINUX_BTF).exists() {
            println!("skipped: no kernel BTF at {VMLINUX_BTF}");
            return;
        }
        let info = preflight().expect("preflight");
        assert_eq!(
            info.release,
            fs::read_to_string(OSRELEASE).expect("osrelease").trim()
        );
        assert_ne!(info.offsets.task_tgid, OFFSET_UNKNOWN);
        assert!(
            info.tracefs
                .join("events/sched/sched_process_exec")
                .is_dir()
        );
        println!(
            "release {} lockdown {:?} missing {:?}",
            info.release, info.lockdown, info.missing_fields
        );

        let features = probe_features();
        println!("{features:?}");
        assert!(features.btf);
        assert_eq!(features.kprobe_pmu, Path::new(KPROBE_PMU).exists());
        assert_eq!(features.lsm_bpf, features.lsms.iter().any(|l| l == "bpf"));
        if let Some(path) = &features.cgroup2_path {
            let fs = nix::sys::statfs::statfs(path).expect("statfs cgroup2");
            assert_eq!(fs.filesystem_type(), nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        }
    }
}
