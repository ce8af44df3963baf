//! The writer against a socket the test binds itself: what journald would receive, and how the
//! writer behaves when nobody (or a stalled reader) is listening.

use std::fs::{self, File};
use std::io::{IoSliceMut, Read as _, Seek as _, SeekFrom};
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::cmsg_space;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};

use super::encode::encode;
use super::{Incident, IncidentError, IncidentKind, JournalWriter};

struct FakeJournal {
    dir: PathBuf,
    socket: UnixDatagram,
}

impl FakeJournal {
    fn bind(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vigil-incident-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let socket = UnixDatagram::bind(dir.join("socket")).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Self { dir, socket }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("socket")
    }

    /// One received entry: the datagram's bytes, or the contents of the memfd it carried.
    fn receive(&self) -> (Vec<u8>, Option<File>) {
        let mut buf = vec![0u8; 1 << 20];
        let mut cmsg = cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<UnixAddr>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let len = msg.bytes;
        let mut memfd = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the kernel just installed these descriptors in our table; we own them.
                memfd = Some(unsafe { File::from_raw_fd(fds[0]) });
            }
        }
        (buf[..len].to_vec(), memfd)
    }
}

impl Drop for FakeJournal {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_small_incident_is_one_datagram() {
    let journal = FakeJournal::bind("small");
    let writer = JournalWriter::with_socket(&journal.path());
    let incident = Incident::new(IncidentKind::Kill, "vigil: killed pid 7 (/tmp/x) by rule r")
        .with_pid(7)
        .with_cmdline("sh -c 'a\nb'");
    writer.send(&incident).unwrap();
    let (bytes, memfd) = journal.receive();
    assert!(memfd.is_none());
    assert_eq!(bytes, encode(&incident.fields()).unwrap());
    assert_eq!(writer.undelivered(), 0);
}

#[test]
fn an_oversized_incident_is_passed_as_a_sealed_memfd() {
    let journal = FakeJournal::bind("large");
    let writer = JournalWriter::with_socket(&journal.path());
    // Larger than any datagram the default send buffer (net.core.wmem_default) admits.
    let incident =
        Incident::new(IncidentKind::Alert, "vigil: big").with_cmdline("x".repeat(4 << 20));
    writer.send(&incident).unwrap();
    let (bytes, memfd) = journal.receive();
    assert!(bytes.is_empty(), "the memfd form carries no inline bytes");
    let mut memfd = memfd.expect("an SCM_RIGHTS descriptor");
    // SAFETY: F_GET_SEALS on a descriptor we own.
    let seals = unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_GET_SEALS) };
    let want = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    assert_eq!(seals & want, want, "seals {seals:#x}");
    // The descriptor shares the writer's file offset, which is at the end.
    memfd.seek(SeekFrom::Start(0)).unwrap();
    let mut contents = Vec::new();
    memfd.read_to_end(&mut contents).unwrap();
    let want = encode(&incident.fields()).unwrap();
    assert_eq!(contents.len(), want.len());
    assert!(
        contents == want,
        "memfd contents differ from the encoded entry"
    );
}

#[test]
fn an_absent_journald_is_an_error_counted_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("vigil-incident-{}-absent", std::process::id()));
    let writer = JournalWriter::with_socket(&dir.join("no-such-socket"));
    let incident = Incident::new(IncidentKind::Loss, "vigil: lost events");
    for expected in 1..=3 {
        assert!(matches!(
            writer.send(&incident),
            Err(IncidentError::Send { .. })
        ));
        assert_eq!(writer.undelivered(), expected);
    }
}

#[test]
fn what_an_outage_cost_is_told_to_journald_once_it_is_back() {
    let dir = std::env::temp_dir().join(format!("vigil-incident-{}-outage", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("socket");
    let writer = JournalWriter::with_socket(&path);
    let missed = Incident::new(IncidentKind::Alert, "vigil: alert while journald is down");
    for _ in 0..3 {
        assert!(writer.send(&missed).is_err());
    }
    let journal = UnixDatagram::bind(&path).unwrap();
    journal.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let back = Incident::new(IncidentKind::Kill, "vigil: first incident after the outage");
    writer.send(&back).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let n = journal.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &encode(&back.fields()).unwrap()[..]);
    let n = journal.recv(&mut buf).unwrap();
    let report = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(report.contains("VIGIL_EVENT=loss\n"), "{report}");
    assert!(report.contains("VIGIL_LOST=3\n"), "{report}");
    assert!(report.contains("3 incident(s) could not be delivered"), "{report}");
    // Told once: the next incident comes alone.
    writer.send(&back).unwrap();
    let n = journal.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &encode(&back.fields()).unwrap()[..]);
    journal.set_nonblocking(true).unwrap();
    assert!(journal.recv(&mut buf).is_err(), "a second outage report");
    assert_eq!(writer.undelivered(), 3);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_stalled_journald_never_blocks_the_sender() {
    let journal = FakeJournal::bind("stalled");
    let writer = JournalWriter::with_socket(&journal.path());
    let incident =
        Incident::new(IncidentKind::Alert, "vigil: flood").with_cmdline("y".repeat(16 << 10));
    let started = Instant::now();
    // Nobody reads: the receive queue fills and sends must fail fast with EAGAIN.
    let mut failed = 0;
    for _ in 0..1000 {
        if writer.send(&incident).is_err() {
            failed += 1;
        }
    }
    assert!(failed > 0, "the queue never filled");
    assert_eq!(writer.undelivered(), failed);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "sending took {:?}",
        started.elapsed()
    );
}

#[test]
fn an_invalid_extra_field_is_refused_and_counted() {
    let journal = FakeJournal::bind("invalid");
    let writer = JournalWriter::with_socket(&journal.path());
    let incident =
        Incident::new(IncidentKind::Policy, "vigil: policy").with_extra("VIGIL-VERSION", "3");
    assert!(matches!(
        writer.send(&incident),
        Err(IncidentError::InvalidFieldName(_))
    ));
    assert_eq!(writer.undelivered(), 1);
}
