//! The operator's policy: TOML files merged in load order (the shipped default, then
//! `/etc/vigil/policy.d/*.toml` by file name), validated with `file:line:column` errors, and
//! compiled into matchers the pipeline asks: which rules an exec, connect, security event or
//! file open hits, which files the kernel must watch, whether a process is allowlisted or protected, and what the kernel can deny by itself.

mod allow;
mod check;
mod cmdline;
mod error;
mod file_watch;
mod glob;
mod kernel;
mod merge;
#[expect(
    clippy::module_inception,
    reason = "the module's main type lives in a file named after it"
)]
mod policy;
mod protected;
mod rules;
mod schema;
mod settings;
mod source;
mod summary;
mod users;

#[cfg(test)]
mod default_cmdline_tests;
#[cfg(test)]
mod default_tests;
#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod tests;

pub use check::{check_files, check_files_with, check_report, safe_file_name, validate_push};
pub use error::{Location, PolicyError};
pub use kernel::KernelExecMatch;
pub use policy::Policy;
pub use protected::{BUILTIN_PROTECTED_COMM, BUILTIN_PROTECTED_EXE};
pub use file_watch::PlannedWatch;
pub use rules::{
    ConnectContext, EventContext, ExecContext, FileAccess, FileContext, RuleRef, SecurityEvent,
};
pub use settings::{Action, Mode, ModelActions, ResponseLimits, Thresholds};
pub use source::load_sources;

/// Where `cargo xtask install` puts the shipped default policy.
pub const DEFAULT_POLICY_PATH: &str = "/usr/lib/vigil/policy.toml";
/// The operator's drop-in directory.
pub const DEFAULT_POLICY_DIR: &str = "/etc/vigil/policy.d";
