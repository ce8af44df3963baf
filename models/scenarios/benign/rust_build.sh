#!/usr/bin/env bash
# Workload: rust_build — a developer's edit/build/test loop on a small Rust crate: `cargo build`,
# `cargo test`, an edit, an incremental rebuild, `cargo check`, a release build, docs and running
# the binary. The crate has no dependencies, so everything works offline (default CARGO_HOME,
# --offline).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init rust_build

do_setup() {
    command -v cargo >/dev/null || { echo "cargo not found (rustup toolchain expected)" >&2; exit 1; }
    local P="$W/textstats" n i
    rm -rf "$P"
    mkdir -p "$P/src/bin" "$P/tests"
    cat >"$P/Cargo.toml" <<'EOF'
[package]
name = "textstats"
version = "0.1.0"
edition = "2021"

[dependencies]
EOF
    # A small library whose size varies a little between recordings.
    n=$(rand_int 4 12)
    {
        cat <<'EOF'
//! Tiny text statistics library.
use std::collections::HashMap;

/// Count words (whitespace separated).
pub fn word_count(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Frequency of each lower-cased word.
pub fn frequencies(s: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for w in s.split_whitespace() {
        *m.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    m
}

/// The `k` most frequent words, ties broken alphabetically.
pub fn top_k(s: &str, k: usize) -> Vec<(String, usize)> {
    let mut v: Vec<_> = frequencies(s).into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(k);
    v
}
EOF
        for ((i = 0; i < n; i++)); do
            printf '\n/// Scale helper %d.\npub fn scale_%d(x: u64) -> u64 {\n    x.wrapping_mul(%d).wrapping_add(%d)\n}\n' "$i" "$i" $((i + 2)) "$i"
        done
        printf '\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n'
        printf '    #[test]\n    fn counts_words() {\n        assert_eq!(word_count("a b  c"), 3);\n    }\n\n'
        printf '    #[test]\n    fn top_word() {\n        assert_eq!(top_k("b a b", 1), vec![("b".to_string(), 2)]);\n    }\n'
        for ((i = 0; i < n; i++)); do
            printf '\n    #[test]\n    fn scale_%d_works() {\n        assert_eq!(scale_%d(10), %d);\n    }\n' "$i" "$i" $((10 * (i + 2) + i))
        done
        printf '}\n'
    } >"$P/src/lib.rs"
    cat >"$P/src/bin/textstats.rs" <<'EOF'
use std::io::Read;

fn main() {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).expect("read stdin");
    println!("words: {}", textstats::word_count(&s));
    for (w, c) in textstats::top_k(&s, 5) {
        println!("{c:6} {w}");
    }
}
EOF
    cat >"$P/tests/integration.rs" <<'EOF'
#[test]
fn frequencies_are_case_insensitive() {
    let f = textstats::frequencies("The the THE cat");
    assert_eq!(f["the"], 3);
    assert_eq!(f["cat"], 1);
}
EOF
}

do_run() {
    local P="$W/textstats"
    cd "$P"
    unset CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR
    export CARGO_TERM_COLOR=never
    timeout 25 cargo build --offline
    timeout 25 cargo test --offline -q
    # edit a file, incremental rebuild, as in a dev loop
    printf '\n/// Added during the session.\npub fn is_empty_text(s: &str) -> bool {\n    s.trim().is_empty()\n}\n' >>src/lib.rs
    timeout 25 cargo build --offline
    timeout 25 cargo check --offline --all-targets
    timeout 25 cargo build --offline --release
    timeout 25 cargo doc --offline --no-deps -q || true
    head -c 20000 /usr/share/common-licenses/GPL-3 2>/dev/null | ./target/release/textstats || true
    ls -la target/release | upto 10
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
