//! The policy's error type. Every error names the file it comes from, and anything tied to a
//! place in a file carries its 1-based line and column, so an operator can jump straight to it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A place in a policy file: `file:line:column` (both 1-based, column counted in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not valid UTF-8 text")]
    NotUtf8 { path: PathBuf },
    /// TOML syntax, a wrong type, an unknown key (typos are errors) or a missing required key.
    #[error("{at}: {message}")]
    Syntax { at: Location, message: String },
    /// A value that parsed but makes no sense: a bad glob, CIDR, digest, threshold, user name...
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
    #[error(
        "{at}: duplicate rule name `{name}`, first defined at {first}; expected names unique across all policy files"
    )]
    DuplicateRule {
        name: String,
        at: Location,
        first: Location,
    },
    #[error(
        "invalid policy file name `{name}`: expected letters, digits, `.`, `_` or `-`, ending in `.toml` and not starting with `.`"
    )]
    BadFileName { name: String },
    #[error("no policy files given")]
    NoSources,
}

impl PolicyError {
    pub(super) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(super) fn invalid(at: Location, message: impl Into<String>) -> Self {
        Self::Invalid {
            at,
            message: message.into(),
        }
    }

    /// Where in which file the error is, when it is tied to a place.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Syntax { at, .. } | Self::Invalid { at, .. } | Self::DuplicateRule { at, .. } => {
                Some(at)
            }
            _ => None,
        }
    }
}
