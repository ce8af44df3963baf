//! Parent links and ancestry.

use super::info::{Ancestor, ProcessInfo};
use super::table::ProcessTable;

/// Ancestry walks stop after this many hops: real trees are far shallower, and a bound keeps a
/// corrupt chain from costing more than a constant.
pub const MAX_ANCESTRY: usize = 64;

impl ProcessTable {
    /// The parent of `child`: by exact key when known; otherwise the newest process with the
    /// parent's pid that is not younger than the child (a younger one holds a recycled pid).
    pub fn parent_of(&self, child: &ProcessInfo) -> Option<&ProcessInfo> {
        match child.parent_key() {
            Some(k) => self.get_key(&k),
            None => self
                .by_tgid
                .get(&child.ppid)?
                .iter()
                .rev()
                .find(|p| p.key.start_ticks() <= child.key.start_ticks()),
        }
    }

    /// Ancestors of the newest process with `tgid`, nearest first, up to pid 1. An ancestor the
    /// table does not know ends the walk, listed with empty `exe`/`comm`. Bounded by
    /// [`MAX_ANCESTRY`] and safe against cycles.
    pub fn ancestry(&self, tgid: u32) -> Vec<Ancestor> {
        let mut out = Vec::new();
        let Some(mut cur) = self.get(tgid) else {
            return out;
        };
        let mut seen = vec![cur.key];
        while out.len() < MAX_ANCESTRY && cur.ppid != 0 {
            let Some(parent) = self.parent_of(cur) else {
                out.push(Ancestor {
                    pid: cur.ppid,
                    exe: String::new(),
                    comm: String::new(),
                });
                break;
            };
            if seen.iter().any(|k| k.same_process(&parent.key)) {
                tracing::debug!(tgid, at = parent.key.tgid, "cycle in process ancestry");
                break;
            }
            out.push(Ancestor {
                pid: parent.key.tgid,
                exe: parent.exe.to_string(),
                comm: parent.comm.to_string(),
            });
            if parent.key.tgid == 1 {
                break;
            }
            seen.push(parent.key);
            cur = parent;
        }
        out
    }

    /// Seeded entries know their parent's pid but not its start time; name the parent exactly
    /// now that the whole table is loaded, so a later pid reuse cannot confuse the link.
    pub(super) fn link_parents(&mut self) {
        let links: Vec<_> = self
            .iter()
            .filter(|p| p.parent_start_ns.is_none() && p.ppid != 0)
            .filter_map(|p| Some((p.key, self.parent_of(p)?.key.start_ns)))
            .collect();
        for (key, parent_start) in links {
            if let Some(gens) = self.by_tgid.get_mut(&key.tgid)
                && let Some(p) = gens.iter_mut().find(|p| p.key == key)
            {
                p.parent_start_ns = Some(parent_start);
            }
        }
    }
}
