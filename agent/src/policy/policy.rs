//! The merged, validated and compiled policy, and the questions the pipeline asks it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::allow::Allowlist;
use super::error::{Location, PolicyError};
use super::merge::{At, Merged};
use super::protected::ProtectedSet;
use super::rules::{
    ConnectContext, ConnectRule, EventContext, EventRule, ExecContext, ExecRule, FileContext,
    FileRule, RuleRef,
};
use super::settings::{Action, Mode, ModelActions, ResponseLimits, Thresholds};
use super::source::{self, Source};
use super::users::UserDb;

#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    /// Overrides of the model's thresholds; `None` keeps the model's own.
    pub thresholds: Option<Thresholds>,
    pub model: ModelActions,
    pub response: ResponseLimits,
    /// First 16 hex digits of SHA-256 over the sources' file names and bytes, in load order.
    pub version: String,
    pub sources: Vec<PathBuf>,
    /// Rule index `i` is `exec[i]` for `i < exec.len()`, then `connect[i - exec.len()]`, then
    /// `event[..]`, then `file[..]`.
    pub(super) exec: Vec<ExecRule>,
    pub(super) connect: Vec<ConnectRule>,
    pub(super) event: Vec<EventRule>,
    pub(super) file: Vec<FileRule>,
    pub(super) allow: Allowlist,
    pub(super) protected: ProtectedSet,
}

impl Policy {
    /// The shipped default (which must exist) then `dir/*.toml` in lexical order; a missing
    /// `dir` leaves the default alone.
    pub fn load(default: &Path, dir: &Path) -> Result<Policy, PolicyError> {
        let sources = source::load_sources(default, dir)?;
        let policy = Self::from_sources(&sources)?;
        tracing::info!(
            version = %policy.version,
            mode = %policy.mode,
            files = policy.sources.len(),
            rules = policy.exec.len() + policy.connect.len() + policy.event.len() + policy.file.len(),
            "policy loaded"
        );
        Ok(policy)
    }

    /// Merge, validate and compile already-read files, in the order given. Pure apart from
    /// reading `/etc/passwd` when `allow.users` names a user.
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<Policy, PolicyError> {
        Self::compile(sources, &UserDb::system())
    }

    pub(super) fn compile(
        sources: &[(PathBuf, String)],
        users: &UserDb,
    ) -> Result<Policy, PolicyError> {
        if sources.is_empty() {
            return Err(PolicyError::NoSources);
        }
        let mut merged = Merged::default();
        for (path, text) in sources {
            let src = Source::new(path, text);
            let raw = src.parse()?;
            tracing::debug!(file = %path.display(), "policy file parsed");
            merged.add(&src, raw);
        }
        let mut names: HashMap<String, Location> = HashMap::new();
        for name in merged
            .exec
            .iter()
            .map(|r| &r.name)
            .chain(merged.connect.iter().map(|r| &r.name))
            .chain(merged.event.iter().map(|r| &r.name))
            .chain(merged.file.iter().map(|r| &r.name))
        {
            if let Some(first) = names.insert(name.value.clone(), name.at.clone()) {
                return Err(PolicyError::DuplicateRule {
                    name: name.value.clone(),
                    at: name.at.clone(),
                    first,
                });
            }
        }
        let model = model_actions(&merged)?;
        let thresholds = thresholds(&merged)?;
        let response = response_limits(&merged)?;
        let allow = Allowlist::compile(&merged, users)?;
        let protected = ProtectedSet::compile(&merged)?;
        let mode = merged.mode.unwrap_or_default();
        let exec = merged
            .exec
            .into_iter()
            .map(ExecRule::compile)
            .collect::<Result<_, _>>()?;
        let connect = merged
            .connect
            .into_iter()
            .map(ConnectRule::compile)
            .collect::<Result<_, _>>()?;
        let event = merged
            .event
            .into_iter()
            .map(EventRule::compile)
            .collect::<Result<_, _>>()?;
        let file = merged
            .file
            .into_iter()
            .map(FileRule::compile)
            .collect::<Result<_, _>>()?;
        Ok(Policy {
            mode,
            thresholds,
            model,
            response,
            version: source::version(sources),
            sources: sources.iter().map(|(p, _)| p.clone()).collect(),
            exec,
            connect,
            event,
            file,
            allow,
            protected,
        })
    }

    /// The longest `changed_within` of the exec rules, in seconds: how recent an image's change
    /// must be for its age to matter to any rule.
    pub fn max_changed_within(&self) -> Option<u64> {
        self.exec.iter().filter_map(|r| r.changed_within).max()
    }

