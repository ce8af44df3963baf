//! Builds the kernel programs (agent-ebpf, nightly + bpf-linker) through aya-build and leaves the
//! object at `$OUT_DIR/vigil`, which the loader embeds. With `AYA_BUILD_SKIP=1` (cargo check,
//! clippy, unit tests on a machine without bpf-linker) an empty stub is written instead; the
//! loader then refuses to start with an error that says so.
use std::{env, fs, path::PathBuf};

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=../agent-common/src");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = out_dir.join("vigil");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        fs::write(&object, []).with_context(|| format!("writing stub {}", object.display()))?;
        return Ok(());
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "agent-ebpf",
            root_dir: "../agent-ebpf",
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
    .context("building the eBPF programs (run `cargo xtask setup` if bpf-linker or rust-src is missing)")
}
