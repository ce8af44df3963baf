//! Table behaviour with synthetic ABI events and a fake `/proc`.

use std::path::Path;
use std::time::{Duration, Instant};

use agent_common::{ABI_VERSION, EventHeader, EventKind, ExecEvent, ExitEvent, ForkEvent};

use super::fake_proc::{FakeProc, FakeProcess};
use super::proc_seed::PF_KTHREAD;
use super::*;

/// A start time in the middle of clock tick `tick`, as an exact kernel value would be.
fn at_tick(tick: u64) -> u64 {
    tick * ns_per_tick() + ns_per_tick() / 3
}

fn header(kind: EventKind, size: usize, tgid: u32, start_ns: u64) -> EventHeader {
    EventHeader {
        kind: kind as u16,
        abi_version: ABI_VERSION,
        size: size as u32,
        ktime_ns: 5_000,
        pid: tgid,
        tgid,
        start_ns,
    }
}

fn exec(tgid: u32, start_ns: u64, ppid: u32, parent_start_ns: u64, file: &str) -> ExecEvent {
    let mut e: ExecEvent = unsafe { core::mem::zeroed() };
    e.header = header(EventKind::Exec, size_of::<ExecEvent>(), tgid, start_ns);
    e.ppid = ppid;
    e.parent_start_ns = parent_start_ns;
    e.uid = 1000;
    e.euid = 1000;
    e.gid = 100;
    e.egid = 100;
    e.cgroup_id = 77;
    e.filename[..file.len()].copy_from_slice(file.as_bytes());
    e.filename_len = file.len() as u16;
    let name = file.rsplit('/').next().unwrap_or(file);
    let comm = &name.as_bytes()[..name.len().min(15)];
    e.comm[..comm.len()].copy_from_slice(comm);
    let args = format!("{name}\0--flag\0");
    e.args[..args.len()].copy_from_slice(args.as_bytes());
    e.args_len = args.len() as u16;
    e
}

fn fork(parent: ProcessKey, child_pid: u32, child_tgid: u32, child_start: u64) -> ForkEvent {
    let mut e: ForkEvent = unsafe { core::mem::zeroed() };
    e.header = header(
        EventKind::Fork,
        size_of::<ForkEvent>(),
        parent.tgid,
        parent.start_ns,
    );
    e.child_pid = child_pid;
    e.child_tgid = child_tgid;
    e.child_start_ns = child_start;
    e
}

fn exit(key: ProcessKey, code: u32) -> ExitEvent {
    let mut e: ExitEvent = unsafe { core::mem::zeroed() };
    e.header = header(
        EventKind::Exit,
        size_of::<ExitEvent>(),
        key.tgid,
        key.start_ns,
    );
    e.exit_code = code;
    e
}

fn table() -> ProcessTable {
    ProcessTable::new(TableConfig::default())
}

fn fake_tree() -> FakeProc {
    let fp = FakeProc::new();
    fp.add(&FakeProcess {
        pid: 1,
        comm: "systemd",
        start_ticks: 1,
        cmdline: &["/sbin/init", "splash"],
        exe: Some("/usr/lib/systemd/systemd"),
        ..Default::default()
    });
    fp.add(&FakeProcess {
        pid: 2,
        comm: "kthreadd",
        flags: PF_KTHREAD,
        start_ticks: 1,
        ..Default::default()
    });
    fp.add(&FakeProcess {
        pid: 3,
        ppid: 2,
        comm: "kworker/0:0-events",
        flags: PF_KTHREAD,
        start_ticks: 2,
        ..Default::default()
    });
    fp.add(&FakeProcess {
        pid: 100,
        ppid: 1,
        comm: "my (odd)) app",
        start_ticks: 500,
        uid: (1000, 0),
        gid: (100, 101),
        cmdline: &["app", "--name", "a b"],
        exe: Some("/opt/app/bin/app (deleted)"),
        ..Default::default()
    });
    fp.add(&FakeProcess {
        pid: 300,
        ppid: 100,
        comm: "defunct",
        state: 'Z',
        start_ticks: 600,
        ..Default::default()
    });
    fp.add_vanished(200);
    fp
}