    /// Every exec rule that matches, in policy order.
    pub fn exec_rules<'a>(&'a self, ctx: &ExecContext) -> Vec<RuleRef<'a>> {
        matching(&self.exec, 0, |r| r.matches(ctx), |r| (&r.name, r.action))
    }

    /// Every exec rule whose conditions other than `cmdline` hold, in policy order, each with
    /// whether it also has a `cmdline` condition to check with [`Policy::exec_cmdline_matches`].
    /// This part of the answer is the same for every exec of one program in one context and
    /// worth remembering; command lines rarely repeat.
    pub fn exec_rules_but_cmdline<'a>(&'a self, ctx: &ExecContext) -> Vec<(RuleRef<'a>, bool)> {
        matching(&self.exec, 0, |r| r.matches_but_cmdline(ctx), |r| (&r.name, r.action))
            .into_iter()
            .map(|hit| {
                let has = self.exec[hit.index as usize].has_cmdline_condition();
                (hit, has)
            })
            .collect()
    }

    /// Whether exec rule `index`'s `cmdline` and `except_cmdline` conditions, if it has them,
    /// hold for `cmdline`.
    pub fn exec_cmdline_matches(&self, index: u32, cmdline: &str) -> bool {
        self.exec
            .get(index as usize)
            .is_some_and(|r| r.cmdline_matches(Some(cmdline)))
    }

    /// Every connect rule that matches, in policy order (`deny` rules included: the kernel has
    /// already refused the connection, user space reports it).
    pub fn connect_rules<'a>(&'a self, ctx: &ConnectContext) -> Vec<RuleRef<'a>> {
        let base = self.exec.len();
        matching(&self.connect, base, |r| r.matches(ctx), |r| (&r.name, r.action))
    }

    /// Whether the process is allowlisted: never acted on, never alerted on by rules or score.
    pub fn allowlisted(
        &self,
        exe: &str,
        sha256: Option<&str>,
        uid: u32,
        cgroup_path: Option<&str>,
    ) -> bool {
        self.allow.allows(exe, sha256, uid, cgroup_path)
    }

    /// Whether the process must never be killed or quarantined (built-ins included).
    /// Names the kernel can spare at exec before user space has looked: the protected comms
    /// plus the basename (cut to 15 bytes, as `comm` is) of every protected exe glob whose last
    /// component is literal. Over-inclusive by design: sparing in the kernel only defers the
    /// decision to user space, which matches full paths.
    pub fn protected_comms(&self) -> std::collections::HashSet<String> {
        let mut out: std::collections::HashSet<String> =
            self.protected.comm.iter().cloned().collect();
        out.extend(
            super::protected::BUILTIN_PROTECTED_COMM
                .iter()
                .map(|c| (*c).to_owned()),
        );
        let globs = self
            .protected
            .builtin_exe
            .patterns()
            .iter()
            .chain(self.protected.exe.patterns());
        for g in globs {
            let base = g.rsplit('/').next().unwrap_or("");
            if !base.is_empty() && !base.contains(['*', '?', '[', '{']) {
                let mut end = base.len().min(15);
                while !base.is_char_boundary(end) {
                    end -= 1;
                }
                out.insert(base[..end].to_owned());
            }
        }
        out
    }

    pub fn protected(&self, exe: &str, comm: &str) -> bool {
        self.protected.protects(exe, comm)
    }

    /// Every event rule that matches, in policy order.
    pub fn event_rules<'a>(&'a self, ctx: &EventContext) -> Vec<RuleRef<'a>> {
        let base = self.exec.len() + self.connect.len();
        matching(&self.event, base, |r| r.matches(ctx), |r| (&r.name, r.action))
    }

    /// Every file rule that matches, in policy order.
    pub fn file_rules<'a>(&'a self, ctx: &FileContext) -> Vec<RuleRef<'a>> {
        let base = self.exec.len() + self.connect.len() + self.event.len();
        matching(&self.file, base, |r| r.matches(ctx), |r| (&r.name, r.action))
    }

    pub fn rule_name(&self, index: u32) -> Option<&str> {
        self.rule_at(index).map(|(name, _)| name)
    }

    /// The action of rule `index`, to go with `rule_name` when the kernel reports a denial.
    pub fn rule_action(&self, index: u32) -> Option<Action> {
        self.rule_at(index).map(|(_, action)| action)
    }

    fn rule_at(&self, index: u32) -> Option<(&str, Action)> {
        let i = index as usize;
        let (e, c, v) = (self.exec.len(), self.connect.len(), self.event.len());
        if i < e {
            self.exec.get(i).map(|r| (r.name.as_str(), r.action))
        } else if i < e + c {
            self.connect.get(i - e).map(|r| (r.name.as_str(), r.action))
        } else if i < e + c + v {
            self.event.get(i - e - c).map(|r| (r.name.as_str(), r.action))
        } else {
            self.file.get(i - e - c - v).map(|r| (r.name.as_str(), r.action))
        }
    }
}

