use super::*;

/// Deterministic bytes that pass for ciphertext: xorshift, no crate needed.
fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn base64(bytes: &[u8]) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    bytes
        .chunks(3)
        .flat_map(|c| {
            let n = c.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - c.len()));
            (0..4).map(move |i| A[(n >> (18 - 6 * i) & 63) as usize])
        })
        .collect()
}

fn is_ciphertext(c: Content) -> bool {
    matches!(c, Content::Ciphertext { .. })
}

#[test]
fn ciphertext_reads_as_such_and_text_code_and_dense_formats_do_not() {
    for n in [128, 300, 1024, 4096] {
        assert!(
            is_ciphertext(weigh(&random(n, n as u64))),
            "{n} random bytes"
        );
    }
    let mut salted = b"Salted__".to_vec();
    salted.extend(random(2000, 7));
    assert!(is_ciphertext(weigh(&salted)), "openssl enc");
    // A Fernet token: base64url of version, time, IV, ciphertext and MAC.
    let mut fernet = b"gAAAAAB".to_vec();
    fernet.extend(base64(&random(1500, 9)));
    assert!(
        matches!(weigh(&fernet), Content::Ciphertext { alphabet: 64, .. }),
        "{:?}",
        weigh(&fernet)
    );

    let text = "The licenses for most software and other practical works are designed to take away your freedom to share and change the works. ".repeat(20);
    assert_eq!(weigh(text.as_bytes()), Content::Plain);
    let code = include_bytes!("encryption.rs");
    assert_eq!(weigh(&code[..4096]), Content::Plain);
    let hex: Vec<u8> = random(2000, 3)
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect();
    assert_eq!(weigh(&hex), Content::Plain, "hex has 16 symbols");
    // A PEM key is base64 of dense bytes, behind its header.
    let mut pem = b"-----BEGIN PRIVATE KEY-----\n".to_vec();
    pem.extend(base64(&random(1200, 5)));
    assert_eq!(weigh(&pem), Content::Plain);
    for magic in [
        &b"\x1f\x8b\x08"[..],
        b"\x89PNG\r\n",
        b"\xff\xd8\xff\xe0",
        b"PK\x03\x04",
        b"\x28\xb5\x2f\xfd",
        b"\x78\x9c",
    ] {
        let mut dense = magic.to_vec();
        dense.extend(random(3000, 11));
        assert_eq!(weigh(&dense), Content::Plain, "{magic:?}");
    }
    let mut mp4 = vec![0, 0, 0, 0x20];
    mp4.extend(b"ftypisom");
    mp4.extend(random(3000, 13));
    assert_eq!(weigh(&mp4), Content::Plain);
    assert_eq!(
        weigh(&random(100, 1)),
        Content::Unknown,
        "too short to weigh"
    );
    assert_eq!(weigh(&[0u8; 4096]), Content::Plain);
}

fn p(i: usize) -> PathBuf {
    PathBuf::from(format!("/home/u/doc{i}.txt"))
}

#[test]
fn a_look_comes_at_the_threshold_then_after_as_many_more_with_the_latest_files() {
    let t0 = Instant::now();
    let mut w = EncryptWatch::<u32>::default();
    for i in 0..REWRITTEN - 1 {
        assert_eq!(w.on_rewrite(&[10, 1], &p(i), t0), None);
    }
    // The same file again is not another.
    assert_eq!(w.on_rewrite(&[10, 1], &p(0), t0), None);
    let look = w.on_rewrite(&[10, 1], &p(REWRITTEN - 1), t0).expect("due");
    assert_eq!(
        (look.actor, look.rewritten, look.files.len()),
        (0, REWRITTEN, SAMPLED)
    );
    // Newest first, but the very last, which may still be being written; doc0, rewritten
    // again, is among the latest.
    assert_eq!(look.files[..2], [p(0), p(REWRITTEN - 2)]);
    for i in REWRITTEN..2 * REWRITTEN - 1 {
        assert_eq!(w.on_rewrite(&[10, 1], &p(i), t0), None, "{i}");
    }
    let again = w.on_rewrite(&[10, 1], &p(2 * REWRITTEN - 1), t0);
    assert_eq!(again.map(|l| l.rewritten), Some(2 * REWRITTEN));
    // A burst just after a look is looked at as soon as it is due, however many came before
    // (a copy of thousands, then the locker).
    for i in 1000..1000 + REWRITTEN - 1 {
        assert_eq!(w.on_rewrite(&[10, 1], &p(i), t0), None, "{i}");
    }
    let due = w.on_rewrite(&[10, 1], &p(9999), t0).expect("due");
    assert_eq!(due.files[0], p(1000 + REWRITTEN - 2));
    // Stale rewrites do not count.
    let mut w = EncryptWatch::<u32>::default();
    for i in 0..REWRITTEN - 1 {
        w.on_rewrite(&[20], &p(i), t0);
    }
    assert_eq!(
        w.on_rewrite(&[20], &p(99), t0 + WINDOW + Duration::from_secs(1)),
        None
    );
}

