//! The part of the policy the kernel enforces itself: exec denials by path and connect denials
//! by destination. Everything else is decided in user space after the event.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::glob::{GlobList, is_literal, literal_prefix};
use super::policy::Policy;
use super::settings::{Action, Mode};

/// How the kernel matches the path of an exec it refuses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KernelExecMatch {
    /// The whole path, without a NUL.
    Exact(Vec<u8>),
    /// A directory prefix ending in `/`: everything below it.
    Prefix(Vec<u8>),
}

impl Policy {
    /// Exec rules the kernel can enforce at exec: action `kill` with only `path` conditions.
    /// A literal absolute path becomes `Exact`, a `/dir/**` glob (no other metacharacters)
    /// becomes `Prefix(b"/dir/")`; other globs stay in user space.
    ///
    /// Empty in monitor mode, which never acts. The kernel cannot see uids, cgroups or digests,
    /// so `allow.users`/`cgroups`/`sha256` do not exempt an exec from these; a glob that
    /// `allow.exe` or `protected.exe` could match under the same path keeps that rule's glob in
    /// user space, where the exemption applies. `/**` is never pushed down: it would refuse every
    /// exec on the host, protected ones included.
    pub fn kernel_exec_denies(&self) -> Vec<(KernelExecMatch, u32)> {
        if self.mode == Mode::Monitor {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (index, rule) in self.exec.iter().enumerate() {
            if rule.action != Action::Kill || !rule.is_path_only() {
                continue;
            }
            let Some(path) = &rule.path else { continue };
            for pattern in path.patterns() {
                let Some(m) = classify(pattern) else { continue };
                if self.exempt_in_user_space(&m) {
                    tracing::info!(
                        rule = %rule.name,
                        glob = %pattern,
                        "exec deny kept in user space: an allow or protected entry may match under it"
                    );
                    continue;
                }
                out.push((m, index as u32));
            }
        }
        out
    }

    /// `deny` connect rules as (network, port) entries: the cross product of `addr` and `ports`,
    /// a missing `addr` meaning every IPv4 and IPv6 destination and a missing `ports` any port
    /// (`None`). Networks have their host bits cleared. Empty in monitor mode.
    pub fn kernel_connect_denies(&self) -> Vec<(IpNet, Option<u16>, u32)> {
        if self.mode == Mode::Monitor {
            return Vec::new();
        }
        let any = [IpNet::V4(Ipv4Net::default()), IpNet::V6(Ipv6Net::default())];
        let base = self.exec.len();
        let mut out = Vec::new();
        for (i, rule) in self.connect.iter().enumerate() {
            if rule.action != Action::Deny {
                continue;
            }
            let index = (base + i) as u32;
            let nets = rule.addr.as_deref().unwrap_or(&any);
            for net in nets {
                match &rule.ports {
                    None => out.push((net.trunc(), None, index)),
                    Some(ports) => out.extend(ports.iter().map(|&p| (net.trunc(), Some(p), index))),
                }
            }
        }
        out
    }

    fn exempt_in_user_space(&self, m: &KernelExecMatch) -> bool {
        let lists: [&GlobList; 2] = [&self.allow.exe, &self.protected.exe];
        match m {
            KernelExecMatch::Exact(path) => {
                let path = String::from_utf8_lossy(path);
                lists.iter().any(|l| l.is_match(&path))
                    || self.protected.builtin_exe.is_match(&path)
            }
            KernelExecMatch::Prefix(dir) => {
                let dir = String::from_utf8_lossy(dir);
                // A glob can match below `dir` when one of their literal prefixes extends the
                // other. `**/name` globs (empty prefix) name binaries, not places, and are left
                // out, or every prefix would be exempt.
                lists.iter().chain([&&self.protected.builtin_exe]).flat_map(|l| l.patterns()).any(|g| {
                    let p = literal_prefix(g);
                    p.starts_with(dir.as_ref()) || (p.len() > 1 && dir.starts_with(p))
                })
            }
        }
    }
}

fn classify(pattern: &str) -> Option<KernelExecMatch> {
    if is_literal(pattern) && pattern.starts_with('/') && !pattern.ends_with('/') {
        return Some(KernelExecMatch::Exact(pattern.as_bytes().to_vec()));
    }
    let dir = pattern.strip_suffix("/**")?;
    (dir.starts_with('/') && dir.len() > 1 && is_literal(dir) && !dir.ends_with('/'))
        .then(|| KernelExecMatch::Prefix(format!("{dir}/").into_bytes()))
}
