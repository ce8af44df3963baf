//! User-space decoding of ring-buffer records. A record that is shorter than its kind requires,
//! claims a size other than what was delivered, or names an unknown kind is an error the caller
//! counts; nothing here panics on hostile or truncated input.

use core::mem::size_of;

use crate::*;

// SAFETY: all of these are `#[repr(C)]`, `Copy`, made only of integers and integer arrays, with
// explicit padding fields, so every bit pattern is a valid value.
unsafe impl aya::Pod for KernelOffsets {}
unsafe impl aya::Pod for AgentConfig {}
unsafe impl aya::Pod for SyscallBatch {}
unsafe impl aya::Pod for FileKey {}
unsafe impl aya::Pod for FileWatch {}
unsafe impl aya::Pod for Creds {}
unsafe impl aya::Pod for CreatedBy {}

/// One decoded record.
#[derive(Clone, Debug)]
pub enum Event {
    /// Boxed: it is ~900 bytes and would bloat every other variant.
    Exec(std::boxed::Box<ExecEvent>),
    Fork(ForkEvent),
    Exit(ExitEvent),
    SyscallBatch(SyscallBatch),
    /// connect / accept / bind / listen; the header's kind says which.
    Net(NetEvent),
    CredChange(CredChangeEvent),
    Ptrace(PtraceEvent),
    Memfd(MemfdEvent),
    ModuleLoad(ModuleLoadEvent),
    BpfProgLoad(BpfProgLoadEvent),
    ProbeError(ProbeErrorEvent),
    /// Boxed: ~600 bytes.
    File(std::boxed::Box<FileEvent>),
    /// Boxed: ~300 bytes.
    PathChange(std::boxed::Box<PathChangeEvent>),
    /// Boxed: ~300 bytes.
    SetuidChmod(std::boxed::Box<SetuidChmodEvent>),
    RawSocket(RawSocketEvent),
    /// Boxed: ~300 bytes.
    FileChurn(std::boxed::Box<FileChurnEvent>),
    /// File capabilities set, a mount onto a process's /proc directory, or a kernel setting
    /// opened for writing; the header's kind says which. Boxed: ~300 bytes.
    PathCall(std::boxed::Box<PathCallEvent>),
    /// Boxed: ~400 bytes.
    Preload(std::boxed::Box<PreloadEvent>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need}-byte event header")]
    TruncatedHeader { len: usize, need: usize },
    #[error("record kind {kind} is not one this agent knows")]
    UnknownKind { kind: u16 },
    #[error("{kind:?} record has {len} bytes, header says {header_size}, the type needs {need}")]
    BadSize {
        kind: EventKind,
        len: usize,
        header_size: u32,
        need: usize,
    },
    #[error("record written for ABI version {got}, this agent speaks {ABI_VERSION}")]
    AbiVersion { got: u16 },
}

impl Event {
    pub fn header(&self) -> &EventHeader {
        match self {
            Event::Exec(e) => &e.header,
            Event::Fork(e) => &e.header,
            Event::Exit(e) => &e.header,
            Event::SyscallBatch(e) => &e.header,
            Event::Net(e) => &e.header,
            Event::CredChange(e) => &e.header,
            Event::Ptrace(e) => &e.header,
            Event::Memfd(e) => &e.header,
            Event::ModuleLoad(e) => &e.header,
            Event::BpfProgLoad(e) => &e.header,
            Event::ProbeError(e) => &e.header,
            Event::File(e) => &e.header,
            Event::PathChange(e) => &e.header,
            Event::SetuidChmod(e) => &e.header,
            Event::RawSocket(e) => &e.header,
            Event::FileChurn(e) => &e.header,
            Event::PathCall(e) => &e.header,
            Event::Preload(e) => &e.header,
        }
    }

    /// The kind; always valid because decoding checked it.
    pub fn kind(&self) -> EventKind {
        EventKind::from_u16(self.header().kind).unwrap_or(EventKind::ProbeError)
    }
}

/// Reads the header alone, e.g. to attribute a record that fails full decoding to its kind.
pub fn decode_header(bytes: &[u8]) -> Result<EventHeader, DecodeError> {
    if bytes.len() < EventHeader::SIZE {
        return Err(DecodeError::TruncatedHeader {
            len: bytes.len(),
            need: EventHeader::SIZE,
        });
    }
    // SAFETY: length checked above; EventHeader is plain integers, read_unaligned tolerates any
    // alignment of the ring-buffer slice.
    Ok(unsafe { bytes.as_ptr().cast::<EventHeader>().read_unaligned() })
}

