//! [`Incident`]: one journal entry's worth of facts, and the journal fields they become.

use super::IncidentKind;

/// What happened, to which process, and what vigil did about it. Unknown facts stay `None` and
/// their fields are omitted: an empty `VIGIL_EXE=` would read as "the exe is the empty string".
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub kind: IncidentKind,
    /// syslog priority 0..=7; `None` means the kind's default.
    pub priority: Option<u8>,
    /// One human line, e.g. `vigil: quarantined pid 1234 (/usr/bin/bash) by rule shell-on-socket
    /// [q-20261125-0001]`.
    pub message: String,
    pub pid: Option<u32>,
    pub ppid: Option<u32>,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    pub uid: Option<u32>,
    pub sha256: Option<String>,
    pub score: Option<f32>,
    /// The model or rule that fired.
    pub reason: Option<String>,
    /// `1234:/usr/bin/bash <- 1200:/usr/sbin/nginx <- 1:/sbin/init`.
    pub ancestry: Option<String>,
    pub quarantine_id: Option<String>,
    /// `monitor` or `enforce`.
    pub mode: Option<String>,
    /// `applied`, `would-act (monitor)`, `failed: <why>`, `suppressed`.
    pub outcome: Option<String>,
    /// Further fields, e.g. `VIGIL_POLICY_VERSION` or `VIGIL_LOST`; names must be valid journal
    /// field names or `send` refuses the entry.
    pub extra: Vec<(String, String)>,
}

impl Incident {
    pub fn new(kind: IncidentKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            priority: None,
            message: message.into(),
            pid: None,
            ppid: None,
            exe: None,
            cmdline: None,
            uid: None,
            sha256: None,
            score: None,
            reason: None,
            ancestry: None,
            quarantine_id: None,
            mode: None,
            outcome: None,
            extra: Vec::new(),
        }
    }

    /// The priority this entry is sent with (clamped to syslog's 0..=7).
    pub fn effective_priority(&self) -> u8 {
        self.priority
            .unwrap_or_else(|| self.kind.default_priority())
            .min(7)
    }

    /// Every journal field of the entry, in the order sent.
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut fields = Vec::with_capacity(20 + self.extra.len());
        let mut push = |name: &str, value: Option<String>| {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                fields.push((name.to_string(), value));
            }
        };
        push("MESSAGE", Some(self.message.clone()));
        push("MESSAGE_ID", Some(self.kind.message_id().to_string()));
        push("PRIORITY", Some(self.effective_priority().to_string()));
        push("SYSLOG_IDENTIFIER", Some("vigil".to_string()));
        push("VIGIL_EVENT", Some(self.kind.as_str().to_string()));
        push("VIGIL_PID", self.pid.map(|v| v.to_string()));
        push("VIGIL_PPID", self.ppid.map(|v| v.to_string()));
        push("VIGIL_EXE", self.exe.clone());
        push("VIGIL_CMDLINE", self.cmdline.clone());
        push("VIGIL_UID", self.uid.map(|v| v.to_string()));
        push("VIGIL_SHA256", self.sha256.clone());
        // NaN means the scorer had no verdict: as unknown as None.
        push(
            "VIGIL_SCORE",
            self.score.filter(|s| s.is_finite()).map(|s| s.to_string()),
        );
        push("VIGIL_REASON", self.reason.clone());
        push("VIGIL_ANCESTRY", self.ancestry.clone());
        push("VIGIL_QUARANTINE_ID", self.quarantine_id.clone());
        push("VIGIL_MODE", self.mode.clone());
        push("VIGIL_ACTION_OUTCOME", self.outcome.clone());
        for (name, value) in &self.extra {
            push(name, Some(value.clone()));
        }
        fields
    }

    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    pub fn with_pid(mut self, pid: u32) -> Self {
        self.pid = Some(pid);
        self
    }

    pub fn with_ppid(mut self, ppid: u32) -> Self {
        self.ppid = Some(ppid);
        self
    }

    pub fn with_exe(mut self, exe: impl Into<String>) -> Self {
        self.exe = Some(exe.into());
        self
    }

    pub fn with_cmdline(mut self, cmdline: impl Into<String>) -> Self {
        self.cmdline = Some(cmdline.into());
        self
    }

    pub fn with_uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    pub fn with_sha256(mut self, sha256: impl Into<String>) -> Self {
        self.sha256 = Some(sha256.into());
        self
    }

    pub fn with_score(mut self, score: f32) -> Self {
        self.score = Some(score);
        self
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn with_ancestry(mut self, ancestry: impl Into<String>) -> Self {
        self.ancestry = Some(ancestry.into());
        self
    }

    pub fn with_quarantine_id(mut self, id: impl Into<String>) -> Self {
        self.quarantine_id = Some(id.into());
        self
    }

    pub fn with_mode(mut self, mode: impl Into<String>) -> Self {
        self.mode = Some(mode.into());
        self
    }

    pub fn with_outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = Some(outcome.into());
        self
    }

    /// Adds a field such as `VIGIL_POLICY_VERSION` or `VIGIL_LOST`.
    pub fn with_extra(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::PRIORITY_ESCALATED_ALERT;
    use super::*;

    fn names(fields: &[(String, String)]) -> Vec<&str> {
        fields.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn unknown_and_empty_values_are_omitted() {
        let fields = Incident::new(IncidentKind::Loss, "vigil: lost 3 events")
            .with_exe("")
            .with_score(f32::NAN)
            .with_extra("VIGIL_LOST", "ringbuf=3")
            .fields();
        assert_eq!(
            names(&fields),
            [
                "MESSAGE",
                "MESSAGE_ID",
                "PRIORITY",
                "SYSLOG_IDENTIFIER",
                "VIGIL_EVENT",
                "VIGIL_LOST"
            ]
        );
    }

    #[test]
    fn kind_sets_event_id_and_default_priority() {
        let want = [
            (IncidentKind::Alert, "alert", 4),
            (IncidentKind::Kill, "kill", 2),
            (IncidentKind::Quarantine, "quarantine", 2),
            (IncidentKind::Release, "release", 5),
            (IncidentKind::Policy, "policy", 5),
            (IncidentKind::Loss, "loss", 4),
        ];
        for (kind, event, priority) in want {
            let fields = Incident::new(kind, "m").fields();
            let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            assert_eq!(get("VIGIL_EVENT").as_deref(), Some(event));
            assert_eq!(get("PRIORITY"), Some(priority.to_string()));
            assert_eq!(get("MESSAGE_ID").as_deref(), Some(kind.message_id()));
        }
        let escalated =
            Incident::new(IncidentKind::Alert, "m").with_priority(PRIORITY_ESCALATED_ALERT);
        assert_eq!(escalated.effective_priority(), 2);
    }

    #[test]
    fn message_ids_are_distinct_lowercase_128_bit_hex() {
        let ids: std::collections::HashSet<_> =
            IncidentKind::ALL.iter().map(|k| k.message_id()).collect();
        assert_eq!(ids.len(), IncidentKind::ALL.len());
        for id in ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
        }
    }
}
