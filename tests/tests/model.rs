//! The behaviour-model path on the real kernel: recording datasets, refusing bad models, and
//! live scoring of attack simulations and benign workloads.

use std::{path::PathBuf, process::Command, time::Duration};

use serde_json::Value;
use vigil_tests::{Daemon, require_root, serial, vigil_bin};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-model-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn a_corrupt_or_mismatched_model_is_refused_at_start_with_its_name() {
    if !require_root("a_corrupt_or_mismatched_model_is_refused_at_start_with_its_name") {
        return;
    }
    let dir = scratch("corrupt");
    let bad = dir.join("broken.onnx");
    std::fs::write(&bad, b"\x08\x07 this is not an onnx protobuf").expect("write");
    let out = Command::new(vigil_bin())
        .args(["run", "--control-socket"])
        .arg(dir.join("c.sock"))
        .arg("--model")
        .arg(&bad)
        .output()
        .expect("run vigil");
    assert!(!out.status.success(), "vigil started with a corrupt model");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.onnx") && err.contains("not a loadable ONNX model"), "stderr: {err}");

    let missing = dir.join("absent.onnx");
    let out = Command::new(vigil_bin())
        .args(["score", "--model"])
        .arg(&missing)
        .arg(dir.join("whatever.vds"))
        .output()
        .expect("run vigil score");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.onnx"));
}

