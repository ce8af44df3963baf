//! Against the real journald: an incident sent by [`JournalWriter`] must come back from
//! `journalctl -o json` with every field intact. Starts a standalone systemd-journald when none
//! is listening (the test VMs have no systemd as PID 1); skips, saying why, if it cannot.

use std::time::Duration;

use vigil_tests::journal::{ensure_journald, field, read_vigil_entries};

use super::{Incident, IncidentKind, JournalWriter, PRIORITY_ESCALATED_ALERT};

fn send_and_check(test: &str, incident: Incident, marker: &str) {
    if let Err(why) = ensure_journald() {
        eprintln!("SKIPPED {test}: {why}");
        return;
    }
    let writer = JournalWriter::open();
    writer.send(&incident).expect("send to journald");
    let found = read_vigil_entries("", Duration::from_secs(10), |e| {
        field(e, "VIGIL_QUARANTINE_ID").as_deref() == Some(marker)
    });
    let entry = found
        .first()
        .unwrap_or_else(|| panic!("{test}: entry {marker} not in the journal within 10 s"));
    for (name, value) in incident.fields() {
        let got = field(entry, &name);
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
