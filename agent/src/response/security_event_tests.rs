//! Security events: the rules that name them, and what counts as corroboration for a model
//! verdict, from whom (a verdict to quarantine is carried out at full strength only with it,
//! and held back to an alert without it).

use super::*;
use crate::process::fake_proc::{FakeProc, FakeProcess};
use crate::process::TableConfig;
use crate::policy::SecurityEvent;
use crate::sequence::SequenceConfig;

// Above any pid this machine hands out (pid_max is at most 4194304), so the responder's own
// /proc/PID/exe reads find nothing real.
const SSHD: u32 = 4_194_301;
const SHELL: u32 = 4_194_302;
const TOOL: u32 = 4_194_303;
const SIBLING: u32 = 4_194_300;

/// systemd (pid 1) → sshd (protected by the policy) → bash → a tool and its sibling.
fn host() -> (FakeProc, ProcessTable) {
    let fake = FakeProc::new();
    let procs = [
        (1, 0, "systemd", "/usr/lib/systemd/systemd"),
        (SSHD, 1, "sshd", "/usr/sbin/sshd"),
        (SHELL, SSHD, "bash", "/usr/bin/bash"),
        (TOOL, SHELL, "tool", "/opt/site/tool"),
        (SIBLING, SHELL, "rank", "/opt/site/rank"),
    ];
    for (i, (pid, ppid, comm, exe)) in procs.into_iter().enumerate() {
        fake.add(&FakeProcess {
            pid,
            ppid,
            comm,
            exe: Some(exe),
            start_ticks: 10 + i as u64,
            uid: (1000, 1000),
            ..Default::default()
        });
    }
    let mut table = ProcessTable::new(TableConfig::default());
    table.seed_from_proc(fake.root()).expect("seeding from the fake /proc");
    (fake, table)
}

fn responder(table: &ProcessTable) -> (Responder, mpsc::Receiver<ActorMsg>) {
    responder_with(table, "")
}

fn responder_with(table: &ProcessTable, rules: &str) -> (Responder, mpsc::Receiver<ActorMsg>) {
    let policy = Policy::from_sources(&[(
        "/test/policy.toml".into(),
        format!("mode = \"enforce\"\n[protected]\nexe = [\"/usr/sbin/sshd\"]\n{rules}"),
    )])
    .expect("policy");
    let (_tx, rx_policy) = watch::channel(Arc::new(policy));
    let (actor, rx) = mpsc::channel(64);
    let mut r = Responder::new(rx_policy, actor, Default::default());
    r.policy.mark_unchanged();
    r.seed(table);
    (r, rx)
}

fn key(table: &ProcessTable, pid: u32) -> ProcessKey {
    table.get(pid).expect("seeded").key
}

fn quarantine_verdict(key: ProcessKey) -> ScoreUpdate {
    ScoreUpdate {
        pid: key.tgid,
        start_ns: key.start_ns,
        score: 0.9999,
        windows: 4,
        verdict: Verdict::Quarantine,
        novelty: None,
    }
}

/// The decisions sent to the actor (protect updates skipped).
fn decisions(rx: &mut mpsc::Receiver<ActorMsg>) -> Vec<Decision> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|m| match m {
            ActorMsg::Act(d) => Some(*d),
            _ => None,
        })
        .collect()
}

#[test]
fn a_protected_ancestors_events_do_not_corroborate_its_descendants() {
    let (_fake, table) = host();
    let seqs = BehaviourSequences::new(SequenceConfig::default());
    let (mut r, mut rx) = responder(&table);
    // systemd loads BPF programs and sshd traces as part of running the host.
    r.on_security_event(&table, &seqs, key(&table, 1), SecurityEvent::BpfProgLoad, "bpf".into());
    r.on_security_event(&table, &seqs, key(&table, SSHD), SecurityEvent::PtraceAttach, "ptrace".into());
    r.on_score(&table, &seqs, &quarantine_verdict(key(&table, TOOL)));
    let d = decisions(&mut rx);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].act, Act::Alert);
    assert!(
        d[0].held_back.as_deref().is_some_and(|h| h.contains("no corroborating event")),
        "{:?}",
        d[0].held_back
    );
}

