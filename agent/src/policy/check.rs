//! Validating policy files without loading them into a daemon: `vigil policy check FILE...`
//! and the daemon's check of a pushed file before it replaces anything on disk.

use std::path::{Path, PathBuf};

use super::DEFAULT_POLICY_DIR;
use super::error::PolicyError;
use super::policy::Policy;
use super::source::read_source;

/// Validate `paths` as one merged policy, merged in the order given, without the shipped
/// default: what an operator checks is exactly what they wrote.
pub fn check_files(paths: &[PathBuf]) -> Result<Policy, PolicyError> {
    check_files_with(None, paths)
}

/// Like `check_files`, but merged after `default` when given, as the daemon would load them;
/// this also catches a rule name that clashes with the default's.
pub fn check_files_with(default: Option<&Path>, paths: &[PathBuf]) -> Result<Policy, PolicyError> {
    let sources = default
        .into_iter()
        .chain(paths.iter().map(PathBuf::as_path))
        .map(read_source)
        .collect::<Result<Vec<_>, _>>()?;
    Policy::from_sources(&sources)
}

/// One line for the CLI when a check passes.
pub fn check_report(policy: &Policy) -> String {
    format!(
        "ok: {} file(s), {} exec rule(s), {} connect rule(s), {} event rule(s), {} file rule(s), mode {}, version {}",
        policy.sources.len(),
        policy.exec.len(),
        policy.connect.len(),
        policy.event.len(),
        policy.file.len(),
        policy.mode,
        policy.version
    )
}

/// The policy the daemon would load once `name` is written to the drop-in directory with
/// `content`. `current_sources` are in load order (the default first, then drop-ins); a drop-in
/// with the same file name is replaced, otherwise the file is added, and the drop-ins are put
/// back in file name order, as the next load will read them. A new file is reported as being
/// in `/etc/vigil/policy.d/`.
pub fn validate_push(
    name: &str,
    content: &str,
    current_sources: &[(PathBuf, String)],
) -> Result<Policy, PolicyError> {
    let name = safe_file_name(name)?;
    let (default, dropins) = current_sources
        .split_first()
        .ok_or(PolicyError::NoSources)?;
    let mut dropins: Vec<(PathBuf, String)> = dropins
        .iter()
        .filter(|(p, _)| p.file_name().is_none_or(|n| n != name))
        .cloned()
        .collect();
    let path = current_sources
        .iter()
        .skip(1)
        .find(|(p, _)| p.file_name().is_some_and(|n| n == name))
        .map_or_else(
            || Path::new(DEFAULT_POLICY_DIR).join(name),
            |(p, _)| p.clone(),
        );
    dropins.push((path, content.to_owned()));
    dropins.sort_by(|(a, _), (b, _)| a.file_name().cmp(&b.file_name()));
    let mut sources = vec![default.clone()];
    sources.extend(dropins);
    Policy::from_sources(&sources)
}

/// A drop-in file name an operator may push: `[A-Za-z0-9._-]+\.toml`, no `/`, not hidden
/// (hidden names are skipped by the loader, and keep `..` out).
pub fn safe_file_name(name: &str) -> Result<&str, PolicyError> {
    let ok = name.len() > ".toml".len()
        && name.len() <= 255
        && name.ends_with(".toml")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(PolicyError::BadFileName {
            name: name.to_owned(),
        })
    }
}