#[test]
fn seeds_from_fake_proc() {
    let fp = fake_tree();
    let mut t = table();
    assert_eq!(t.seed_from_proc(fp.root()).unwrap(), 5);
    assert_eq!(t.len(), 5);
    assert_eq!(t.running(), 4, "the zombie counts as exited");
    assert!(t.get(200).is_none(), "vanished mid-walk: skipped");

    let app = t.get(100).unwrap();
    assert_eq!(&*app.comm, "my (odd)) app");
    assert_eq!(&*app.exe, "/opt/app/bin/app (deleted)");
    assert_eq!(&app.cmdline[..], ["app", "--name", "a b"]);
    assert_eq!((app.uid, app.euid, app.gid, app.egid), (1000, 0, 100, 101));
    assert_eq!(app.ppid, 1);
    assert_eq!(
        app.parent_start_ns,
        Some(ns_per_tick()),
        "parent linked by key after seeding"
    );
    assert_eq!(app.key.start_ticks(), 500);
    assert_eq!(app.source, ProcessSource::Seeded);
    assert!(!app.kernel_thread && app.is_running());

    for pid in [2, 3] {
        let k = t.get(pid).unwrap();
        assert!(k.kernel_thread, "pid {pid}");
        assert!(k.exe.is_empty() && k.cmdline.is_empty());
    }
    assert!(!t.get(1).unwrap().kernel_thread);
    assert!(matches!(
        t.get(300).unwrap().state,
        ProcessState::Exited { exit_code: 256, .. }
    ));
}

#[test]
fn seeding_keeps_what_events_already_reported() {
    let fp = fake_tree();
    let mut t = table();
    t.on_exec(
        &exec(100, at_tick(500), 1, 0, "/usr/bin/newer"),
        Instant::now(),
    );
    assert_eq!(t.seed_from_proc(fp.root()).unwrap(), 4);
    assert_eq!(&*t.get(100).unwrap().exe, "/usr/bin/newer");
    assert_eq!(t.get(100).unwrap().key.start_ns, at_tick(500));
}

#[test]
fn exec_on_seeded_entry_matches_at_tick_granularity() {
    let fp = fake_tree();
    let mut t = table();
    t.seed_from_proc(fp.root()).unwrap();
    let now = Instant::now();
    let p = t.on_exec(
        &exec(100, at_tick(500), 1, ns_per_tick(), "/usr/bin/bash"),
        now,
    );
    assert_eq!(
        p.key,
        ProcessKey::new(100, at_tick(500)),
        "key upgraded to the exact time"
    );
    assert_eq!(p.source, ProcessSource::Seeded);
    assert_eq!(p.execs, 1);
    assert_eq!(&*p.exe, "/usr/bin/bash");
    assert_eq!(&p.cmdline[..], ["bash", "--flag"]);
    assert_eq!(&*p.comm, "bash");
    assert_eq!(p.cgroup_id, Some(77));
    assert_eq!(p.last_exec_ktime_ns, Some(5_000));
    assert_eq!(t.len(), 5, "no duplicate entry");
}

#[test]
fn repeated_exec_updates_the_image_and_counts() {
    let mut t = table();
    let now = Instant::now();
    let k = ProcessKey::new(50, at_tick(10));
    t.on_exec(&exec(50, k.start_ns, 1, 0, "/bin/sh"), now);
    assert!(t.set_exe_sha256(&k, 1, &"aa".into()));
    let p = t.on_exec(&exec(50, k.start_ns, 1, 0, "/usr/bin/python3"), now);
    assert_eq!((p.execs, &*p.exe), (2, "/usr/bin/python3"));
    assert_eq!(p.exe_sha256, None, "a new image invalidates the digest");
    assert_eq!(p.source, ProcessSource::Exec);
    assert_eq!(p.parent_start_ns, None, "0 from the kernel means unknown");
    assert!(
        !t.set_exe_sha256(&k, 1, &"aa".into()),
        "digest of the old image is refused"
    );
    assert!(t.set_exe_sha256(&k, 2, &"bb".into()));
    assert_eq!(t.len(), 1);
}

#[test]
fn fork_inherits_and_threads_are_ignored() {
    let mut t = table();
    let now = Instant::now();
    let parent = ProcessKey::new(10, at_tick(5));
    t.on_exec(&exec(10, parent.start_ns, 1, 0, "/usr/sbin/sshd"), now);
    t.set_exe_sha256(&parent, 1, &"cafe".into());

    assert!(
        t.on_fork(&fork(parent, 11, 10, at_tick(6)), now).is_none(),
        "a new thread"
    );
    assert_eq!(t.len(), 1);

    let child = t.on_fork(&fork(parent, 12, 12, at_tick(7)), now).unwrap();
    assert_eq!(child.key, ProcessKey::new(12, at_tick(7)));
    assert_eq!(
        (child.ppid, child.parent_start_ns),
        (10, Some(parent.start_ns))
    );
    assert_eq!(&*child.exe, "/usr/sbin/sshd");
    assert_eq!(&child.cmdline[..], ["sshd", "--flag"]);
    assert_eq!((child.uid, child.cgroup_id), (1000, Some(77)));
    assert_eq!(
        child.exe_sha256.as_deref(),
        Some("cafe"),
        "same image as the parent"
    );
    assert_eq!((child.execs, child.source), (0, ProcessSource::Fork));
    assert_eq!(t.len(), 2);
    assert_eq!(&*t.ancestry(12)[0].comm, "sshd");
}

