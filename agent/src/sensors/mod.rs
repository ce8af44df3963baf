//! The sensor side of the pipeline: ring-buffer readers that decode records and hand them on in
//! batches, plus handles on the kernel's counters and ignore set.

mod counters;
mod reader;

pub use counters::{CounterSnapshot, KernelCounters};
pub use reader::{DecodeStats, DrainTiming, DrainedUntil, EventBatch, Nudges, spawn_reader};

use aya::maps::MapError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SensorError {
    #[error("map `{name}` has an unexpected type: {source}")]
    MapType {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("reading map `{name}`: {source}")]
    MapRead {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("polling ring buffer `{name}`: {source}")]
    Poll {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reading program `{name}`'s info: {source}")]
    ProgramInfo {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
}
