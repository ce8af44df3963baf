//! Keeping the table bounded: exited entries leave after their grace period, and when the table
//! is still full the least useful entries go first.

use std::time::Instant;

use tracing::warn;

use super::info::ProcessState;
use super::key::ProcessKey;
use super::table::ProcessTable;

impl ProcessTable {
    /// Drops exited entries past the grace period, then the oldest exited ones past
    /// `max_exited`, then, if the table is still over `max_entries`, evicts as
    /// [`Self::shrink_to`] does. Returns how many entries went.
    pub fn evict_expired(&mut self, now: Instant) -> usize {
        let grace = self.config.exit_grace;
        let mut expired = 0;
        let mut exited: Vec<(Instant, ProcessKey)> = Vec::new();
        self.by_tgid.retain(|_, gens| {
            let before = gens.len();
            gens.retain(|p| match p.state {
                ProcessState::Exited { at, .. } => {
                    let keep = now.saturating_duration_since(at) < grace;
                    if keep {
                        exited.push((at, p.key));
                    }
                    keep
                }
                ProcessState::Running => true,
            });
            expired += before - gens.len();
            !gens.is_empty()
        });
        self.len -= expired;
        self.expired_total += expired as u64;
        let early = exited.len().saturating_sub(self.config.max_exited);
        if early > 0 {
            if early < exited.len() {
                exited.select_nth_unstable_by_key(early, |e| e.0);
            }
            for (_, key) in &exited[..early] {
                self.remove_exact(key);
            }
            self.evicted_total += early as u64;
        }
        let max = self.config.max_entries;
        let evicted = if self.len > max {
            self.shrink_to(max)
        } else {
            0
        };
        expired + early + evicted
    }

    /// Entries dropped before their time because the table was full (exited ones still within
    /// their grace period, and running ones), or because `max_exited` exited ones were kept.
    pub fn evicted_total(&self) -> u64 {
        self.evicted_total
    }

    /// The running subset of [`Self::evicted_total`]: events about them re-read `/proc` via
    /// `ensure`, but their exec history is lost.
    pub fn evicted_running_total(&self) -> u64 {
        self.evicted_running_total
    }

    /// Exited entries dropped at the end of their grace period (normal turnover).
    pub fn expired_total(&self) -> u64 {
        self.expired_total
    }

    /// Called before an insert when the table is full. Frees a sixteenth of the table at once so
    /// the O(n) selection runs once per many inserts rather than on every one.
    pub(super) fn make_room(&mut self) {
        let max = self.config.max_entries.max(1);
        if self.len >= max {
            self.shrink_to((max - max / 16).saturating_sub(1));
        }
    }

    /// Evicts down to `target` entries: exited ones first, earliest exit first, then running ones
    /// least recently seen first. (Oldest by start time would drop init and long-lived daemons,
    /// the ancestors of everything, which are cheap to keep and costly to lose.)
    pub(super) fn shrink_to(&mut self, target: usize) -> usize {
        let excess = self.len.saturating_sub(target);
        if excess == 0 {
            return 0;
        }
        let mut victims: Vec<(bool, Instant, ProcessKey)> = self
            .iter()
            .map(|p| match p.state {
                ProcessState::Exited { at, .. } => (false, at, p.key),
                ProcessState::Running => (true, p.last_seen, p.key),
            })
            .collect();
        if excess < victims.len() {
            victims.select_nth_unstable_by_key(excess, |v| (v.0, v.1));
            victims.truncate(excess);
        }
        let running = victims.iter().filter(|v| v.0).count();
        for (_, _, key) in &victims {
            self.remove_exact(key);
        }
        self.evicted_total += victims.len() as u64;
        self.evicted_running_total += running as u64;
        if running > 0 {
            warn!(
                running,
                max_entries = self.config.max_entries,
                "process table full: evicted running processes"
            );
        }
        victims.len()
    }

    fn remove_exact(&mut self, key: &ProcessKey) {
        let Some(gens) = self.by_tgid.get_mut(&key.tgid) else {
            return;
        };
        let before = gens.len();
        gens.retain(|p| p.key != *key);
        self.len -= before - gens.len();
        if gens.is_empty() {
            self.by_tgid.remove(&key.tgid);
        }
    }
}
