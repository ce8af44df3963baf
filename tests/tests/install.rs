//! The installed tree end to end: what `cargo xtask install` lays down (binary, model, default
//! policy, unit, private directories) runs as the daemon, takes a `vigil policy push` and kills a
//! denied exec, with the incident in journald. `cargo xtask test` installs into a scratch prefix
//! first and names it in `VIGIL_INSTALLED_PREFIX`; a plain `cargo test` skips this with a reason.

use std::{
    fs,
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use vigil_tests::{
    Daemon,
    journal::{ensure_journald, field, journal_cursor, read_vigil_entries},
    require_root, serial,
};

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

#[test]
fn the_installed_daemon_enforces_a_pushed_policy() {
    let test = "the_installed_daemon_enforces_a_pushed_policy";
    if !require_root(test) {
        return;
    }
    let Some(prefix) = std::env::var_os("VIGIL_INSTALLED_PREFIX").map(PathBuf::from) else {
        println!("{test}: skipped: VIGIL_INSTALLED_PREFIX is not set (run through `cargo xtask test`, which installs first)");
        return;
    };
    let _serial = serial();
    let bin = prefix.join("usr/sbin/vigil");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&prefix.join("usr/lib/vigil/vigil.onnx")), 0o644);
    assert_eq!(mode(&prefix.join("usr/lib/vigil/policy.toml")), 0o644);
    assert_eq!(mode(&prefix.join("lib/systemd/system/vigil.service")), 0o644);
    for private in ["etc/vigil", "etc/vigil/policy.d", "var/lib/vigil", "var/lib/vigil/quarantine"] {
        assert_eq!(mode(&prefix.join(private)), 0o700, "{private} is not private");
    }
    let unit = fs::read_to_string(prefix.join("lib/systemd/system/vigil.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("Restart=always"), "{unit}");

    let cursor = match ensure_journald() {
        Ok(()) => journal_cursor(),
        Err(why) => {
            println!("{test}: journald checks skipped: {why}");
            None
        }
    };
    let s = |p: &str| prefix.join(p).display().to_string();
    let (model, policy, policy_dir, state) =
        (s("usr/lib/vigil/vigil.onnx"), s("usr/lib/vigil/policy.toml"), s("etc/vigil/policy.d"), s("var/lib/vigil"));
    // A previous run's pushed file must not leak into this one.
    let _ = fs::remove_file(prefix.join("etc/vigil/policy.d/60-pushed.toml"));
    let daemon = Daemon::start_bin(
        &bin,
        "installed",
        &["--model", &model, "--policy", &policy, "--policy-dir", &policy_dir, "--state-dir", &state],
    );

    let dir = daemon.dir.join("work");
    fs::create_dir_all(dir.join("denied")).unwrap();
    let denied = dir.join("denied/touch");
    fs::copy("/usr/bin/touch", &denied).unwrap();
    fs::set_permissions(&denied, fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("60-pushed.toml");
    fs::write(&file, format!("[[rule.exec]]\nname = \"installed-deny\"\naction = \"kill\"\npath = [\"{}\"]\n", denied.display())).unwrap();
    let out = Command::new(&bin).args(["policy", "push"]).arg(&file).arg("--control-socket").arg(&daemon.socket).output().unwrap();
    assert!(out.status.success(), "push: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&prefix.join("etc/vigil/policy.d/60-pushed.toml")), 0o600);

    let marker = dir.join("marker");
    let mut child = Command::new(&denied).arg(&marker).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the denied exec is still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(!marker.exists(), "the denied image ran");
    if let Some(c) = cursor {
        let pid = child.id().to_string();
        let found = read_vigil_entries(&c, Duration::from_secs(15), |e| {
            field(e, "VIGIL_EVENT").as_deref() == Some("kill") && field(e, "VIGIL_PID").as_deref() == Some(pid.as_str())
        });
        assert!(!found.is_empty(), "no journald entry for the kill");
        assert_eq!(field(&found[0], "VIGIL_REASON").as_deref(), Some("installed-deny"));
    }
    let (stopped, _) = daemon.stop();
    assert!(stopped.success());
    let _ = fs::remove_file(prefix.join("etc/vigil/policy.d/60-pushed.toml"));
}
