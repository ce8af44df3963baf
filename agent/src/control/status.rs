//! What `vigil status` shows: a snapshot the daemon publishes on a watch channel and the control
//! server hands out as JSON (`--json`) or renders as a table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    /// Kernel release, as `uname -r` prints it.
    pub kernel: String,
    pub programs: Vec<ProgramStatus>,
    /// Records received from the kernel, per event kind.
    pub events: BTreeMap<String, u64>,
    /// Records the kernel side counted as emitted, per kind: the difference to `events` is loss.
    pub kernel_emitted: BTreeMap<String, u64>,
    /// Losses per event kind plus named internal counters (ring buffer full, channel full...).
    pub losses: BTreeMap<String, u64>,
    pub decode_errors: BTreeMap<String, u64>,
    pub process_table: ProcessTableStatus,
    /// Behaviour sequences currently tracked.
    pub sequences: usize,
    /// The behaviour model and its scorer; absent when running without a model.
    #[serde(default)]
    pub scorer: Option<ScorerStatus>,
    /// Policy and actions; absent when running without a response stage.
    #[serde(default)]
    pub response: Option<ResponseStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseStatus {
    pub policy_version: String,
    pub mode: String,
    /// connect/sendmsg guards attached: quarantines cut the network.
    pub network_guards: bool,
    /// cgroup v2 freezer usable: quarantine available.
    pub quarantine: bool,
    pub decisions: u64,
    /// Decisions the actor's queue could not take.
    pub decisions_dropped: u64,
    /// Kills and quarantines refused by the rate limit.
    pub rate_limited: u64,
    pub alerts: u64,
    pub kills: u64,
    pub quarantines: u64,
    pub action_failures: u64,
    pub journal_undelivered: u64,
    pub kernel_exec_denied: u64,
    pub kernel_exec_deny_signal_failed: u64,
    pub kernel_net_denied_quarantine: u64,
    pub kernel_net_denied_rule: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScorerStatus {
    pub model: String,
    /// The token vocabulary the model reads (models/FEATURES.md, "Tokens").
    #[serde(default)]
    pub token_vocabulary: u32,
    /// Whether the kernel classes each call for it (vocabulary 2); off, the per-syscall program
    /// skips that work.
    #[serde(default)]
    pub call_classes: bool,
    /// Windows the model scored.
    pub windows_scored: u64,
    /// Windows the executable's learned profile held entirely: scored 0 without the model.
    #[serde(default)]
    pub windows_gated: u64,
    /// Of the windows scored, those whose score came from the memo of identical windows.
    #[serde(default)]
    pub windows_memo_hits: u64,
    /// Mean scorer time per window, scored or gated (profile, features, inference), microseconds.
    pub mean_us_per_window: f64,
    /// Chunks of tokens the scorer could not take (its queue was full): those windows went unscored.
    pub work_dropped: u64,
    pub errors: u64,
    /// n-grams held by the per-executable profiles, and windows not learned for lack of budget.
    #[serde(default)]
    pub profile_grams: u64,
    #[serde(default)]
    pub profile_windows_unlearned: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramStatus {
    pub name: String,
    /// Where it attaches, e.g. `tp_btf/sys_exit`.
    pub hook: String,
    /// Flattened so the JSON reads `{"name":..,"hook":..,"state":"skipped","reason":..}`.
    #[serde(flatten)]
    pub state: ProgramState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ProgramState {
    Attached,
    /// Not attempted: the kernel lacks what the hook needs.
    Skipped {
        reason: String,
    },
    /// Attempted and refused.
    Failed {
        error: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTableStatus {
    pub entries: usize,
    pub running: usize,
    pub evicted_total: u64,
    /// Exec images recognised from the kernel's identity of the file (no `/proc` lookup).
    #[serde(default)]
    pub images_known: u64,
    /// Exec images opened through `/proc/PID` (first seen, or seen under another path).
    #[serde(default)]
    pub images_opened: u64,
}

/// The table `vigil status` prints.
pub fn render_human(status: &Status) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are discarded through `let _`.
    let _ = writeln!(
        out,
        "vigil {} (pid {}), up {}, kernel {}",
        status.version,
        status.pid,
        format_uptime(status.uptime_secs),
        status.kernel
    );
    render_programs(&mut out, &status.programs);
    render_counters(&mut out, status);
    let table = &status.process_table;
    let _ = writeln!(
        out,
        "\nProcess table: {} entries ({} running), {} evicted since start; exec images: {} known, {} opened",
        table.entries, table.running, table.evicted_total, table.images_known, table.images_opened
    );
    let _ = writeln!(out, "Sequences: {}", status.sequences);
    if let Some(r) = &status.response {
        let _ = writeln!(
            out,
            "response: policy {} ({}), network guards {}, quarantine {}; {} decisions: {} alerts, {} kills, {} quarantines, {} failed, {} rate-limited, {} dropped; kernel: {} execs denied, {} connects refused (quarantine {}, rules {}); journal undelivered {}",
            r.policy_version,
            r.mode,
            if r.network_guards {
                "attached"
            } else {
                "UNAVAILABLE"
            },
            if r.quarantine {
                "available"
            } else {
                "UNAVAILABLE"
            },
            r.decisions,
            r.alerts,
            r.kills,
            r.quarantines,
            r.action_failures,
            r.rate_limited,
            r.decisions_dropped,
            r.kernel_exec_denied,
            r.kernel_net_denied_quarantine + r.kernel_net_denied_rule,
            r.kernel_net_denied_quarantine,
            r.kernel_net_denied_rule,
            r.journal_undelivered,
        );
    }
    match &status.scorer {
        Some(sc) => {
            let _ = writeln!(
                out,
                "Scorer: {} (token vocabulary {}, call classes {}) — {} windows scored ({} from the memo), {} known to their executable's profile, {:.1} µs/window, {} chunks dropped, {} errors; profiles hold {} n-grams ({} windows unlearned: a profile bound reached)",
                sc.model,
                sc.token_vocabulary,
                if sc.call_classes { "on" } else { "off" },
                sc.windows_scored,
                sc.windows_memo_hits,
                sc.windows_gated,
                sc.mean_us_per_window,
                sc.work_dropped,
                sc.errors,
                sc.profile_grams,
                sc.profile_windows_unlearned
            );
        }
        None => {
            let _ = writeln!(out, "Scorer: off (no model)");
        }
    }
    out
}

fn render_programs(out: &mut String, programs: &[ProgramStatus]) {
    let attached = programs
        .iter()
        .filter(|p| p.state == ProgramState::Attached)
        .count();
    let _ = writeln!(out, "\nPrograms: {attached}/{} attached", programs.len());
    let name_w = programs.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let hook_w = programs.iter().map(|p| p.hook.len()).max().unwrap_or(0);
    for p in programs {
        let state = match &p.state {
            ProgramState::Attached => "attached".to_owned(),
            ProgramState::Skipped { reason } => format!("skipped: {reason}"),
            ProgramState::Failed { error } => format!("FAILED: {error}"),
        };
        let _ = writeln!(out, "  {:name_w$}  {:hook_w$}  {state}", p.name, p.hook);
    }
}

/// One row per name across the four counter maps, so a kind's loss sits next to its traffic.
fn render_counters(out: &mut String, status: &Status) {
    let maps = [
        &status.events,
        &status.kernel_emitted,
        &status.losses,
        &status.decode_errors,
    ];
    let names: BTreeSet<&String> = maps.iter().flat_map(|m| m.keys()).collect();
    if names.is_empty() {
        let _ = writeln!(out, "\nCounters: none yet");
        return;
    }
    let headers = ["received", "emitted", "lost", "decode-err"];
    let name_w = names
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(0)
        .max("counter".len());
    let _ = write!(out, "\n  {:name_w$}", "counter");
    for h in headers {
        let _ = write!(out, "  {h:>10}");
    }
    out.push('\n');
    for name in names {
        let _ = write!(out, "  {name:name_w$}");
        for map in maps {
            let cell = map.get(name).map_or_else(|| "-".to_owned(), u64::to_string);
            let _ = write!(out, "  {cell:>10}");
        }
        out.push('\n');
    }
}

fn format_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}h {m:02}m")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// A status with every kind of row, shared by the renderer and control socket tests.
#[cfg(test)]
pub(crate) fn sample() -> Status {
    Status {
        version: "0.1.0".into(),
        pid: 4242,
        uptime_secs: 3723,
        kernel: "6.18.44".into(),
        programs: vec![
            ProgramStatus {
                name: "vigil_sys_exit".into(),
                hook: "tp_btf/sys_exit".into(),
                state: ProgramState::Attached,
            },
            ProgramStatus {
                name: "vigil_lsm_exec".into(),
                hook: "lsm/bprm_check_security".into(),
                state: ProgramState::Skipped {
                    reason: "bpf LSM not active".into(),
                },
            },
            ProgramStatus {
                name: "vigil_kprobe".into(),
                hook: "kprobe/do_exit".into(),
                state: ProgramState::Failed {
                    error: "EPERM".into(),
                },
            },
        ],
        events: BTreeMap::from([("exec".into(), 10), ("fork".into(), 20)]),
        kernel_emitted: BTreeMap::from([("exec".into(), 11)]),
        losses: BTreeMap::from([("exec".into(), 1), ("ringbuf_full".into(), 3)]),
        decode_errors: BTreeMap::new(),
        process_table: ProcessTableStatus {
            entries: 7,
            running: 5,
            evicted_total: 2,
            images_known: 9,
            images_opened: 4,
        },
        sequences: 3,
        scorer: None,
        response: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_roundtrip_and_shape() {
        let status = sample();
        let json = serde_json::to_value(&status).expect("serialize");
        assert_eq!(json["programs"][1]["state"], "skipped");
        assert_eq!(json["programs"][1]["reason"], "bpf LSM not active");
        assert_eq!(json["programs"][0]["state"], "attached");
        assert_eq!(json["losses"]["ringbuf_full"], 3);
        let back: Status = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, status);
    }

    #[test]
    fn human_rendering_lists_programs_counters_and_table() {
        let text = render_human(&sample());
        println!("{text}");
        assert!(text.contains("vigil 0.1.0 (pid 4242), up 01:02:03, kernel 6.18.44"));
        assert!(text.contains("Programs: 1/3 attached"));
        assert!(text.contains("skipped: bpf LSM not active"));
        assert!(text.contains("FAILED: EPERM"));
        let exec = text
            .lines()
            .find(|l| l.trim_start().starts_with("exec"))
            .expect("exec row");
        assert_eq!(
            exec.split_whitespace().collect::<Vec<_>>(),
            ["exec", "10", "11", "1", "-"]
        );
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == ["ringbuf_full", "-", "-", "3", "-"])
        );
        assert!(text.contains("Process table: 7 entries (5 running), 2 evicted"));
        assert!(text.contains("Sequences: 3"));
        assert_eq!(format_uptime(90061), "1d 01h 01m");
    }
}
