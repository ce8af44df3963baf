//! The network guards: cgroup sock_addr programs on the cgroup v2 root, so every process on the
//! host passes them on connect()/sendmsg(). They refuse calls from quarantined cgroups and to
//! addresses on deny lists, and let everything else through.
//!
//! Unlike the sensors, a guard that cannot attach does not stop the daemon: vigil still detects
//! and can kill, and `vigil status` says that network cuts are unavailable.

use std::{fs::File, path::Path};

use agent_common::names;
use aya::{
    Ebpf,
    programs::{CgroupAttachMode, CgroupSockAddr},
};

use super::{AttachReport, Outcome};

const GUARDS: [(&str, &str); 4] = [
    (names::PROG_CONNECT4, "cgroup/connect4"),
    (names::PROG_CONNECT6, "cgroup/connect6"),
    (names::PROG_SENDMSG4, "cgroup/sendmsg4"),
    (names::PROG_SENDMSG6, "cgroup/sendmsg6"),
];

/// Attaches every guard it can; the report says which did and why others did not. Returns
/// whether all four are in place (a partial set would cut IPv4 but not IPv6, say).
pub fn attach_guards(
    ebpf: &mut Ebpf,
    cgroup2: Option<&Path>,
    report: &mut Vec<AttachReport>,
) -> bool {
    let Some(root) = cgroup2 else {
        for (program, hook) in GUARDS {
            report.push(AttachReport {
                program,
                hook: hook.into(),
                outcome: Outcome::Skipped(
                    "no cgroup v2 hierarchy: network cuts unavailable".into(),
                ),
            });
        }
        return false;
    };
    let cgroup = match File::open(root) {
        Ok(f) => f,
        Err(e) => {
            for (program, hook) in GUARDS {
                report.push(AttachReport {
                    program,
                    hook: hook.into(),
                    outcome: Outcome::Skipped(format!("opening {}: {e}", root.display())),
                });
            }
            return false;
        }
    };
    let mut all = true;
    for (program, hook) in GUARDS {
        let hook_at = format!("{hook} on {}", root.display());
        let outcome = match attach_one(ebpf, program, &cgroup) {
            Ok(()) => Outcome::Attached,
            Err(why) => {
                all = false;
                Outcome::Skipped(why)
            }
        };
        report.push(AttachReport {
            program,
            hook: hook_at,
            outcome,
        });
    }
    all
}

fn attach_one(ebpf: &mut Ebpf, name: &'static str, cgroup: &File) -> Result<(), String> {
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("{name} missing from the eBPF object"))?;
    let p: &mut CgroupSockAddr = program.try_into().map_err(|e| chain(&e))?;
    p.load().map_err(|e| format!("load: {}", chain(&e)))?;
    // A bpf_link (what aya creates on 5.7+) coexists with other agents' and systemd's programs
    // on the same cgroup; the kernel refuses the call when any of them says no. Links take no
    // attach flags: BPF_F_ALLOW_MULTI is only for the legacy prog_attach path.
    p.attach(cgroup, CgroupAttachMode::Single)
        .map_err(|e| format!("attach: {}", chain(&e)))?;
    Ok(())
}

/// An error with its sources, so "bpf_link_create failed" says why.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
