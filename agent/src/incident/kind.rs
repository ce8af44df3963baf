//! What an incident is about, and the journal catalog identity of each kind.
//!
//! Each kind has a fixed `MESSAGE_ID` so operators (and journald catalogs) can select entries
//! with `journalctl MESSAGE_ID=...` regardless of wording. The ids were generated once from
//! `/dev/urandom` and must never change: changing one silently breaks every saved query.
//!
//! | kind       | MESSAGE_ID                         | default PRIORITY |
//! |------------|------------------------------------|------------------|
//! | alert      | `673eada536ed5624ea533b7f11fee472` | 4 (warning)      |
//! | kill       | `6897c4288b055357ccdc702865cf14f5` | 2 (crit)         |
//! | quarantine | `c3a7cec9457b84d6042ed2907c8f2672` | 2 (crit)         |
//! | release    | `5e518ebb5e640f4e7d7dbfdf1cda3f62` | 5 (notice)       |
//! | policy     | `0d54056dd783a57ffb48d6417a21faa0` | 5 (notice)       |
//! | loss       | `78799c567fe0ab1bcf7868cec0936742` | 4 (warning)      |

use std::fmt;

pub const MESSAGE_ID_ALERT: &str = "673eada536ed5624ea533b7f11fee472";
pub const MESSAGE_ID_KILL: &str = "6897c4288b055357ccdc702865cf14f5";
pub const MESSAGE_ID_QUARANTINE: &str = "c3a7cec9457b84d6042ed2907c8f2672";
pub const MESSAGE_ID_RELEASE: &str = "5e518ebb5e640f4e7d7dbfdf1cda3f62";
pub const MESSAGE_ID_POLICY: &str = "0d54056dd783a57ffb48d6417a21faa0";
pub const MESSAGE_ID_LOSS: &str = "78799c567fe0ab1bcf7868cec0936742";

/// syslog priority of an alert escalated by the rate limiter (an alert storm is itself an
/// incident worth paging for).
pub const PRIORITY_ESCALATED_ALERT: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IncidentKind {
    Alert,
    Kill,
    Quarantine,
    Release,
    Policy,
    Loss,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 6] = [
        Self::Alert,
        Self::Kill,
        Self::Quarantine,
        Self::Release,
        Self::Policy,
        Self::Loss,
    ];

    /// The `VIGIL_EVENT` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alert => "alert",
            Self::Kill => "kill",
            Self::Quarantine => "quarantine",
            Self::Release => "release",
            Self::Policy => "policy",
            Self::Loss => "loss",
        }
    }

    pub fn message_id(self) -> &'static str {
        match self {
            Self::Alert => MESSAGE_ID_ALERT,
            Self::Kill => MESSAGE_ID_KILL,
            Self::Quarantine => MESSAGE_ID_QUARANTINE,
            Self::Release => MESSAGE_ID_RELEASE,
            Self::Policy => MESSAGE_ID_POLICY,
            Self::Loss => MESSAGE_ID_LOSS,
        }
    }

    /// syslog priority (0 emerg .. 7 debug): acting on a process is critical, a detection or
    /// lost telemetry a warning, an operator's own change a notice.
    pub fn default_priority(self) -> u8 {
        match self {
            Self::Kill | Self::Quarantine => 2,
            Self::Alert | Self::Loss => 4,
            Self::Release | Self::Policy => 5,
        }
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
