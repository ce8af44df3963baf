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