#[test]
fn fork_arriving_after_the_childs_exec_keeps_the_exec_image() {
    let mut t = table();
    let now = Instant::now();
    let parent = ProcessKey::new(10, at_tick(5));
    t.on_exec(&exec(10, parent.start_ns, 1, 0, "/bin/bash"), now);
    t.on_exec(&exec(12, at_tick(7), 10, 0, "/bin/ls"), now);
    let child = t.on_fork(&fork(parent, 12, 12, at_tick(7)), now).unwrap();
    assert_eq!(&*child.exe, "/bin/ls");
    assert_eq!(
        child.parent_start_ns,
        Some(parent.start_ns),
        "lineage filled in"
    );
    assert_eq!(child.source, ProcessSource::Exec);
}

#[test]
fn fork_from_unknown_parent_and_from_kthreadd() {
    let mut t = table();
    let now = Instant::now();
    let c = t
        .on_fork(&fork(ProcessKey::new(77, 1), 78, 78, at_tick(9)), now)
        .unwrap();
    assert_eq!((c.ppid, &*c.exe, c.kernel_thread), (77, "", false));
    let k = t
        .on_fork(&fork(ProcessKey::new(2, 1), 90, 90, at_tick(9)), now)
        .unwrap();
    assert!(k.kernel_thread);
}

#[test]
fn exit_is_kept_for_the_grace_period() {
    let mut t = ProcessTable::new(TableConfig {
        exit_grace: Duration::from_secs(30),
        ..Default::default()
    });
    let t0 = Instant::now();
    let k = ProcessKey::new(40, at_tick(3));
    t.on_exec(&exec(40, k.start_ns, 1, 0, "/bin/false"), t0);
    let p = t.on_exit(&exit(k, 1 << 8), t0).unwrap();
    assert_eq!(
        p.state,
        ProcessState::Exited {
            exit_code: 256,
            at: t0
        }
    );
    assert!(
        t.on_exit(&exit(ProcessKey::new(41, 1), 0), t0).is_none(),
        "unknown: ignored"
    );

    assert_eq!(t.evict_expired(t0 + Duration::from_secs(29)), 0);
    assert_eq!(
        &*t.get(40).unwrap().exe,
        "/bin/false",
        "late events still resolve"
    );
    assert_eq!(t.evict_expired(t0 + Duration::from_secs(30)), 1);
    assert!(t.get_key(&k).is_none());
    assert_eq!((t.len(), t.expired_total(), t.evicted_total()), (0, 1, 0));
}

#[test]
fn an_exec_storm_keeps_only_the_newest_exits() {
    let mut t = ProcessTable::new(TableConfig {
        max_exited: 3,
        ..Default::default()
    });
    let t0 = Instant::now();
    let s = |i: u64| t0 + Duration::from_millis(i);
    t.on_exec(&exec(1, at_tick(1), 0, 0, "/bin/sh"), t0);
    for pid in 10..16u32 {
        t.on_exec(&exec(pid, at_tick(2), 1, at_tick(1), "/bin/true"), s(pid.into()));
        t.on_exit(&exit(ProcessKey::new(pid, at_tick(2)), 0), s(100 - u64::from(pid)));
    }
    // Within the grace period, but six exits are over the bound: the three oldest go.
    assert_eq!(t.evict_expired(s(200)), 3);
    let kept: Vec<u32> = (10..16).filter(|&pid| t.get(pid).is_some()).collect();
    assert_eq!(kept, [10, 11, 12], "the latest exits (pids exited last) stay");
    assert!(t.get(1).is_some_and(ProcessInfo::is_running));
    assert_eq!((t.len(), t.evicted_total(), t.expired_total()), (4, 3, 0));
    assert_eq!(t.evict_expired(s(201)), 0, "at the bound, nothing more goes");
}

