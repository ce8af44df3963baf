//! Command-line patterns (`rule.exec.cmdline`): regular expressions searched for anywhere in
//! the exec's argv joined by single spaces, the same text an incident's `VIGIL_CMDLINE` shows.
//! The `regex` crate runs in time linear in the command line whatever the pattern, so a rule
//! cannot make the daemon stall on a crafted argv.

use regex::{RegexBuilder, RegexSet, RegexSetBuilder};

use super::error::PolicyError;
use super::merge::At;

/// A compiled pattern's size bound: generous for any hand-written pattern, and a refusal with
/// the pattern's place for a list that would eat the daemon's memory.
const SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone)]
pub(super) struct CmdlineList {
    patterns: Vec<String>,
    set: RegexSet,
}

impl CmdlineList {
    /// Compile `patterns`; `key` names the list in error messages.
    pub fn compile(patterns: &[At<String>], key: &str) -> Result<Self, PolicyError> {
        // Each pattern alone first, so that an error names the one at fault.
        for p in patterns {
            RegexBuilder::new(&p.value)
                .size_limit(SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    PolicyError::invalid(
                        p.at.clone(),
                        format!(
                            "invalid regular expression `{}` in `{key}`: {}",
                            p.value,
                            one_line(&e)
                        ),
                    )
                })?;
        }
        let set = RegexSetBuilder::new(patterns.iter().map(|p| &p.value))
            .size_limit(SIZE_LIMIT * patterns.len().max(1))
            .build()
            .map_err(|e| match patterns.first() {
                Some(p) => PolicyError::invalid(
                    p.at.clone(),
                    format!("compiling `{key}` patterns: {}", one_line(&e)),
                ),
                None => unreachable!("an empty pattern set always builds"),
            })?;
        Ok(Self {
            patterns: patterns.iter().map(|p| p.value.clone()).collect(),
            set,
        })
    }

    pub fn is_match(&self, cmdline: &str) -> bool {
        self.set.is_match(cmdline)
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// The regex crate's syntax errors draw the pattern over several lines with a caret; an
/// operator's error line wants the reason.
fn one_line(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .map_or_else(
                || text.replace('\n', " "),
                |l| l.trim_start_matches("error: ").to_owned(),
            ),
        other => other.to_string().replace('\n', " "),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::policy::error::Location;

    fn at(s: &str) -> At<String> {
        At {
            value: s.to_owned(),
            at: Location {
                file: PathBuf::from("/etc/vigil/policy.d/10-site.toml"),
                line: 3,
                column: 11,
            },
        }
    }

    #[test]
    fn any_pattern_found_anywhere_matches() {
        let l = CmdlineList::compile(
            &[at(r"stratum\+(tcp|ssl)://"), at(r"(^| )--donate-level")],
            "cmdline",
        )
        .expect("compiles");
        assert!(l.is_match("./x -o stratum+tcp://pool:3333 -u w"));
        assert!(l.is_match("xmrig --donate-level 1"));
        assert!(!l.is_match("xmrig --no-donate-level-here"));
        assert!(!l.is_match("curl https://example.org/stratum"));
        assert_eq!(
            l.patterns(),
            [r"stratum\+(tcp|ssl)://", r"(^| )--donate-level"]
        );
    }

    #[test]
    fn a_bad_pattern_is_named_with_its_place_on_one_line() {
        let err = CmdlineList::compile(&[at("ok"), at("(unclosed")], "cmdline")
            .expect_err("refused")
            .to_string();
        assert!(err.starts_with("/etc/vigil/policy.d/10-site.toml:3:11: invalid regular expression `(unclosed` in `cmdline`: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("unclosed group"), "{err}");
    }

    #[test]
    fn a_pattern_too_large_to_compile_is_refused() {
        let huge = format!("(?:{}){{1000}}", r"\w{100}");
        let err = CmdlineList::compile(&[at(&huge)], "cmdline")
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("invalid regular expression") && err.contains("size limit"),
            "{err}"
        );
    }
}
