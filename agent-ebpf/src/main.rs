//! vigil's kernel programs. Families live in their own modules; this file only wires them up.
//!
//! Rules every program follows: no reachable panic (slices through `get`, checked bounds),
//! nothing from vigil's own tgid, every failed ring-buffer reservation counted per kind, and
//! anything big is written in place into the ring buffer or a map value, never on the stack.
#![no_std]
#![no_main]

mod bench;
mod churn;
mod created;
mod emit;
mod files;
mod lifecycle;
mod maps;
mod path_calls;
mod preload;
mod proc_mem;
mod response;
mod signals;
mod syscalls;
mod task;
mod watch;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable by construction: the verifier would reject a program that can get here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
