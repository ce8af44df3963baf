//! The per-process state of the behaviour detectors (`port_scan`, `mass_replace`): kept for the
//! process and its ancestors, dropped when a process exits, and bounded: when the table is
//! full, processes idle for a window are forgotten, and a new one that still finds no room is
//! not followed, and counted.

use std::{
    collections::HashMap,
    hash::Hash,
    ops::Index,
    time::{Duration, Instant},
};

/// A detector's state for one process.
pub(super) trait Activity: Default {
    /// When the process last added to it.
    fn last(&self) -> Option<Instant>;
}

pub(super) struct Actors<Id, T> {
    map: HashMap<Id, T>,
    max: usize,
    /// Idle longer than this, a process may be forgotten to make room.
    idle: Duration,
    /// Processes not followed because the table was full of active ones.
    pub untracked: u64,
}

impl<Id: Hash + Eq + Copy, T: Activity> Actors<Id, T> {
    pub fn new(max: usize, idle: Duration) -> Self {
        Actors {
            map: HashMap::new(),
            max,
            idle,
            untracked: 0,
        }
    }

    /// The state of `id`, made if there is room; `None` (counted) when there is none.
    pub fn follow(&mut self, id: Id, now: Instant) -> Option<&mut T> {
        if !self.map.contains_key(&id) && !self.make_room(now) {
            self.untracked += 1;
            return None;
        }
        Some(self.map.entry(id).or_default())
    }

    pub fn get(&self, id: &Id) -> Option<&T> {
        self.map.get(id)
    }

    pub fn set(&mut self, id: Id, state: T) {
        self.map.insert(id, state);
    }

    pub fn remove(&mut self, id: &Id) {
        self.map.remove(id);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn make_room(&mut self, now: Instant) -> bool {
        if self.map.len() < self.max {
            return true;
        }
        let idle = self.idle;
        self.map
            .retain(|_, s| s.last().is_some_and(|t| now.duration_since(t) <= idle));
        self.map.len() < self.max
    }
}

impl<Id: Hash + Eq, T> Index<&Id> for Actors<Id, T> {
    type Output = T;

    fn index(&self, id: &Id) -> &T {
        &self.map[id]
    }
}
