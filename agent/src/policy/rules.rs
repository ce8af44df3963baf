//! Exec, connect, event and file rules: compiled from their definitions, and matched against
//! one event.
//! Within a rule every condition present must hold; within a list any entry may match.

use std::net::IpAddr;

use ipnet::IpNet;

use super::cmdline::CmdlineList;
use super::error::PolicyError;
use super::glob::GlobList;
use super::merge::{At, AtList, ConnectRuleDef, EventRuleDef, ExecRuleDef, FileRuleDef};
use super::settings::Action;

/// What an exec event offers to `rule.exec`.
#[derive(Debug, Clone, Copy)]
pub struct ExecContext<'a> {
    /// The new image's path.
    pub path: &'a str,
    /// Its SHA-256 in hex, when already known; `sha256` conditions never match without it.
    pub sha256: Option<&'a str>,
    pub parent_exe: Option<&'a str>,
    /// Whether the new image's stdin or stdout is a socket.
    pub stdio_socket: bool,
    /// Whether the parent's stdin or stdout was an internet socket at the exec.
    pub parent_stdio_socket: bool,
    /// Whether the parent accepted an internet connection (or, a worker it forked without
    /// exec'ing, its own parent did): the program was started by a network server.
    pub parent_accepted: bool,
    /// Seconds since the image's inode last changed (its ctime: written, chmod'ed, moved in),
    /// when the exec showed it and the policy has a `changed_within` as long.
    pub image_changed_secs_ago: Option<u64>,
    /// The executable of the process that made or accepted an internet connection and wrote
    /// the image (or whose child did), when one did.
    pub downloaded_by: Option<&'a str>,
    /// The exec's argv joined by single spaces (as the kernel copied it: at most
    /// `agent_common::ARGS_LEN` bytes); `cmdline` conditions never match without it.
    pub cmdline: Option<&'a str>,
}

/// What an outbound `connect()` offers to `rule.connect`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectContext<'a> {
    pub exe: &'a str,
    pub addr: IpAddr,
    pub port: u16,
}

/// The security events `rule.event` can name, as written in policy files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEvent {
    /// init_module or finit_module, whatever its result.
    ModuleLoad,
    /// PTRACE_ATTACH or PTRACE_SEIZE of another process, whatever its result.
    PtraceAttach,
    /// bpf(BPF_PROG_LOAD), whatever its result.
    BpfProgLoad,
    /// A BPF program of a type that hooks the kernel's own code or its packets (kprobe,
    /// tracepoint, perf event, fentry/fexit, LSM, freplace, XDP, TC): what eBPF rootkits load
    /// to read any process's memory, hide files and sockets or take packets first. Also a
    /// `bpf_prog_load`.
    BpfHookLoad,
    /// A process that held root in none of its user ids now runs as root.
    GainedRoot,
    /// memfd_create.
    MemfdCreate,
    /// A process that holds root in none of its ids asked the setuid or setgid family for
    /// root and was refused.
    RootDenied,
    /// Connects to many ports of one host, or to one port of many hosts, that mostly find
    /// nothing (`response::port_scan`).
    PortScan,
    /// An exec whose argv[0] or image name passes for a kernel thread (`[kworker/0:2]`,
    /// `kswapd0`): kernel threads never exec (`response::masquerade`).
    FakeKernelThread,
    /// A chmod that gave a file the set-user-ID bit.
    SetuidBit,
    /// A raw IP or packet socket created (SYN scanners, sniffers).
    RawSocket,
    /// Many files replaced by their names with an extension added (`response::mass_replace`).
    MassReplace,
    /// Many files that were there rewritten in place, most of those read back dense and in no
    /// known format: ciphertext (`response::encryption`).
    MassEncryption,
    /// A shell or interpreter reading its program from a pipe while a process started beside
    /// it makes or accepts an internet connection: `curl URL | sh` (`response::piped`).
    PipedDownload,
    /// A shell or interpreter reading its program from a pipe while a decoder started beside
    /// it writes into a pipe: `echo <base64> | base64 -d | sh` (`response::piped`).
    PipedDecode,
    /// A shell or interpreter reading its program from a pipe or socket pair its parent set
    /// up, while that parent holds an internet connection: a reverse shell relayed through
    /// its parent (`response::piped`).
    RelayShell,
    /// A write into another process's memory without ptrace, whatever its result:
    /// process_vm_writev, or `/proc/PID/mem` opened for writing.
    ProcessMemoryWrite,
    /// A running program whose file was deleted with nothing put in its place
    /// (`response::deleted_image`).
    DeletedImage,
    /// File capabilities that amount to root set on a program (`setcap cap_setuid+ep`);
    /// the ones services are given (`cap_net_raw`, `cap_net_bind_service`, ...) are not this.
    FileCapability,
    /// A mount onto a process's /proc directory or a file in it: hides the process from ps
    /// and top, or disguises its command line.
    ProcHidden,
    /// A setting that turns the kernel's defences off or names what it runs as root
    /// (`core_pattern`, `modprobe`, ASLR, ptrace scope, ...) opened for writing
    /// (`agent_common::kernel_settings`).
    KernelSetting,
    /// A read of another process's memory without ptrace, whatever its result:
    /// process_vm_readv, or `/proc/PID/mem` opened for reading only. How credential dumpers
    /// take passwords and keys out of a running login, browser or agent.
    ProcessMemoryRead,
    /// Another process's `/proc/PID/environ` opened: the secrets (tokens, database passwords,
    /// cloud keys) services are given in their environment.
    EnvironRead,
    /// A library another process wrote lately, mapped as code by a process that runs with
    /// `LD_PRELOAD` set: code injected through the dynamic loader.
    PreloadLibrary,
    /// A signal another process sent to vigil itself: a stop (`kill -STOP` freezes the sensor
    /// without a trace), a termination or a kill. The sender is the actor.
    AgentSignalled,
    /// A signal that stops or ends one of the host's security services (auditd, the syslog
    /// daemons, journald, other agents), sent by another process: `kill -9 $(pidof auditd)`
    /// names no service on its command line. The sender is the actor.
    SecurityServiceSignalled,
}