#[test]
fn an_unprotected_ancestors_event_corroborates_and_releases_a_held_verdict() {
    let (_fake, table) = host();
    let seqs = BehaviourSequences::new(SequenceConfig::default());
    let (mut r, mut rx) = responder(&table);
    r.on_score(&table, &seqs, &quarantine_verdict(key(&table, TOOL)));
    assert_eq!(decisions(&mut rx)[0].act, Act::Alert, "held back at first");
    // The shell that started the tool attaches to another process.
    r.on_security_event(&table, &seqs, key(&table, SHELL), SecurityEvent::PtraceAttach, "ptrace".into());
    let d = decisions(&mut rx);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].act, Act::Quarantine);
    assert_eq!(d[0].target.key.tgid, TOOL);
}

#[test]
fn a_fileless_exec_corroborates_by_itself() {
    let (_fake, table) = host();
    let seqs = BehaviourSequences::new(SequenceConfig::default());
    let (mut r, mut rx) = responder(&table);
    let tool = key(&table, TOOL);
    // SAFETY: all-zero is a valid value of every ABI record.
    let mut ev: ExecEvent = unsafe { core::mem::zeroed() };
    let name = b"/dev/fd/3";
    ev.filename[..name.len()].copy_from_slice(name);
    ev.filename_len = name.len() as u16;
    // The policy has no exec rules: no rule hit corroborates it.
    r.on_exec(&table, &seqs, tool, &ev, Some("/memfd:payload (deleted)".into()));
    r.on_score(&table, &seqs, &quarantine_verdict(tool));
    let d = decisions(&mut rx);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].act, Act::Quarantine);
}

const EVENT_RULES: &str = r#"
[[rule.event]]
name = "module-load"
action = "alert"
event = ["module_load"]
[[rule.event]]
name = "injection"
action = "kill"
event = ["ptrace_attach"]
"#;

#[test]
fn an_event_rule_alerts_once_per_process_with_what_happened() {
    let (_fake, table) = host();
    let seqs = BehaviourSequences::new(SequenceConfig::default());
    let (mut r, mut rx) = responder_with(&table, EVENT_RULES);
    let detail = "finit_module of fd 3 (result -1)";
    for _ in 0..3 {
        r.on_security_event(&table, &seqs, key(&table, SHELL), SecurityEvent::ModuleLoad, detail.into());
    }
    let d = decisions(&mut rx);
    assert_eq!(d.len(), 1, "one alert per process and rule: {d:?}");
    assert_eq!((d[0].act, d[0].reason.as_str()), (Act::Alert, "module-load"));
    assert_eq!(d[0].detail.as_deref(), Some(detail));
}

#[test]
fn an_event_rule_kills_but_never_a_protected_process() {
    let (_fake, table) = host();
    let seqs = BehaviourSequences::new(SequenceConfig::default());
    let (mut r, mut rx) = responder_with(&table, EVENT_RULES);
    r.on_security_event(&table, &seqs, key(&table, TOOL), SecurityEvent::PtraceAttach, "x".into());
    r.on_security_event(&table, &seqs, key(&table, SSHD), SecurityEvent::PtraceAttach, "y".into());
    let d = decisions(&mut rx);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!((d[0].act, d[0].target.key.tgid), (Act::Kill, TOOL));
    assert_eq!((d[1].act, d[1].target.key.tgid), (Act::Alert, SSHD));
    assert!(d[1].held_back.as_deref().is_some_and(|h| h.contains("protected")), "{:?}", d[1].held_back);
}

#[test]
fn memfd_create_alone_does_not_corroborate() {
    let (_fake, table) = host();
    let seqs = BehaviourSequences::new(SequenceConfig::default());
    // No rule names it (a rule hit would corroborate, as any rule hit does).
    let (mut r, mut rx) = responder(&table);
    let tool = key(&table, TOOL);
    r.on_security_event(&table, &seqs, tool, SecurityEvent::MemfdCreate, "memfd_create `x`".into());
    r.on_score(&table, &seqs, &quarantine_verdict(tool));
    let d = decisions(&mut rx);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].act, d[0].reason.as_str()), (Act::Alert, "model:quarantine"));
}

