//! The sensors end to end on the real kernel: vigil's programs observe a scenario process this
//! test starts, and every assertion is about that process (or about vigil itself).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpListener,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use vigil_tests::{Daemon, MARKER, of_pid, of_type, require_root, serial, syscalls_of};

const SCENARIO: &str = env!("CARGO_BIN_EXE_vigil-scenario");

fn listener(addr: &str) -> (TcpListener, u16) {
    let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let port = l.local_addr().expect("local addr").port();
    (l, port)
}

/// A port nothing listens on: bind, note it, close.
fn closed_port() -> u16 {
    let (l, port) = listener("127.0.0.1:0");
    drop(l);
    port
}

#[test]
fn exec_syscalls_connects_and_exit_of_a_child_are_reported() {
    if !require_root("exec_syscalls_connects_and_exit_of_a_child_are_reported") {
        return;
    }
    let _serial = serial();
    // The daemon's incidents and status go to journald; "nothing lost" below includes them.
    vigil_tests::journal::ensure_journald().expect("a journald to log to");
    let daemon = Daemon::start("lifecycle", &[]);
    let (_l4, p4) = listener("127.0.0.1:0");
    let (_l6, p6) = listener("[::1]:0");
    let refused = closed_port();

    let out = Command::new(SCENARIO)
        .args(["known", &p4.to_string(), &p6.to_string(), &refused.to_string(), "42"])
        .output()
        .expect("run scenario");
    assert_eq!(out.status.code(), Some(42), "scenario failed: {}", String::from_utf8_lossy(&out.stderr));

    // We cannot learn the child's pid from Output; find it through its exec event.
    let exec = daemon.wait_for("the scenario's exec", Duration::from_secs(20), |e| {
        e["type"] == "exec" && e["filename"] == SCENARIO && e["parent_pid"] == std::process::id()
    });
    let pid = exec["pid"].as_u64().expect("pid") as u32;
    daemon.wait_for("the scenario's exit", Duration::from_secs(20), |e| e["type"] == "exit" && e["pid"] == pid);
    let status = daemon.status();
    let vigil_pid = daemon.pid();
    let (exit, events) = daemon.stop();
    assert!(exit.success(), "vigil exited with {exit}");

    // exec: parent, filename, argv, credentials.
    assert_eq!(exec["argv"][0], SCENARIO);
    assert_eq!(exec["argv"][1], "known");
    assert_eq!(exec["uid"], 0);
    assert_eq!(exec["euid"], 0);

    // fork: this test process created the child.
    let me = std::process::id();
    assert!(
        of_type(of_pid(&events, me), "fork").any(|f| f["child_pid"] == pid),
        "no fork event from the test ({me}) to the scenario ({pid})"
    );

    // The marker sequence, in order and contiguous, inside the child's batches.
    let calls = syscalls_of(&events, pid);
    assert!(
        calls.windows(MARKER.len()).any(|w| w == MARKER),
        "marker sequence {MARKER:?} not found in the scenario's {} syscalls: {calls:?}",
        calls.len()
    );
    // The connects and exit_group are there too, after the marker.
    let after = calls.iter().skip_while(|&&c| c != libc::SYS_sched_yield);
    let connects = after.clone().filter(|&&c| c == libc::SYS_connect).count();
    assert_eq!(connects, 3, "connect syscalls after the marker in {calls:?}");
    assert_eq!(calls.last(), Some(&libc::SYS_exit_group), "last syscall");

    // connect events: destination, port and result.
    let net: Vec<&Value> = of_type(of_pid(&events, pid), "connect").collect();
    let find = |port: u16| net.iter().find(|e| e["port"] == port).copied();
    let v4 = find(p4).unwrap_or_else(|| panic!("no connect to 127.0.0.1:{p4} in {net:?}"));
    assert_eq!((v4["family"].as_str(), v4["addr"].as_str(), v4["ret"].as_i64()), (Some("inet"), Some("127.0.0.1"), Some(0)));
    let v6 = find(p6).unwrap_or_else(|| panic!("no connect to [::1]:{p6} in {net:?}"));
    assert_eq!((v6["family"].as_str(), v6["addr"].as_str(), v6["ret"].as_i64()), (Some("inet6"), Some("::1"), Some(0)));
    let r = find(refused).unwrap_or_else(|| panic!("no connect to the closed port {refused} in {net:?}"));
    assert_eq!(r["ret"].as_i64(), Some(-(libc::ECONNREFUSED as i64)));

    // exit: the code the scenario chose.
    let exit_ev = of_type(of_pid(&events, pid), "exit").next().expect("exit event");
    assert_eq!(exit_ev["exit_code"], 42);
    assert!(exit_ev.get("signal").is_none());

    // Nothing lost, and nothing from vigil itself.
    let losses = status["losses"].as_object().expect("losses");
    assert!(losses.values().all(|v| v == 0), "losses: {losses:?}");
    assert!(of_pid(&events, vigil_pid).next().is_none(), "vigil reported its own activity");
    let attached = status["programs"].as_array().expect("programs");
    assert!(!attached.is_empty());
}

