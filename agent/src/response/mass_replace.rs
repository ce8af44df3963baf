//! Mass encryption, told from other file churn by its names: each victim `report.docx` gives
//! way to a `report.docx.locked` (written beside it and the original unlinked, or the original
//! renamed after being overwritten). Builds, `rm -rf`, `tar x`, `git checkout` and package
//! installs create and remove as many files, but almost never remove a name that they also
//! create with an extension added. Compressors (`gzip -r`: `x.log` → `x.log.gz`) and log
//! rotation (`x.log` → `x.log.1`) do, which is why the shipped rule excepts them.
//!
//! The kernel sends the names only while a process, or the descendants of its parent or
//! grandparent, churn (`agent-ebpf/src/churn.rs`); they are counted here for the same three,
//! since a script runs one encryptor and one `rm` per file.

use std::{
    collections::HashMap,
    hash::Hash,
    time::{Duration, Instant},
};

use agent_common::CHURN_REMOVED;

use super::actors::{Activity, Actors};

/// How far back a created and a removed name pair up.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Distinct names replaced within [`WINDOW`] that make mass replacement.
pub const REPLACED: usize = 16;
/// Names remembered per process; past this the stale ones, then all, are forgotten.
const MAX_NAMES: usize = 4096;
/// Processes (and parents) followed at once.
const MAX_ACTORS: usize = 1024;
/// Extensions stripped from a created name to find what it may replace (`a.txt.id-1.[x].enc`).
const MAX_EXTENSIONS: usize = 4;

#[derive(Default)]
pub(super) struct Names {
    /// Originals a created name may stand for (`report.docx` for `report.docx.locked`), with
    /// that name.
    stems: HashMap<String, (Instant, String)>,
    /// Names removed lately, for a rename's new name or a copy written after.
    removed: HashMap<String, Instant>,
    /// Originals replaced, with when.
    replaced: HashMap<String, Instant>,
    example: Option<(String, String)>,
    last: Option<Instant>,
    reported: bool,
}

impl Activity for Names {
    fn last(&self) -> Option<Instant> {
        self.last
    }
}

impl Names {
    /// One name created or removed; the number of originals replaced within the window.
    fn add(&mut self, created: bool, name: &str, now: Instant) -> usize {
        self.last = Some(now);
        let fresh = |t: &Instant| now.duration_since(*t) <= WINDOW;
        if self.stems.len() >= MAX_NAMES {
            self.stems.retain(|_, (t, _)| fresh(t));
        }
        for map in [&mut self.removed, &mut self.replaced] {
            if map.len() >= MAX_NAMES {
                map.retain(|_, t| fresh(t));
            }
        }
        // Still full of fresh names: a churn this large forgets and starts over.
        if self.stems.len() >= MAX_NAMES {
            self.stems.clear();
        }
        for map in [&mut self.removed, &mut self.replaced] {
            if map.len() >= MAX_NAMES {
                map.clear();
            }
        }
        if created {
            for stem in stems_of(name) {
                if self.removed.get(stem).is_some_and(fresh) {
                    self.pair(stem, name, now);
                }
                self.stems.insert(stem.to_owned(), (now, name.to_owned()));
            }
        } else {
            if let Some((t, by)) = self.stems.get(name)
                && fresh(t)
            {
                let by = by.clone();
                self.pair(name, &by, now);
            }
            self.removed.insert(name.to_owned(), now);
        }
        self.replaced
            .retain(|_, t| now.duration_since(*t) <= WINDOW);
        self.replaced.len()
    }

    fn pair(&mut self, original: &str, replacement: &str, now: Instant) {
        self.replaced.insert(original.to_owned(), now);
        if self.example.is_none() {
            self.example = Some((original.to_owned(), replacement.to_owned()));
        }
    }
}

/// The originals `name` may replace: itself with one, two... trailing extensions stripped,
/// as long as what is left still has an extension of its own (`report.docx`, not `report`):
/// a build's `foo` and `foo.d` are not a replacement.
fn stems_of(name: &str) -> impl Iterator<Item = &str> {
    name.rmatch_indices('.')
        .take(MAX_EXTENSIONS)
        .map(move |(i, _)| &name[..i])
        .filter(|stem| stem.find('.').is_some_and(|d| d > 0 && d + 1 < stem.len()))
}

/// The last component of a path as a syscall passed it.
fn base_name(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// A mass replacement found: who gets the incident and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// Index into the actors passed to [`ReplaceWatch::on_churn`].
    pub actor: usize,
    pub detail: String,
}

pub struct ReplaceWatch<Id> {
    actors: Actors<Id, Names>,
}

impl<Id: Hash + Eq + Copy> Default for ReplaceWatch<Id> {
    fn default() -> Self {
        ReplaceWatch {
            actors: Actors::new(MAX_ACTORS, WINDOW),
        }
    }
}

impl<Id: Hash + Eq + Copy> ReplaceWatch<Id> {
    /// One name created or removed (`op`, as the kernel's `CHURN_*`) by `actors[0]`, counted
    /// for every actor given (the process, then its ancestors).
    pub fn on_churn(
        &mut self,
        actors: &[Id],
        op: u32,
        path: &str,
        now: Instant,
    ) -> Option<Replacement> {
        let name = base_name(path);
        if name.is_empty() || name == "." || name == ".." {
            return None;
        }
        // One incident per line of descent: once a script's shell has been reported, what it
        // starts next is the same attack.
        if actors
            .iter()
            .any(|a| self.actors.get(a).is_some_and(|n| n.reported))
        {
            return None;
        }
        let mut found = None;
        for (i, actor) in actors.iter().enumerate() {
            let Some(names) = self.actors.follow(*actor, now) else {
                continue;
            };
            // A file written over is a name made as much as a new one (`open(f, "wb")` counted
            // as created before the kernel told the two apart).
            let replaced = names.add(op != CHURN_REMOVED, name, now);
            if replaced >= REPLACED {
                names.reported = true;
                let example = names
                    .example
                    .as_ref()
                    .map(|(o, r)| format!(", e.g. {o} → {r}"))
                    .unwrap_or_default();
                let detail = format!(
                    "{replaced} files replaced by names with an extension added within {}s{example}",
                    WINDOW.as_secs()
                );
                found = Some(Replacement { actor: i, detail });
                break;
            }
        }
        if let Some(r) = &found {
            // The reported actor and the descendants on this line: their names are no longer
            // needed, the flags stay until they exit (or, idle for a window, are forgotten to
            // make room). Ancestors keep counting: an xargs above one reported shell is
            // reported once more at most, by its own count.
            for actor in &actors[..=r.actor] {
                self.actors.set(
                    *actor,
                    Names {
                        reported: true,
                        last: Some(now),
                        ..Names::default()
                    },
                );
            }
        }
        found
    }

    pub fn on_exit(&mut self, actor: &Id) {
        self.actors.remove(actor);
    }

    /// Processes not followed because the table was full of active ones.
    pub fn untracked(&self) -> u64 {
        self.actors.untracked
    }
}

#[cfg(test)]
#[path = "mass_replace_tests.rs"]
mod tests;
