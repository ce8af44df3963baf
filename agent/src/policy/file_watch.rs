//! Which inodes the kernel watches for `rule.file`: each rule's globs resolved against the
//! filesystem as it is now. The kernel reports an open when the file, or one of its directories
//! within a watch's depth, is watched for that access; user space then matches the rebuilt path
//! against the rules' globs, so a watch only has to cover its globs, never to be exact.
//!
//! - An existing path a glob names is watched itself; `**` watches the directory's subtree.
//! - A wildcard component is expanded over the directory's entries as they are now. When it is
//!   the glob's last component and the rule is about writing, the directory is watched one level
//!   down as well: a new cron job or unit file is a write that creates a name. A rule only about
//!   changes then needs no entry watched by itself but symlinks, whose writes land elsewhere.
//! - A literal path that does not exist yet is covered, for writing, by its nearest existing
//!   directory down to its depth: writing `/etc/ld.so.preload` creates it. Reads of something
//!   missing cannot happen; once it exists the next resolution (on policy change and every
//!   minute) watches it.
//! - Nothing below `/dev` is watched for creation: device nodes are made by the kernel and
//!   udev, not by an open that writes, and `/dev` holds `/dev/null`, which every `>/dev/null`
//!   on the host writes. Its device nodes themselves are watched (raw disks, `/dev/mem`).
//! - Wildcard directories (`/home/*/.ssh/...`) are expanded, not watched: a home created later
//!   is picked up at the next resolution. Watching `/home` itself three levels down would send
//!   every write in every home to user space.

use std::fs;
use std::path::PathBuf;

use agent_common::FILE_WATCH_MAX_DEPTH;
use globset::GlobBuilder;

use super::glob::is_literal;
use super::policy::Policy;
use super::rules::FileAccess;

/// A path to watch, with what to report about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedWatch {
    pub path: PathBuf,
    pub access: FileAccess,
    /// 0: the path itself; n: also anything up to n levels below it.
    pub max_depth: u32,
}

/// Directory entries read while expanding wildcards, over the whole policy: a glob over a huge
/// tree must not stall a policy load.
const MAX_ENTRIES_SCANNED: usize = 100_000;

const MAX_DEPTH: u32 = FILE_WATCH_MAX_DEPTH as u32;

impl Policy {
    /// The watches `rule.file` needs, resolved against the filesystem now.
    pub fn file_watch_plan(&self) -> Vec<PlannedWatch> {
        let mut planner = Planner::default();
        for rule in &self.file {
            for pattern in rule.path.patterns() {
                planner.pattern(pattern, rule.access);
            }
        }
        if planner.scanned > MAX_ENTRIES_SCANNED {
            tracing::warn!(
                limit = MAX_ENTRIES_SCANNED,
                "file rules: stopped expanding globs after this many directory entries; \
                 some existing files may be unwatched (narrow the rules' wildcards)"
            );
        }
        planner.out
    }
}

#[derive(Default)]
struct Planner {
    out: Vec<PlannedWatch>,
    scanned: usize,
}

impl Planner {
    fn pattern(&mut self, pattern: &str, access: FileAccess) {
        let writes = FileAccess::from_bits(access.bits() & FileAccess::CHANGES.bits());
        let creations = if pattern.starts_with("/dev/") { FileAccess::default() } else { writes };
        let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
        let mut frontier = vec![(PathBuf::from("/"), 0usize)];
        while let Some((dir, i)) = frontier.pop() {
            let Some(&comp) = comps.get(i) else {
                self.watch(dir, access, 0);
                continue;
            };
            let rest = &comps[i..];
            if comp == "**" {
                self.watch(dir, access, MAX_DEPTH);
                continue;
            }
            if is_literal(comp) {
                let child = dir.join(comp);
                if fs::metadata(&child).is_ok() {
                    frontier.push((child, i + 1));
                } else if creations != FileAccess::default() {
                    self.watch(dir, creations, depth_of(rest));
                }
                continue;
            }
            let Ok(glob) = GlobBuilder::new(comp)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
            else {
                continue;
            };
            let matcher = glob.compile_matcher();
            // A last wildcard of a rule only about changes: the directory's own watch, one
            // level down (below), sees every write of a file in it, so the files are not
            // watched one by one (`/usr/bin/*` would be a thousand inodes). A symlink still is:
            // its target lies elsewhere, where a write through it lands.
            let directory_covers = rest.len() == 1 && creations == access;
            if let Ok(entries) = fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    self.scanned += 1;
                    if self.scanned > MAX_ENTRIES_SCANNED {
                        break;
                    }
                    if directory_covers && !entry.file_type().is_ok_and(|t| t.is_symlink()) {
                        continue;
                    }
                    if entry
                        .file_name()
                        .to_str()
                        .is_some_and(|n| matcher.is_match(n))
                    {
                        frontier.push((entry.path(), i + 1));
                    }
                }
            }
            if rest.len() == 1 && creations != FileAccess::default() {
                self.watch(dir, creations, 1);
            }
        }
    }

    fn watch(&mut self, path: PathBuf, access: FileAccess, max_depth: u32) {
        self.out.push(PlannedWatch {
            path,
            access,
            max_depth,
        });
    }
}

