//! vigil: an eBPF endpoint agent. The daemon is a pipeline of stages joined by bounded channels:
//! sensors (ring-buffer readers) -> process table + behaviour sequences -> outputs.
//! `main.rs` only parses the command line; everything lives here so tests can drive it.

pub mod cli;
pub mod control;
pub mod dataset;
pub mod incident;
pub mod kernel;
pub mod loader;
pub mod logging;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod process;
pub mod quarantine;
pub mod record;
pub mod reorder;
pub mod response;
pub mod sensors;
pub mod sequence;
