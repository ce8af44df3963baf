//! The stage with synthetic records in the orders the two readers can deliver them.

use agent_common::{
    ABI_VERSION, EventHeader, EventKind, ExecEvent, ForkEvent, SyscallBatch, syscall_nr as nr,
};

use super::*;
use crate::process::{ProcessSource, ProcessState, TableConfig};

fn header(kind: EventKind, size: usize, tgid: u32, start_ns: u64, ktime_ns: u64) -> EventHeader {
    EventHeader {
        kind: kind as u16,
        abi_version: ABI_VERSION,
        size: size as u32,
        ktime_ns,
        pid: tgid,
        tgid,
        start_ns,
    }
}

fn exec(key: ProcessKey, ktime_ns: u64, file: &str) -> Event {
    // SAFETY: all-zero is a valid value of every ABI record.
    let mut e: ExecEvent = unsafe { core::mem::zeroed() };
    e.header = header(EventKind::Exec, size_of::<ExecEvent>(), key.tgid, key.start_ns, ktime_ns);
    e.filename[..file.len()].copy_from_slice(file.as_bytes());
    e.filename_len = file.len() as u16;
    Event::Exec(Box::new(e))
}

fn fork(parent: ProcessKey, child: ProcessKey, ktime_ns: u64) -> Event {
    // SAFETY: as above.
    let mut e: ForkEvent = unsafe { core::mem::zeroed() };
    e.header = header(EventKind::Fork, size_of::<ForkEvent>(), parent.tgid, parent.start_ns, ktime_ns);
    e.child_pid = child.tgid;
    e.child_tgid = child.tgid;
    e.child_start_ns = child.start_ns;
    Event::Fork(e)
}

fn batch(key: ProcessKey, ktime_ns: u64, ids: &[u16]) -> Event {
    // SAFETY: as above.
    let mut b: SyscallBatch = unsafe { core::mem::zeroed() };
    b.header = header(EventKind::SyscallBatch, size_of::<SyscallBatch>(), key.tgid, key.start_ns, ktime_ns);
    b.ids[..ids.len()].copy_from_slice(ids);
    b.count = ids.len() as u16;
    Event::SyscallBatch(b)
}

fn stage(proc_root: &std::path::Path) -> ProcessStage {
    ProcessStage::new(
        ProcessTable::new(TableConfig::default()),
        BehaviourSequences::new(crate::sequence::SequenceConfig::default()),
        None,
        proc_root.to_path_buf(),
        None,
    )
}

/// The child's first batch (SYSCALLS ring) is read before its fork record (EVENTS ring): the
/// child must still come out as its parent's fork, not as a process looked up in /proc.
#[tokio::test]
async fn a_batch_read_before_its_fork_record_leaves_the_child_to_the_fork() {
    let no_proc = tempfile::tempdir().expect("tempdir");
    let mut s = stage(no_proc.path());
    let parent = ProcessKey::new(4000, 1_000);
    let child = ProcessKey::new(4001, 2_000);
    s.handle(vec![exec(parent, 1_500, "/usr/bin/make")]).await.expect("handle");
    s.handle(vec![batch(child, 3_000, &[0, 1, 60])]).await.expect("handle");
    s.handle(vec![fork(parent, child, 2_500)]).await.expect("handle");
    s.release(10_000);

    let c = s.table.get_key(&child).expect("the child is in the table");
    assert_eq!(c.source, ProcessSource::Fork);
    assert_eq!(&*c.exe, "/usr/bin/make");
    assert_eq!(c.ppid, parent.tgid);
    assert!(matches!(c.state, ProcessState::Running), "{:?}", c.state);
    assert_eq!(s.sequences.recent(&child, 8).len(), 3);
}

/// A process the table never heard of (it started before seeding) is still filled in, once
/// both rings are past its tokens.
#[tokio::test]
async fn a_process_never_seen_is_filled_in_at_release() {
    let no_proc = tempfile::tempdir().expect("tempdir");
    let mut s = stage(no_proc.path());
    let stranger = ProcessKey::new(4100, 1_000);
    s.handle(vec![batch(stranger, 3_000, &[0, 1])]).await.expect("handle");
    assert!(s.table.get_key(&stranger).is_none(), "not before the watermark passes");
    s.release(10_000);
    let p = s.table.get_key(&stranger).expect("filled in at release");
    assert_eq!(p.source, ProcessSource::Lazy);
}

