//! `vigil run --events-json PATH|-`: one JSON object per event, one event per line.

mod json;
mod sink;

pub use json::{EventJson, Enrichment};
pub use sink::{JsonSink, OutputError, SinkTarget};
