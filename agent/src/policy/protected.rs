//! Processes never killed or quarantined, whatever a rule or the score says (alerts still go
//! out). The built-in set keeps the host reachable and bootable and cannot be removed by policy;
//! pid 1, kernel threads and vigil's own pid are the caller's to exempt.

use super::error::PolicyError;
use super::glob::GlobList;
use super::merge::Merged;

/// Exact paths, not `**/name` globs: a copy of any binary named `sshd` in /tmp must not be
/// immune. Both the /usr and the legacy / spellings, since `/proc/PID/exe` shows whichever the
/// image was started from on hosts without merged /usr.
pub const BUILTIN_PROTECTED_EXE: &[&str] = &[
    "/usr/lib/systemd/systemd",
    "/lib/systemd/systemd",
    "/usr/lib/systemd/systemd-journald",
    "/lib/systemd/systemd-journald",
    "/usr/sbin/sshd",
    "/sbin/sshd",
    "/usr/lib/openssh/sshd-session",
    "/usr/libexec/openssh/sshd-session",
    "/usr/libexec/sshd-session",
    "/usr/sbin/init",
    "/sbin/init",
    "/usr/sbin/vigil",
];

/// Kernel `comm` values (truncated to 15 bytes, hence `systemd-journal`) of the built-ins. Only
/// a hint for the kernel's exec check, which then defers to user space: a comm is whatever the
/// process says it is (`prctl(PR_SET_NAME)`), so user space never protects by built-in comm.
pub const BUILTIN_PROTECTED_COMM: &[&str] = &["systemd", "systemd-journal", "sshd", "sshd-session", "init", "vigil"];

/// `TASK_COMM_LEN` minus the NUL.
const COMM_MAX: usize = 15;

#[derive(Debug, Clone)]
pub(super) struct ProtectedSet {
    pub builtin_exe: GlobList,
    pub exe: GlobList,
    pub comm: Vec<String>,
}

impl ProtectedSet {
    pub fn compile(m: &Merged) -> Result<Self, PolicyError> {
        let comm = m
            .protected_comm
            .iter()
            .map(|c| {
                let v = &c.value;
                if v.is_empty() {
                    return Err(PolicyError::invalid(
                        c.at.clone(),
                        "empty `protected.comm` entry: expected a process name",
                    ));
                }
                if v.len() > COMM_MAX {
                    // A longer name can never equal a kernel comm: say what it would be instead.
                    let cut: String = v
                        .char_indices()
                        .take_while(|(i, ch)| i + ch.len_utf8() <= COMM_MAX)
                        .map(|(_, ch)| ch)
                        .collect();
                    return Err(PolicyError::invalid(
                        c.at.clone(),
                        format!(
                            "invalid comm `{v}` in `protected.comm`: expected at most {COMM_MAX} \
                             bytes, as the kernel truncates it (did you mean `{cut}`?)"
                        ),
                    ));
                }
                Ok(v.clone())
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            builtin_exe: GlobList::builtin(BUILTIN_PROTECTED_EXE),
            exe: GlobList::compile(&m.protected_exe, "protected.exe")?,
            comm,
        })
    }

    /// By path (the resolved image), or by a comm the operator listed in `protected.comm`.
    pub fn protects(&self, exe: &str, comm: &str) -> bool {
        self.builtin_exe.is_match(exe) || self.exe.is_match(exe) || self.comm.iter().any(|c| c == comm)
    }
}
