//! Path globs (exe, exec'd path, parent, cgroup). `*` and `?` never cross a `/`
//! (`literal_separator`), so `/tmp/*` is one level and `/tmp/**` is the whole tree.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::error::PolicyError;
use super::merge::At;

#[derive(Debug, Clone)]
pub(super) struct GlobList {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Default for GlobList {
    fn default() -> Self {
        Self {
            patterns: Vec::new(),
            set: GlobSet::empty(),
        }
    }
}

impl GlobList {
    /// Compile `globs`; `key` names the list in error messages (`path`, `allow.exe`...).
    pub fn compile(globs: &[At<String>], key: &str) -> Result<Self, PolicyError> {
        let mut set = GlobSetBuilder::new();
        for g in globs {
            set.add(build(&g.value).map_err(|why| {
                PolicyError::invalid(
                    g.at.clone(),
                    format!("invalid glob `{}` in `{key}`: {why}", g.value),
                )
            })?);
        }
        let set = set.build().map_err(|e| match globs.first() {
            // Only a set too large for the regex engine fails here; blame the list.
            Some(g) => PolicyError::invalid(g.at.clone(), format!("compiling `{key}` globs: {e}")),
            None => unreachable!("an empty glob set always builds"),
        })?;
        Ok(Self {
            patterns: globs.iter().map(|g| g.value.clone()).collect(),
            set,
        })
    }

    /// Compile the built-in protected globs: constants, checked by a unit test, so a failure here
    /// is a bug in this file rather than in anyone's policy.
    pub fn builtin(patterns: &[&str]) -> Self {
        let mut set = GlobSetBuilder::new();
        for p in patterns {
            set.add(build(p).expect("valid built-in glob"));
        }
        let set = set.build().expect("valid built-in glob set");
        Self {
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
            set,
        }
    }

    pub fn is_match(&self, path: &str) -> bool {
        self.set.is_match(path)
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

fn build(pattern: &str) -> Result<globset::Glob, String> {
    // Exe, exec and cgroup paths are all absolute: a relative pattern is a mistake that would
    // silently never match.
    if !(pattern.starts_with('/') || pattern.starts_with("**/")) {
        return Err("expected an absolute path, or a pattern starting with `/` or `**/`".into());
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| e.kind().to_string())
}

const META: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// The pattern up to its first glob metacharacter: every path it matches starts with this.
pub(super) fn literal_prefix(pattern: &str) -> &str {
    pattern.find(META).map_or(pattern, |i| &pattern[..i])
}

pub(super) fn is_literal(pattern: &str) -> bool {
    !pattern.contains(META)
}
