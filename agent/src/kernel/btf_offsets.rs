//! Byte offsets of the kernel struct fields the eBPF programs read, resolved from the running
//! kernel's BTF. This is vigil's CO-RE: the offsets are written into the eBPF object as the
//! `OFFSETS` global before load, so the programs never hard-code one kernel's layout.

use std::fmt;
use std::path::{Path, PathBuf};

use agent_common::config::{KernelOffsets, OFFSET_UNKNOWN};
use serde::Serialize;
use thiserror::Error;
use tracing::{debug, warn};

/// The kernel exposes its own BTF here when built with `CONFIG_DEBUG_INFO_BTF=y`.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, Error)]
pub enum BtfError {
    #[error("cannot parse kernel BTF at {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error(
        "required field {strukt}.{field} not found in kernel BTF; \
         vigil cannot attribute events to processes without it"
    )]
    RequiredFieldMissing {
        strukt: &'static str,
        field: &'static str,
    },
    #[error(
        "{strukt}.{field} is a bitfield at bit {bit_offset}, not byte-aligned; eBPF reads whole bytes"
    )]
    Unaligned {
        strukt: &'static str,
        field: &'static str,
        bit_offset: u32,
    },
    #[error("malformed kernel BTF while resolving {strukt}.{field}: {reason}")]
    Malformed {
        strukt: &'static str,
        field: &'static str,
        reason: String,
    },
}

/// A field the kernel's BTF does not have; its offset is [`OFFSET_UNKNOWN`] and the programs
/// flag records that needed it instead of reading garbage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MissingField {
    pub strukt: &'static str,
    pub field: &'static str,
}

impl fmt::Display for MissingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.strukt, self.field)
    }
}

/// One field to resolve. `names` lists the current name first and older kernels' names after
/// (`start_boottime` was `real_start_time` before 5.5).
struct FieldSpec {
    strukt: &'static str,
    names: &'static [&'static str],
    required: bool,
    slot: fn(&mut KernelOffsets) -> &mut u32,
}

const fn field(
    strukt: &'static str,
    names: &'static [&'static str],
    required: bool,
    slot: fn(&mut KernelOffsets) -> &mut u32,
) -> FieldSpec {
    FieldSpec {
        strukt,
        names,
        required,
        slot,
    }
}

/// Everything `KernelOffsets` holds. `signal_struct.live` is an `atomic_t` and the `kuid_t`/
/// `kgid_t` fields of `cred` are one-member structs: the member's offset is the counter's/id's.
static FIELDS: &[FieldSpec] = &[
    field("task_struct", &["pid"], true, |o| &mut o.task_pid),
    field("task_struct", &["tgid"], true, |o| &mut o.task_tgid),
    field("task_struct", &["real_parent"], true, |o| {
        &mut o.task_real_parent
    }),
    field("task_struct", &["group_leader"], false, |o| {
        &mut o.task_group_leader
    }),
    field(
        "task_struct",
        &["start_boottime", "real_start_time"],
        false,
        |o| &mut o.task_start_boottime,
    ),
    field("task_struct", &["real_cred"], false, |o| {
        &mut o.task_real_cred
    }),
    field("task_struct", &["mm"], false, |o| &mut o.task_mm),
    field("task_struct", &["flags"], false, |o| &mut o.task_flags),
    field("task_struct", &["exit_code"], false, |o| {
        &mut o.task_exit_code
    }),
    field("task_struct", &["signal"], false, |o| &mut o.task_signal),
    field("signal_struct", &["live"], false, |o| &mut o.signal_live),
    field("mm_struct", &["arg_start"], false, |o| &mut o.mm_arg_start),
    field("mm_struct", &["arg_end"], false, |o| &mut o.mm_arg_end),
    field("mm_struct", &["env_start"], false, |o| &mut o.mm_env_start),
    field("mm_struct", &["env_end"], false, |o| &mut o.mm_env_end),
    field("cred", &["uid"], false, |o| &mut o.cred_uid),
    field("cred", &["gid"], false, |o| &mut o.cred_gid),
    field("cred", &["suid"], false, |o| &mut o.cred_suid),
    field("cred", &["sgid"], false, |o| &mut o.cred_sgid),
    field("cred", &["euid"], false, |o| &mut o.cred_euid),
    field("cred", &["egid"], false, |o| &mut o.cred_egid),
    field("cred", &["fsuid"], false, |o| &mut o.cred_fsuid),
    field("cred", &["fsgid"], false, |o| &mut o.cred_fsgid),
    field("task_struct", &["files"], false, |o| &mut o.task_files),
    field("files_struct", &["fdt"], false, |o| &mut o.files_fdt),
    field("fdtable", &["fd"], false, |o| &mut o.fdt_fd),
    field("file", &["f_inode"], false, |o| &mut o.file_inode),
    field("inode", &["i_mode"], false, |o| &mut o.inode_mode),
    field("file", &["private_data"], false, |o| &mut o.file_private_data),
    field("file", &["f_mode"], false, |o| &mut o.file_f_mode),
    field("socket", &["sk"], false, |o| &mut o.socket_sk),
    field("sock_common", &["skc_family"], false, |o| &mut o.sock_common_family),
    field("sock_common", &["skc_daddr"], false, |o| &mut o.sock_common_daddr),
    field("sock_common", &["skc_dport"], false, |o| &mut o.sock_common_dport),
    field("sock_common", &["skc_v6_daddr"], false, |o| &mut o.sock_common_v6_daddr),
    field("mm_struct", &["exe_file"], false, |o| &mut o.mm_exe_file),
    field("inode", &["i_ino"], false, |o| &mut o.inode_ino),
    field("inode", &["i_sb"], false, |o| &mut o.inode_sb),
    field("super_block", &["s_dev"], false, |o| &mut o.sb_dev),
    field("super_block", &["s_magic"], false, |o| &mut o.sb_magic),
    field("inode", &["i_size"], false, |o| &mut o.inode_size),
    // Split out of the `i_mtime`/`i_ctime` timespec64s in 6.7-6.11; older kernels leave the
    // identity unknown and vigil opens /proc/PID/exe for it, as for any image it has not seen.
    field("inode", &["i_mtime_sec"], false, |o| &mut o.inode_mtime_sec),
    field("inode", &["i_mtime_nsec"], false, |o| &mut o.inode_mtime_nsec),
    field("inode", &["i_ctime_sec"], false, |o| &mut o.inode_ctime_sec),
    field("inode", &["i_ctime_nsec"], false, |o| &mut o.inode_ctime_nsec),
    field("fdtable", &["max_fds"], false, |o| &mut o.fdt_max_fds),
    field("file", &["f_path"], false, |o| &mut o.file_f_path),
    field("path", &["dentry"], false, |o| &mut o.path_dentry),
    field("dentry", &["d_parent"], false, |o| &mut o.dentry_d_parent),
    field("dentry", &["d_inode"], false, |o| &mut o.dentry_d_inode),
    field("dentry", &["d_name"], false, |o| &mut o.dentry_d_name),
    field("qstr", &["name"], false, |o| &mut o.qstr_name),
    field("task_struct", &["fs"], false, |o| &mut o.task_fs),
    field("fs_struct", &["pwd"], false, |o| &mut o.fs_pwd),
];

