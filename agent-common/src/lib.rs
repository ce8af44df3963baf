//! vigil's kernel <-> user ABI.
//!
//! Every record a kernel program writes into a ring buffer starts with [`EventHeader`]; the
//! header's `kind` says which `#[repr(C)]` body follows and `size` gives the whole record's
//! length, so user space can reject a truncated or unknown record without guessing.
//! All types are `Copy`, have explicit padding and a compile-time size assertion: a layout change
//! here breaks the build instead of silently mis-decoding on the other side.
#![no_std]

pub mod call_class;
pub mod config;
pub mod event;
pub mod kernel_settings;
pub mod loss;
pub mod syscall_nr;
pub mod wakeup;

#[cfg(feature = "user")]
extern crate std;

#[cfg(feature = "user")]
pub mod decode;

pub use config::*;
pub use event::*;
pub use loss::*;