/// A `memory_write` or `memory_read` record of `by` (its only thread) reaching `target`.
fn memory_record(kind: EventKind, by: u32, target: u32, request: i64, ret: i32) -> PtraceEvent {
    // SAFETY: all-zero is a valid value of every ABI record.
    let mut ev: PtraceEvent = unsafe { core::mem::zeroed() };
    ev.header.kind = kind as u16;
    ev.header.pid = by;
    ev.header.tgid = by;
    ev.request = request;
    ev.target_pid = target;
    ev.ret = ret;
    ev
}

#[test]
fn writes_into_another_process_are_events_but_not_into_itself() {
    let (_fake, table) = host();
    let seqs = BehaviourSequences::new(SequenceConfig::default());
    let rules = "[[rule.event]]\nname = \"memory-write\"\naction = \"alert\"\nevent = [\"process_memory_write\"]\n";
    let (mut r, mut rx) = responder_with(&table, rules);
    let write = |target: u32, ret: i32| memory_record(EventKind::MemoryWrite, TOOL, target, 0, ret);
    let tool = key(&table, TOOL);
    r.on_memory_write(&table, &seqs, tool, &write(TOOL, 64));
    assert!(decisions(&mut rx).is_empty(), "into itself");
    // Into its sibling (an injector and its victim started by one shell), and, refused, into
    // its parent shell: an attempt all the same.
    r.on_memory_write(&table, &seqs, tool, &write(SIBLING, 64));
    let d = decisions(&mut rx);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].act, d[0].reason.as_str(), d[0].target.key.tgid), (Act::Alert, "memory-write", TOOL));
    assert_eq!(d[0].detail.as_deref(), Some(format!("process_vm_writev into pid {SIBLING} (/opt/site/rank) (result 64)").as_str()));
    r.on_memory_write(&table, &seqs, tool, &write(SHELL, -1));
    let d = decisions(&mut rx);
    assert!(d.is_empty(), "one alert per process and rule: {d:?}");
    // /proc/PID/mem opened for writing, by another process.
    let mut open = write(TOOL, 5);
    open.header.pid = SHELL;
    open.header.tgid = SHELL;
    open.request = agent_common::MEMORY_WRITE_PROC_MEM;
    r.on_memory_write(&table, &seqs, key(&table, SHELL), &open);
    let d = decisions(&mut rx);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].target.key.tgid, SHELL);
    assert_eq!(d[0].detail.as_deref(), Some(format!("open of /proc/{TOOL}/mem (/opt/site/tool) for writing (fd 5)").as_str()));
}

#[test]
fn reads_of_another_process_are_events_named_by_how_and_not_of_itself() {
    let (_fake, table) = host();
    let seqs = BehaviourSequences::new(SequenceConfig::default());
    let rules = "[[rule.event]]\nname = \"memory-read\"\naction = \"alert\"\nevent = [\"process_memory_read\"]\n\
                 [[rule.event]]\nname = \"environ\"\naction = \"alert\"\nevent = [\"environ_read\"]\n";
    let (mut r, mut rx) = responder_with(&table, rules);
    let read = |by: u32, target: u32, request: i64, ret: i32| memory_record(EventKind::MemoryRead, by, target, request, ret);
    let tool = key(&table, TOOL);
    for request in [agent_common::MEMORY_READ_VM_READV, agent_common::MEMORY_READ_PROC_MEM, agent_common::MEMORY_READ_PROC_ENVIRON] {
        r.on_memory_read(&table, &seqs, tool, &read(TOOL, TOOL, request, 3));
    }
    assert!(decisions(&mut rx).is_empty(), "of itself");
    r.on_memory_read(&table, &seqs, tool, &read(TOOL, SIBLING, agent_common::MEMORY_READ_VM_READV, 64));
    r.on_memory_read(&table, &seqs, tool, &read(TOOL, SIBLING, agent_common::MEMORY_READ_PROC_ENVIRON, 4));
    let d = decisions(&mut rx);
    let got: Vec<(&str, Option<&str>)> = d.iter().map(|d| (d.reason.as_str(), d.detail.as_deref())).collect();
    assert_eq!(
        got,
        [
            ("memory-read", Some(format!("process_vm_readv of pid {SIBLING} (/opt/site/rank) (result 64)").as_str())),
            ("environ", Some(format!("open of /proc/{SIBLING}/environ (/opt/site/rank) (fd 4)").as_str())),
        ]
    );
    // The same rule again for the same process adds nothing; another process's mem read does.
    r.on_memory_read(&table, &seqs, tool, &read(TOOL, SHELL, agent_common::MEMORY_READ_PROC_MEM, 5));
    assert!(decisions(&mut rx).is_empty(), "one alert per process and rule");
    r.on_memory_read(&table, &seqs, key(&table, SHELL), &read(SHELL, TOOL, agent_common::MEMORY_READ_PROC_MEM, 5));
    let d = decisions(&mut rx);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].target.key.tgid, SHELL);
    assert_eq!(d[0].detail.as_deref(), Some(format!("open of /proc/{TOOL}/mem (/opt/site/tool) for reading (fd 5)").as_str()));
}