fn cred_change(before: (u32, u32, u32), after_euid: u32, ret: i32) -> CredChangeEvent {
    // SAFETY: all-zero is a valid value of every ABI record.
    let mut c: CredChangeEvent = unsafe { core::mem::zeroed() };
    (c.before.uid, c.before.euid, c.before.suid) = before;
    c.after = c.before;
    c.after.euid = after_euid;
    c.ret = ret;
    c
}

#[test]
fn only_a_process_that_held_no_root_id_gains_root() {
    // An exploit (or a CAP_SETUID grant): no root id before, root after.
    assert!(gained_root(&cred_change((1000, 1000, 1000), 0, 0)));
    // sudo/su/passwd taking root back from their saved set-user-ID, or from the real uid.
    assert!(!gained_root(&cred_change((1000, 1000, 0), 0, 0)));
    assert!(!gained_root(&cred_change((0, 1000, 1000), 0, 0)));
    // Already root, a failed call, or a change between unprivileged ids.
    assert!(!gained_root(&cred_change((0, 0, 0), 0, 0)));
    assert!(!gained_root(&cred_change((1000, 1000, 1000), 0, -1)));
    assert!(!gained_root(&cred_change((1000, 1000, 1000), 1001, 0)));
    // Ids before that nobody recorded decide nothing.
    let mut unknown = cred_change((0, 0, 0), 0, 0);
    unknown.before = agent_common::Creds::UNKNOWN;
    assert!(!gained_root(&unknown));
}

#[test]
fn asking_for_root_without_holding_it_and_being_refused_is_root_denied() {
    let call = |nr: u32, requested: [u32; 3], ret: i32| {
        let mut c = cred_change((65534, 65534, 65534), 65534, ret);
        (c.before.gid, c.before.egid, c.before.sgid) = (65534, 65534, 65534);
        c.syscall_nr = nr;
        c.requested = requested;
        c
    };
    const EPERM: i32 = -1;
    const KEEP: u32 = u32::MAX;
    assert!(denied_root(&call(nr::SETUID, [0, 0, 0], EPERM)));
    assert!(denied_root(&call(nr::SETREUID, [KEEP, 0, 0], EPERM)));
    assert!(denied_root(&call(nr::SETRESGID, [KEEP, KEEP, 0], EPERM)));
    let (event, detail) =
        security_event(&Event::CredChange(call(nr::SETREUID, [0, KEEP, 0], EPERM))).expect("event");
    assert_eq!(event, SecurityEvent::RootDenied);
    assert_eq!(detail, "setreuid(0, -1) by uid 65534 (euid 65534, gid 65534, egid 65534) refused (result -1)");
    // Dropping to one's own ids; a third id setreuid does not take; a call that succeeded.
    assert!(!denied_root(&call(nr::SETUID, [65534, 0, 0], EPERM)));
    assert!(!denied_root(&call(nr::SETREUID, [KEEP, KEEP, 0], EPERM)));
    assert!(!denied_root(&call(nr::SETUID, [0, 0, 0], 0)));
    // setfsuid never fails; a process holding root in a saved id is not asking for it.
    assert!(!denied_root(&call(nr::SETFSUID, [0, 0, 0], EPERM)));
    let mut saved_root = call(nr::SETUID, [0, 0, 0], EPERM);
    saved_root.before.suid = 0;
    assert!(!denied_root(&saved_root));
}

