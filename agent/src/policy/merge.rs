//! Merging parsed files in load order: scalars are overridden field by field by later files,
//! lists append. Everything keeps its `file:line:column` so compile errors can point at it.

use toml::Spanned;

use super::error::Location;
use super::schema::{RawFile, RawUser, SpannedList};
use super::settings::{Action, Mode};
use super::source::Source;

/// A value and where it was written.
#[derive(Debug, Clone)]
pub(super) struct At<T> {
    pub value: T,
    pub at: Location,
}

pub(super) type AtList<T> = Option<At<Vec<At<T>>>>;

#[derive(Debug, Default)]
pub(super) struct Merged {
    pub mode: Option<Mode>,
    pub alert: Option<At<f32>>,
    pub quarantine: Option<At<f32>>,
    pub kill: Option<At<f32>>,
    pub on_alert: Option<At<Action>>,
    pub on_quarantine: Option<At<Action>>,
    pub on_kill: Option<At<Action>>,
    pub require_corroboration: Option<bool>,
    pub max_actions: Option<u32>,
    pub per_seconds: Option<At<u64>>,
    pub exec: Vec<ExecRuleDef>,
    pub connect: Vec<ConnectRuleDef>,
    pub event: Vec<EventRuleDef>,
    pub file: Vec<FileRuleDef>,
    pub allow_exe: Vec<At<String>>,
    pub allow_sha256: Vec<At<String>>,
    pub allow_users: Vec<At<RawUser>>,
    pub allow_cgroups: Vec<At<String>>,
    pub protected_exe: Vec<At<String>>,
    pub protected_comm: Vec<At<String>>,
}

#[derive(Debug)]
pub(super) struct ExecRuleDef {
    pub name: At<String>,
    pub action: At<Action>,
    pub path: AtList<String>,
    pub sha256: AtList<String>,
    pub parent: AtList<String>,
    pub cmdline: AtList<String>,
    pub except_cmdline: AtList<String>,
    pub stdio_socket: bool,
    pub parent_stdio_socket: bool,
    pub parent_accepted: bool,
    pub changed_within: Option<At<u64>>,
    pub downloaded: bool,
    pub except_downloader: AtList<String>,
}

#[derive(Debug)]
pub(super) struct ConnectRuleDef {
    pub name: At<String>,
    pub action: At<Action>,
    pub addr: AtList<String>,
    pub ports: AtList<u16>,
    pub exe: AtList<String>,
}

#[derive(Debug)]
pub(super) struct EventRuleDef {
    pub name: At<String>,
    pub action: At<Action>,
    pub event: AtList<String>,
    pub exe: AtList<String>,
    pub except_exe: AtList<String>,
    pub except_parent: AtList<String>,
}

#[derive(Debug)]
pub(super) struct FileRuleDef {
    pub name: At<String>,
    pub action: At<Action>,
    pub path: AtList<String>,
    pub access: AtList<String>,
    pub exe: AtList<String>,
    pub except_exe: AtList<String>,
}

impl Merged {
    /// Fold one more file (later in load order) into the merge.
    pub fn add(&mut self, src: &Source, file: RawFile) {
        if file.mode.is_some() {
            self.mode = file.mode;
        }
        if let Some(t) = file.thresholds {
            override_with(&mut self.alert, t.alert.map(|s| locate(src, s)));
            override_with(&mut self.quarantine, t.quarantine.map(|s| locate(src, s)));
            override_with(&mut self.kill, t.kill.map(|s| locate(src, s)));
        }
        if let Some(m) = file.model {
            override_with(&mut self.on_alert, m.on_alert.map(|s| locate(src, s)));
            override_with(
                &mut self.on_quarantine,
                m.on_quarantine.map(|s| locate(src, s)),
            );
            override_with(&mut self.on_kill, m.on_kill.map(|s| locate(src, s)));
            override_with(&mut self.require_corroboration, m.require_corroboration);
        }
        if let Some(r) = file.response {
            override_with(&mut self.max_actions, r.max_actions);
            override_with(&mut self.per_seconds, r.per_seconds.map(|s| locate(src, s)));
        }
        self.exec
            .extend(file.rule.exec.into_iter().map(|r| ExecRuleDef {
                name: locate(src, r.name),
                action: locate(src, r.action),
                path: list(src, r.path),
                sha256: list(src, r.sha256),
                parent: list(src, r.parent),
                cmdline: list(src, r.cmdline),
                except_cmdline: list(src, r.except_cmdline),
                stdio_socket: r.stdio_socket.unwrap_or(false),
                parent_stdio_socket: r.parent_stdio_socket.unwrap_or(false),
                parent_accepted: r.parent_accepted.unwrap_or(false),
                changed_within: r.changed_within.map(|s| locate(src, s)),
                downloaded: r.downloaded.unwrap_or(false),
                except_downloader: list(src, r.except_downloader),
            }));
        self.connect
            .extend(file.rule.connect.into_iter().map(|r| ConnectRuleDef {
                name: locate(src, r.name),
                action: locate(src, r.action),
                addr: list(src, r.addr),
                ports: list(src, r.ports),
                exe: list(src, r.exe),
            }));
        self.event
            .extend(file.rule.event.into_iter().map(|r| EventRuleDef {
                name: locate(src, r.name),
                action: locate(src, r.action),
                event: list(src, r.event),
                exe: list(src, r.exe),
                except_exe: list(src, r.except_exe),
                except_parent: list(src, r.except_parent),
            }));
        self.file
            .extend(file.rule.file.into_iter().map(|r| FileRuleDef {
                name: locate(src, r.name),
                action: locate(src, r.action),
                path: list(src, r.path),
                access: list(src, r.access),
                exe: list(src, r.exe),
                except_exe: list(src, r.except_exe),
            }));
        self.allow_exe.extend(all(src, file.allow.exe));
        self.allow_sha256.extend(all(src, file.allow.sha256));
        self.allow_users.extend(all(src, file.allow.users));
        self.allow_cgroups.extend(all(src, file.allow.cgroups));
        self.protected_exe.extend(all(src, file.protected.exe));
        self.protected_comm.extend(all(src, file.protected.comm));
    }
}

fn override_with<T>(slot: &mut Option<T>, later: Option<T>) {
    if later.is_some() {
        *slot = later;
    }
}

fn locate<T>(src: &Source, s: Spanned<T>) -> At<T> {
    let at = src.at(s.span());
    At {
        value: s.into_inner(),
        at,
    }
}

fn all<'s, T: 's>(src: &'s Source, v: Vec<Spanned<T>>) -> impl Iterator<Item = At<T>> + 's {
    v.into_iter().map(move |s| locate(src, s))
}

fn list<T>(src: &Source, l: SpannedList<T>) -> AtList<T> {
    l.map(|l| {
        let at = src.at(l.span());
        At {
            value: l.into_inner().into_iter().map(|s| locate(src, s)).collect(),
            at,
        }
    })
}
