//! Writes JSON lines to a file or stdout on its own task. The queue is bounded and applies
//! backpressure: a consumer slower than the event rate slows the pipeline until the kernel's ring
//! buffers fill, where every dropped record is counted per kind. Dropping here instead would lose
//! events no counter could attribute.

use std::path::PathBuf;

use thiserror::Error;
use tokio::{
    io::{AsyncWrite, AsyncWriteExt, BufWriter},
    sync::mpsc,
    task::JoinHandle,
};

#[derive(Debug, Error)]
pub enum OutputError {
    #[error("opening events output {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing events output: {0}")]
    Write(#[source] std::io::Error),
    #[error("the events output writer stopped (see the earlier write error)")]
    WriterGone,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkTarget {
    Stdout,
    File(PathBuf),
}

impl std::str::FromStr for SinkTarget {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s == "-" { Self::Stdout } else { Self::File(s.into()) })
    }
}

/// Handle the pipeline sends serialized lines through.
pub struct JsonSink {
    tx: mpsc::Sender<String>,
    task: JoinHandle<Result<(), OutputError>>,
}

const QUEUE: usize = 64;

impl JsonSink {
    pub async fn open(target: &SinkTarget) -> Result<Self, OutputError> {
        let writer: Box<dyn AsyncWrite + Send + Unpin> = match target {
            SinkTarget::Stdout => Box::new(tokio::io::stdout()),
            SinkTarget::File(path) => Box::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|source| OutputError::Open { path: path.clone(), source })?,
            ),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        Ok(Self {
            tx,
            task: tokio::spawn(write_loop(BufWriter::new(writer), rx)),
        })
    }

    /// Queues a chunk of newline-terminated lines, waiting while the writer lags.
    pub async fn send(&self, chunk: String) -> Result<(), OutputError> {
        self.tx.send(chunk).await.map_err(|_| OutputError::WriterGone)
    }

    /// Flushes everything queued and closes the output.
    pub async fn close(self) -> Result<(), OutputError> {
        drop(self.tx);
        self.task.await.unwrap_or(Ok(()))
    }
}

async fn write_loop(
    mut out: BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
    mut rx: mpsc::Receiver<String>,
) -> Result<(), OutputError> {
    while let Some(chunk) = rx.recv().await {
        out.write_all(chunk.as_bytes()).await.map_err(OutputError::Write)?;
        // Readers (tests, `tail -f`) see each chunk as soon as it is written.
        if rx.is_empty() {
            out.flush().await.map_err(OutputError::Write)?;
        }
    }
    out.flush().await.map_err(OutputError::Write)
}