fn read<T: Copy>(kind: EventKind, header: &EventHeader, bytes: &[u8]) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need || header.size as usize != bytes.len() {
        return Err(DecodeError::BadSize {
            kind,
            len: bytes.len(),
            header_size: header.size,
            need,
        });
    }
    // SAFETY: at least size_of::<T>() bytes are present; every T here is a Pod record for which
    // any bit pattern is valid.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header = decode_header(bytes)?;
    let kind =
        EventKind::from_u16(header.kind).ok_or(DecodeError::UnknownKind { kind: header.kind })?;
    if header.abi_version != ABI_VERSION {
        return Err(DecodeError::AbiVersion {
            got: header.abi_version,
        });
    }
    let h = &header;
    Ok(match kind {
        EventKind::Exec => Event::Exec(std::boxed::Box::new(read(kind, h, bytes)?)),
        EventKind::Fork => Event::Fork(read(kind, h, bytes)?),
        EventKind::Exit => Event::Exit(read(kind, h, bytes)?),
        EventKind::SyscallBatch => {
            let b: SyscallBatch = read(kind, h, bytes)?;
            if b.count as usize > BATCH_LEN {
                return Err(DecodeError::BadSize {
                    kind,
                    len: bytes.len(),
                    header_size: h.size,
                    need: size_of::<SyscallBatch>(),
                });
            }
            Event::SyscallBatch(b)
        }
        EventKind::Connect | EventKind::Accept | EventKind::Bind | EventKind::Listen => {
            Event::Net(read(kind, h, bytes)?)
        }
        EventKind::CredChange => Event::CredChange(read(kind, h, bytes)?),
        EventKind::Ptrace
        | EventKind::MemoryWrite
        | EventKind::MemoryRead
        | EventKind::GuardedSignal => {
            Event::Ptrace(read(kind, h, bytes)?)
        }
        EventKind::MemfdCreate => Event::Memfd(read(kind, h, bytes)?),
        EventKind::ModuleLoad => Event::ModuleLoad(read(kind, h, bytes)?),
        EventKind::BpfProgLoad => Event::BpfProgLoad(read(kind, h, bytes)?),
        EventKind::ProbeError => Event::ProbeError(read(kind, h, bytes)?),
        EventKind::FileOpen => Event::File(std::boxed::Box::new(read(kind, h, bytes)?)),
        EventKind::PathChange => Event::PathChange(std::boxed::Box::new(read(kind, h, bytes)?)),
        EventKind::SetuidChmod => Event::SetuidChmod(std::boxed::Box::new(read(kind, h, bytes)?)),
        EventKind::RawSocket => Event::RawSocket(read(kind, h, bytes)?),
        EventKind::FileChurn => Event::FileChurn(std::boxed::Box::new(read(kind, h, bytes)?)),
        EventKind::FileCapability
        | EventKind::ProcMount
        | EventKind::KernelSetting
        | EventKind::ThreadRenamed => {
            Event::PathCall(std::boxed::Box::new(read(kind, h, bytes)?))
        }
        EventKind::PreloadLibrary => Event::Preload(std::boxed::Box::new(read(kind, h, bytes)?)),
    })
}

impl SyscallBatch {
    /// The ids actually recorded.
    pub fn ids(&self) -> &[u16] {
        &self.ids[..(self.count as usize).min(BATCH_LEN)]
    }
}

