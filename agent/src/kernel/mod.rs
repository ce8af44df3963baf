//! Kernel preflight: everything vigil checks and prepares before loading eBPF programs —
//! privileges, kernel BTF and the struct offsets resolved from it, tracefs/bpffs mounts,
//! the memlock limit, and which BPF program types this kernel accepts.

pub mod btf_offsets;
pub mod mounts;
pub mod preflight;

pub use btf_offsets::{BtfError, MissingField, VMLINUX_BTF, resolve_from_sys, resolve_offsets};
pub use mounts::{MountError, ensure_bpffs, ensure_tracefs};
pub use preflight::{FeatureSet, KernelInfo, PreflightError, preflight, probe_features};
