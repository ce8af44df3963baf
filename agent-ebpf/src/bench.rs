//! The floor of any per-syscall tracer, for `cargo xtask bench overhead`: a raw_tp sys_enter
//! program that only bumps a per-CPU counter. Loaded on its own, never together with vigil's.

use aya_ebpf::{
    macros::{map, raw_tracepoint},
    maps::PerCpuArray,
    programs::RawTracePointContext,
};

#[map(name = "EMPTY_COUNTER")]
static EMPTY_COUNTER: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn vigil_empty_sys_enter(_ctx: RawTracePointContext) -> u32 {
    if let Some(c) = EMPTY_COUNTER.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of an array map.
        unsafe { *c += 1 };
    }
    0
}