/// Bytes up to the first NUL (or `len`, whichever comes first), lossily as UTF-8.
pub fn c_str(bytes: &[u8], len: usize) -> std::string::String {
    let bytes = &bytes[..len.min(bytes.len())];
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    std::string::String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl ExecEvent {
    pub fn filename(&self) -> std::string::String {
        c_str(&self.filename, self.filename_len as usize)
    }
    pub fn comm(&self) -> std::string::String {
        c_str(&self.comm, COMM_LEN)
    }
    /// stdin or stdout of the new image is an internet (TCP/UDP, v4 or v6) socket. Unix
    /// sockets do not count: systemd hands every service's stdout to journald through one.
    pub fn stdio_socket(&self) -> bool {
        self.stdio_inet & 0b11 != 0
    }
    /// Whether stdout is the parent's own stdout ([`crate::EXEC_FLAG_STDOUT_INHERITED`]).
    pub fn stdout_inherited(&self) -> bool {
        self.flags & crate::EXEC_FLAG_STDOUT_INHERITED != 0
    }
    /// The same for the parent's stdin or stdout at the exec: a relay (a python `pty.spawn`
    /// reverse shell) holds the socket while the shell it starts gets a pty.
    pub fn parent_stdio_socket(&self) -> bool {
        (self.stdio_inet >> crate::STDIO_INET_PARENT_SHIFT) & 0b11 != 0
    }
    /// `/memfd:NAME (deleted)`, as `/proc/PID/exe` names a memfd image, when the kernel saw
    /// the new image was one ([`crate::EXEC_FLAG_MEMFD`]).
    pub fn memfd_image(&self) -> Option<std::string::String> {
        (self.flags & crate::EXEC_FLAG_MEMFD != 0)
            .then(|| std::format!("/{} (deleted)", c_str(&self.memfd_name, MEMFD_NAME_LEN)))
    }
    /// 0-based index of the kernel deny rule that killed this exec.
    pub fn denied_by(&self) -> Option<u32> {
        (self.flags & crate::EXEC_FLAG_DENIED != 0 && self.deny_rule > 0)
            .then(|| self.deny_rule - 1)
    }
    /// argv as separate strings.
    pub fn argv(&self) -> std::vec::Vec<std::string::String> {
        let used = &self.args[..(self.args_len as usize).min(ARGS_LEN)];
        used.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| std::string::String::from_utf8_lossy(s).into_owned())
            .collect()
    }
}

/// The first `depth` of `names` (innermost first, as the kernel walks up), outermost first.
fn outermost_first(
    names: &[[u8; FILE_NAME_LEN]; FILE_WATCH_MAX_DEPTH],
    depth: u32,
) -> std::vec::Vec<std::string::String> {
    let depth = (depth as usize).min(FILE_WATCH_MAX_DEPTH);
    names[..depth]
        .iter()
        .rev()
        .map(|n| c_str(n, FILE_NAME_LEN))
        .collect()
}

impl FileEvent {
    /// The path components below the watch, outermost first (`depth` of them; a component the
    /// kernel could not read is empty).
    pub fn components(&self) -> std::vec::Vec<std::string::String> {
        outermost_first(&self.names, self.depth)
    }
}

impl PathChangeEvent {
    /// The path as the call passed it.
    pub fn path(&self) -> std::string::String {
        c_str(&self.path, self.path_len as usize)
    }

    /// For a relative path, the base directory's components below the watch, outermost first.
    pub fn components(&self) -> std::vec::Vec<std::string::String> {
        outermost_first(&self.names, self.depth)
    }
}

impl SetuidChmodEvent {
    /// The path as the call passed it (empty for fchmod).
    pub fn path(&self) -> std::string::String {
        c_str(&self.path, self.path_len as usize)
    }
}

impl PathCallEvent {
    /// The path as the call passed it (empty for fsetxattr).
    pub fn path(&self) -> std::string::String {
        c_str(&self.path, self.path_len as usize)
    }
}

impl PreloadEvent {
    /// The library's file name.
    pub fn name(&self) -> std::string::String {
        c_str(&self.name, self.name.len())
    }

    /// The variable's value (without the `LD_PRELOAD=` or `LD_AUDIT=`), as much as the record
    /// holds.
    pub fn preload(&self) -> std::string::String {
        let used = self.preload_used();
        let value = used
            .strip_prefix(PRELOAD_VAR)
            .or_else(|| used.strip_prefix(AUDIT_VAR))
            .unwrap_or(used);
        std::string::String::from_utf8_lossy(value).into_owned()
    }

    /// Which variable named the library: `LD_PRELOAD` or `LD_AUDIT`.
    pub fn variable(&self) -> &'static str {
        if self.preload_used().starts_with(AUDIT_VAR) { "LD_AUDIT" } else { "LD_PRELOAD" }
    }

    fn preload_used(&self) -> &[u8] {
        &self.preload[..(self.preload_len as usize).min(self.preload.len())]
    }
}

