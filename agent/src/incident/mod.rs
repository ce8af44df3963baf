//! Incidents, the operator's view of vigil: every alert, kill, quarantine, release, policy change
//! and loss report becomes exactly one journald entry with `SYSLOG_IDENTIFIER=vigil`, a stable
//! `MESSAGE_ID` per kind, a syslog `PRIORITY`, one human `MESSAGE` line and structured `VIGIL_*`
//! fields, so `journalctl -t vigil VIGIL_EVENT=quarantine` answers "what did vigil do".
//!
//! The entry is written with journald's native protocol by [`JournalWriter`] (not through the
//! `tracing` log), because the fields are the interface: scripts match on them.

mod encode;
mod error;
mod kind;
mod record;
mod writer;

#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod writer_tests;

pub use encode::valid_field_name;
pub use error::IncidentError;
pub use kind::{
    IncidentKind, MESSAGE_ID_ALERT, MESSAGE_ID_KILL, MESSAGE_ID_LOSS, MESSAGE_ID_POLICY,
    MESSAGE_ID_QUARANTINE, MESSAGE_ID_RELEASE, PRIORITY_ESCALATED_ALERT,
};
pub use record::Incident;
pub use writer::{JOURNAL_SOCKET, JournalWriter, TRACING_TARGET};
