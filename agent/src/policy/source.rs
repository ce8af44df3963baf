//! Policy sources: the files' text, turning byte spans into `file:line:column`, parsing one file
//! into the raw schema, reading the default file plus the drop-in directory, and the version hash.

use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{Location, PolicyError};
use super::schema::RawFile;

/// One policy file's text, with the start offset of every line so spans locate quickly.
pub(super) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            path,
            text,
            line_starts,
        }
    }

    /// The 1-based line and column (in characters, as editors count) of a byte offset.
    pub fn locate(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        Location {
            file: self.path.to_path_buf(),
            line,
            column,
        }
    }

    pub fn at(&self, span: Range<usize>) -> Location {
        self.locate(span.start)
    }

    pub fn parse(&self) -> Result<RawFile, PolicyError> {
        toml::from_str(self.text).map_err(|e| self.syntax_error(&e))
    }

    fn syntax_error(&self, e: &toml::de::Error) -> PolicyError {
        // toml's own Display draws a multi-line snippet; one line per error suits logs and CLIs.
        let message = e.message().trim().replace('\n', "; ");
        let Some(span) = e.span() else {
            return PolicyError::Syntax {
                at: self.locate(0),
                message,
            };
        };
        // toml keeps the key path of a value error private, so recover the key from the text:
        // on a `key = value` line the span starts right after `key =`.
        let message = match (self.key_before(span.start), self.table_before(span.start)) {
            (Some(key), Some(table)) => format!("invalid value for `{table}.{key}`: {message}"),
            (Some(key), None) => format!("invalid value for `{key}`: {message}"),
            (None, Some(table)) => format!("in `{table}`: {message}"),
            (None, None) => message,
        };
        PolicyError::Syntax {
            at: self.locate(span.start),
            message,
        }
    }

    /// The key of a `key = value` or `key = [..., value` line, when `offset` is in its value.
    fn key_before(&self, offset: usize) -> Option<&str> {
        let line_start = self.text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
        let (key, _) = self.text.get(line_start..offset)?.split_once('=')?;
        let key = key.trim();
        let is_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        is_key.then_some(key)
    }

    /// The name in the last `[table]` or `[[array.of.tables]]` header before `offset`, or
    /// starting at it (a table's "missing field" error points at its header). A span inside a
    /// header is about that header's own name, not a key in it.
    fn table_before(&self, offset: usize) -> Option<&str> {
        let line_start = self.text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
        let end = if self.text[line_start..offset].trim().is_empty() {
            self.text[offset..]
                .find('\n')
                .map_or(self.text.len(), |i| offset + i)
        } else {
            line_start
        };
        self.text[..end].lines().rev().find_map(|line| {
            let line = line.trim();
            let line = line.split_once('#').map_or(line, |(l, _)| l).trim_end();
            let name = line
                .strip_prefix("[[")
                .and_then(|l| l.strip_suffix("]]"))
                .or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')))?
                .trim();
            let is_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            is_name.then_some(name)
        })
    }
}

/// The policy version: the first 16 hex digits of SHA-256 over each source's file name and
/// bytes, in load order. File names rather than full paths, so a policy validated before a push
/// (`validate_push`) has the same version as the one the daemon loads after it.
pub(super) fn version(sources: &[(PathBuf, String)]) -> String {
    let mut hash = Sha256::new();
    for (path, text) in sources {
        let name = path.file_name().map_or(path.as_os_str(), |n| n);
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_encoded_bytes());
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    }
    let digest = hash.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn read_source(path: &Path) -> Result<(PathBuf, String), PolicyError> {
    let bytes = fs::read(path).map_err(|e| PolicyError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| PolicyError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    Ok((path.to_path_buf(), text))
}

/// The shipped default file, then every `*.toml` regular file of `dir` in lexical (byte) order of
/// file name. A missing `dir` is fine: the host then runs the default alone. Hidden files are
/// skipped, so editor and `policy push` temporaries never take effect half-written.
pub fn load_sources(default: &Path, dir: &Path) -> Result<Vec<(PathBuf, String)>, PolicyError> {
    let mut sources = vec![read_source(default)?];
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::debug!(dir = %dir.display(), "no policy drop-in directory");
            return Ok(sources);
        }
        Err(e) => return Err(PolicyError::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| PolicyError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!(dir = %dir.display(), name = ?name, "skipping policy file with a non-UTF-8 name");
            continue;
        };
        if !name.ends_with(".toml") || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // fs::metadata follows symlinks: a linked-in file counts, a dangling link is an error.
        let meta = fs::metadata(&path).map_err(|e| PolicyError::io(&path, e))?;
        if meta.is_file() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    for name in names {
        sources.push(read_source(&dir.join(name))?);
    }
    Ok(sources)
}
