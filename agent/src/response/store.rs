//! Where policy lives on disk: the shipped default plus the operator's policy.d. Pushes are
//! validated as part of the whole set before anything is written, then written atomically, so
//! neither a bad push nor a crash mid-write can leave policy.d unloadable.

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use crate::policy::{Policy, PolicyError, safe_file_name};

pub struct PolicyStore {
    pub default: PathBuf,
    pub dir: PathBuf,
}

impl PolicyStore {
    pub fn load(&self) -> Result<Policy, PolicyError> {
        Policy::load(&self.default, &self.dir)
    }

    /// Validates `content` as `dir/name` together with the default and every other file, then
    /// writes it (temp file, fsync, rename). Returns the merged policy and the file written.
    pub fn push(&self, name: &str, content: &str) -> Result<(Policy, PathBuf), PolicyError> {
        let name = safe_file_name(name)?;
        let target = self.dir.join(name);
        let mut sources = self.sources()?;
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
        Ok((policy, target))
    }

    /// The default then policy.d/*.toml in file-name order, read from disk.
    fn sources(&self) -> Result<Vec<(PathBuf, String)>, PolicyError> {
        let read = |p: &Path| {
            fs::read_to_string(p).map_err(|e| PolicyError::Io {
                path: p.to_path_buf(),
                source: e,
            })
        };
        let mut out = vec![(self.default.clone(), read(&self.default)?)];
        let mut files: Vec<PathBuf> = match fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(PolicyError::Io {
                    path: self.dir.clone(),
                    source: e,
                });
            }
        };
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        for f in files {
            let text = read(&f)?;
            out.push((f, text));
        }
        Ok(out)
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
