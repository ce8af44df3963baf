use std::env;

/// The eBPF crate has an undeclared dependency on the `bpf-linker` binary: rebuild when it changes.
fn main() {
    let Some(path) = env::var_os("PATH") else {
        return;
    };
    for dir in env::split_paths(&path) {
        let candidate = dir.join("bpf-linker");
        if candidate.exists() {
            println!("cargo:rerun-if-changed={}", candidate.display());
            return;
        }
    }
}