#[test]
fn a_syscall_flood_is_fully_accounted() {
    if !require_root("a_syscall_flood_is_fully_accounted") {
        return;
    }
    let _serial = serial();
    let daemon = Daemon::start("flood", &[]);
    let before = daemon.status();
    let out = Command::new(SCENARIO).args(["flood", "3"]).output().expect("run flood");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let generated: u64 = parts.next().and_then(|s| s.parse().ok()).expect("call count");
    let secs: f64 = parts.next().and_then(|s| s.parse().ok()).expect("seconds");

    let exec = daemon.wait_for("the flood's exec", Duration::from_secs(20), |e| {
        e["type"] == "exec" && e["filename"] == SCENARIO && e["argv"][1] == "flood"
    });
    let pid = exec["pid"].as_u64().expect("pid") as u32;
    daemon.wait_for("the flood's exit", Duration::from_secs(60), |e| e["type"] == "exit" && e["pid"] == pid);
    let after = daemon.status();
    let (exit, events) = daemon.stop();
    assert!(exit.success());

    let received = syscalls_of(&events, pid).iter().filter(|&&c| c == libc::SYS_getppid).count() as u64;
    let counter = |s: &Value, k: &str| s["losses"][k].as_u64().unwrap_or(0);
    // Loss counters are host-wide: they bound this process's losses from above.
    let lost_syscalls = counter(&after, "syscalls_in_lost_batches") - counter(&before, "syscalls_in_lost_batches");
    eprintln!(
        "flood: generated {generated} getppid in {secs:.2}s ({:.2} M/s); received {received}; \
         kernel-counted lost syscalls {lost_syscalls}",
        generated as f64 / secs / 1e6
    );
    assert!(received <= generated, "received more than generated");
    let missing = generated - received;
    assert!(
        missing <= lost_syscalls,
        "{missing} syscalls missing but only {lost_syscalls} counted as lost"
    );
    // Lifecycle events of the flooding process survive the flood.
    assert!(of_type(of_pid(&events, pid), "exit").next().is_some());
}