impl SecurityEvent {
    pub const ALL: [SecurityEvent; 26] = [
        SecurityEvent::ModuleLoad,
        SecurityEvent::PtraceAttach,
        SecurityEvent::BpfProgLoad,
        SecurityEvent::GainedRoot,
        SecurityEvent::MemfdCreate,
        SecurityEvent::RootDenied,
        SecurityEvent::PortScan,
        SecurityEvent::FakeKernelThread,
        SecurityEvent::SetuidBit,
        SecurityEvent::RawSocket,
        SecurityEvent::MassReplace,
        SecurityEvent::MassEncryption,
        SecurityEvent::PipedDownload,
        SecurityEvent::PipedDecode,
        SecurityEvent::RelayShell,
        SecurityEvent::ProcessMemoryWrite,
        SecurityEvent::DeletedImage,
        SecurityEvent::FileCapability,
        SecurityEvent::ProcHidden,
        SecurityEvent::KernelSetting,
        SecurityEvent::ProcessMemoryRead,
        SecurityEvent::EnvironRead,
        SecurityEvent::PreloadLibrary,
        SecurityEvent::AgentSignalled,
        SecurityEvent::SecurityServiceSignalled,
        SecurityEvent::BpfHookLoad,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SecurityEvent::ModuleLoad => "module_load",
            SecurityEvent::PtraceAttach => "ptrace_attach",
            SecurityEvent::BpfProgLoad => "bpf_prog_load",
            SecurityEvent::GainedRoot => "gained_root",
            SecurityEvent::MemfdCreate => "memfd_create",
            SecurityEvent::RootDenied => "root_denied",
            SecurityEvent::PortScan => "port_scan",
            SecurityEvent::FakeKernelThread => "fake_kernel_thread",
            SecurityEvent::SetuidBit => "setuid_bit",
            SecurityEvent::RawSocket => "raw_socket",
            SecurityEvent::MassReplace => "mass_replace",
            SecurityEvent::MassEncryption => "mass_encryption",
            SecurityEvent::PipedDownload => "piped_download",
            SecurityEvent::PipedDecode => "piped_decode",
            SecurityEvent::RelayShell => "relay_shell",
            SecurityEvent::ProcessMemoryWrite => "process_memory_write",
            SecurityEvent::DeletedImage => "deleted_image",
            SecurityEvent::FileCapability => "file_capability",
            SecurityEvent::ProcHidden => "proc_hidden",
            SecurityEvent::KernelSetting => "kernel_setting",
            SecurityEvent::ProcessMemoryRead => "process_memory_read",
            SecurityEvent::EnvironRead => "environ_read",
            SecurityEvent::PreloadLibrary => "preload_library",
            SecurityEvent::AgentSignalled => "agent_signalled",
            SecurityEvent::SecurityServiceSignalled => "security_service_signalled",
            SecurityEvent::BpfHookLoad => "bpf_hook_load",
        }
    }

    fn parse(s: &At<String>) -> Result<Self, PolicyError> {
        Self::ALL.into_iter().find(|e| e.name() == s.value).ok_or_else(|| {
            PolicyError::invalid(
                s.at.clone(),
                format!(
                    "unknown event `{}`: expected one of {}",
                    s.value,
                    Self::ALL.map(Self::name).join(", ")
                ),
            )
        })
    }
}