/// Levels below a directory that the remaining components can reach.
fn depth_of(rest: &[&str]) -> u32 {
    if rest.contains(&"**") {
        MAX_DEPTH
    } else {
        (rest.len() as u32).min(MAX_DEPTH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan(dir: &Path, rules: &str) -> Vec<PlannedWatch> {
        let text = rules.replace("@", &dir.display().to_string());
        let policy = Policy::from_sources(&[("t.toml".into(), text)]).expect("valid policy");
        let mut p = policy.file_watch_plan();
        p.sort_by_key(|w| (w.path.clone(), w.max_depth, w.access.bits()));
        p
    }

    fn w(path: PathBuf, access: FileAccess, max_depth: u32) -> PlannedWatch {
        PlannedWatch {
            path,
            access,
            max_depth,
        }
    }

    const R: FileAccess = FileAccess::READ;
    const W: FileAccess = FileAccess::WRITE;

    #[test]
    fn existing_files_are_watched_themselves_and_missing_ones_through_their_directory() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("shadow"), "").unwrap();
        let p = plan(
            d.path(),
            r#"
            [[rule.file]]
            name = "creds"
            action = "alert"
            path = ["@/shadow", "@/missing"]
            access = ["read"]

            [[rule.file]]
            name = "preload"
            action = "alert"
            path = ["@/ld.so.preload", "@/no/such/dir/file"]
            access = ["write"]
            "#,
        );
        assert_eq!(
            p,
            vec![
                // Writing a missing file creates it: its nearest existing directory is watched
                // as deep as the file would be. Reading a missing file is not planned at all.
                w(d.path().to_path_buf(), W, 1),
                w(d.path().to_path_buf(), W, 4),
                w(d.path().join("shadow"), R, 0),
            ]
        );
    }

    #[test]
    fn wildcards_expand_over_what_exists_and_a_last_wildcard_watches_its_directory_for_writes_and_links() {
        let d = tempfile::tempdir().unwrap();
        for user in ["alice", "bob"] {
            fs::create_dir_all(d.path().join(format!("home/{user}/.ssh"))).unwrap();
        }
        fs::write(d.path().join("home/alice/.ssh/id_ed25519"), "").unwrap();
        fs::create_dir_all(d.path().join("cron.d")).unwrap();
        fs::write(d.path().join("cron.d/job"), "").unwrap();
        fs::write(d.path().join("elsewhere"), "").unwrap();
        std::os::unix::fs::symlink(d.path().join("elsewhere"), d.path().join("cron.d/linked")).unwrap();
        let p = plan(
            d.path(),
            r#"
            [[rule.file]]
            name = "keys"
            action = "alert"
            path = ["@/home/*/.ssh/id_*"]
            access = ["read"]

            [[rule.file]]
            name = "cron"
            action = "alert"
            path = ["@/cron.d/*", "@/logs/**"]
            access = ["write", "truncate"]
            "#,
        );
        let wt = W.union(FileAccess::TRUNCATE);
        assert_eq!(
            p,
            vec![
                // `logs` does not exist: for writes its parent is watched down to any depth.
                w(d.path().to_path_buf(), wt, MAX_DEPTH),
                // The directory sees writes of `job` in it; a write through `linked` lands on
                // its target, watched through the link.
                w(d.path().join("cron.d"), wt, 1),
                w(d.path().join("cron.d/linked"), wt, 0),
                w(d.path().join("home/alice/.ssh/id_ed25519"), R, 0),
            ]
        );
    }

    #[test]
    fn device_globs_watch_the_devices_and_never_dev_itself() {
        // The host's own /dev: what exists varies, but `null` and `loop-control` always do and
        // never match; loop devices are made at boot on every Debian kernel.
        let p = plan(
            Path::new("/"),
            r#"
            [[rule.file]]
            name = "disks"
            action = "alert"
            path = ["/dev/loop[0-9]*", "/dev/not-a-device", "/dev/null-*"]
            access = ["read", "write"]
            "#,
        );
        assert!(p.iter().all(|w| w.path.to_string_lossy().starts_with("/dev/loop") && w.max_depth == 0), "{p:?}");
        if Path::new("/dev/loop0").exists() {
            assert!(p.contains(&w("/dev/loop0".into(), R.union(W), 0)), "{p:?}");
        }
    }

    #[test]
    fn subtree_globs_watch_the_directory_to_the_walk_limit() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("log/nginx")).unwrap();
        let p = plan(
            d.path(),
            r#"
            [[rule.file]]
            name = "logs"
            action = "alert"
            path = ["@/log/**"]
            access = ["truncate"]
            "#,
        );
        assert_eq!(
            p,
            vec![w(d.path().join("log"), FileAccess::TRUNCATE, MAX_DEPTH)]
        );
    }
}
