use super::*;

const REFUSED: i32 = -libc::ECONNREFUSED;
const PENDING: i32 = -libc::EINPROGRESS;

fn host(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

#[test]
fn outcomes_are_read_from_the_errno() {
    assert_eq!(Outcome::of(0), Outcome::Connected);
    assert_eq!(Outcome::of(PENDING), Outcome::Pending);
    assert_eq!(Outcome::of(REFUSED), Outcome::Refused);
    assert_eq!(Outcome::of(-libc::EHOSTUNREACH), Outcome::Refused);
    assert_eq!(Outcome::of(-libc::EPERM), Outcome::Other);
}

#[test]
fn many_closed_ports_of_one_host_are_a_scan_reported_once() {
    let mut w = ScanWatch::default();
    let t = Instant::now();
    for port in 1..PORTS_OF_ONE_HOST as u16 {
        assert_eq!(
            w.on_connect(&[7], localhost(), port, REFUSED, t),
            None,
            "port {port}"
        );
    }
    let scan = w
        .on_connect(&[7], localhost(), 5000, 0, t)
        .expect("the 32nd distinct port");
    assert_eq!(scan.actor, 0);
    assert_eq!(
        scan.detail,
        "connects to 32 ports of 127.0.0.1 within 10s: 1 accepted, 31 refused or unreachable"
    );
    for port in 6000..6100 {
        assert_eq!(w.on_connect(&[7], localhost(), port, REFUSED, t), None);
    }
}

#[test]
fn non_blocking_scans_count_too() {
    let mut w = ScanWatch::default();
    let t = Instant::now();
    let found: Vec<Scan> = (1..=PORTS_OF_ONE_HOST as u16)
        .filter_map(|p| w.on_connect(&[7], localhost(), p, PENDING, t))
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].detail,
        "connects to 32 ports of 127.0.0.1 within 10s: 32 in progress"
    );
}

#[test]
fn ports_that_all_answer_are_no_scan() {
    // A test suite talking to the servers it started, each on its own ephemeral port.
    let mut w = ScanWatch::default();
    let t = Instant::now();
    for port in 40000..40200 {
        assert_eq!(w.on_connect(&[7], localhost(), port, 0, t), None);
    }
}

#[test]
fn a_shell_spawning_one_connect_per_child_is_caught_at_the_parent() {
    let mut w = ScanWatch::default();
    let t = Instant::now();
    let parent = 100;
    let mut found = None;
    for (i, port) in (1..=PORTS_OF_ONE_HOST as u16).enumerate() {
        let child = 1000 + i as u32;
        found = found.or(w.on_connect(&[child, parent], localhost(), port, REFUSED, t));
        w.on_exit(&child);
    }
    let scan = found.expect("the parent's 32nd port");
    assert_eq!(scan.actor, 1);
}

#[test]
fn ports_spread_over_more_than_the_window_are_no_scan() {
    let mut w = ScanWatch::default();
    let t = Instant::now();
    let step = WINDOW / 8;
    for (i, port) in (1..200u16).enumerate() {
        let now = t + step * i as u32;
        assert_eq!(
            w.on_connect(&[7], localhost(), port, REFUSED, now),
            None,
            "port {port}"
        );
    }
}

#[test]
fn a_sweep_is_many_hosts_refusing_one_port() {
    let mut w = ScanWatch::default();
    let t = Instant::now();
    let mut found = vec![];
    for last in 1..=HOSTS_ON_ONE_PORT as u8 {
        found.extend(w.on_connect(&[7], host(last), 22, -libc::EHOSTUNREACH, t));
    }
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].detail,
        "connects to port 22 of 64 hosts within 10s: 64 refused or unreachable"
    );
}

#[test]
fn many_hosts_that_answer_are_no_sweep() {
    // A crawler, a proxy or a client of a large cluster.
    let mut w = ScanWatch::default();
    let t = Instant::now();
    for last in 1..=250u8 {
        assert_eq!(w.on_connect(&[7], host(last), 443, PENDING, t), None);
        assert_eq!(w.on_connect(&[8], host(last), 443, 0, t), None);
    }
}

#[test]
fn memory_stays_bounded_under_any_connect_pattern() {
    let mut w = ScanWatch::default();
    let t = Instant::now();
    for i in 0..20_000u32 {
        let addr = IpAddr::from(i.to_be_bytes());
        w.on_connect(&[i % 3, 5000 + i], addr, 443, 0, t);
    }
    let actor = &w.actors[&0];
    assert!(actor.ports_of_host.len() <= MAX_KEYS);
    assert!(
        actor
            .hosts_on_port
            .values()
            .all(|d| d.0.len() < HOSTS_ON_ONE_PORT)
    );
    assert!(w.actors.len() <= MAX_ACTORS);
    assert!(
        w.untracked() > 0,
        "20,000 active parents cannot all be followed"
    );
}