fn export(vds: &std::path::Path) -> Vec<Value> {
    let out = Command::new(vigil_bin()).args(["dataset", "export"]).arg(vds).output().expect("export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("jsonl")).collect()
}

#[test]
fn record_captures_the_command_tree_in_kernel_order() {
    if !require_root("record_captures_the_command_tree_in_kernel_order") {
        return;
    }
    let _serial = serial();
    let dir = scratch("record");
    let vds = dir.join("t.vds");
    let status = Command::new(vigil_bin())
        .args(["record", "--out"])
        .arg(&vds)
        .args(["--label", "malicious", "--family", "unit", "--log-level", "warn", "--"])
        .args(["sh", "-c", "cat /etc/hostname >/dev/null; (sleep 0.1); ls / >/dev/null"])
        .status()
        .expect("vigil record");
    assert!(status.success());
    let procs = export(&vds);
    let exes: Vec<&str> = procs.iter().filter_map(|p| p["exe"].as_str()).collect();
    for want in ["/usr/bin/cat", "/usr/bin/sleep", "/usr/bin/ls"] {
        assert!(exes.contains(&want), "{want} missing from the recorded tree {exes:?}");
    }
    // Nothing outside the tree: every process descends from the recorded root.
    let pids: Vec<u64> = procs.iter().filter_map(|p| p["pid"].as_u64()).collect();
    for p in &procs[1..] {
        assert!(pids.contains(&p["ppid"].as_u64().expect("ppid")), "{p} is not in the tree");
    }
    for p in &procs {
        assert_eq!((p["label"].as_str(), p["family"].as_str()), (Some("malicious"), Some("unit")));
        let t: Vec<u64> = p["tokens"].as_array().expect("tokens").iter().filter_map(Value::as_u64).collect();
        // exit_group, then the exit token, close every finished process.
        assert_eq!(&t[t.len() - 2..], &[231, 514], "{}: ends {:?}", p["exe"], &t[t.len().saturating_sub(4)..]);
        if p["exe"] == "/usr/bin/ls" {
            let exec = t.iter().position(|&x| x == 512).expect("exec token");
            assert_eq!(t[exec - 1], 59, "the exec token follows execve");
        }
    }
}

/// Vocabulary 2 (models/FEATURES.md, "Tokens"): the kernel classes each call by its result and,
/// for a few calls, its arguments. Each class below is provoked by one command of the tree.
#[test]
fn record_carries_each_calls_class() {
    if !require_root("record_carries_each_calls_class") {
        return;
    }
    let _serial = serial();
    let dir = scratch("classes");
    let vds = dir.join("t.vds");
    let out = dir.join("made");
    let script = format!(
        "cat {missing} 2>/dev/null; : > {out}; chmod 755 {out}; ls -d {dir} >/dev/null",
        missing = dir.join("missing").display(),
        out = out.display(),
        dir = dir.display(),
    );
    let status = Command::new(vigil_bin())
        .args(["record", "--out"])
        .arg(&vds)
        .args(["--label", "benign", "--family", "unit", "--log-level", "warn", "--", "sh", "-c"])
        .arg(&script)
        .status()
        .expect("vigil record");
    assert!(status.success());
    let procs = export(&vds);
    let tokens_of = |exe: &str| -> Vec<u64> {
        procs
            .iter()
            .filter(|p| p["exe"] == exe)
            .flat_map(|p| p["tokens"].as_array().expect("tokens").iter().filter_map(Value::as_u64).collect::<Vec<_>>())
            .collect()
    };
    // 512 * (class + 1) + syscall number.
    let class_token = |class: u64, nr: u64| 512 * (class + 1) + nr;
    const OPENAT: u64 = 257;
    let cat = tokens_of("/usr/bin/cat");
    assert!(cat.contains(&class_token(2, OPENAT)), "cat's open of a missing file is openat:err_noent: {cat:?}");
    // Every exec'd program maps its code executable (mmap:exec, by ld.so).
    assert!(cat.contains(&class_token(9, 9)), "no mmap:exec in cat: {cat:?}");
    // The image as exec'd: sh, a link to dash.
    let sh = tokens_of("/usr/bin/sh");
    assert!(sh.contains(&class_token(6, OPENAT)), "the shell's `: > file` is openat:create: {sh:?}");
    // Redirections move the file onto stdout: dup2:stdio.
    assert!(sh.contains(&class_token(14, 33)), "no dup2:stdio in the shell: {sh:?}");
    let chmod = tokens_of("/usr/bin/chmod");
    assert!(
        chmod.iter().any(|&t| t == class_token(15, 268) || t == class_token(15, 452)),
        "chmod 755 is fchmodat:mode_exec: {chmod:?}"
    );
    let ls = tokens_of("/usr/bin/ls");
    assert!(ls.iter().all(|&t| t < 524 || (1024..8704).contains(&t)), "tokens outside vocabulary 2: {ls:?}");
}

/// The kernel classes calls only for a model that reads the classes (vocabulary 2): the shipped
/// model's vocabulary, and the same model relabelled as vocabulary 2, each say so in `status`.
#[test]
fn call_classes_follow_the_models_vocabulary() {
    if !require_root("call_classes_follow_the_models_vocabulary") {
        return;
    }
    let _serial = serial();
    let dir = scratch("vocab");
    let shipped = repo().join("models/vigil.onnx");
    let bytes = std::fs::read(&shipped).expect("shipped model");
    // metadata_props entry: key "vigil.vocab_version", then field 2 (0x12), length 1, the value.
    let key = b"vigil.vocab_version\x12\x01";
    let at = bytes.windows(key.len()).position(|w| w == key).expect("vocab_version in the model") + key.len();
    let shipped_vocab = u32::from(bytes[at] - b'0');
    let mut relabelled = bytes.clone();
    relabelled[at] = b'2';
    let v2 = dir.join("v2.onnx");
    std::fs::write(&v2, &relabelled).expect("write the relabelled model");
    for (model, vocab) in [(shipped.as_path(), shipped_vocab), (v2.as_path(), 2)] {
        let daemon = Daemon::start(&format!("vocab-{vocab}"), &["--model", model.to_str().expect("utf-8 path")]);
        let scorer = daemon.status()["scorer"].clone();
        let (_, _) = daemon.stop();
        assert_eq!(scorer["token_vocabulary"], vocab, "{}: {scorer}", model.display());
        assert_eq!(scorer["call_classes"], vocab >= 2, "{}: {scorer}", model.display());
    }
}

/// Runs a scenario's setup, then its `run` under vigil with the shipped model, then teardown;
/// returns the score events of the processes in the run's tree (root: `bash <script> run`).
fn scored_run(label: &str, name: &str) -> (Vec<Value>, usize) {
    let script = repo().join(format!("models/scenarios/{label}/{name}.sh"));
    let sh = |step: &str| {
        let out = Command::new("bash").arg(&script).arg(step).output().expect("scenario");
        assert!(out.status.success(), "{name} {step} failed: {}", String::from_utf8_lossy(&out.stderr));
    };
    sh("setup");
    let model = repo().join("models/vigil.onnx");
    let daemon = Daemon::start(&format!("score-{name}"), &["--model", model.to_str().expect("utf-8 path")]);
    let run = Command::new("bash").arg(&script).arg("run").stdin(std::process::Stdio::null()).output();
    let root = daemon.wait_for("the scenario's exec", Duration::from_secs(30), |e| {
        e["type"] == "exec" && e["argv"][1].as_str() == script.to_str() && e["argv"][2] == "run"
    });
    let root_pid = root["pid"].as_u64().expect("pid");
    daemon.wait_for("the scenario's exit", Duration::from_secs(60), |e| e["type"] == "exit" && e["pid"] == root_pid);
    // The scorer sees a process's last window when its exit token is released (~tens of ms).
    std::thread::sleep(Duration::from_millis(500));
    let (_, events) = daemon.stop();
    sh("teardown");
    let out = run.expect("scenario run");
    assert!(out.status.success(), "{name} run failed: {}", String::from_utf8_lossy(&out.stderr));

    let mut tree = std::collections::HashSet::from([root_pid]);
    for e in &events {
        if e["type"] == "fork" && tree.contains(&e["pid"].as_u64().unwrap_or(0)) {
            tree.insert(e["child_pid"].as_u64().unwrap_or(0));
        }
    }
    let scores = events
        .into_iter()
        .filter(|e| e["type"] == "score" && tree.contains(&e["pid"].as_u64().unwrap_or(0)))
        .collect();
    (scores, tree.len())
}

#[test]
fn a_live_attack_scores_above_alert_and_a_benign_workload_does_not() {
    if !require_root("a_live_attack_scores_above_alert_and_a_benign_workload_does_not") {
        return;
    }
    let _serial = serial();
    // Families chosen to need no package installs in CI; both were part of training, so this
    // checks the live path end to end, not generalisation (see models/README.md for that).
    let (attack, n) = scored_run("malicious", "ransomware");
    eprintln!("ransomware: {n} processes, score events {attack:?}");
    assert!(
        attack.iter().any(|e| e["verdict"] != "normal" && e["score"].as_f64().is_some()),
        "no process of the attack reached the alert threshold ({n} processes)"
    );
    let (benign, n) = scored_run("benign", "archive_crypto");
    eprintln!("archive_crypto: {n} processes, score events {benign:?}");
    assert!(benign.is_empty(), "benign processes crossed a threshold: {benign:?}");
}

/// The two layers live: once an executable's profile has learned, a run that only repeats what
/// it learned is scored 0 without the model, and a run that does something new gets the model's
/// score. Thresholds are overridden to an alert at any score above zero, so that a score event
/// says the model scored the process and its absence says it was gated.
#[test]
fn a_learned_executable_repeating_itself_is_gated_and_new_behaviour_is_scored() {
    if !require_root("a_learned_executable_repeating_itself_is_gated_and_new_behaviour_is_scored") {
        return;
    }
    let _serial = serial();
    let dir = scratch("gate");
    // A private copy of dash: profiles are per executable path, and nothing else on the host
    // runs this one.
    let sh = dir.join("gate-sh");
    std::fs::copy("/usr/bin/dash", &sh).expect("copy dash");
    let policy_d = dir.join("policy.d");
    std::fs::create_dir_all(&policy_d).expect("policy.d");
    std::fs::write(
        policy_d.join("00-gate.toml"),
        "mode = \"monitor\"\n[thresholds]\nalert = 0.000001\nquarantine = 1.0\nkill = 1.0\n",
    )
    .expect("policy");
    let model = repo().join("models/vigil.onnx");
    let daemon = Daemon::start(
        "gate",
        &[
            "--model",
            model.to_str().expect("utf-8 path"),
            "--profile-learn-secs",
            "2",
            "--policy-dir",
            policy_d.to_str().expect("utf-8 path"),
        ],
    );
    let repeat = "i=0; while [ $i -lt 40 ]; do echo x >/dev/null; i=$((i+1)); done";
    let run = |script: &str| -> u64 {
        let out = Command::new(&sh).args(["-c", script]).spawn().expect("spawn");
        let pid = u64::from(out.id());
        let status = out.wait_with_output().expect("wait").status;
        assert!(status.success(), "{script}: {status}");
        pid
    };
    let scored = |pid: u64| {
        move |e: &Value| e["type"] == "score" && e["pid"] == pid && e["score"].as_f64().is_some_and(|s| s > 0.0)
    };
    // Learning: the model scores everything, and there is no novelty yet.
    let learning = run(repeat);
    let first = daemon.wait_for("a score for the run while learning", Duration::from_secs(20), scored(learning));
    assert!(first["novelty"].is_null(), "novelty while learning: {first}");
    std::thread::sleep(Duration::from_secs(3));
    // Learned: the same run again, then something the loop never did (reads, resource limits).
    let repeated = run(repeat);
    let novel = run("read x </etc/hostname; ulimit -a >/dev/null; i=0; while [ $i -lt 10 ]; do read y </etc/hostname; i=$((i+1)); done");
    let last = daemon.wait_for("a score for the new behaviour", Duration::from_secs(20), scored(novel));
    // Scored against the learned profile, which found something new in it.
    assert!(last["novelty"].as_f64().is_some_and(|n| n > 0.0), "novelty after learning: {last}");
    // One scorer thread takes work in order: by the time the later run is scored, the repeated
    // run's windows have all been through it. The status counter is host-wide (every executable
    // here learns for 2 s): it checks that gated windows are reported, not which. The status
    // snapshot is refreshed every second.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let gated = loop {
        let status = daemon.status();
        let gated = status["scorer"]["windows_gated"].as_u64().unwrap_or(0);
        if gated > 0 || std::time::Instant::now() > deadline {
            break gated;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (_, events) = daemon.stop();
    let repeated_scores: Vec<&Value> = events.iter().filter(|e| scored(repeated)(e)).collect();
    assert!(repeated_scores.is_empty(), "the repeated run was scored: {repeated_scores:?}");
    assert!(gated > 0, "no window was counted as gated");
    let _ = std::fs::remove_dir_all(&dir);
}
