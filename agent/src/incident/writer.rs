//! [`JournalWriter`]: sends each incident to journald as one native-protocol datagram, the way
//! `sd_journal_sendv` does, without linking libsystemd.
//!
//! The daemon must never wait on journald: the socket is nonblocking, and a journald that is
//! absent, restarting or backed up costs one failed send, counted in [`JournalWriter::undelivered`]
//! and reported in status, never a stall or a crash.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use tracing::{info, warn};

use super::encode::encode;
use super::{Incident, IncidentError, IncidentKind};

/// journald's native-protocol socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The `tracing` target of the copy of each incident logged through `tracing`. With
/// `--log journald` the logging layer should skip this target, or every incident would appear
/// in the journal twice.
pub const TRACING_TARGET: &str = "vigil::incident";

pub struct JournalWriter {
    path: PathBuf,
    /// `None` only if `socket(2)` failed at open (fd exhaustion); each send then retries.
    socket: Option<UnixDatagram>,
    undelivered: AtomicU64,
    /// Whether the last send failed, so the failure is logged once per outage, not per incident.
    failing: AtomicBool,
    /// Incidents not delivered since the current outage began: reported to journald as one
    /// loss entry when it accepts incidents again, since it could not be told during the outage.
    outage_undelivered: AtomicU64,
}

impl JournalWriter {
    /// A writer for the system journal. Never fails: journald may start later.
    pub fn open() -> Self {
        Self::with_socket(Path::new(JOURNAL_SOCKET))
    }

    pub fn with_socket(path: &Path) -> Self {
        let socket = new_socket()
            .inspect_err(|e| warn!("journal writer: {e}; will retry on each incident"))
            .ok();
        Self {
            path: path.to_path_buf(),
            socket,
            undelivered: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            outage_undelivered: AtomicU64::new(0),
        }
    }

    /// Logs `incident` through `tracing` and sends it to journald as one entry.
    pub fn send(&self, incident: &Incident) -> Result<(), IncidentError> {
        trace_incident(incident);
        let result = self.deliver(incident);
        match &result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    info!(
                        "journal writer: journald at {} accepts incidents again",
                        self.path.display()
                    );
                    self.report_outage();
                }
            }
            Err(e) => self.count_undelivered(e),
        }
        result
    }

    fn count_undelivered(&self, e: &IncidentError) {
        self.undelivered.fetch_add(1, Ordering::Relaxed);
        match e {
            // journald unreachable or backed up: one warning per outage.
            IncidentError::Send { .. } | IncidentError::Socket(_) => {
                self.outage_undelivered.fetch_add(1, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    warn!("journal writer: incident not delivered: {e}");
                }
            }
            // This entry alone could not be sent: journald may be fine.
            IncidentError::InvalidFieldName(_) | IncidentError::Memfd { .. } => {
                warn!("journal writer: incident not delivered: {e}");
            }
        }
    }

    /// The journal's own record of what it missed while it was unreachable. Failing here starts
    /// a new outage, whose count includes this entry.
    fn report_outage(&self) {
        let missed = self.outage_undelivered.swap(0, Ordering::Relaxed);
        if missed == 0 {
            return;
        }
        let incident = Incident::new(
            IncidentKind::Loss,
            format!(
                "vigil: {missed} incident(s) could not be delivered to journald while it was unreachable"
            ),
        )
        .with_extra("VIGIL_LOST", missed.to_string());
        trace_incident(&incident);
        if let Err(e) = self.deliver(&incident) {
            self.outage_undelivered.fetch_add(missed, Ordering::Relaxed);
            self.count_undelivered(&e);
        }
    }

    /// Incidents that never reached journald since open.
    pub fn undelivered(&self) -> u64 {
        self.undelivered.load(Ordering::Relaxed)
    }

    fn deliver(&self, incident: &Incident) -> Result<(), IncidentError> {
        let payload = encode(&incident.fields())?;
        let fresh;
        let socket = match &self.socket {
            Some(socket) => socket,
            None => {
                fresh = new_socket()?;
                &fresh
            }
        };
        match socket.send_to(&payload, &self.path) {
            Ok(_) => Ok(()),
            // Too big for one datagram (the limit is the socket's send buffer): hand journald
            // a sealed memfd holding the payload instead, as sd_journal_sendv does.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMSGSIZE | libc::ENOBUFS)) => {
                self.send_memfd(socket, &payload)
            }
            Err(e) => Err(IncidentError::send(&self.path, e)),
        }
    }

    fn send_memfd(&self, socket: &UnixDatagram, payload: &[u8]) -> Result<(), IncidentError> {
        let memfd_err = |source: io::Error| IncidentError::Memfd {
            size: payload.len(),
            source,
        };
        let fd = memfd_create(
            c"vigil-incident",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|e| memfd_err(e.into()))?;
        let mut file = File::from(fd);
        file.write_all(payload).map_err(memfd_err)?;
        // journald maps a fully sealed memfd directly; unsealed it must copy (and caps the size
        // for unprivileged senders).
        let seals = SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_WRITE
            | SealFlag::F_SEAL_SEAL;
        fcntl(&file, FcntlArg::F_ADD_SEALS(seals)).map_err(|e| memfd_err(e.into()))?;
        let addr = UnixAddr::new(&self.path).map_err(|e| IncidentError::send(&self.path, e))?;
        let fds = [file.as_raw_fd()];
        // No payload bytes, only the descriptor: that is how journald tells this form apart.
        sendmsg(
            socket.as_raw_fd(),
            &[],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            Some(&addr),
        )
        .map_err(|e| IncidentError::send(&self.path, e))?;
        Ok(())
    }
}

fn new_socket() -> Result<UnixDatagram, IncidentError> {
    let socket = UnixDatagram::unbound().map_err(IncidentError::Socket)?;
    socket
        .set_nonblocking(true)
        .map_err(IncidentError::Socket)?;
    Ok(socket)
}

/// The daemon's own log gets every incident too (warn for warning and worse, else info), so
/// `--log stderr` runs and tests see them without journald.
fn trace_incident(incident: &Incident) {
    let event = incident.kind.as_str();
    let priority = incident.effective_priority();
    let pid = incident.pid;
    let reason = incident.reason.as_deref();
    let outcome = incident.outcome.as_deref();
    let quarantine_id = incident.quarantine_id.as_deref();
    if priority <= 4 {
        warn!(target: TRACING_TARGET, event, priority, pid, reason, outcome, quarantine_id, "{}", incident.message);
    } else {
        info!(target: TRACING_TARGET, event, priority, pid, reason, outcome, quarantine_id, "{}", incident.message);
    }
}
