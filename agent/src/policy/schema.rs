//! The raw TOML schema of one policy file, before merging. Unknown keys are errors everywhere so
//! a typo cannot silently disable a rule; values that are validated later keep their spans so
//! those errors can point at them too.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use super::settings::{Action, Mode};

/// A list whose own place (for "empty list" errors) and elements' places are kept.
pub(super) type SpannedList<T> = Option<Spanned<Vec<Spanned<T>>>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub mode: Option<Mode>,
    pub thresholds: Option<RawThresholds>,
    pub model: Option<RawModel>,
    pub response: Option<RawResponse>,
    #[serde(default)]
    pub rule: RawRules,
    #[serde(default)]
    pub allow: RawAllow,
    #[serde(default)]
    pub protected: RawProtected,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThresholds {
    pub alert: Option<Spanned<f32>>,
    pub quarantine: Option<Spanned<f32>>,
    pub kill: Option<Spanned<f32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub on_alert: Option<Spanned<Action>>,
    pub on_quarantine: Option<Spanned<Action>>,
    pub on_kill: Option<Spanned<Action>>,
    pub require_corroboration: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResponse {
    pub max_actions: Option<u32>,
    pub per_seconds: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRules {
    #[serde(default)]
    pub exec: Vec<RawExecRule>,
    #[serde(default)]
    pub connect: Vec<RawConnectRule>,
    #[serde(default)]
    pub event: Vec<RawEventRule>,
    #[serde(default)]
    pub file: Vec<RawFileRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExecRule {
    pub name: Spanned<String>,
    pub action: Spanned<Action>,
    pub path: SpannedList<String>,
    pub sha256: SpannedList<String>,
    pub parent: SpannedList<String>,
    pub cmdline: SpannedList<String>,
    pub except_cmdline: SpannedList<String>,
    pub stdio_socket: Option<bool>,
    pub parent_stdio_socket: Option<bool>,
    pub parent_accepted: Option<bool>,
    pub changed_within: Option<Spanned<u64>>,
    pub downloaded: Option<bool>,
    pub except_downloader: SpannedList<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnectRule {
    pub name: Spanned<String>,
    pub action: Spanned<Action>,
    pub addr: SpannedList<String>,
    pub ports: SpannedList<u16>,
    pub exe: SpannedList<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEventRule {
    pub name: Spanned<String>,
    pub action: Spanned<Action>,
    pub event: SpannedList<String>,
    pub exe: SpannedList<String>,
    pub except_exe: SpannedList<String>,
    pub except_parent: SpannedList<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFileRule {
    pub name: Spanned<String>,
    pub action: Spanned<Action>,
    pub path: SpannedList<String>,
    pub access: SpannedList<String>,
    pub exe: SpannedList<String>,
    pub except_exe: SpannedList<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllow {
    #[serde(default)]
    pub exe: Vec<Spanned<String>>,
    #[serde(default)]
    pub sha256: Vec<Spanned<String>>,
    #[serde(default)]
    pub users: Vec<Spanned<RawUser>>,
    #[serde(default)]
    pub cgroups: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProtected {
    #[serde(default)]
    pub exe: Vec<Spanned<String>>,
    #[serde(default)]
    pub comm: Vec<Spanned<String>>,
}

/// An entry of `allow.users`: a uid, or a user name resolved when the policy is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RawUser {
    Uid(u32),
    Name(String),
}

// Hand-written rather than `#[serde(untagged)]`: untagged enums only say "did not match any
// variant", which tells an operator nothing.
impl<'de> Deserialize<'de> for RawUser {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct UserVisitor;
        impl Visitor<'_> for UserVisitor {
            type Value = RawUser;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a uid (integer 0..=4294967295) or a user name (string)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawUser, E> {
                u32::try_from(v)
                    .map(RawUser::Uid)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawUser, E> {
                u32::try_from(v)
                    .map(RawUser::Uid)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawUser, E> {
                Ok(RawUser::Name(v.to_owned()))
            }
        }
        d.deserialize_any(UserVisitor)
    }
}
