//! Loads the embedded eBPF object, configures it for this kernel (BTF offsets, our own tgid) and
//! attaches programs from the declarative table in [`table`]. What could not be attached is
//! recorded with its reason, logged, and shown by `vigil status`.

mod table;

use std::{fmt, path::Path};

use agent_common::{AgentConfig, KernelOffsets, names};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Map, MapError},
    programs::{ProgramError, RawTracePoint, TracePoint},
};
pub use table::{ATTACH_TABLE, Hook, ProgramSpec};
use thiserror::Error;
use tracing::{info, warn};

/// The kernel programs, built by `build.rs` from `agent-ebpf`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vigil"));

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(
        "this vigil binary carries no eBPF object (it was built with AYA_BUILD_SKIP=1); \
         rebuild with `cargo xtask build`"
    )]
    NoObject,
    #[error("loading the eBPF object failed: {0}")]
    Load(#[from] EbpfError),
    #[error("program `{0}` is missing from the eBPF object")]
    MissingProgram(&'static str),
    #[error("map `{0}` is missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("required program `{name}` ({hook}) could not be {stage}: {source}")]
    Required {
        name: &'static str,
        hook: String,
        stage: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
}

/// How one program fared, for logs and `vigil status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Attached,
    Skipped(String),
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct AttachReport {
    pub program: &'static str,
    pub hook: String,
    pub outcome: Outcome,
}

impl fmt::Display for AttachReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Attached => write!(f, "{} on {}: attached", self.program, self.hook),
            Outcome::Skipped(why) => write!(f, "{} on {}: skipped ({why})", self.program, self.hook),
            Outcome::Failed(why) => write!(f, "{} on {}: FAILED ({why})", self.program, self.hook),
        }
    }
}

/// The loaded object with everything attached. Dropping it detaches every program.
pub struct Sensors {
    ebpf: Ebpf,
    pub report: Vec<AttachReport>,
}

impl Sensors {
    /// Loads and attaches vigil's sensors.
    pub fn load(
        offsets: &KernelOffsets,
        config: &AgentConfig,
        tracefs: &Path,
    ) -> Result<Self, LoadError> {
        let mut ebpf = load_object(offsets, config)?;
        let mut report = Vec::new();
        for spec in ATTACH_TABLE {
            attach_spec(&mut ebpf, spec, tracefs, &mut report)?;
        }
        for r in &report {
            match r.outcome {
                Outcome::Attached => info!(program = r.program, hook = %r.hook, "attached"),
                _ => warn!("{r}"),
            }
        }
        Ok(Self { ebpf, report })
    }

    /// Moves a map out of the object (ring buffers go to their readers).
    pub fn take_map(&mut self, name: &'static str) -> Result<Map, LoadError> {
        self.ebpf.take_map(name).ok_or(LoadError::MissingMap(name))
    }

    pub fn map_mut(&mut self, name: &'static str) -> Result<&mut Map, LoadError> {
        self.ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))
    }
}

fn load_object(offsets: &KernelOffsets, config: &AgentConfig) -> Result<Ebpf, LoadError> {
    if EBPF_OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    Ok(EbpfLoader::new()
        .override_global(names::GLOBAL_OFFSETS, offsets, true)
        .override_global(names::GLOBAL_CONFIG, config, true)
        .load(EBPF_OBJECT)?)
}

fn attach_spec(
    ebpf: &mut Ebpf,
    spec: &ProgramSpec,
    tracefs: &Path,
    report: &mut Vec<AttachReport>,
) -> Result<(), LoadError> {
    let required = |stage, hook: String, source| LoadError::Required { name: spec.program, hook, stage, source };
    let program = ebpf.program_mut(spec.program).ok_or(LoadError::MissingProgram(spec.program))?;
    match &spec.hook {
        Hook::RawTp(tp) => {
            let p: &mut RawTracePoint = program.try_into().map_err(|e| required("loaded", spec.hook.to_string(), e))?;
            p.load().map_err(|e| required("loaded", spec.hook.to_string(), e))?;
            p.attach(tp).map_err(|e| required("attached", spec.hook.to_string(), e))?;
            report.push(AttachReport { program: spec.program, hook: spec.hook.to_string(), outcome: Outcome::Attached });
        }
        Hook::Tp(category, name) => {
            let p: &mut TracePoint = program.try_into().map_err(|e| required("loaded", spec.hook.to_string(), e))?;
            p.load().map_err(|e| required("loaded", spec.hook.to_string(), e))?;
            p.attach(category, name).map_err(|e| required("attached", spec.hook.to_string(), e))?;
            report.push(AttachReport { program: spec.program, hook: spec.hook.to_string(), outcome: Outcome::Attached });
        }
        Hook::SyscallTps { prefix } => {
            let p: &mut TracePoint = program.try_into().map_err(|e| required("loaded", spec.hook.to_string(), e))?;
            p.load().map_err(|e| required("loaded", spec.hook.to_string(), e))?;
            // Each watched syscall is its own tracepoint; one missing (e.g. a syscall compiled
            // out of this kernel) costs only that syscall's events.
            for (syscall, _) in agent_common::syscall_nr::WATCHED {
                let name = format!("{prefix}{syscall}");
                let hook = format!("tracepoint/syscalls/{name}");
                let outcome = if !tracefs.join("events/syscalls").join(&name).exists() {
                    Outcome::Skipped("this kernel has no such tracepoint".into())
                } else {
                    match p.attach("syscalls", &name) {
                        Ok(_) => Outcome::Attached,
                        Err(e) => Outcome::Failed(e.to_string()),
                    }
                };
                report.push(AttachReport { program: spec.program, hook, outcome });
            }
        }
    }
    Ok(())
}

/// Loads only the empty sys_enter counter: the floor any per-syscall tracer pays, measured by
/// `cargo xtask bench overhead` against vigil.
pub struct EmptyProbe {
    _ebpf: Ebpf,
}

impl EmptyProbe {
    pub fn load() -> Result<Self, LoadError> {
        let mut ebpf = load_object(&KernelOffsets::UNKNOWN, &AgentConfig {
            self_tgid: std::process::id(),
            _pad: 0,
            batch_max_age_ns: agent_common::DEFAULT_BATCH_MAX_AGE_NS,
        })?;
        let name = names::PROG_EMPTY_SYS_ENTER;
        let hook = "raw_tp/sys_enter".to_string();
        let program = ebpf.program_mut(name).ok_or(LoadError::MissingProgram(name))?;
        let p: &mut RawTracePoint = program
            .try_into()
            .map_err(|source| LoadError::Required { name, hook: hook.clone(), stage: "loaded", source })?;
        p.load().map_err(|source| LoadError::Required { name, hook: hook.clone(), stage: "loaded", source })?;
        p.attach("sys_enter").map_err(|source| LoadError::Required { name, hook, stage: "attached", source })?;
        Ok(Self { _ebpf: ebpf })
    }
}
