//! Resolving user names in `allow.users` to uids, from `/etc/passwd` when the policy is compiled.
//! Names are resolved once: a user renumbered later needs a policy reload, like any other change.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

pub(super) const PASSWD_PATH: &str = "/etc/passwd";

/// Where user names come from.
#[derive(Debug, Clone)]
pub(super) enum UserDb {
    /// Read this passwd file when (and only if) the policy names a user.
    File(PathBuf),
    /// A fixed table (tests, and callers that resolved names themselves).
    #[cfg_attr(not(test), expect(dead_code, reason = "constructed by tests"))]
    Table(HashMap<String, u32>),
}

impl UserDb {
    pub fn system() -> Self {
        Self::File(PathBuf::from(PASSWD_PATH))
    }

    /// The uid of `name`, or why there is none.
    pub fn resolve(&self, name: &str) -> Result<u32, String> {
        let found = match self {
            Self::Table(t) => t.get(name).copied(),
            Self::File(path) => {
                let text = fs::read_to_string(path).map_err(|e| {
                    format!(
                        "cannot resolve user `{name}`: reading {}: {e}",
                        path.display()
                    )
                })?;
                parse_passwd(&text).get(name).copied()
            }
        };
        found.ok_or_else(|| {
            let hint = if name.bytes().all(|b| b.is_ascii_digit()) {
                " (write a uid as a bare integer, not a string)"
            } else {
                ""
            };
            format!(
                "unknown user `{name}`: expected a user name from {}{hint}",
                self.describe()
            )
        })
    }

    fn describe(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Table(_) => "the user table".into(),
        }
    }
}

/// `name:password:uid:...` lines; malformed lines (and NIS `+`/`-` entries) are skipped.
pub(super) fn parse_passwd(text: &str) -> HashMap<String, u32> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?.trim();
            let uid = fields.nth(1)?.trim().parse().ok()?;
            (!name.is_empty() && !name.starts_with(['#', '+', '-'])).then(|| (name.to_owned(), uid))
        })
        .collect()
}