#[test]
fn pid_reuse_makes_a_new_process() {
    let mut t = table();
    let now = Instant::now();
    let old = ProcessKey::new(100, at_tick(10));
    let new = ProcessKey::new(100, at_tick(20));
    t.on_exec(&exec(100, old.start_ns, 1, 0, "/bin/old"), now);
    // A child of the old process, which outlives it.
    t.on_exec(
        &exec(150, at_tick(12), 100, old.start_ns, "/bin/child"),
        now,
    );
    t.on_exit(&exit(old, 0), now);
    t.on_exec(&exec(100, new.start_ns, 1, 0, "/bin/new"), now);

    assert_eq!(t.len(), 3);
    assert_eq!(&*t.get(100).unwrap().exe, "/bin/new");
    assert!(t.get(100).unwrap().is_running());
    assert_eq!(&*t.get_key(&old).unwrap().exe, "/bin/old");
    assert!(!t.get_key(&old).unwrap().is_running());
    assert_eq!(
        t.ancestry(150)[0].exe,
        "/bin/old",
        "the child's parent is the old process"
    );

    // Exit of the old key, arriving late, must not touch the new one.
    t.on_exit(&exit(old, 9), now);
    assert!(t.get_key(&new).unwrap().is_running());
}

#[test]
fn pid_reuse_with_a_missed_exit_retires_the_predecessor() {
    let mut t = table();
    let now = Instant::now();
    t.on_exec(&exec(100, at_tick(10), 1, 0, "/bin/old"), now);
    t.on_exec(&exec(100, at_tick(20), 1, 0, "/bin/new"), now);
    let old = t.get_key(&ProcessKey::new(100, at_tick(10))).unwrap();
    assert!(matches!(
        old.state,
        ProcessState::Exited {
            exit_code: EXIT_CODE_UNKNOWN,
            ..
        }
    ));
    assert_eq!(t.running(), 1);
}

#[test]
fn parent_by_pid_ignores_a_younger_recycled_pid() {
    let mut t = table();
    let now = Instant::now();
    // Child knows only its parent's pid, which now names a process younger than the child.
    t.on_exec(&exec(60, at_tick(100), 1, 0, "/bin/impostor"), now);
    t.on_exec(&exec(61, at_tick(50), 60, 0, "/bin/child"), now);
    let a = t.ancestry(61);
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].pid, &*a[0].exe),
        (60, ""),
        "unknown, not the impostor"
    );
}

#[test]
fn ancestry_walks_to_init() {
    let mut t = table();
    let now = Instant::now();
    t.on_exec(&exec(1, at_tick(1), 0, 0, "/sbin/init"), now);
    t.on_exec(&exec(10, at_tick(2), 1, at_tick(1), "/usr/sbin/sshd"), now);
    t.on_exec(&exec(11, at_tick(3), 10, at_tick(2), "/bin/bash"), now);
    t.on_exec(&exec(12, at_tick(4), 11, at_tick(3), "/usr/bin/curl"), now);
    let a = t.ancestry(12);
    let pids: Vec<u32> = a.iter().map(|a| a.pid).collect();
    assert_eq!(pids, [11, 10, 1]);
    assert_eq!(
        a[0],
        Ancestor {
            pid: 11,
            exe: "/bin/bash".into(),
            comm: "bash".into()
        }
    );
    assert!(t.ancestry(1).is_empty());
    assert!(t.ancestry(999).is_empty());
}

#[test]
fn ancestry_is_cycle_safe_and_bounded() {
    let mut t = table();
    let now = Instant::now();
    t.on_exec(&exec(20, at_tick(1), 21, at_tick(1), "/a"), now);
    t.on_exec(&exec(21, at_tick(1), 20, at_tick(1), "/b"), now);
    let a = t.ancestry(20);
    assert_eq!(a.iter().map(|a| a.pid).collect::<Vec<_>>(), [21]);

    t.on_exec(&exec(22, at_tick(1), 22, at_tick(1), "/self-parent"), now);
    assert!(t.ancestry(22).is_empty());

    for pid in 1000..1200u32 {
        t.on_exec(&exec(pid, at_tick(1), pid - 1, at_tick(1), "/x"), now);
    }
    assert_eq!(t.ancestry(1199).len(), MAX_ANCESTRY);
}

