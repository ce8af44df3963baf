use agent_common::{CHURN_CREATED, CHURN_REMOVED};

use super::*;

const C: u32 = CHURN_CREATED;
const R: u32 = CHURN_REMOVED;

#[test]
fn an_original_stands_behind_each_added_extension_that_leaves_one() {
    let stems = |n| stems_of(n).collect::<Vec<_>>();
    assert_eq!(stems("report.docx.locked"), ["report.docx"]);
    assert_eq!(
        stems("a.txt.id-7.[x].enc"),
        ["a.txt.id-7.[x]", "a.txt.id-7", "a.txt"]
    );
    assert!(stems("foo.d").is_empty(), "a build's `foo` and `foo.d`");
    assert!(
        stems(".bashrc.swp").is_empty(),
        "a dot file has no extension of its own"
    );
    assert!(stems("plain").is_empty());
    assert_eq!(base_name("/srv/data/x.pdf"), "x.pdf");
    assert_eq!(base_name("x.pdf"), "x.pdf");
}

#[test]
fn written_beside_then_removed_is_a_replacement_reported_once() {
    let mut w = ReplaceWatch::default();
    let t = Instant::now();
    let mut found = vec![];
    for i in 0..40 {
        let dir = ["Documents", "Pictures", "db"][i % 3];
        found.extend(w.on_churn(&[7], C, &format!("/v/{dir}/f{i}.pdf.locked"), t));
        found.extend(w.on_churn(&[7], R, &format!("/v/{dir}/f{i}.pdf"), t));
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].detail,
        "16 files replaced by names with an extension added within 30s, e.g. f0.pdf → f0.pdf.locked"
    );
}

#[test]
fn overwritten_then_renamed_is_a_replacement_too() {
    let mut w = ReplaceWatch::default();
    let t = Instant::now();
    let found: Vec<_> = (0..REPLACED)
        .flat_map(|i| {
            // A rename sends its old name, then its new one.
            let a = w.on_churn(&[7], R, &format!("f{i}.xlsx"), t);
            let b = w.on_churn(&[7], C, &format!("f{i}.xlsx.crypt"), t);
            a.into_iter().chain(b)
        })
        .collect();
    assert_eq!(found.len(), 1);
}

#[test]
fn one_encryptor_and_one_rm_per_file_add_up_at_their_parent() {
    let mut w = ReplaceWatch::default();
    let t = Instant::now();
    let parent = 100;
    let mut found = None;
    for i in 0..REPLACED as u32 {
        let (enc, rm) = (1000 + 2 * i, 1001 + 2 * i);
        found = found.or(w.on_churn(&[enc, parent], C, &format!("f{i}.txt.enc"), t));
        found = found.or(w.on_churn(&[rm, parent], R, &format!("f{i}.txt"), t));
        w.on_exit(&enc);
        w.on_exit(&rm);
    }
    assert_eq!(found.expect("the parent's 16th file").actor, 1);
    // xargs running a shell per batch of 20: the first shell, then xargs, and nothing more.
    let (xargs, shell) = (50, 101);
    let mut w = ReplaceWatch::default();
    let mut reported = vec![];
    for i in 0..100u32 {
        let batch_shell = shell + i / 20;
        for (op, name, proc) in [
            (C, format!("g{i}.txt.enc"), 2000 + i),
            (R, format!("g{i}.txt"), 3000 + i),
        ] {
            let chain = [proc, batch_shell, xargs];
            if let Some(r) = w.on_churn(&chain, op, &name, t) {
                reported.push(chain[r.actor]);
            }
        }
    }
    assert_eq!(reported, [shell, xargs]);
}

#[test]
fn builds_removals_and_extractions_are_no_replacement() {
    let mut w = ReplaceWatch::default();
    let t = Instant::now();
    for i in 0..500 {
        // cargo relinking `foo` beside `foo.d`, rm -rf, tar x, sed -i's temp file, git's lock.
        for (op, name) in [
            (R, format!("bin{i}")),
            (C, format!("bin{i}.d")),
            (R, format!("old{i}.o")),
            (C, format!("src{i}.rs")),
            (R, format!("sed{i}XyZ")),
            (C, format!("conf{i}.txt")),
            (C, format!("index{i}.lock")),
            (R, format!("index{i}.lock")),
        ] {
            assert_eq!(w.on_churn(&[7], op, &name, t), None, "{name}");
        }
    }
}

#[test]
fn replacements_spread_over_more_than_the_window_are_not_counted_together() {
    let mut w = ReplaceWatch::default();
    let t = Instant::now();
    for i in 0..100u32 {
        let now = t + WINDOW / 8 * i;
        assert_eq!(w.on_churn(&[7], C, &format!("f{i}.log.1"), now), None);
        assert_eq!(w.on_churn(&[7], R, &format!("f{i}.log"), now), None, "{i}");
    }
}

#[test]
fn memory_stays_bounded() {
    let mut w = ReplaceWatch::default();
    let t = Instant::now();
    for i in 0..50_000u32 {
        w.on_churn(&[i % 2, 10_000 + i], C, &format!("n{i}.a.b"), t);
    }
    assert!(w.actors[&0].stems.len() <= MAX_NAMES);
    assert!(w.actors.len() <= MAX_ACTORS);
    assert!(w.untracked() > 0);
}
