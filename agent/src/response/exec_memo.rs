//! Exec rule answers remembered per distinct exec context. Every exec is matched twice (at the
//! exec, then with its digest), each time against the exec'd path and the running image, and
//! hosts exec the same few programs from the same parents over and over: the glob and regex
//! matching behind those answers was ~8% of vigil's CPU under an exec loop. Command lines
//! rarely repeat, so they are not part of the question: the memo keeps which rules hold on
//! everything else, and only their `cmdline` patterns are run per exec.

use std::{collections::HashMap, net::IpAddr, sync::Arc};

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
    /// Only for children of a network server (`ExecContext::parent_accepted`).
    pub served_by: Option<Served>,
}

/// The network server that started a program: its parent, or the parent of the worker it
/// forked to handle a connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Served {
    pub server: Arc<str>,
    pub server_pid: u32,
    /// The peer of the last connection it accepted. No port: one per connection would give
    /// every child of a busy server its own memo entry.
    pub from: IpAddr,
}

impl Served {
    /// For the incident's detail.
    pub fn describe(&self) -> String {
        format!(
            "started by the network server {} (pid {}), which last accepted a connection from {}",
            self.server, self.server_pid, self.from
        )
    }
}

/// Rule name and action of each exec rule that matched.
pub(super) type ExecHits = Vec<(String, Action)>;

/// An exec rule whose conditions other than `cmdline` held for one context.
#[derive(Clone, Debug)]
struct Candidate {
    name: String,
    action: Action,
    index: u32,
    /// Whether it has a `cmdline` condition left to check per exec.
    cmdline: bool,
}

/// Distinct contexts remembered before the memo starts over: paths that never repeat (a fresh
/// temp dir per run) must not grow it without bound.
const MAX_ENTRIES: usize = 4096;

/// Answers of one policy: a pushed policy starts an empty memo.
#[derive(Default)]
pub(super) struct ExecMemo {
    policy: Option<Arc<Policy>>,
    answers: HashMap<(ExecSeen, Option<String>), Vec<Candidate>>,
}

impl ExecMemo {
    /// The exec rules `policy` matches for this context and argv, deduplicated by rule name.
    pub fn hits(
        &mut self,
        policy: &Arc<Policy>,
        seen: &ExecSeen,
        sha256: Option<&str>,
        argv: &[String],
    ) -> ExecHits {
        if !self.policy.as_ref().is_some_and(|p| Arc::ptr_eq(p, policy)) {
            self.policy = Some(Arc::clone(policy));
            self.answers.clear();
        }
        let key = (seen.clone(), sha256.map(str::to_owned));
        let candidates = match self.answers.get(&key) {
            Some(c) => c,
            None => {
                let c = candidates(policy, seen, sha256);
                if self.answers.len() >= MAX_ENTRIES {
                    self.answers.clear();
                }
                self.answers.entry(key).or_insert(c)
            }
        };
        // Joined only when a pattern is left to run: most execs meet no `cmdline` rule.
        let mut cmdline: Option<String> = None;
        candidates
            .iter()
            .filter(|c| {
                !c.cmdline
                    || policy.exec_cmdline_matches(c.index, cmdline.get_or_insert_with(|| argv.join(" ")))
            })
            .map(|c| (c.name.clone(), c.action))
            .collect()
    }
}

/// Exec rules whose conditions but `cmdline` hold for the exec'd name or the running image
/// (deduplicated by rule name).
fn candidates(policy: &Policy, seen: &ExecSeen, sha256: Option<&str>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for path in std::iter::once(seen.filename.as_str()).chain(seen.image.as_deref()) {
        let ctx = context(seen, path, sha256, None);
        for (r, cmdline) in policy.exec_rules_but_cmdline(&ctx) {
            if !out.iter().any(|c| c.name == r.name) {
                out.push(Candidate { name: r.name.to_owned(), action: r.action, index: r.index, cmdline });
            }
        }
    }
    out
}

