//! The allowlist: processes never acted on and never alerted on by rules or score.

use super::error::PolicyError;
use super::glob::GlobList;
use super::merge::{At, Merged};
use super::rules::sha256_hex;
use super::schema::RawUser;
use super::users::UserDb;

#[derive(Debug, Clone, Default)]
pub(super) struct Allowlist {
    pub exe: GlobList,
    /// Lowercase hex.
    pub sha256: Vec<String>,
    /// Each entry as written (a uid or a name) and the uid it resolved to.
    pub users: Vec<(String, u32)>,
    pub cgroups: GlobList,
}

impl Allowlist {
    pub fn compile(m: &Merged, users: &UserDb) -> Result<Self, PolicyError> {
        Ok(Self {
            exe: GlobList::compile(&m.allow_exe, "allow.exe")?,
            sha256: m
                .allow_sha256
                .iter()
                .map(sha256_hex)
                .collect::<Result<_, _>>()?,
            users: m
                .allow_users
                .iter()
                .map(|u| resolve(u, users))
                .collect::<Result<_, _>>()?,
            cgroups: GlobList::compile(&m.allow_cgroups, "allow.cgroups")?,
        })
    }

    /// Any one entry is enough: each list names a different reason to trust a process.
    pub fn allows(&self, exe: &str, sha256: Option<&str>, uid: u32, cgroup: Option<&str>) -> bool {
        self.exe.is_match(exe)
            || sha256.is_some_and(|h| self.sha256.iter().any(|a| a.eq_ignore_ascii_case(h)))
            || self.users.iter().any(|&(_, u)| u == uid)
            || cgroup.is_some_and(|c| self.cgroups.is_match(c))
    }
}

fn resolve(u: &At<RawUser>, users: &UserDb) -> Result<(String, u32), PolicyError> {
    match &u.value {
        RawUser::Uid(uid) => Ok((uid.to_string(), *uid)),
        RawUser::Name(name) => users
            .resolve(name)
            .map(|uid| (name.clone(), uid))
            .map_err(|why| PolicyError::invalid(u.at.clone(), why)),
    }
}
