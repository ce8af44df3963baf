//! Where policy lives on disk: the shipped default plus the operator's policy.d. Pushes are
//! validated as part of the whole set before anything is written, then written atomically, so
//! neither a bad push nor a crash mid-write can leave policy.d unloadable. The last policy that
//! was in force is kept in the state directory, so a policy.d that went bad while the daemon
//! was down does not leave the host unprotected at the next start.

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use tracing::warn;

use crate::policy::{Policy, PolicyError, load_sources, safe_file_name};

pub struct PolicyStore {
    pub default: PathBuf,
    pub dir: PathBuf,
    /// `<state>/policy.last-good.json`: the sources of the last policy in force.
    pub last_good: PathBuf,
}

/// A pushed file, and what to put back if the push must be undone.
pub struct Pushed {
    pub policy: Policy,
    pub path: PathBuf,
    previous: Option<String>,
}

impl PolicyStore {
    pub fn load(&self) -> Result<Policy, PolicyError> {
        Policy::load(&self.default, &self.dir)
    }

    /// Validates `content` as `dir/name` together with the default and every other file, read
    /// exactly as the daemon loads them, then writes it (temp file, fsync, rename).
    pub fn push(&self, name: &str, content: &str) -> Result<Pushed, PolicyError> {
        let name = safe_file_name(name)?;
        let target = self.dir.join(name);
        let mut sources = load_sources(&self.default, &self.dir)?;
        let previous = sources
            .iter()
            .find(|(p, _)| *p == target)
            .map(|(_, c)| c.clone());
        match sources.iter_mut().find(|(p, _)| *p == target) {
            Some(slot) => slot.1 = content.to_owned(),
            None => {
                sources.push((target.clone(), content.to_owned()));
                // Keep the load order: default first, then policy.d by file name.
                sources[1..].sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()));
            }
        }
        let policy = Policy::from_sources(&sources)?;
        write_atomic(&self.dir, &target, content).map_err(|e| PolicyError::Io {
            path: target.clone(),
            source: e,
        })?;
        Ok(Pushed {
            policy,
            path: target,
            previous,
        })
    }

    /// Puts back what a push replaced (or removes the file it added).
    pub fn undo(&self, pushed: &Pushed) {
        let result = match &pushed.previous {
            Some(old) => write_atomic(&self.dir, &pushed.path, old),
            None => fs::remove_file(&pushed.path),
        };
        if let Err(e) = result {
            warn!(path = %pushed.path.display(), "could not undo a rejected push: {e}");
        }
    }

    /// Remembers the sources of the policy now in force.
    pub fn save_last_good(&self, policy: &Policy) {
        let sources: Vec<(PathBuf, String)> = policy
            .sources
            .iter()
            .filter_map(|p| fs::read_to_string(p).ok().map(|c| (p.clone(), c)))
            .collect();
        if sources.len() != policy.sources.len() {
            // A file changed or vanished under us: saving a mix would record a policy that was
            // never in force.
            return;
        }
        let Ok(text) = serde_json::to_string(&sources) else {
            return;
        };
        let dir = self.last_good.parent().unwrap_or(Path::new("."));
        if let Err(e) = write_atomic(dir, &self.last_good, &text) {
            warn!(path = %self.last_good.display(), "cannot save the last good policy: {e}");
        }
    }

    /// The last policy that was in force, if one was saved and still compiles.
    pub fn load_last_good(&self) -> Option<Policy> {
        let text = fs::read_to_string(&self.last_good).ok()?;
        let sources: Vec<(PathBuf, String)> = serde_json::from_str(&text).ok()?;
        Policy::from_sources(&sources).ok()
    }
}

fn write_atomic(dir: &Path, target: &Path, content: &str) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // A dot-file without .toml: the inotify reload and the loader both ignore it.
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("policy"),
        std::process::id()
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, target)?;
    fs::File::open(dir)?.sync_all()
}