fn context<'a>(
    seen: &'a ExecSeen,
    path: &'a str,
    sha256: Option<&'a str>,
    cmdline: Option<&'a str>,
) -> ExecContext<'a> {
    ExecContext {
        path,
        sha256,
        parent_exe: seen.parent_exe.as_deref(),
        stdio_socket: seen.stdio_socket,
        parent_stdio_socket: seen.parent_stdio_socket,
        parent_accepted: seen.served_by.is_some(),
        image_changed_secs_ago: seen.image_changed_secs_ago,
        downloaded_by: seen.download.as_ref().map(|d| d.downloader.as_ref()),
        cmdline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule matched in full for each exec: what the memo must answer.
    fn exec_hits(policy: &Policy, seen: &ExecSeen, sha256: Option<&str>, cmdline: &str) -> ExecHits {
        let mut hits: ExecHits = Vec::new();
        for path in std::iter::once(seen.filename.as_str()).chain(seen.image.as_deref()) {
            for r in policy.exec_rules(&context(seen, path, sha256, Some(cmdline))) {
                if !hits.iter().any(|(n, _)| n == r.name) {
                    hits.push(r.owned());
                }
            }
        }
        hits
    }

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

[[rule.exec]]
name = "interactive-shell-from-web"
action = "kill"
path = ["/usr/bin/*sh"]
parent = ["/usr/sbin/nginx"]
cmdline = [" -i( |$)"]

[[rule.exec]]
name = "miner-args"
action = "alert"
cmdline = ["stratum[+]tcp://"]

[[rule.exec]]
name = "server-shell"
action = "alert"
path = ["/usr/bin/*sh"]
parent_accepted = true
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
            served_by: None,
        }
    }

    fn argv(cmdline: &str) -> Vec<String> {
        cmdline.split(' ').map(str::to_owned).collect()
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
            ExecSeen {
                served_by: Some(Served { server: "/usr/bin/python3".into(), server_pid: 7, from: IpAddr::from([127, 0, 0, 1]) }),
                ..seen("/usr/bin/bash", "/usr/bin/python3")
            },
            seen("/usr/bin/bash", "/usr/bin/python3"),
        ];
        // Asked twice each, interleaved: the second answers come from the memo.
        for _ in 0..2 {
            for s in &cases {
                assert_eq!(memo.hits(&p, s, None, &argv("x")), exec_hits(&p, s, None, "x"), "{s:?}");
            }
        }
        assert_eq!(names(&memo.hits(&p, &cases[0], None, &argv("x"))), ["shell-from-web"]);
        assert!(memo.hits(&p, &cases[1], None, &argv("x")).is_empty());
        assert_eq!(names(&memo.hits(&p, &cases[3], None, &argv("x"))), ["tmp-binaries"]);
        assert_eq!(names(&memo.hits(&p, &cases[4], None, &argv("x"))), ["server-shell"]);
        assert!(memo.hits(&p, &cases[5], None, &argv("x")).is_empty(), "the same exec, no server");
    }

    #[test]
    fn a_digest_is_part_of_the_question() {
        let digest = "ab".repeat(32);
        let p = policy(&format!(
            "[[rule.exec]]\nname = \"known-bad\"\naction = \"kill\"\nsha256 = [\"{digest}\"]\n"
        ));
        let mut memo = ExecMemo::default();
        let s = seen("/usr/bin/true", "/usr/bin/bash");
        assert!(memo.hits(&p, &s, None, &argv("x")).is_empty());
        assert_eq!(names(&memo.hits(&p, &s, Some(&digest), &argv("x"))), ["known-bad"]);
        assert!(memo.hits(&p, &s, Some(&"cd".repeat(32)), &argv("x")).is_empty());
    }

    #[test]
    fn a_new_policy_is_asked_afresh() {
        let mut memo = ExecMemo::default();
        let s = seen("/tmp/x", "/usr/bin/bash");
        assert_eq!(names(&memo.hits(&policy(RULES), &s, None, &argv("x"))), ["tmp-binaries"]);
        // Same text, new policy object (a push): nothing carried over from the old one.
        let quiet = policy("[[rule.exec]]\nname = \"other\"\naction = \"alert\"\npath = [\"/opt/**\"]\n");
        assert!(memo.hits(&quiet, &s, None, &argv("x")).is_empty());
    }

    #[test]
    fn the_memo_stays_bounded() {
        let p = policy(RULES);
        let mut memo = ExecMemo::default();
        for i in 0..MAX_ENTRIES + 10 {
            let s = seen(&format!("/tmp/run-{i}/a.out"), "/usr/bin/bash");
            assert_eq!(names(&memo.hits(&p, &s, None, &argv("x"))), ["tmp-binaries"]);
            assert!(memo.answers.len() <= MAX_ENTRIES);
        }
    }

    #[test]
    fn command_lines_are_checked_per_exec_behind_the_remembered_answer() {
        let p = policy(RULES);
        let mut memo = ExecMemo::default();
        let web = seen("/usr/bin/bash", "/usr/sbin/nginx");
        let other = seen("/usr/bin/bash", "/usr/sbin/sshd");
        let cases = [
            (&web, "bash -c id"),
            (&web, "bash -i"),
            (&web, "bash -c 'exec bash -i'"),
            (&other, "bash -i"),
            (&other, "bash -c ./m -o stratum+tcp://127.0.0.1:3333"),
            (&web, "bash -c ./m -o stratum+tcp://127.0.0.1:3333 -i"),
        ];
        // The same contexts over and over with other command lines: one memo entry per
        // context, and every answer the full matching's.
        for _ in 0..2 {
            for (s, cmdline) in cases {
                assert_eq!(memo.hits(&p, s, None, &argv(cmdline)), exec_hits(&p, s, None, cmdline), "{s:?} {cmdline}");
            }
        }
        assert_eq!(memo.answers.len(), 2);
        assert_eq!(names(&memo.hits(&p, &web, None, &argv("bash -c id"))), ["shell-from-web"]);
        assert_eq!(names(&memo.hits(&p, &web, None, &argv("bash -i"))), ["shell-from-web", "interactive-shell-from-web"]);
        assert!(memo.hits(&p, &other, None, &argv("bash -i")).is_empty());
        assert_eq!(names(&memo.hits(&p, &other, None, &argv(cases[4].1))), ["miner-args"]);
        assert_eq!(
            names(&memo.hits(&p, &web, None, &argv(cases[5].1))),
            ["shell-from-web", "interactive-shell-from-web", "miner-args"]
        );
    }
}
