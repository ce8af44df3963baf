//! Against the real journald: an incident sent by [`JournalWriter`] must come back from
//! `journalctl -o json` with every field intact. Starts a standalone systemd-journald when none
//! is listening (the test VMs have no systemd as PID 1); skips, saying why, if it cannot.

use std::fs::{self, File};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Incident, IncidentKind, JOURNAL_SOCKET, JournalWriter, PRIORITY_ESCALATED_ALERT};

const JOURNALD: &str = "/lib/systemd/systemd-journald";

fn socket_live() -> bool {
    UnixDatagram::unbound()
        .and_then(|s| s.connect(JOURNAL_SOCKET))
        .is_ok()
}

/// Starts journald detached unless one is listening. Serialized in this process by a mutex and
/// across test processes by a lock file, so two binaries never race to start two.
fn ensure_journald() -> Result<(), String> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if socket_live() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("no journald listening and starting one needs root".into());
    }
    if !Path::new(JOURNALD).exists() {
        return Err(format!(
            "no journald listening and {JOURNALD} is missing (install `systemd`)"
        ));
    }
    fs::create_dir_all("/run/systemd/journal")
        .map_err(|e| format!("creating /run/systemd/journal: {e}"))?;
    let lock = File::create("/run/systemd/journal/.vigil-start.lock")
        .map_err(|e| format!("lock file: {e}"))?;
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    if socket_live() {
        return Ok(());
    }
    let mut cmd = Command::new(JOURNALD);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; detaching keeps journald alive after the test.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        })
    };
    cmd.spawn()
        .map_err(|e| format!("starting {JOURNALD}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket_live() {
        if Instant::now() > deadline {
            return Err(format!(
                "{JOURNALD} started but {JOURNAL_SOCKET} did not accept within 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The vigil entry whose `VIGIL_QUARANTINE_ID` is `marker`, polled for up to 10 s because
/// journald writes asynchronously.
fn read_back(marker: &str) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Asks journald to write out what it has queued; harmless if unsupported.
        let _ = Command::new("journalctl")
            .arg("--sync")
            .stderr(Stdio::null())
            .status();
        let out = Command::new("journalctl")
            .args(["-o", "json", "--all", "--no-pager", "-t", "vigil"])
            .arg(format!("VIGIL_QUARANTINE_ID={marker}"))
            .output()
            .expect("run journalctl");
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(entry) = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .next()
        {
            return Some(entry);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// journalctl prints a field as a string, or as an array of bytes when it is not printable.
fn field_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(bytes) => {
            let bytes: Option<Vec<u8>> =
                bytes.iter().map(|b| b.as_u64().map(|b| b as u8)).collect();
            bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
        }
        _ => None,
    }
}

fn send_and_check(test: &str, incident: Incident, marker: &str) {
    if let Err(why) = ensure_journald() {
        eprintln!("SKIPPED {test}: {why}");
        return;
    }
    let writer = JournalWriter::open();
    writer.send(&incident).expect("send to journald");
    let entry = read_back(marker)
        .unwrap_or_else(|| panic!("{test}: entry {marker} not in the journal within 10 s"));
    for (name, value) in incident.fields() {
        let got = entry.get(&name).and_then(field_text);
        assert_eq!(got.as_deref(), Some(value.as_str()), "{test}: field {name}");
    }
    assert_eq!(
        entry["_TRANSPORT"], "journal",
        "{test}: sent with the native protocol"
    );
    assert_eq!(writer.undelivered(), 0);
}

fn marker(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("q-test-{tag}-{}-{nanos}", std::process::id())
}

#[test]
fn a_quarantine_reads_back_field_for_field() {
    let marker = marker("full");
    let incident = Incident::new(
        IncidentKind::Quarantine,
        format!("vigil: quarantined pid 1234 (/usr/bin/bash) by rule shell-on-socket [{marker}]"),
    )
    .with_pid(1234)
    .with_ppid(1200)
    .with_exe("/usr/bin/bash")
    .with_cmdline("bash -c 'echo one\necho two'")
    .with_uid(33)
    .with_sha256("a".repeat(64))
    .with_score(0.975)
    .with_reason("shell-on-socket")
    .with_ancestry("1234:/usr/bin/bash <- 1200:/usr/sbin/nginx <- 1:/sbin/init")
    .with_quarantine_id(&marker)
    .with_mode("enforce")
    .with_outcome("applied")
    .with_extra("VIGIL_POLICY_VERSION", "7");
    send_and_check("a_quarantine_reads_back_field_for_field", incident, &marker);
}

#[test]
fn an_oversized_escalated_alert_reads_back_through_the_memfd() {
    let marker = marker("big");
    let incident = Incident::new(
        IncidentKind::Alert,
        format!("vigil: alert storm [{marker}]"),
    )
    .with_priority(PRIORITY_ESCALATED_ALERT)
    .with_cmdline("z".repeat(1 << 20))
    .with_quarantine_id(&marker)
    .with_outcome("suppressed");
    send_and_check(
        "an_oversized_escalated_alert_reads_back_through_the_memfd",
        incident,
        &marker,
    );
}
