//! The policy's scalar settings: mode, actions, model thresholds, model verdict actions and the
//! response rate limit. These merge field by field, a later file overriding an earlier one.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Never act: alerts only, saying what enforce mode would have done ("would kill").
    Monitor,
    #[default]
    Enforce,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Monitor => "monitor",
            Self::Enforce => "enforce",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Alert,
    Kill,
    Quarantine,
    /// Refuse the connection in the kernel (and alert). Only `rule.connect` can deny: the other
    /// hooks see the event after the fact.
    Deny,
}

impl Action {
    /// Whether this action touches the process (and so is subject to `protected`, the rate limit
    /// and monitor mode), as opposed to only reporting.
    pub fn is_intervention(self) -> bool {
        !matches!(self, Self::Alert)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Alert => "alert",
            Self::Kill => "kill",
            Self::Quarantine => "quarantine",
            Self::Deny => "deny",
        })
    }
}

/// Overrides of the model's own thresholds, on its score in (0, 1).
/// Invariant (checked at load): 0 < alert <= quarantine <= kill <= 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub alert: f32,
    pub quarantine: f32,
    pub kill: f32,
}

/// What the behaviour model's verdicts do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelActions {
    pub on_alert: Action,
    pub on_quarantine: Action,
    pub on_kill: Action,
    /// Quarantine or kill on a score alone only when the process or an ancestor also has a
    /// corroborating event (rule hit, ptrace, memfd exec, module load...); otherwise the verdict
    /// is downgraded to an alert. A model is never perfectly calibrated on every host.
    pub require_corroboration: bool,
}

impl Default for ModelActions {
    fn default() -> Self {
        Self {
            on_alert: Action::Alert,
            on_quarantine: Action::Quarantine,
            on_kill: Action::Kill,
            require_corroboration: true,
        }
    }
}

/// At most `max_actions` kills/quarantines per `per_seconds`; beyond that one escalated alert
/// and no further actions until the window passes, so a bad rule cannot take a host down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResponseLimits {
    pub max_actions: u32,
    pub per_seconds: u64,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        Self {
            max_actions: 10,
            per_seconds: 60,
        }
    }
}
