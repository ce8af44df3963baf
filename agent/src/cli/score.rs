//! `vigil score DATASET...`: the model's verdict on every recorded process, and how each label
//! and family fared at the model's thresholds.

use std::{collections::BTreeMap, path::{Path, PathBuf}};

use anyhow::Context as _;

use crate::{
    dataset::{Dataset, Label},
    model::{Model, Verdict, score_sequence},
};

#[derive(Default)]
struct Tally {
    processes: usize,
    by_verdict: BTreeMap<Verdict, usize>,
}

pub fn run(files: &[PathBuf], model_path: &Path, json: bool) -> anyhow::Result<()> {
    let model = Model::load(model_path)?;
    let mut tallies: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for file in files {
        let ds = Dataset::read(file)?;
        for p in &ds.processes {
            let (windows, score) = score_sequence(&model, &p.tokens).with_context(|| format!("{}", file.display()))?;
            let verdict = model.thresholds.verdict(score);
            let label = match p.label {
                Label::Benign => "benign",
                Label::Malicious => "malicious",
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": file.display().to_string(), "pid": p.pid, "exe": p.exe, "label": label,
                        "family": p.family, "tokens": p.tokens.len(), "windows": windows.len(),
                        "score": score, "verdict": verdict,
                    })
                );
            } else {
                println!(
                    "{label:<9} {:<20} {:>7} {:<28} {:>6} tok {:>5} win  score {score:.4}  {verdict:?}",
                    p.family,
                    p.pid,
                    p.exe,
                    p.tokens.len(),
                    windows.len()
                );
            }
            let t = tallies.entry((label.to_string(), p.family.clone())).or_default();
            t.processes += 1;
            *t.by_verdict.entry(verdict).or_default() += 1;
        }
    }
    if !json {
        let th = model.thresholds;
        println!(
            "\nthresholds: alert {:.4}, quarantine {:.4}, kill {:.4}  (model {})",
            th.alert,
            th.quarantine,
            th.kill,
            model_path.display()
        );
        println!("{:<9} {:<20} {:>9} {:>7} {:>10} {:>6}", "label", "family", "processes", "alert+", "quarantine+", "kill");
        for ((label, family), t) in &tallies {
            let at_least = |v: Verdict| t.by_verdict.iter().filter(|(k, _)| **k >= v).map(|(_, n)| n).sum::<usize>();
            println!(
                "{label:<9} {family:<20} {:>9} {:>7} {:>10} {:>6}",
                t.processes,
                at_least(Verdict::Alert),
                at_least(Verdict::Quarantine),
                at_least(Verdict::Kill)
            );
        }
    }
    Ok(())
}