#[test]
fn only_taking_hold_of_a_process_is_a_ptrace_attach() {
    let ptrace = |request: i64| {
        // SAFETY: all-zero is a valid value of every ABI record.
        let mut p: agent_common::PtraceEvent = unsafe { core::mem::zeroed() };
        p.header.kind = agent_common::EventKind::Ptrace as u16;
        p.request = request;
        p.target_pid = 812;
        Event::Ptrace(p)
    };
    let (event, detail) = security_event(&ptrace(PTRACE_SEIZE)).expect("seize");
    assert_eq!(event, SecurityEvent::PtraceAttach);
    assert_eq!(detail, "ptrace PTRACE_SEIZE of pid 812 (result 0)");
    assert!(security_event(&ptrace(PTRACE_ATTACH)).is_some());
    // PTRACE_TRACEME (a debuggee asking for its parent) and PTRACE_PEEKDATA (already attached).
    assert!(security_event(&ptrace(0)).is_none());
    assert!(security_event(&ptrace(2)).is_none());
    // process_vm_writev shares the record; the responder decides on it, with the table.
    let Event::Ptrace(mut vm_write) = ptrace(PTRACE_ATTACH) else { unreachable!() };
    vm_write.header.kind = agent_common::EventKind::MemoryWrite as u16;
    assert!(security_event(&Event::Ptrace(vm_write)).is_none());
    // A cred change that is no gain of root is no event either.
    assert!(security_event(&Event::CredChange(cred_change((1000, 1000, 0), 0, 0))).is_none());
    let (event, _) = security_event(&Event::CredChange(cred_change((1000, 1000, 1000), 0, 0)))
        .expect("gained root");
    assert_eq!(event, SecurityEvent::GainedRoot);
}

#[test]
fn a_setuid_chmod_names_its_file_as_far_as_proc_allows() {
    let proc = tempfile::tempdir().expect("tempdir");
    let pid = proc.path().join("4242");
    std::fs::create_dir_all(pid.join("fd")).expect("fd dir");
    std::os::unix::fs::symlink("/srv/app", pid.join("cwd")).expect("cwd link");
    std::os::unix::fs::symlink("/opt/tools", pid.join("fd/5")).expect("dirfd link");
    std::os::unix::fs::symlink("/tmp/.b", pid.join("fd/3")).expect("fd link");
    let chmod = |nr: u32, fd: i32, path: &str| {
        // SAFETY: all-zero is a valid value of every ABI record.
        let mut c: SetuidChmodEvent = unsafe { core::mem::zeroed() };
        (c.syscall_nr, c.fd, c.mode, c.path_len) = (nr, fd, 0o4755, path.len() as u32);
        c.path[..path.len()].copy_from_slice(path.as_bytes());
        c
    };
    let detail = |c: &SetuidChmodEvent, tgid| setuid_chmod_detail(c, proc.path(), tgid);
    let absolute = chmod(nr::FCHMODAT, -100, "/usr/local/bin/x");
    assert_eq!(detail(&absolute, 4242), "fchmodat 4755 of /usr/local/bin/x (result 0)");
    let in_cwd = chmod(nr::FCHMODAT, -100, "bin/x");
    assert_eq!(detail(&in_cwd, 4242), "fchmodat 4755 of /srv/app/bin/x (result 0)");
    assert_eq!(detail(&in_cwd, 7), "fchmodat 4755 of bin/x (relative to its cwd) (result 0)");
    let in_dirfd = chmod(nr::FCHMODAT, 5, "x");
    assert_eq!(detail(&in_dirfd, 4242), "fchmodat 4755 of /opt/tools/x (result 0)");
    let by_fd = chmod(nr::FCHMOD, 3, "");
    assert_eq!(detail(&by_fd, 4242), "fchmod 4755 of /tmp/.b (result 0)");
    assert_eq!(detail(&by_fd, 7), "fchmod 4755 of fd 3 (result 0)");
}

#[test]
fn bpf_programs_that_hook_kernel_code_or_packets_are_named_and_cgroup_programs_are_not() {
    assert_eq!(bpf_hook_type(2), Some("kprobe"));
    assert_eq!(bpf_hook_type(26), Some("tracing (fentry/fexit)"));
    assert_eq!(bpf_hook_type(29), Some("LSM"));
    assert_eq!(bpf_hook_type(6), Some("XDP"));
    // socket filter, cgroup skb, cgroup device (systemd, runc), struct_ops (sched_ext)
    for not_a_hook in [1, 8, 15, 27] {
        assert_eq!(bpf_hook_type(not_a_hook), None, "{not_a_hook}");
    }
}