#[test]
fn ciphertext_in_most_files_read_back_is_reported_once_and_plain_files_are_not() {
    let t0 = Instant::now();
    let mut w = EncryptWatch::<u32>::default();
    let mut look = None;
    for i in 0..REWRITTEN {
        look = w.on_rewrite(&[5, 4], &p(i), t0);
    }
    let look = look.expect("due");
    let dense = Content::Ciphertext {
        bits: 7.95,
        alphabet: 256,
    };
    let plain: Vec<_> = look
        .files
        .iter()
        .map(|f| (f.clone(), Content::Plain))
        .collect();
    assert_eq!(w.weighed(&[5, 4], &look, &plain), None, "a formatter");
    let mut half = plain.clone();
    for c in half.iter_mut().take(4) {
        c.1 = dense;
    }
    assert_eq!(w.weighed(&[5, 4], &look, &half), None, "half is not most");
    let mut few: Vec<_> = look
        .files
        .iter()
        .take(3)
        .map(|f| (f.clone(), dense))
        .collect();
    few.extend(
        look.files
            .iter()
            .skip(3)
            .map(|f| (f.clone(), Content::Unknown)),
    );
    assert_eq!(
        w.weighed(&[5, 4], &look, &few),
        None,
        "three are too few to say"
    );
    let mut most = plain;
    for c in most.iter_mut().take(6) {
        c.1 = dense;
    }
    let (actor, detail) = w.weighed(&[5, 4], &look, &most).expect("encrypted");
    assert_eq!(actor, 0);
    assert_eq!(
        detail,
        format!(
            "{REWRITTEN} files rewritten in place within 30s; 6 of 8 read back look encrypted, e.g. {} (7.95 bits per byte, in no known file format)",
            look.files[0].display()
        )
    );
    assert_eq!(w.on_rewrite(&[5, 4], &p(500), t0), None, "reported once");
}

#[test]
fn the_incident_is_for_the_nearest_on_the_line_that_wrote_the_ciphertext() {
    let t0 = Instant::now();
    let mut w = EncryptWatch::<u32>::default();
    // A shell (1) copies 28 files over their copies through cp (2), then starts a loop (3)
    // whose children (100 + i) write ciphertext over 8 files: the shell is due first, with 7
    // of the loop's files among its latest.
    for i in 0..28 {
        w.on_rewrite(&[2, 1], &p(i), t0);
    }
    let mut look = None;
    for i in 0..8 {
        look = look.or(w.on_rewrite(&[100 + i as u32, 3, 1], &p(50 + i), t0));
    }
    let look = look.expect("the shell is due");
    assert_eq!(look.actor, 2);
    let dense = Content::Ciphertext {
        bits: 7.9,
        alphabet: 256,
    };
    let contents: Vec<_> = look
        .files
        .iter()
        .map(|f| {
            (
                f.clone(),
                if (50..58).any(|i| *f == p(i)) {
                    dense
                } else {
                    Content::Plain
                },
            )
        })
        .collect();
    let (actor, detail) = w
        .weighed(&[107, 3, 1], &look, &contents)
        .expect("encrypted");
    assert_eq!(
        actor, 1,
        "the loop, not the shell that copied before it: {detail}"
    );
    assert!(detail.starts_with("8 files rewritten in place"), "{detail}");
    // The loop is done; the shell, whose look found it, is not: a second loop it starts
    // (4, children 200 + i) is looked at and reported in its turn.
    assert_eq!(w.on_rewrite(&[107, 3, 1], &p(58), t0), None, "reported once");
    let mut second = None;
    for i in 0..REWRITTEN {
        second = second.or(w.on_rewrite(&[200 + i as u32, 4, 1], &p(300 + i), t0));
    }
    let second = second.expect("the second loop is looked at");
    let all_dense: Vec<_> = second.files.iter().map(|f| (f.clone(), dense)).collect();
    let (actor, _) = w
        .weighed(&[200 + REWRITTEN as u32 - 1, 4, 1], &second, &all_dense)
        .expect("encrypted");
    assert_eq!(actor, 1, "the second loop");
}

#[test]
fn files_are_read_back_without_following_links_or_waiting_on_fifos() {
    let dir = std::env::temp_dir().join(format!("vigil-encryption-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("f");
    std::fs::write(&file, random(10_000, 3)).expect("write");
    assert_eq!(sample(&file).map(|b| b.len()), Some(SAMPLE_BYTES));
    assert!(is_ciphertext(weigh_files(std::slice::from_ref(&file))[0].1));
    let link = dir.join("l");
    std::os::unix::fs::symlink(&file, &link).expect("symlink");
    assert_eq!(sample(&link), None);
    nix::unistd::mkfifo(&dir.join("q"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    assert_eq!(sample(&dir.join("q")), None);
    assert_eq!(sample(&dir.join("missing")), None);
    assert_eq!(absolute("/etc/x", u32::MAX, None, u32::MAX), Some(PathBuf::from("/etc/x")));
    let here = std::env::current_dir().expect("cwd");
    let me = std::process::id();
    assert_eq!(absolute("a/b", me, Some(&dir), me), Some(here.join("a/b")), "still there: its directory now");
    // Gone: where it was at its exec, if the file is there, else its parent's directory, if
    // the file is there; never a directory that does not hold it.
    assert_eq!(absolute("f", u32::MAX, Some(&dir), me), Some(dir.join("f")));
    assert_eq!(absolute("f", u32::MAX, Some(Path::new("/nonexistent")), me), None);
    assert_eq!(absolute("f", u32::MAX, None, me), None, "the parent's directory has no f");
    assert_eq!(absolute("a/b", u32::MAX, None, u32::MAX), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_file_rewritten_over_and_over_is_one_file_and_the_state_stays_bounded() {
    let t0 = Instant::now();
    let mut r = Rewrites::default();
    for _ in 0..10 * MAX_NAMES {
        assert_eq!(r.add(&p(1), t0), None);
    }
    assert_eq!(r.count(), 1);
    assert!(r.order.len() <= 4 * MAX_NAMES, "{}", r.order.len());
    for i in 0..2 * MAX_NAMES {
        r.add(&p(i + 10), t0);
    }
    assert!(r.count() <= MAX_NAMES && r.order.len() <= 4 * MAX_NAMES);
    assert!(
        r.holds(&p(2 * MAX_NAMES + 9)) && !r.holds(&p(10)),
        "the oldest go first"
    );
}