/// What a security event offers to `rule.event`.
#[derive(Debug, Clone, Copy)]
pub struct EventContext<'a> {
    pub event: SecurityEvent,
    /// The executable of the process that made the call.
    pub exe: &'a str,
    /// Its parent's executable; empty when the table does not know it.
    pub parent: &'a str,
}

/// What an open asked to do to a file, as the kernel's `FILE_ACCESS_*` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileAccess(u32);

impl FileAccess {
    pub const READ: FileAccess = FileAccess(agent_common::FILE_ACCESS_READ);
    pub const WRITE: FileAccess = FileAccess(agent_common::FILE_ACCESS_WRITE);
    pub const TRUNCATE: FileAccess = FileAccess(agent_common::FILE_ACCESS_TRUNCATE);
    pub const REWRITE: FileAccess = FileAccess(agent_common::FILE_ACCESS_REWRITE);
    pub const DELETE: FileAccess = FileAccess(agent_common::FILE_ACCESS_DELETE);
    /// Every access that changes what is at the path.
    pub const CHANGES: FileAccess =
        FileAccess(Self::WRITE.0 | Self::TRUNCATE.0 | Self::REWRITE.0 | Self::DELETE.0);
    const NAMED: [(&'static str, FileAccess); 5] = [
        ("read", Self::READ),
        ("write", Self::WRITE),
        ("truncate", Self::TRUNCATE),
        ("rewrite", Self::REWRITE),
        ("delete", Self::DELETE),
    ];

    pub const fn from_bits(bits: u32) -> Self {
        FileAccess(bits & 0b1_1111)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn union(self, other: FileAccess) -> Self {
        FileAccess(self.0 | other.0)
    }

    pub const fn intersects(self, other: FileAccess) -> bool {
        self.0 & other.0 != 0
    }

    pub fn names(self) -> Vec<&'static str> {
        Self::NAMED
            .iter()
            .filter(|(_, a)| self.intersects(*a))
            .map(|(n, _)| *n)
            .collect()
    }

    fn parse(s: &At<String>) -> Result<Self, PolicyError> {
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == s.value)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                PolicyError::invalid(
                    s.at.clone(),
                    format!(
                        "unknown access `{}`: expected one of read, write, truncate, rewrite, delete",
                        s.value
                    ),
                )
            })
    }
}

/// What an open of a watched file offers to `rule.file`.
#[derive(Debug, Clone, Copy)]
pub struct FileContext<'a> {
    /// The file's path, as vigil rebuilt it from the watched directory down.
    pub path: &'a str,
    pub access: FileAccess,
    /// The executable of the process that opened it.
    pub exe: &'a str,
}

/// A rule that matched: cheap to copy, borrowing the name from the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef<'a> {
    pub name: &'a str,
    pub action: Action,
    /// The rule's index, as in `kernel_*_denies` and `Policy::rule_name`.
    pub index: u32,
}

impl RuleRef<'_> {
    /// Name and action, owned: what the response stage keeps once the policy may change.
    pub fn owned(&self) -> (String, Action) {
        (self.name.to_owned(), self.action)
    }
}

#[derive(Debug, Clone)]
pub(super) struct ExecRule {
    pub name: String,
    pub action: Action,
    pub path: Option<GlobList>,
    /// Lowercase hex.
    pub sha256: Option<Vec<String>>,
    pub parent: Option<GlobList>,
    /// Regular expressions, any of which found in the command line matches.
    pub cmdline: Option<CmdlineList>,
    /// Regular expressions, any of which found in the command line keeps the rule from
    /// matching: what a service's own use of a shell looks like.
    pub except_cmdline: Option<CmdlineList>,
    pub stdio_socket: bool,
    pub parent_stdio_socket: bool,
    pub parent_accepted: bool,
    /// Seconds.
    pub changed_within: Option<u64>,
    pub downloaded: bool,
    /// Downloaders (their executables) whose programs `downloaded` lets pass.
    pub except_downloader: Option<GlobList>,
}

