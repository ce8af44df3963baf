//! The process stage: who is running what. [`ProcessTable`] tracks every process by a
//! [`ProcessKey`] that survives pid reuse, seeded from `/proc` and kept current by exec, fork and
//! exit events; [`ExeHashCache`] digests images off the event path.

mod error;
mod evict;
pub mod exe_hash;
mod info;
mod key;
mod lineage;
pub mod proc_seed;
mod table;

#[cfg(test)]
pub(crate) mod fake_proc;
#[cfg(test)]
mod table_tests;

pub use error::ProcessError;
pub use exe_hash::{ExeHashCache, FileIdentity, KeyImage, KnownImage};
pub use info::{Ancestor, EXIT_CODE_UNKNOWN, ProcessInfo, ProcessSource, ProcessState};
pub use key::{ProcessKey, ns_per_tick};
pub use lineage::MAX_ANCESTRY;
pub use table::{ProcessTable, TableConfig};
