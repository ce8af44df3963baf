//! Loads the embedded eBPF object, configures it for this kernel (BTF offsets, our own tgid) and
//! attaches programs from the declarative table in [`table`]. What could not be attached is
//! recorded with its reason, logged, and shown by `vigil status`.

mod creds_seed;
mod guards;
mod jiffies;
mod table;

use agent_common::{AgentConfig, KernelOffsets, names};
use aya::{
    Btf, Ebpf, EbpfError, EbpfLoader,
    maps::{Map, MapError},
    programs::{BtfTracePoint, ProgramError, RawTracePoint, TracePoint},
};
pub use jiffies::{kernel_hz, to_jiffies};
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
    Load(#[source] Box<EbpfError>),
    #[error("program `{0}` is missing from the eBPF object")]
    MissingProgram(&'static str),
    #[error("reading kernel BTF for tp_btf programs: {0}")]
    Btf(String),
    #[error("map `{0}` is missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("required program `{name}` ({hook}) could not be {stage}: {source}")]
    Required {
        name: &'static str,
        hook: String,
        stage: &'static str,
        #[source]
        source: Box<ProgramError>,
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
    /// Not used; a fallback took its place. The reason says why.
    Skipped(String),
}

#[derive(Clone, Debug)]
pub struct AttachReport {
    pub program: &'static str,
    pub hook: String,
    pub outcome: Outcome,
}

/// The loaded object with everything attached. Dropping it detaches every program.
pub struct Sensors {
    ebpf: Ebpf,
    pub report: Vec<AttachReport>,
    /// All four network guards are attached: quarantines can cut the network.
    pub network_guards: bool,
}

impl Sensors {
    /// Loads and attaches vigil's sensors.
    pub fn load(
        offsets: &KernelOffsets,
        config: &AgentConfig,
        cgroup2: Option<&std::path::Path>,
    ) -> Result<Self, LoadError> {
        let mut ebpf = load_object(offsets, config)?;
        let mut report = Vec::new();
        for spec in ATTACH_TABLE {
            attach_spec(&mut ebpf, spec, &mut report)?;
        }
        let network_guards = guards::attach_guards(&mut ebpf, cgroup2, &mut report);
        // After the fork and exec probes attached: every thread is then either recorded by them
        // or already listed in /proc.
        let map = ebpf
            .map_mut(names::MAP_CREDS)
            .ok_or(LoadError::MissingMap(names::MAP_CREDS))?;
        creds_seed::seed(map, std::path::Path::new("/proc"))?;
        for r in &report {
            match &r.outcome {
                Outcome::Attached => info!(program = r.program, hook = %r.hook, "attached"),
                Outcome::Skipped(why) => {
                    warn!(program = r.program, hook = %r.hook, "skipped: {why}")
                }
            }
        }
        Ok(Self {
            ebpf,
            report,
            network_guards,
        })
    }

    /// Moves a map out of the object (ring buffers go to their readers).
    pub fn take_map(&mut self, name: &'static str) -> Result<Map, LoadError> {
        self.ebpf.take_map(name).ok_or(LoadError::MissingMap(name))
    }

    pub fn map_mut(&mut self, name: &'static str) -> Result<&mut Map, LoadError> {
        self.ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))
    }

    /// Descriptors of the attached tracing programs (the attach table's rows, not the cgroup
    /// guards), for reading the kernel's count of runs it skipped.
    pub fn tracing_program_fds(&self) -> Vec<(&'static str, std::os::fd::OwnedFd)> {
        use std::os::fd::AsFd as _;
        self.report
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Attached))
            .filter(|r| ATTACH_TABLE.iter().any(|s| s.program == r.program || s.fallback.as_ref().is_some_and(|(f, _)| *f == r.program)))
            .filter_map(|r| {
                let fd = self.ebpf.program(r.program)?.fd().ok()?;
                Some((r.program, fd.as_fd().try_clone_to_owned().ok()?))
            })
            .collect()
    }
}

fn load_object(offsets: &KernelOffsets, config: &AgentConfig) -> Result<Ebpf, LoadError> {
    if EBPF_OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    EbpfLoader::new()
        .override_global(names::GLOBAL_OFFSETS, offsets, true)
        .override_global(names::GLOBAL_CONFIG, config, true)
        .load(EBPF_OBJECT)
        .map_err(|e| LoadError::Load(Box::new(e)))
}

fn attach_spec(
    ebpf: &mut Ebpf,
    spec: &ProgramSpec,
    report: &mut Vec<AttachReport>,
) -> Result<(), LoadError> {
    match (attach_one(ebpf, spec.program, &spec.hook), &spec.fallback) {
        (Ok(()), _) => {}
        (Err(e), Some((program, hook))) => {
            report.push(AttachReport {
                program: spec.program,
                hook: spec.hook.to_string(),
                outcome: Outcome::Skipped(format!("{e}; using {program} on {hook} instead")),
            });
            attach_one(ebpf, program, hook)?;
            report.push(AttachReport {
                program,
                hook: hook.to_string(),
                outcome: Outcome::Attached,
            });
            return Ok(());
        }
        (Err(e), None) => return Err(e),
    }
    report.push(AttachReport {
        program: spec.program,
        hook: spec.hook.to_string(),
        outcome: Outcome::Attached,
    });
    Ok(())
}

fn attach_one(ebpf: &mut Ebpf, name: &'static str, hook: &Hook) -> Result<(), LoadError> {
    let hook_name = hook.to_string();
    let failed = |stage| {
        let hook = hook_name.clone();
        move |source| LoadError::Required {
            name,
            hook,
            stage,
            source: Box::new(source),
        }
    };
    let program = ebpf
        .program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?;
    match hook {
        Hook::BtfTp(tp) => {
            let btf = Btf::from_sys_fs().map_err(|e| LoadError::Btf(e.to_string()))?;
            let p: &mut BtfTracePoint = program.try_into().map_err(failed("loaded"))?;
            p.load(tp, &btf).map_err(failed("loaded"))?;
            p.attach().map_err(failed("attached"))?;
        }
        Hook::RawTp(tp) => {
            let p: &mut RawTracePoint = program.try_into().map_err(failed("loaded"))?;
            p.load().map_err(failed("loaded"))?;
            p.attach(tp).map_err(failed("attached"))?;
        }
        Hook::Tp(category, tp) => {
            let p: &mut TracePoint = program.try_into().map_err(failed("loaded"))?;
            p.load().map_err(failed("loaded"))?;
            p.attach(category, tp).map_err(failed("attached"))?;
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
        let mut ebpf = load_object(
            &KernelOffsets::UNKNOWN,
            &AgentConfig {
                self_tgid: std::process::id(),
                flags: 0,
                // The empty probe never reads it.
                batch_max_age_jiffies: 0,
            },
        )?;
        let name = names::PROG_EMPTY_SYS_ENTER;
        let hook = "raw_tp/sys_enter".to_string();
        let program = ebpf
            .program_mut(name)
            .ok_or(LoadError::MissingProgram(name))?;
        let p: &mut RawTracePoint = program.try_into().map_err(|source| LoadError::Required {
            name,
            hook: hook.clone(),
            stage: "loaded",
            source: Box::new(source),
        })?;
        p.load().map_err(|source| LoadError::Required {
            name,
            hook: hook.clone(),
            stage: "loaded",
            source: Box::new(source),
        })?;
        p.attach("sys_enter")
            .map_err(|source| LoadError::Required {
                name,
                hook,
                stage: "attached",
                source: Box::new(source),
            })?;
        Ok(Self { _ebpf: ebpf })
    }
}
