//! Recorded behaviour datasets (`.vds`): what `vigil record` writes and training, `vigil score`
//! and tests read. A file is the magic `VIGILDS\0`, then one bincode-encoded [`Dataset`].

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::sequence::token::VOCAB_VERSION;

pub const MAGIC: &[u8; 8] = b"VIGILDS\0";
pub const DATASET_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Benign,
    Malicious,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedProcess {
    pub pid: u32,
    pub start_ns: u64,
    pub ppid: u32,
    pub exe: String,
    pub argv: Vec<String>,
    pub uid: u32,
    pub label: Label,
    /// Attack family or benign workload name; models hold these out one at a time.
    pub family: String,
    pub scenario: String,
    pub tokens: Vec<u16>,
    /// Tokens beyond the recorder's per-process cap were not kept.
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    pub version: u32,
    pub vocab_version: u32,
    pub kernel: String,
    pub recorded_at_unix: u64,
    /// The command whose process tree was recorded (empty for a whole-host recording).
    pub command: Vec<String>,
    pub processes: Vec<RecordedProcess>,
}

#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a vigil dataset (expected the magic bytes VIGILDS at the start)")]
    Magic { path: PathBuf },
    #[error("{path}: malformed dataset: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("{path}: dataset version {got}, this vigil reads version {DATASET_VERSION}")]
    Version { path: PathBuf, got: u32 },
    #[error("{path}: recorded with token vocabulary {got}, this vigil uses {VOCAB_VERSION}")]
    Vocab { path: PathBuf, got: u32 },
}

impl Dataset {
    pub fn new(kernel: &str, command: Vec<String>, processes: Vec<RecordedProcess>) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            version: DATASET_VERSION,
            vocab_version: VOCAB_VERSION,
            kernel: kernel.to_string(),
            recorded_at_unix: now,
            command,
            processes,
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), DatasetError> {
        let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
        let mut out = BufWriter::new(File::create(path).map_err(io)?);
        out.write_all(MAGIC).map_err(io)?;
        bincode::serde::encode_into_std_write(self, &mut out, bincode::config::standard()).map_err(|e| {
            DatasetError::Malformed { path: path.to_path_buf(), reason: e.to_string() }
        })?;
        out.flush().map_err(io)
    }

    pub fn read(path: &Path) -> Result<Self, DatasetError> {
        let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
        let mut input = BufReader::new(File::open(path).map_err(io)?);
        let mut magic = [0u8; 8];
        if input.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err(DatasetError::Magic { path: path.to_path_buf() });
        }
        let ds: Dataset = bincode::serde::decode_from_std_read(&mut input, bincode::config::standard())
            .map_err(|e| DatasetError::Malformed { path: path.to_path_buf(), reason: e.to_string() })?;
        if ds.version != DATASET_VERSION {
            return Err(DatasetError::Version { path: path.to_path_buf(), got: ds.version });
        }
        if ds.vocab_version != VOCAB_VERSION {
            return Err(DatasetError::Vocab { path: path.to_path_buf(), got: ds.vocab_version });
        }
        Ok(ds)
    }

    /// One JSON object per process (the schema in models/FEATURES.md), for the trainer.
    pub fn export_jsonl(&self, out: &mut impl Write) -> std::io::Result<()> {
        for p in &self.processes {
            serde_json::to_writer(&mut *out, p)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dataset {
        Dataset::new(
            "6.18",
            vec!["bash".into(), "x.sh".into()],
            vec![RecordedProcess {
                pid: 7,
                start_ns: 1_000,
                ppid: 1,
                exe: "/usr/bin/bash".into(),
                argv: vec!["bash".into()],
                uid: 0,
                label: Label::Malicious,
                family: "reverse_shell".into(),
                scenario: "reverse_shell".into(),
                tokens: vec![59, 512, 0, 1, 515],
                truncated: false,
            }],
        )
    }

    #[test]
    fn roundtrip_and_export() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.vds");
        let ds = sample();
        ds.write(&path).expect("write");
        assert_eq!(Dataset::read(&path).expect("read"), ds);
        let mut out = Vec::new();
        ds.export_jsonl(&mut out).expect("export");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["label"], "malicious");
        assert_eq!(v["tokens"], serde_json::json!([59, 512, 0, 1, 515]));
    }

    #[test]
    fn refuses_foreign_truncated_and_mismatched_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let foreign = dir.path().join("foreign");
        std::fs::write(&foreign, b"hello world, not a dataset").expect("write");
        assert!(matches!(Dataset::read(&foreign), Err(DatasetError::Magic { .. })));

        let path = dir.path().join("x.vds");
        sample().write(&path).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        let cut = dir.path().join("cut.vds");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        let err = Dataset::read(&cut).unwrap_err();
        assert!(matches!(err, DatasetError::Malformed { .. }), "{err}");

        let mut other = sample();
        other.vocab_version += 1;
        other.write(&path).expect("write");
        let err = Dataset::read(&path).unwrap_err();
        assert!(err.to_string().contains("vocabulary"), "{err}");
    }
}