/// The longest `changed_within` accepted: a day. Past that, "recently" means nothing.
pub const MAX_CHANGED_WITHIN: u64 = 86_400;

impl ExecRule {
    pub fn compile(def: ExecRuleDef) -> Result<Self, PolicyError> {
        check_name(&def.name)?;
        if def.action.value == Action::Deny {
            return Err(PolicyError::invalid(
                def.action.at,
                "`deny` is only valid for rule.connect; expected one of alert, kill, quarantine",
            ));
        }
        if def.path.is_none()
            && def.sha256.is_none()
            && def.parent.is_none()
            && def.cmdline.is_none()
            && !def.stdio_socket
            && !def.parent_stdio_socket
            && !def.parent_accepted
            && def.changed_within.is_none()
            && !def.downloaded
        {
            return Err(PolicyError::invalid(
                def.name.at,
                format!(
                    "rule.exec `{}` has no conditions: expected at least one of path, sha256, parent, cmdline, stdio_socket = true, parent_stdio_socket = true, parent_accepted = true, changed_within, downloaded = true",
                    def.name.value
                ),
            ));
        }
        if !def.downloaded
            && let Some(list) = &def.except_downloader
        {
            return Err(PolicyError::invalid(
                list.at.clone(),
                format!(
                    "`except_downloader` in rule.exec `{}` needs `downloaded = true`: it names downloaders whose programs that condition lets pass",
                    def.name.value
                ),
            ));
        }
        if let Some(w) = &def.changed_within
            && !(1..=MAX_CHANGED_WITHIN).contains(&w.value)
        {
            return Err(PolicyError::invalid(
                w.at.clone(),
                format!(
                    "invalid value for `rule.exec.changed_within`: {}; expected seconds, 1..={MAX_CHANGED_WITHIN}",
                    w.value
                ),
            ));
        }
        Ok(Self {
            path: globs(def.path, "path")?,
            sha256: non_empty(def.sha256, "sha256")?
                .map(|l| l.iter().map(sha256_hex).collect())
                .transpose()?,
            parent: globs(def.parent, "parent")?,
            cmdline: non_empty(def.cmdline, "cmdline")?
                .map(|l| CmdlineList::compile(&l, "cmdline"))
                .transpose()?,
            except_cmdline: non_empty(def.except_cmdline, "except_cmdline")?
                .map(|l| CmdlineList::compile(&l, "except_cmdline"))
                .transpose()?,
            name: def.name.value,
            action: def.action.value,
            stdio_socket: def.stdio_socket,
            parent_stdio_socket: def.parent_stdio_socket,
            parent_accepted: def.parent_accepted,
            changed_within: def.changed_within.map(|w| w.value),
            downloaded: def.downloaded,
            except_downloader: globs(def.except_downloader, "except_downloader")?,
        })
    }

    pub fn matches(&self, ctx: &ExecContext) -> bool {
        self.matches_but_cmdline(ctx) && self.cmdline_matches(ctx.cmdline)
    }

    /// Whether the command line (`None`: not known) meets `cmdline` and `except_cmdline`.
    pub fn cmdline_matches(&self, cmdline: Option<&str>) -> bool {
        self.cmdline.as_ref().is_none_or(|l| cmdline.is_some_and(|c| l.is_match(c)))
            && self.except_cmdline.as_ref().is_none_or(|l| !cmdline.is_some_and(|c| l.is_match(c)))
    }

    /// Whether a command-line condition is left to check per exec.
    pub fn has_cmdline_condition(&self) -> bool {
        self.cmdline.is_some() || self.except_cmdline.is_some()
    }

    /// Whether every condition but `cmdline` holds: the part of the answer that is the same
    /// for every exec of one program in one context.
    pub fn matches_but_cmdline(&self, ctx: &ExecContext) -> bool {
        self.path.as_ref().is_none_or(|g| g.is_match(ctx.path))
            && self.sha256.as_ref().is_none_or(|list| {
                ctx.sha256
                    .is_some_and(|h| list.iter().any(|l| l.eq_ignore_ascii_case(h)))
            })
            && self
                .parent
                .as_ref()
                .is_none_or(|g| ctx.parent_exe.is_some_and(|p| g.is_match(p)))
            && (!self.stdio_socket || ctx.stdio_socket)
            && (!self.parent_stdio_socket || ctx.parent_stdio_socket)
            && (!self.parent_accepted || ctx.parent_accepted)
            && self
                .changed_within
                .is_none_or(|w| ctx.image_changed_secs_ago.is_some_and(|age| age <= w))
            && (!self.downloaded
                || ctx.downloaded_by.is_some_and(|by| {
                    !self.except_downloader.as_ref().is_some_and(|g| g.is_match(by))
                }))
    }