/// Resolves from the running kernel's BTF.
pub fn resolve_from_sys() -> Result<(KernelOffsets, Vec<MissingField>), BtfError> {
    resolve_offsets(Path::new(VMLINUX_BTF))
}

/// Resolves every [`KernelOffsets`] field from a BTF file. Missing optional fields are returned
/// (and logged) rather than failing: the agent still runs, with less detail in its records.
pub fn resolve_offsets(vmlinux: &Path) -> Result<(KernelOffsets, Vec<MissingField>), BtfError> {
    let btf = KernelBtf::from_file(vmlinux).map_err(|reason| BtfError::Parse {
        path: vmlinux.to_path_buf(),
        reason,
    })?;
    resolve_in(&btf)
}

pub(crate) fn resolve_in(btf: &KernelBtf) -> Result<(KernelOffsets, Vec<MissingField>), BtfError> {
    let mut offsets = KernelOffsets::UNKNOWN;
    let mut missing = Vec::new();
    for spec in FIELDS {
        let found = resolve_field(btf, spec)?;
        match found {
            Some((name, byte_offset)) => {
                debug!(field = %format!("{}.{name}", spec.strukt), byte_offset, "resolved kernel offset");
                *(spec.slot)(&mut offsets) = byte_offset;
            }
            None if spec.required => {
                return Err(BtfError::RequiredFieldMissing {
                    strukt: spec.strukt,
                    field: spec.names[0],
                });
            }
            None => {
                let field = MissingField {
                    strukt: spec.strukt,
                    field: spec.names[0],
                };
                warn!(%field, "kernel BTF lacks field; records needing it will be flagged");
                *(spec.slot)(&mut offsets) = OFFSET_UNKNOWN;
                missing.push(field);
            }
        }
    }
    Ok((offsets, missing))
}

/// Byte offset of the first of `spec.names` present in `spec.strukt`, with the name found.
fn resolve_field(btf: &KernelBtf, spec: &FieldSpec) -> Result<Option<(&'static str, u32)>, BtfError> {
    let Some(strukt) = btf.find_struct(spec.strukt) else {
        return Ok(None);
    };
    for &name in spec.names {
        let lookup = find_member(btf, strukt, name, 0).map_err(|reason| BtfError::Malformed {
            strukt: spec.strukt,
            field: name,
            reason,
        })?;
        if let Some(bits) = lookup {
            if bits % 8 != 0 {
                return Err(BtfError::Unaligned {
                    strukt: spec.strukt,
                    field: name,
                    bit_offset: bits,
                });
            }
            return Ok(Some((name, bits / 8)));
        }
    }
    Ok(None)
}

/// Anonymous structs/unions nest a few levels at most; the bound guards against cyclic BTF.
const MAX_ANON_DEPTH: usize = 8;

/// Bit offset of member `name` in `strukt`, looking through anonymous struct/union members
/// (mm_struct keeps most fields in one; task_struct has several) and adding their offsets.
fn find_member(btf: &KernelBtf, strukt: u32, name: &str, depth: usize) -> Result<Option<u32>, String> {
    if depth > MAX_ANON_DEPTH {
        return Err(format!(
            "anonymous members nested deeper than {MAX_ANON_DEPTH}"
        ));
    }
    for member in btf.members(strukt)? {
        if member.name == name {
            return Ok(Some(member.bit_offset));
        }
        if member.name.is_empty()
            && let Some(inner) = anonymous_composite(btf, member.type_id)?
            && let Some(bits) = find_member(btf, inner, name, depth + 1)?
        {
            return member
                .bit_offset
                .checked_add(bits)
                .map(Some)
                .ok_or_else(|| "member offset overflows u32".to_string());
        }
    }
    Ok(None)
}

/// The struct/union an unnamed member stands for, seen through typedefs and qualifiers.
fn anonymous_composite(btf: &KernelBtf, mut id: u32) -> Result<Option<u32>, String> {
    for _ in 0..MAX_ANON_DEPTH {
        match btf.kind(id)? {
            Kind::Composite(c) => return Ok(Some(c)),
            Kind::Alias(target) => id = target,
            Kind::Other => return Ok(None),
        }
    }
    Ok(None)
}

mod reader;
use reader::{Kind, KernelBtf};

#[cfg(test)]
mod tests;