/// The rules of one kind that `hit`, in policy order, indexed from `base` (where the kind starts
/// in the policy's rule numbering).
fn matching<'a, R>(
    rules: &'a [R],
    base: usize,
    hit: impl Fn(&R) -> bool,
    head: impl Fn(&'a R) -> (&'a String, Action),
) -> Vec<RuleRef<'a>> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| hit(r))
        .map(|(i, r)| {
            let (name, action) = head(r);
            RuleRef {
                name,
                action,
                index: (base + i) as u32,
            }
        })
        .collect()
}

fn model_actions(m: &Merged) -> Result<ModelActions, PolicyError> {
    let d = ModelActions::default();
    let action = |a: &Option<At<Action>>, default: Action, key: &str| match a {
        None => Ok(default),
        Some(a) if a.value == Action::Deny => Err(PolicyError::invalid(
            a.at.clone(),
            format!(
                "invalid value for `model.{key}`: `deny` is only valid for rule.connect; expected one of alert, kill, quarantine"
            ),
        )),
        Some(a) => Ok(a.value),
    };
    Ok(ModelActions {
        on_alert: action(&m.on_alert, d.on_alert, "on_alert")?,
        on_quarantine: action(&m.on_quarantine, d.on_quarantine, "on_quarantine")?,
        on_kill: action(&m.on_kill, d.on_kill, "on_kill")?,
        require_corroboration: m.require_corroboration.unwrap_or(d.require_corroboration),
    })
}

/// All three or none: a partial set would be completed from a model this code cannot see, and
/// the order check would then happen nowhere.
fn thresholds(m: &Merged) -> Result<Option<Thresholds>, PolicyError> {
    let fields = [
        ("alert", &m.alert),
        ("quarantine", &m.quarantine),
        ("kill", &m.kill),
    ];
    for (key, f) in fields {
        if let Some(f) = f
            && !(f.value > 0.0 && f.value <= 1.0)
        {
            return Err(PolicyError::invalid(
                f.at.clone(),
                format!(
                    "invalid value for `thresholds.{key}`: {} is out of range; expected 0 < {key} <= 1",
                    f.value
                ),
            ));
        }
    }
    let (alert, quarantine, kill) = match (&m.alert, &m.quarantine, &m.kill) {
        (None, None, None) => return Ok(None),
        (Some(a), Some(q), Some(k)) => (a, q, k),
        _ => {
            let (set, missing): (Vec<_>, Vec<_>) = fields.iter().partition(|(_, f)| f.is_some());
            let at = set
                .iter()
                .filter_map(|(_, f)| f.as_ref())
                .map(|f| f.at.clone())
                .next_back();
            let missing: Vec<_> = missing.iter().map(|(k, _)| format!("`{k}`")).collect();
            return Err(PolicyError::invalid(
                at.unwrap_or_else(|| unreachable!("at least one threshold is set")),
                format!(
                    "incomplete `thresholds`: {} not set in any file; expected alert, quarantine and kill together",
                    missing.join(" and ")
                ),
            ));
        }
    };
    for (lo_key, lo, hi_key, hi) in [
        ("alert", alert, "quarantine", quarantine),
        ("quarantine", quarantine, "kill", kill),
    ] {
        if lo.value > hi.value {
            return Err(PolicyError::invalid(
                hi.at.clone(),
                format!(
                    "invalid value for `thresholds.{hi_key}`: {} is below {lo_key} = {} (set at {}); expected 0 < alert <= quarantine <= kill <= 1",
                    hi.value, lo.value, lo.at
                ),
            ));
        }
    }
    Ok(Some(Thresholds {
        alert: alert.value,
        quarantine: quarantine.value,
        kill: kill.value,
    }))
}

fn response_limits(m: &Merged) -> Result<ResponseLimits, PolicyError> {
    let d = ResponseLimits::default();
    let per_seconds = match &m.per_seconds {
        Some(p) if p.value == 0 => {
            return Err(PolicyError::invalid(
                p.at.clone(),
                "invalid value for `response.per_seconds`: 0; expected a window of at least 1 second",
            ));
        }
        Some(p) => p.value,
        None => d.per_seconds,
    };
    Ok(ResponseLimits {
        max_actions: m.max_actions.unwrap_or(d.max_actions),
        per_seconds,
    })
}