    /// Only the exec'd path is tested: the kernel can refuse the exec itself.
    pub fn is_path_only(&self) -> bool {
        self.path.is_some()
            && self.sha256.is_none()
            && self.parent.is_none()
            && !self.has_cmdline_condition()
            && !self.stdio_socket
            && !self.parent_stdio_socket
            && !self.parent_accepted
            && self.changed_within.is_none()
            && !self.downloaded
    }
}

#[derive(Debug, Clone)]
pub(super) struct ConnectRule {
    pub name: String,
    pub action: Action,
    pub addr: Option<Vec<IpNet>>,
    pub ports: Option<Vec<u16>>,
    pub exe: Option<GlobList>,
}

impl ConnectRule {
    pub fn compile(def: ConnectRuleDef) -> Result<Self, PolicyError> {
        check_name(&def.name)?;
        if def.addr.is_none() && def.ports.is_none() && def.exe.is_none() {
            return Err(PolicyError::invalid(
                def.name.at,
                format!(
                    "rule.connect `{}` has no conditions: expected at least one of addr, ports, exe \
                     (to match every destination say so: addr = [\"0.0.0.0/0\", \"::/0\"])",
                    def.name.value
                ),
            ));
        }
        if def.action.value == Action::Deny
            && let Some(exe) = &def.exe
        {
            return Err(PolicyError::invalid(
                exe.at.clone(),
                "a `deny` rule cannot have `exe`: the kernel hook that refuses connections cannot \
                 match the executable; expected action alert, kill or quarantine, or no `exe`",
            ));
        }
        let ports = non_empty(def.ports, "ports")?
            .map(|l| {
                l.iter()
                    .map(|p| match p.value {
                        0 => Err(PolicyError::invalid(
                            p.at.clone(),
                            "invalid port 0: expected 1..=65535",
                        )),
                        port => Ok(port),
                    })
                    .collect()
            })
            .transpose()?;
        Ok(Self {
            addr: non_empty(def.addr, "addr")?
                .map(|l| l.iter().map(network).collect())
                .transpose()?,
            ports,
            exe: globs(def.exe, "exe")?,
            name: def.name.value,
            action: def.action.value,
        })
    }

    pub fn matches(&self, ctx: &ConnectContext) -> bool {
        // A dual-stack socket connecting to ::ffff:a.b.c.d reaches an IPv4 host: IPv4 rules
        // must see it as a.b.c.d.
        let canonical = ctx.addr.to_canonical();
        self.ports.as_ref().is_none_or(|p| p.contains(&ctx.port))
            && self.addr.as_ref().is_none_or(|nets| {
                nets.iter()
                    .any(|n| n.contains(&ctx.addr) || n.contains(&canonical))
            })
            && self.exe.as_ref().is_none_or(|g| g.is_match(ctx.exe))
    }
}

#[derive(Debug, Clone)]
pub(super) struct EventRule {
    pub name: String,
    pub action: Action,
    pub events: Vec<SecurityEvent>,
    pub exe: Option<GlobList>,
    /// Programs whose job the event is (dpkg setting a package's setuid bits).
    pub except_exe: Option<GlobList>,
    /// Parents whose job it is (a CI runner that pipes its jobs into a shell).
    pub except_parent: Option<GlobList>,
}

impl EventRule {
    pub fn compile(def: EventRuleDef) -> Result<Self, PolicyError> {
        check_name(&def.name)?;
        if def.action.value == Action::Deny {
            return Err(PolicyError::invalid(
                def.action.at,
                "`deny` is only valid for rule.connect; expected one of alert, kill, quarantine",
            ));
        }
        let Some(events) = non_empty(def.event, "event")? else {
            return Err(PolicyError::invalid(
                def.name.at,
                format!(
                    "rule.event `{}` has no `event`: expected a list of {}",
                    def.name.value,
                    SecurityEvent::ALL.map(SecurityEvent::name).join(", ")
                ),
            ));
        };
        Ok(Self {
            events: events.iter().map(SecurityEvent::parse).collect::<Result<_, _>>()?,
            exe: globs(def.exe, "exe")?,
            except_exe: globs(def.except_exe, "except_exe")?,
            except_parent: globs(def.except_parent, "except_parent")?,
            name: def.name.value,
            action: def.action.value,
        })
    }