#[test]
fn signals_sent_to_vigil_or_a_guarded_service_are_events_named_with_their_effect() {
    let (_fake, table) = host();
    let seqs = BehaviourSequences::new(SequenceConfig::default());
    let rules = "[[rule.event]]\nname = \"signalled\"\naction = \"alert\"\n\
        event = [\"agent_signalled\", \"security_service_signalled\"]\n";
    let (mut r, mut rx) = responder_with(&table, rules);
    let tool = key(&table, TOOL);
    let vigil = std::process::id();
    let signal = |target: u32, sig: i32, ret: i32| {
        memory_record(EventKind::GuardedSignal, TOOL, target, i64::from(sig), ret)
    };
    r.on_guarded_signal(&table, &seqs, tool, &signal(vigil, libc::SIGSTOP, 0));
    let d = decisions(&mut rx);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].target.key.tgid, TOOL, "the sender is the actor");
    assert_eq!(
        d[0].detail.as_deref(),
        Some(format!("SIGSTOP sent to vigil (pid {vigil}), which stops it: nothing is acted on until it is continued").as_str())
    );
    r.on_guarded_signal(&table, &seqs, tool, &signal(vigil, libc::SIGCONT, 0));
    assert!(decisions(&mut rx).is_empty(), "SIGCONT only undoes the stop");
    let detail = |sig, ret| agent_signal_detail(&signal(4242, sig, ret)).expect("reported");
    assert_eq!(
        detail(libc::SIGKILL, 0),
        "SIGKILL sent to vigil (pid 4242), which ends it at once (the next vigil reports the gap)"
    );
    assert_eq!(detail(libc::SIGTERM, 0), "SIGTERM sent to vigil (pid 4242), which shuts it down");
    assert_eq!(detail(libc::SIGWINCH, 2), "signal 28 sent to vigil (pid 4242) (not delivered)");

    // A guarded service: its reload is not reported, its kill is, by the sender.
    let shell = key(&table, SHELL);
    r.on_guarded_signal(&table, &seqs, shell, &signal(SIBLING, libc::SIGHUP, 0));
    assert!(decisions(&mut rx).is_empty(), "a reload");
    r.on_guarded_signal(&table, &seqs, shell, &signal(SIBLING, libc::SIGKILL, 0));
    let d = decisions(&mut rx);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].target.key.tgid, SHELL);
    assert_eq!(
        d[0].detail.as_deref(),
        Some(format!("SIGKILL sent to the security service /opt/site/rank (pid {SIBLING})").as_str())
    );
}

#[test]
fn security_services_are_known_by_their_image_s_name() {
    for image in ["/usr/sbin/auditd", "/usr/sbin/rsyslogd", "/usr/lib/systemd/systemd-journald", "/usr/bin/falco (deleted)"] {
        assert!(is_security_service(image), "{image}");
    }
    for image in ["/usr/bin/bash", "/usr/sbin/auditctl", "/opt/auditd-exporter", "/usr/sbin/sshd"] {
        assert!(!is_security_service(image), "{image}");
    }
}
