//! What the response stage decided about one process, on its way to the actor that carries it
//! out.

use std::fmt;

use crate::process::{ProcessKey, ProcessTable};
use crate::sequence::{BehaviourSequences, token_name};

/// Behaviour tokens kept in a quarantine's evidence.
const EVIDENCE_TOKENS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    Alert,
    Quarantine,
    Kill,
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Act::Alert => "alert",
            Act::Quarantine => "quarantine",
            Act::Kill => "kill",
        })
    }
}

/// The process a decision is about, as the table knew it at decision time.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub key: ProcessKey,
    pub ppid: u32,
    pub exe: String,
    pub comm: String,
    pub cmdline: Vec<String>,
    pub uid: u32,
    pub sha256: Option<String>,
    /// Parent first, then its parent... as (pid, exe or comm).
    pub ancestry: Vec<(u32, String)>,
    pub recent_tokens: Vec<String>,
    pub kernel_thread: bool,
}

impl Target {
    pub fn from_table(
        table: &ProcessTable,
        sequences: &BehaviourSequences,
        key: ProcessKey,
    ) -> Self {
        let mut t = Target {
            key,
            ..Default::default()
        };
        if let Some(p) = table.get_key(&key) {
            t.ppid = p.ppid;
            t.exe = p.exe.to_string();
            t.comm = p.comm.to_string();
            t.cmdline = p.cmdline.to_vec();
            t.uid = p.uid;
            t.sha256 = p.exe_sha256.as_deref().map(str::to_owned);
            t.kernel_thread = p.kernel_thread;
        }
        t.ancestry = table
            .ancestry(key.tgid)
            .into_iter()
            .map(|a| (a.pid, if a.exe.is_empty() { a.comm } else { a.exe }))
            .collect();
        t.recent_tokens = sequences
            .recent(&key, EVIDENCE_TOKENS)
            .into_iter()
            .map(|t| token_name(t).into_owned())
            .collect();
        t
    }

    /// `1234:/usr/bin/bash <- 1200:/usr/sbin/nginx <- 1:/sbin/init`
    pub fn ancestry_line(&self) -> String {
        let mut parts = vec![format!("{}:{}", self.key.tgid, self.exe)];
        parts.extend(
            self.ancestry
                .iter()
                .map(|(pid, exe)| format!("{pid}:{exe}")),
        );
        parts.join(" <- ")
    }
}

#[derive(Clone, Debug)]
pub struct Decision {
    pub act: Act,
    pub target: Target,
    /// The rule's name, or `model:<verdict>`.
    pub reason: String,
    pub score: Option<f32>,
    /// Why a stronger action was not taken (protected, monitor mode, rate limit, uncorroborated).
    pub held_back: Option<String>,
    /// The kernel already killed it at exec: record, do not signal again.
    pub killed_in_kernel: bool,
    /// For a quarantine: protected processes to leave out even if they descend from the target.
    pub spare: Vec<u32>,
    /// What the process did that a rule matched, for the operator: `connect to 203.0.113.7
    /// port 4444 (result -115)`, `ptrace PTRACE_ATTACH of pid 812 (result 0)`.
    pub detail: Option<String>,
}