#[test]
fn eviction_keeps_memory_bounded_and_prefers_exited() {
    let mut t = ProcessTable::new(TableConfig {
        max_entries: 10,
        ..Default::default()
    });
    let t0 = Instant::now();
    let s = |i: u64| t0 + Duration::from_millis(i);
    // Five running processes seen long ago, then five that exit recently.
    for pid in 1..=5u32 {
        t.on_exec(&exec(pid, at_tick(1), 0, 0, "/run"), s(pid.into()));
    }
    for pid in 6..=10u32 {
        t.on_exec(&exec(pid, at_tick(1), 0, 0, "/gone"), s(pid.into()));
        t.on_exit(
            &exit(ProcessKey::new(pid, at_tick(1)), 0),
            s(100 + u64::from(pid)),
        );
    }
    assert_eq!(t.len(), 10);
    t.on_exec(&exec(11, at_tick(1), 0, 0, "/new"), s(200));
    assert_eq!(t.len(), 10);
    assert!(t.get(6).is_none(), "earliest exit evicted first");
    assert!((1..=5).all(|p| t.get(p).is_some()), "running ones kept");
    assert_eq!((t.evicted_total(), t.evicted_running_total()), (1, 0));

    // Flood with running processes: the bound holds and running evictions are counted.
    for pid in 100..400u32 {
        t.on_exec(
            &exec(pid, at_tick(1), 0, 0, "/flood"),
            s(300 + u64::from(pid)),
        );
        assert!(t.len() <= 10);
    }
    assert!(t.evicted_running_total() > 0);
    assert!(t.get(399).is_some(), "the newest survives");
    assert_eq!(t.len() as u64 + t.evicted_total(), 311);
}

#[test]
fn evict_expired_enforces_a_lowered_bound() {
    let mut t = table();
    let now = Instant::now();
    for pid in 1..=20u32 {
        t.on_exec(
            &exec(pid, at_tick(1), 0, 0, "/x"),
            now + Duration::from_millis(pid.into()),
        );
    }
    t.config.max_entries = 5;
    assert_eq!(t.evict_expired(now), 15);
    assert_eq!(t.len(), 5);
    assert!(
        (16..=20).all(|p| t.get(p).is_some()),
        "most recently seen kept"
    );
}

#[test]
fn ensure_fills_lazily_from_proc() {
    let fp = fake_tree();
    let mut t = table();
    let now = Instant::now();

    let p = t.ensure(ProcessKey::new(100, at_tick(500)), fp.root(), now);
    assert_eq!(
        (p.source, &*p.exe),
        (ProcessSource::Lazy, "/opt/app/bin/app (deleted)")
    );
    assert_eq!(
        p.key.start_ns,
        at_tick(500),
        "the caller's exact key is kept"
    );
    assert!(p.is_running());

    // /proc/1 is a different (older) process than this key names: ours is gone.
    let gone = t.ensure(ProcessKey::new(1, at_tick(900)), fp.root(), now);
    assert!(gone.exe.is_empty() && !gone.is_running());
    let absent = t.ensure(ProcessKey::new(4242, at_tick(9)), fp.root(), now);
    assert!(!absent.is_running());

    // Known: returned as is, /proc not consulted.
    let k = ProcessKey::new(7, at_tick(1));
    t.on_exec(&exec(7, k.start_ns, 1, 0, "/bin/known"), now);
    assert_eq!(
        &*t.ensure(k, Path::new("/nonexistent"), now).exe,
        "/bin/known"
    );
    assert_eq!(t.len(), 4);
}

#[test]
fn seeds_from_real_proc_and_finds_itself() {
    let mut t = table();
    let added = t.seed_from_proc(Path::new("/proc")).unwrap();
    assert!(added >= 1);
    let me = t.get(std::process::id()).expect("own pid seeded");
    assert_eq!(me.ppid, std::os::unix::process::parent_id());
    let exe = std::env::current_exe().unwrap();
    assert_eq!(&*me.exe, exe.to_string_lossy());
    // SAFETY: getuid has no preconditions.
    assert_eq!(me.uid, unsafe { libc::getuid() });
    assert!(me.is_running() && !me.kernel_thread);
    assert_eq!(me.source, ProcessSource::Seeded);
    assert!(!t.ancestry(std::process::id()).is_empty());
}

#[test]
fn an_image_execd_by_a_relative_path_is_named_by_its_running_path() {
    let mut t = table();
    let now = Instant::now();
    let k = ProcessKey::new(60, at_tick(12));
    let execs = t.on_exec(&exec(60, k.start_ns, 1, 0, "./bash"), now).execs;
    t.resolve_relative_exe(&k, execs, "/usr/bin/bash");
    assert_eq!(&*t.get_key(&k).unwrap().exe, "/usr/bin/bash");
    // An absolute exec name stays as exec'd (a symlink's name is what rules are written for).
    let execs = t.on_exec(&exec(60, k.start_ns, 1, 0, "/bin/sh"), now).execs;
    t.resolve_relative_exe(&k, execs, "/usr/bin/dash");
    assert_eq!(&*t.get_key(&k).unwrap().exe, "/bin/sh");
    // A stale answer about an earlier image changes nothing.
    let execs = t.on_exec(&exec(60, k.start_ns, 1, 0, "./tool"), now).execs;
    t.resolve_relative_exe(&k, execs - 1, "/usr/bin/dash");
    assert_eq!(&*t.get_key(&k).unwrap().exe, "./tool");
}
