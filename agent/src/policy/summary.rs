//! The policy as JSON, for `vigil policy show`.

use serde_json::{Value, json};

use super::glob::GlobList;
use super::policy::Policy;
use super::protected::BUILTIN_PROTECTED_EXE;

impl Policy {
    pub fn summary(&self) -> Value {
        let exec = self.exec.iter().map(|r| {
            let mut when = serde_json::Map::new();
            if let Some(p) = &r.path {
                when.insert("path".into(), globs(p));
            }
            if let Some(h) = &r.sha256 {
                when.insert("sha256".into(), json!(h));
            }
            if let Some(p) = &r.parent {
                when.insert("parent".into(), globs(p));
            }
            if let Some(c) = &r.cmdline {
                when.insert("cmdline".into(), json!(c.patterns()));
            }
            if let Some(c) = &r.except_cmdline {
                when.insert("except_cmdline".into(), json!(c.patterns()));
            }
            if r.stdio_socket {
                when.insert("stdio_socket".into(), json!(true));
            }
            if r.parent_stdio_socket {
                when.insert("parent_stdio_socket".into(), json!(true));
            }
            if r.parent_accepted {
                when.insert("parent_accepted".into(), json!(true));
            }
            if let Some(w) = r.changed_within {
                when.insert("changed_within".into(), json!(w));
            }
            if r.downloaded {
                when.insert("downloaded".into(), json!(true));
            }
            if let Some(x) = &r.except_downloader {
                when.insert("except_downloader".into(), globs(x));
            }
            json!({ "name": r.name, "kind": "exec", "action": r.action, "conditions": when })
        });
        let connect = self.connect.iter().map(|r| {
            let mut when = serde_json::Map::new();
            if let Some(a) = &r.addr {
                when.insert(
                    "addr".into(),
                    json!(a.iter().map(|n| n.to_string()).collect::<Vec<_>>()),
                );
            }
            if let Some(p) = &r.ports {
                when.insert("ports".into(), json!(p));
            }
            if let Some(e) = &r.exe {
                when.insert("exe".into(), globs(e));
            }
            json!({ "name": r.name, "kind": "connect", "action": r.action, "conditions": when })
        });
        let event = self.event.iter().map(|r| {
            let mut when = serde_json::Map::new();
            when.insert("event".into(), json!(r.events));
            if let Some(e) = &r.exe {
                when.insert("exe".into(), globs(e));
            }
            if let Some(e) = &r.except_exe {
                when.insert("except_exe".into(), globs(e));
            }
            if let Some(e) = &r.except_parent {
                when.insert("except_parent".into(), globs(e));
            }
            json!({ "name": r.name, "kind": "event", "action": r.action, "conditions": when })
        });
        let file = self.file.iter().map(|r| {
            let mut when = serde_json::Map::new();
            when.insert("path".into(), globs(&r.path));
            when.insert("access".into(), json!(r.access.names()));
            if let Some(e) = &r.exe {
                when.insert("exe".into(), globs(e));
            }
            if let Some(e) = &r.except_exe {
                when.insert("except_exe".into(), globs(e));
            }
            json!({ "name": r.name, "kind": "file", "action": r.action, "conditions": when })
        });
        let rules: Vec<Value> = exec
            .chain(connect)
            .chain(event)
            .chain(file)
            .enumerate()
            .map(|(i, mut r)| {
                r["index"] = json!(i);
                r
            })
            .collect();
        let entries = |builtin: &[&str], own: &[String]| -> Vec<Value> {
            builtin
                .iter()
                .map(|v| json!({ "value": v, "builtin": true }))
                .chain(own.iter().map(|v| json!({ "value": v, "builtin": false })))
                .collect()
        };
        json!({
            "mode": self.mode,
            "version": self.version,
            "sources": self.sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "thresholds": self.thresholds,
            "model": self.model,
            "response": self.response,
            "rules": rules,
            "allow": {
                "exe": globs(&self.allow.exe),
                "sha256": self.allow.sha256,
                "users": self.allow.users.iter()
                    .map(|(as_written, uid)| json!({ "user": as_written, "uid": uid }))
                    .collect::<Vec<_>>(),
                "cgroups": globs(&self.allow.cgroups),
            },
            "protected": {
                "exe": entries(BUILTIN_PROTECTED_EXE, self.protected.exe.patterns()),
                "comm": entries(&[], &self.protected.comm),
                // Names the kernel spares at exec until user space has checked the full path.
                "kernel_exec_hint_comm": self.protected_comms().into_iter().collect::<std::collections::BTreeSet<_>>(),
            },
        })
    }
}

fn globs(g: &GlobList) -> Value {
    json!(g.patterns())
}
