//! Exec rule answers remembered per distinct exec context. Every exec is matched twice (at the
//! exec, then with its digest), each time against the exec'd path and the running image, and
//! hosts exec the same few programs from the same parents over and over: the glob and regex
//! matching behind those answers was ~8% of vigil's CPU under an exec loop.

use std::{collections::HashMap, sync::Arc};

use super::downloads::Download;
use crate::policy::{Action, ExecContext, Policy};

/// What an exec showed that the table does not keep, for rules that can only be checked later
/// (sha256 arrives from the hasher after the exec).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct ExecSeen {
    pub filename: String,
    pub image: Option<String>,
    pub parent_exe: Option<String>,
    pub stdio_socket: bool,
    pub parent_stdio_socket: bool,
    /// Only for images changed within the policy's longest `changed_within`, so that the
    /// host's settled binaries, nearly every exec, still share their memo entries.
    pub image_changed_secs_ago: Option<u64>,
    /// Only for images a network client wrote: rare, so they cost the memo nothing.
    pub download: Option<Download>,
}

/// Rule name and action of each exec rule that matched.
pub(super) type ExecHits = Vec<(String, Action)>;

/// Distinct contexts remembered before the memo starts over: paths that never repeat (a fresh
/// temp dir per run) must not grow it without bound.
const MAX_ENTRIES: usize = 4096;

/// Answers of one policy: a pushed policy starts an empty memo.
#[derive(Default)]
pub(super) struct ExecMemo {
    policy: Option<Arc<Policy>>,
    answers: HashMap<(ExecSeen, Option<String>), ExecHits>,
}

impl ExecMemo {
    /// The exec rules `policy` matches for this context, as [`exec_hits`] finds them.
    pub fn hits(&mut self, policy: &Arc<Policy>, seen: &ExecSeen, sha256: Option<&str>) -> ExecHits {
        if !self.policy.as_ref().is_some_and(|p| Arc::ptr_eq(p, policy)) {
            self.policy = Some(Arc::clone(policy));
            self.answers.clear();
        }
        let key = (seen.clone(), sha256.map(str::to_owned));
        if let Some(hits) = self.answers.get(&key) {
            return hits.clone();
        }
        let hits = exec_hits(policy, seen, sha256);
        if self.answers.len() >= MAX_ENTRIES {
            self.answers.clear();
        }
        self.answers.insert(key, hits.clone());
        hits
    }
}

/// Exec rules matching the exec'd name or the running image (deduplicated by rule name).
pub(super) fn exec_hits(policy: &Policy, seen: &ExecSeen, sha256: Option<&str>) -> ExecHits {
    let mut hits: ExecHits = Vec::new();
    for path in std::iter::once(seen.filename.as_str()).chain(seen.image.as_deref()) {
        let ctx = ExecContext {
            path,
            sha256,
            parent_exe: seen.parent_exe.as_deref(),
            stdio_socket: seen.stdio_socket,
            parent_stdio_socket: seen.parent_stdio_socket,
            image_changed_secs_ago: seen.image_changed_secs_ago,
            downloaded_by: seen.download.as_ref().map(|d| d.downloader.as_ref()),
        };
        for r in policy.exec_rules(&ctx) {
            if !hits.iter().any(|(n, _)| n == r.name) {
                hits.push(r.owned());
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
[[rule.exec]]
name = "tmp-binaries"
action = "alert"
path = ["/tmp/**"]

[[rule.exec]]
name = "shell-from-web"
action = "kill"
path = ["/usr/bin/*sh"]
parent = ["/usr/sbin/nginx"]
"#;

    fn policy(text: &str) -> Arc<Policy> {
        Arc::new(Policy::from_sources(&[("/test/policy.toml".into(), text.into())]).expect("policy"))
    }

    fn seen(filename: &str, parent: &str) -> ExecSeen {
        ExecSeen {
            filename: filename.into(),
            image: None,
            parent_exe: Some(parent.into()),
            stdio_socket: false,
            parent_stdio_socket: false,
            image_changed_secs_ago: None,
            download: None,
        }
    }

    fn names(hits: &ExecHits) -> Vec<&str> {
        hits.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn remembered_answers_are_the_matched_ones_for_every_part_of_the_context() {
        let p = policy(RULES);
        let mut memo = ExecMemo::default();
        let cases = [
            seen("/usr/bin/bash", "/usr/sbin/nginx"),
            seen("/usr/bin/bash", "/usr/sbin/sshd"),
            seen("/tmp/x", "/usr/bin/bash"),
            ExecSeen { image: Some("/tmp/y".into()), ..seen("/usr/bin/env", "/usr/bin/bash") },
        ];
        // Asked twice each, interleaved: the second answers come from the memo.
        for _ in 0..2 {
            for s in &cases {
                assert_eq!(memo.hits(&p, s, None), exec_hits(&p, s, None), "{s:?}");
            }
        }
        assert_eq!(names(&memo.hits(&p, &cases[0], None)), ["shell-from-web"]);
        assert!(memo.hits(&p, &cases[1], None).is_empty());
        assert_eq!(names(&memo.hits(&p, &cases[3], None)), ["tmp-binaries"]);
    }

    #[test]
    fn a_digest_is_part_of_the_question() {
        let digest = "ab".repeat(32);
        let p = policy(&format!(
            "[[rule.exec]]\nname = \"known-bad\"\naction = \"kill\"\nsha256 = [\"{digest}\"]\n"
        ));
        let mut memo = ExecMemo::default();
        let s = seen("/usr/bin/true", "/usr/bin/bash");
        assert!(memo.hits(&p, &s, None).is_empty());
        assert_eq!(names(&memo.hits(&p, &s, Some(&digest))), ["known-bad"]);
        assert!(memo.hits(&p, &s, Some(&"cd".repeat(32))).is_empty());
    }

    #[test]
    fn a_new_policy_is_asked_afresh() {
        let mut memo = ExecMemo::default();
        let s = seen("/tmp/x", "/usr/bin/bash");
        assert_eq!(names(&memo.hits(&policy(RULES), &s, None)), ["tmp-binaries"]);
        // Same text, new policy object (a push): nothing carried over from the old one.
        let quiet = policy("[[rule.exec]]\nname = \"other\"\naction = \"alert\"\npath = [\"/opt/**\"]\n");
        assert!(memo.hits(&quiet, &s, None).is_empty());
    }

    #[test]
    fn the_memo_stays_bounded() {
        let p = policy(RULES);
        let mut memo = ExecMemo::default();
        for i in 0..MAX_ENTRIES + 10 {
            let s = seen(&format!("/tmp/run-{i}/a.out"), "/usr/bin/bash");
            assert_eq!(names(&memo.hits(&p, &s, None)), ["tmp-binaries"]);
            assert!(memo.answers.len() <= MAX_ENTRIES);
        }
    }
}