#[test]
fn a_thread_moving_between_cpus_keeps_its_syscall_order() {
    if !require_root("a_thread_moving_between_cpus_keeps_its_syscall_order") {
        return;
    }
    let _serial = serial();
    let daemon = Daemon::start("migrate", &[]);
    let before = daemon.status();
    const ROUNDS: usize = 600;
    let out = Command::new(SCENARIO).args(["migrate", &ROUNDS.to_string()]).output().expect("run migrate");
    assert!(out.status.success(), "scenario failed: {}", String::from_utf8_lossy(&out.stderr));
    let exec = daemon.wait_for("the scenario's exec", Duration::from_secs(20), |e| {
        e["type"] == "exec" && e["filename"] == SCENARIO && e["argv"][1] == "migrate"
    });
    let pid = exec["pid"].as_u64().expect("pid") as u32;
    daemon.wait_for("the scenario's exit", Duration::from_secs(20), |e| e["type"] == "exit" && e["pid"] == pid);
    let after = daemon.status();
    let (exit, events) = daemon.stop();
    assert!(exit.success());

    let markers = [libc::SYS_getuid, libc::SYS_getgid, libc::SYS_getppid];
    let expected: Vec<i64> = (0..ROUNDS).flat_map(|i| [libc::SYS_sched_setaffinity, markers[i % 3]]).collect();
    let interesting = |c: &i64| *c == libc::SYS_sched_setaffinity || markers.contains(c);
    let got: Vec<i64> = syscalls_of(&events, pid).into_iter().filter(interesting).collect();
    // The process's batches as they arrived, unsorted: the daemon's own order must be right too.
    let arrived: Vec<i64> = of_type(of_pid(&events, pid), "syscall_batch")
        .flat_map(|b| b["syscalls"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_i64())
        .filter(interesting)
        .collect();
    let first_difference = |v: &[i64]| v.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(got.len(), expected.len(), "calls received vs made");
    assert_eq!(first_difference(&got), None, "order by batch start");
    assert_eq!(first_difference(&arrived), None, "order of arrival");
    let unswitched = |s: &Value| s["kernel_emitted"]["unswitched_slots"].as_u64().expect("unswitched_slots");
    assert_eq!(unswitched(&after) - unswitched(&before), 0, "a CPU slot outlived its task");
    if let Ok(n) = std::thread::available_parallelism()
        && n.get() < 2
    {
        eprintln!("a_thread_moving_between_cpus_keeps_its_syscall_order: one CPU, so no migration was exercised");
    }
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    if !require_root("a_second_daemon_on_the_same_socket_is_refused") {
        return;
    }
    let _serial = serial();
    let daemon = Daemon::start("second", &[]);
    let out = Command::new(vigil_tests::vigil_bin())
        .args(["run", "--control-socket"])
        .arg(&daemon.socket)
        .output()
        .expect("run second vigil");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another vigil is running"), "stderr: {err}");
    daemon.stop();
}

#[test]
fn security_relevant_syscalls_are_reported_with_their_results() {
    if !require_root("security_relevant_syscalls_are_reported_with_their_results") {
        return;
    }
    let _serial = serial();
    let daemon = Daemon::start("security", &[]);
    let out = Command::new(SCENARIO).arg("security").output().expect("run scenario");
    assert!(out.status.success(), "scenario failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    let [port, client_port, traced] = nums[..] else { panic!("scenario printed {text:?}") };

    let exec = daemon.wait_for("the scenario's exec", Duration::from_secs(20), |e| {
        e["type"] == "exec" && e["filename"] == SCENARIO && e["argv"][1] == "security"
    });
    let pid = exec["pid"].as_u64().expect("pid") as u32;
    daemon.wait_for("the scenario's exit", Duration::from_secs(20), |e| e["type"] == "exit" && e["pid"] == pid);
    let (_, events) = daemon.stop();
    let mine: Vec<&Value> = of_pid(&events, pid).collect();
    let one = |kind: &str| -> &Value {
        mine.iter().copied().find(|e| e["type"] == kind).unwrap_or_else(|| panic!("no {kind} event among {mine:?}"))
    };

    let bind = one("bind");
    assert_eq!((bind["addr"].as_str(), bind["port"].as_u64(), bind["ret"].as_i64()), (Some("127.0.0.1"), Some(0), Some(0)));
    let listen = one("listen");
    assert_eq!((listen["backlog"].as_i64(), listen["ret"].as_i64()), (Some(8), Some(0)));
    let connect = one("connect");
    assert_eq!((connect["port"].as_u64(), connect["ret"].as_i64()), (Some(port), Some(0)));
    let accept = one("accept");
    assert!(accept["ret"].as_i64().expect("ret") >= 0, "accept: {accept}");
    assert_eq!((accept["addr"].as_str(), accept["port"].as_u64()), (Some("127.0.0.1"), Some(client_port)));

    let memfd = one("memfd_create");
    assert_eq!(memfd["name"], "vigil-memfd");
    assert!(memfd["ret"].as_i64().expect("ret") >= 0);

    let bpf = one("bpf_prog_load");
    assert_eq!((bpf["prog_type"].as_u64(), bpf["prog_name"].as_str()), (Some(1), Some("vigil_t")));
    assert!(bpf["ret"].as_i64().expect("ret") < 0, "the empty program must have been refused: {bpf}");

    let modules: Vec<&Value> = mine.iter().copied().filter(|e| e["type"] == "module_load").collect();
    let finit = modules.iter().find(|e| e["syscall"] == "finit_module").expect("finit_module event");
    assert_eq!(finit["fd"], -1);
    // EBADF, or ENOSYS on kernels built without module support (like this VM's).
    assert!(finit["ret"].as_i64().expect("ret") < 0, "finit_module: {finit}");
    let init = modules.iter().find(|e| e["syscall"] == "init_module").expect("init_module event");
    assert_eq!(init["len"], 16);
    assert!(init["ret"].as_i64().expect("ret") < 0);

    let ptrace = one("ptrace");
    assert_eq!(
        (ptrace["request"].as_i64(), ptrace["target_pid"].as_u64(), ptrace["ret"].as_i64()),
        (Some(libc::PTRACE_ATTACH as i64), Some(traced), Some(0))
    );

    let cred = one("cred_change");
    assert_eq!(cred["syscall"], "setresuid");
    assert_eq!(cred["requested"], serde_json::json!([65534, 65534, 65534]));
    assert_eq!((cred["before"]["uid"].as_u64(), cred["before"]["euid"].as_u64()), (Some(0), Some(0)));
    assert_eq!((cred["after"]["uid"].as_u64(), cred["after"]["euid"].as_u64()), (Some(65534), Some(65534)));
    assert_eq!(cred["ret"], 0);
}

#[test]
fn a_process_older_than_vigil_is_seen_to_drop_its_ids_and_return_from_its_signal_handler() {
    if !require_root("a_process_older_than_vigil_is_seen_to_drop_its_ids_and_return_from_its_signal_handler") {
        return;
    }
    let _serial = serial();
    vigil_tests::journal::ensure_journald().expect("a journald to log to");
    // Started before the daemon: its ids before the setresuid can only come from the seed vigil
    // takes from /proc at start, since vigil records no syscall entries.
    let mut child = Command::new(SCENARIO)
        .arg("drop-later")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start scenario");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut ready).expect("read ready");
    assert_eq!(ready.trim(), "ready");
    let pid = child.id();

    let daemon = Daemon::start("older", &[]);
    writeln!(child.stdin.take().expect("stdin"), "go").expect("tell the scenario to go on");
    assert!(child.wait().expect("wait").success(), "the scenario failed");
    daemon.wait_for("the scenario's exit", Duration::from_secs(20), |e| e["type"] == "exit" && e["pid"] == pid);
    let status = daemon.status();
    let (_, events) = daemon.stop();

    let cred = of_type(of_pid(&events, pid), "cred_change").next().expect("cred_change event");
    assert_eq!(cred["syscall"], "setresuid");
    let ids = |side: &str| ["uid", "euid", "suid"].map(|k| cred[side][k].as_u64());
    assert_eq!(ids("before"), [Some(0); 3], "ids before, from the seed: {cred}");
    assert_eq!(ids("after"), [Some(65534); 3], "{cred}");

    // Recorded at their exits: the handler's return is rt_sigreturn (its exit carries no syscall
    // number), after the kill that raised the signal; exit_group, which never returns, comes last.
    let calls = syscalls_of(&events, pid);
    let kill = calls.iter().rposition(|&c| c == libc::SYS_kill).unwrap_or_else(|| panic!("no kill in {calls:?}"));
    assert!(calls[kill..].contains(&libc::SYS_rt_sigreturn), "no rt_sigreturn after the kill in {calls:?}");
    assert!(calls[kill..].contains(&libc::SYS_setresuid), "no setresuid after the kill in {calls:?}");
    assert_eq!(calls.last(), Some(&libc::SYS_exit_group), "last syscall in {calls:?}");

    let losses = status["losses"].as_object().expect("losses");
    assert_eq!(losses["cred_change_before_unknown"], 0, "losses: {losses:?}");
    assert_eq!(losses["creds_unrecorded"], 0, "losses: {losses:?}");
}