    pub fn matches(&self, ctx: &EventContext) -> bool {
        self.events.contains(&ctx.event)
            && self.exe.as_ref().is_none_or(|g| g.is_match(ctx.exe))
            && !self.except_exe.as_ref().is_some_and(|g| g.is_match(ctx.exe))
            && !self.except_parent.as_ref().is_some_and(|g| g.is_match(ctx.parent))
    }
}

#[derive(Debug, Clone)]
pub(super) struct FileRule {
    pub name: String,
    pub action: Action,
    pub path: GlobList,
    /// Any of these; read and write when the rule does not say.
    pub access: FileAccess,
    pub exe: Option<GlobList>,
    /// Programs whose job is this file (sshd reads /etc/shadow, logrotate truncates logs).
    pub except_exe: Option<GlobList>,
}

impl FileRule {
    pub fn compile(def: FileRuleDef) -> Result<Self, PolicyError> {
        check_name(&def.name)?;
        if def.action.value == Action::Deny {
            return Err(PolicyError::invalid(
                def.action.at,
                "`deny` is only valid for rule.connect (an open is seen once it has happened); \
                 expected one of alert, kill, quarantine",
            ));
        }
        let Some(paths) = non_empty(def.path, "path")? else {
            return Err(PolicyError::invalid(
                def.name.at,
                format!(
                    "rule.file `{}` has no `path`: expected a list of absolute paths or globs",
                    def.name.value
                ),
            ));
        };
        // A watch starts from a directory the pattern names: `**/x` would mean walking every
        // open on the host up to the root.
        if let Some(p) = paths.iter().find(|p| !p.value.starts_with('/')) {
            return Err(PolicyError::invalid(
                p.at.clone(),
                format!(
                    "invalid path `{}` in rule.file: expected an absolute path or a glob starting with `/`",
                    p.value
                ),
            ));
        }
        let access = match non_empty(def.access, "access")? {
            None => FileAccess::READ.union(FileAccess::WRITE),
            Some(l) => l
                .iter()
                .map(FileAccess::parse)
                .try_fold(FileAccess::default(), |acc, a| a.map(|a| acc.union(a)))?,
        };
        Ok(Self {
            path: GlobList::compile(&paths, "path")?,
            access,
            exe: globs(def.exe, "exe")?,
            except_exe: globs(def.except_exe, "except_exe")?,
            name: def.name.value,
            action: def.action.value,
        })
    }

    pub fn matches(&self, ctx: &FileContext) -> bool {
        self.access.intersects(ctx.access)
            && self.path.is_match(ctx.path)
            && self.exe.as_ref().is_none_or(|g| g.is_match(ctx.exe))
            && !self.except_exe.as_ref().is_some_and(|g| g.is_match(ctx.exe))
    }
}

fn check_name(name: &At<String>) -> Result<(), PolicyError> {
    if name.value.trim().is_empty() {
        return Err(PolicyError::invalid(
            name.at.clone(),
            "empty rule name: expected a name that alerts can report",
        ));
    }
    Ok(())
}

/// `key = []` is refused rather than read as "any" or "none": either reading surprises someone.
fn non_empty<T>(list: AtList<T>, key: &str) -> Result<Option<Vec<At<T>>>, PolicyError> {
    match list {
        Some(l) if l.value.is_empty() => Err(PolicyError::invalid(
            l.at,
            format!("`{key}` is empty: expected at least one entry, or leave `{key}` out"),
        )),
        l => Ok(l.map(|l| l.value)),
    }
}

fn globs(list: AtList<String>, key: &str) -> Result<Option<GlobList>, PolicyError> {
    non_empty(list, key)?
        .map(|l| GlobList::compile(&l, key))
        .transpose()
}

/// A digest as 64 hex digits, either case, stored lowercase.
pub(super) fn sha256_hex(h: &At<String>) -> Result<String, PolicyError> {
    let v = &h.value;
    if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(PolicyError::invalid(
            h.at.clone(),
            format!(
                "invalid sha256 `{v}`: expected 64 hex digits, found {} characters",
                v.chars().count()
            ),
        ))
    }
}

/// A CIDR, or a plain address meaning just that host.
fn network(a: &At<String>) -> Result<IpNet, PolicyError> {
    let v = a.value.trim();
    v.parse::<IpNet>()
        .or_else(|_| v.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            PolicyError::invalid(
                a.at.clone(),
                format!(
                    "invalid address `{v}` in `addr`: expected an IP address or a CIDR such as \
                     10.0.0.0/8 or 2001:db8::/32"
                ),
            )
        })
}