impl FileChurnEvent {
    /// The path as the call passed it.
    pub fn path(&self) -> std::string::String {
        c_str(&self.path, self.path_len as usize)
    }
}

impl RawSocketEvent {
    /// The address family, as socket(2) names it.
    pub fn family_name(&self) -> &'static str {
        match self.family {
            AF_PACKET => "AF_PACKET",
            AF_INET6 => "AF_INET6",
            _ => "AF_INET",
        }
    }
}

impl SockAddr {
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self.family {
            2 => {
                let a: [u8; 4] = self.addr[..4].try_into().ok()?;
                Some(std::net::IpAddr::from(a))
            }
            10 => Some(std::net::IpAddr::from(self.addr)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn header(kind: EventKind, size: usize) -> EventHeader {
        EventHeader {
            kind: kind as u16,
            abi_version: ABI_VERSION,
            size: size as u32,
            ktime_ns: 7,
            pid: 11,
            tgid: 10,
            start_ns: 99,
        }
    }

    fn bytes_of<T: Copy>(v: &T) -> std::vec::Vec<u8> {
        // SAFETY: T is a Pod record; viewing it as bytes is sound.
        unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    fn exit_record() -> ExitEvent {
        ExitEvent {
            header: header(EventKind::Exit, size_of::<ExitEvent>()),
            exit_code: 3 << 8,
            _pad: 0,
        }
    }

    #[test]
    fn decodes_exit_roundtrip() {
        let bytes = bytes_of(&exit_record());
        let Event::Exit(e) = decode(&bytes).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(e.exit_code, 3 << 8);
        assert_eq!(e.header.tgid, 10);
    }

    #[test]
    fn decodes_batch_and_exposes_only_used_ids() {
        let mut b = SyscallBatch {
            header: header(EventKind::SyscallBatch, size_of::<SyscallBatch>()),
            first_ns: 1,
            seq: 0,
            count: 3,
            reason: FlushReason::Exit as u16,
            ids: [0; BATCH_LEN],
        };
        b.ids[..3].copy_from_slice(&[0, 1, 60]);
        let Event::SyscallBatch(d) = decode(&bytes_of(&b)).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(d.ids(), &[0, 1, 60]);
    }

    #[test]
    fn batch_count_beyond_capacity_is_rejected() {
        let b = SyscallBatch {
            header: header(EventKind::SyscallBatch, size_of::<SyscallBatch>()),
            first_ns: 1,
            seq: 0,
            count: BATCH_LEN as u16 + 1,
            reason: 1,
            ids: [0; BATCH_LEN],
        };
        assert!(matches!(
            decode(&bytes_of(&b)),
            Err(DecodeError::BadSize { .. })
        ));
    }

    #[test]
    fn truncated_inputs_are_errors_at_every_length() {
        let bytes = bytes_of(&exit_record());
        for len in 0..bytes.len() {
            let err = decode(&bytes[..len]).unwrap_err();
            if len < EventHeader::SIZE {
                assert_eq!(err, DecodeError::TruncatedHeader { len, need: 32 });
            } else {
                assert!(
                    matches!(err, DecodeError::BadSize { .. }),
                    "len {len}: {err:?}"
                );
            }
        }
    }

    #[test]
    fn header_size_must_match_delivered_length() {
        let mut e = exit_record();
        e.header.size += 8;
        let mut bytes = bytes_of(&e);
        assert!(matches!(decode(&bytes), Err(DecodeError::BadSize { .. })));
        bytes.extend_from_slice(&[0; 8]);
        assert!(
            decode(&bytes).is_ok(),
            "trailing bytes the header accounts for are fine"
        );
    }

    #[test]
    fn file_opens_decode_with_their_path_below_the_watch_and_truncations_are_refused() {
        let mut names = [[0u8; FILE_NAME_LEN]; FILE_WATCH_MAX_DEPTH];
        names[0][..6].copy_from_slice(b"shadow");
        names[1][..3].copy_from_slice(b"etc");
        names[2][..5].copy_from_slice(b"stale");
        let ev = FileEvent {
            header: header(EventKind::FileOpen, size_of::<FileEvent>()),
            flags: 0,
            fd: 3,
            access: FILE_ACCESS_READ,
            depth: 2,
            watch_ino: 2,
            watch_dev: 1,
            dev: 1,
            ino: 40,
            names,
        };
        let bytes = bytes_of(&ev);
        let Event::File(d) = decode(&bytes).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(d.components(), ["etc", "shadow"], "outermost first, `depth` of them");
        for len in [EventHeader::SIZE, bytes.len() - 1] {
            assert!(matches!(decode(&bytes[..len]), Err(DecodeError::BadSize { .. })), "{len}");
        }
    }

    #[test]
    fn path_changes_decode_with_the_path_as_passed() {
        let mut path = [0u8; PATH_LEN];
        path[..8].copy_from_slice(b"evil.sh\0");
        let mut names = [[0u8; FILE_NAME_LEN]; FILE_WATCH_MAX_DEPTH];
        names[0][..6].copy_from_slice(b"cron.d");
        let ev = PathChangeEvent {
            header: header(EventKind::PathChange, size_of::<PathChangeEvent>()),
            syscall_nr: 316,
            role: PATH_ROLE_RENAMED_TO,
            access: FILE_ACCESS_WRITE | FILE_ACCESS_REWRITE,
            path_len: 7,
            relative: 1,
            depth: 1,
            watch_ino: 2,
            watch_dev: 1,
            _pad: 0,
            names,
            path,
        };
        let bytes = bytes_of(&ev);
        let Event::PathChange(d) = decode(&bytes).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!((d.path().as_str(), d.components()), ("evil.sh", std::vec!["cron.d".to_string()]));
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(DecodeError::BadSize { .. })));
    }

    #[test]
    fn setuid_chmods_decode_with_the_path_as_passed() {
        let mut path = [0u8; PATH_LEN];
        path[..9].copy_from_slice(b"/tmp/.sh\0");
        let ev = SetuidChmodEvent {
            header: header(EventKind::SetuidChmod, size_of::<SetuidChmodEvent>()),
            syscall_nr: 268,
            ret: 0,
            mode: 0o4755,
            fd: -100,
            path_len: 8,
            _pad: 0,
            path,
        };
        let bytes = bytes_of(&ev);
        let Event::SetuidChmod(d) = decode(&bytes).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!((d.path().as_str(), d.mode, d.fd), ("/tmp/.sh", 0o4755, -100));
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(DecodeError::BadSize { .. })));
    }

    #[test]
    fn path_calls_decode_as_any_of_their_kinds_with_the_path_as_passed() {
        let mut path = [0u8; PATH_LEN];
        path[..10].copy_from_slice(b"/proc/4242");
        for kind in [EventKind::FileCapability, EventKind::ProcMount, EventKind::KernelSetting] {
            let ev = PathCallEvent {
                header: header(kind, size_of::<PathCallEvent>()),
                syscall_nr: 165,
                ret: 0,
                fd: -100,
                path_len: 10,
                value: 0x1000,
                aux: 0,
                _pad: 0,
                path,
            };
            let bytes = bytes_of(&ev);
            let d = decode(&bytes).unwrap();
            assert_eq!(d.kind(), kind);
            let Event::PathCall(d) = d else { panic!("wrong variant") };
            assert_eq!((d.path().as_str(), d.value, d.fd), ("/proc/4242", 0x1000, -100));
            assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(DecodeError::BadSize { .. })));
        }
    }

    #[test]
    fn churned_names_decode_with_the_path_as_passed() {
        let mut path = [0u8; PATH_LEN];
        path[..13].copy_from_slice(b"f1.pdf.locked");
        let ev = FileChurnEvent {
            header: header(EventKind::FileChurn, size_of::<FileChurnEvent>()),
            syscall_nr: 257,
            op: CHURN_CREATED,
            path_len: 13,
            _pad: 0,
            path,
        };
        let bytes = bytes_of(&ev);
        let Event::FileChurn(d) = decode(&bytes).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!((d.path().as_str(), d.op), ("f1.pdf.locked", CHURN_CREATED));
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(DecodeError::BadSize { .. })));
    }

    #[test]
    fn only_packet_and_raw_ip_sockets_are_raw() {
        const SOCK_STREAM: u32 = 1;
        const SOCK_DGRAM: u32 = 2;
        const SOCK_CLOEXEC: u32 = 0o2000000;
        assert!(is_raw_socket(AF_PACKET, SOCK_RAW));
        assert!(is_raw_socket(AF_PACKET, SOCK_DGRAM), "cooked packet sockets see every frame too");
        assert!(is_raw_socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC));
        assert!(is_raw_socket(AF_INET6, SOCK_RAW));
        assert!(!is_raw_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC));
        assert!(!is_raw_socket(AF_INET, SOCK_DGRAM), "unprivileged ping's ICMP datagram socket");
        assert!(!is_raw_socket(1, SOCK_RAW), "AF_UNIX has no raw type");
        let ev = RawSocketEvent {
            header: header(EventKind::RawSocket, size_of::<RawSocketEvent>()),
            family: AF_PACKET,
            sock_type: SOCK_RAW,
            protocol: 768,
            ret: 4,
        };
        let Event::RawSocket(d) = decode(&bytes_of(&ev)).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!((d.family_name(), d.ret), ("AF_PACKET", 4));
    }

    #[test]
    fn open_flags_map_to_what_the_open_can_do() {
        let (r, w, t) = (FILE_ACCESS_READ, FILE_ACCESS_WRITE, FILE_ACCESS_TRUNCATE);
        let rw = FILE_ACCESS_REWRITE;
        assert_eq!(file_access(0), r, "O_RDONLY");
        assert_eq!(file_access(0o1), w | rw, "O_WRONLY");
        assert_eq!(file_access(0o2), r | w | rw, "O_RDWR");
        assert_eq!(file_access(0o1101), w | t | rw, "creat: O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(file_access(0o2101), w, "a logger: O_WRONLY|O_CREAT|O_APPEND");
        assert_eq!(file_access(0o4101), w | rw, "truncate(1): O_WRONLY|O_CREAT|O_NONBLOCK");
        assert_eq!(file_access(0o1000), r | w | t | rw, "O_RDONLY|O_TRUNC truncates on Linux");
        assert_eq!(file_access(0o100), r | w, "O_RDONLY|O_CREAT can create, not change");
        assert_eq!(file_access(0o10000000), 0, "O_PATH opens nothing");
        assert_eq!(file_access(0o3), 0, "access mode 3: ioctl only");
    }

    #[test]
    fn unknown_kind_and_abi_are_errors() {
        let mut e = exit_record();
        e.header.kind = 999;
        assert_eq!(
            decode(&bytes_of(&e)).unwrap_err(),
            DecodeError::UnknownKind { kind: 999 }
        );
        let mut e = exit_record();
        e.header.abi_version = ABI_VERSION + 1;
        assert!(matches!(
            decode(&bytes_of(&e)),
            Err(DecodeError::AbiVersion { .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic generator: the point is coverage of odd lengths and kinds.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 1200) as usize;
            let mut buf = std::vec![0u8; len];
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (x.rotate_left(i as u32 % 64) >> (i % 8)) as u8;
            }
            if len >= 4 {
                buf[0] = (x % 16) as u8; // plausible kinds too
                buf[1] = 0;
                buf[2] = ABI_VERSION as u8;
                buf[3] = 0;
            }
            let _ = decode(&buf);
        }
    }

    #[test]
    fn exec_strings_respect_lengths() {
        let mut e: ExecEvent = unsafe { core::mem::zeroed() };
        e.header = header(EventKind::Exec, size_of::<ExecEvent>());
        e.filename[..9].copy_from_slice(b"/bin/true");
        e.filename[9] = b'X'; // beyond filename_len: must be ignored
        e.filename_len = 9;
        e.args[..12].copy_from_slice(b"true\0-a\0bcd\0");
        e.args_len = 12;
        let Event::Exec(d) = decode(&bytes_of(&e)).unwrap() else {
            panic!()
        };
        assert_eq!(d.filename(), "/bin/true");
        assert_eq!(d.argv(), ["true", "-a", "bcd"]);
    }

    #[test]
    fn sockaddr_ip() {
        let mut a = SockAddr {
            family: 2,
            port: 80,
            ..Default::default()
        };
        a.addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(a.ip().unwrap().to_string(), "127.0.0.1");
        let mut a6 = SockAddr {
            family: 10,
            ..Default::default()
        };
        a6.addr[15] = 1;
        assert_eq!(a6.ip().unwrap().to_string(), "::1");
        assert_eq!(SockAddr::default().ip(), None);
    }
}
