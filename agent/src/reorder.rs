//! Puts the tokens of one process back in kernel time order across the two ring buffers.
//!
//! Lifecycle and security records (EVENTS ring) and syscall batches (SYSCALLS ring) are read by
//! separate readers, so an exit can be read before the batch the kernel flushed just ahead of it.
//! Every record carries the kernel time it was written (for a batch: when it was flushed, which
//! the kernel does before it writes the exec or exit record that caused the flush), so holding
//! tokens until both readers have drained past that time restores one deterministic order — the
//! same for live scoring and for recorded training data.

use std::{cmp::Reverse, collections::BinaryHeap};

use crate::{process::ProcessKey, sequence::Token};

/// Tokens of one record, inline: a record brings at most a batch of syscalls and an event token,
/// and an allocation per record was a measurable share of vigil's exec-heavy CPU.
const HELD: usize = agent_common::BATCH_LEN + 8;

/// One record's tokens waiting for the watermark.
#[derive(Clone, Copy)]
struct Held {
    key: ProcessKey,
    len: u8,
    tokens: [Token; HELD],
}

/// A held record's place in time: (kernel time, arrival) orders it, so equal times keep arrival
/// order (arrivals are unique); the last field is its slot in [`TimeOrder::slots`]. All u64:
/// with a u32 slot the tuple has padding, and the heap's read of the entry just pushed could
/// not be forwarded from its stores.
type Due = (u64, u64, u64);

/// Tokens waiting for the watermark, all processes in one min-heap: a release pops what is due
/// instead of visiting every process that has something pending. The heap and the release sort
/// move 24-byte entries; each record's ~160 bytes of tokens are written once into a slot and
/// read once from it (moving them through the heap was a tenth of vigil's CPU under
/// redis-benchmark).
#[derive(Default)]
pub struct TimeOrder {
    pending: BinaryHeap<Reverse<Due>>,
    slots: Vec<Held>,
    free_slots: Vec<u64>,
    arrivals: u64,
    pending_tokens: usize,
    /// Tokens that arrived after the watermark had already passed their time.
    pub late: u64,
    last_watermark: u64,
    /// Reused by `release` for grouping what is due by process.
    due: Vec<(ProcessKey, Due)>,
}

impl std::fmt::Debug for TimeOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeOrder")
            .field("records", &self.pending.len())
            .field("slots", &self.slots.len())
            .field("pending_tokens", &self.pending_tokens)
            .field("late", &self.late)
            .finish()
    }
}

/// Past this many held tokens everything is released at once: memory stays bounded even if a
/// reader stalls and the watermark stops moving.
const MAX_PENDING_TOKENS: usize = 1 << 20;

impl TimeOrder {
    pub fn push(&mut self, key: ProcessKey, ktime_ns: u64, tokens: impl IntoIterator<Item = Token>) {
        let mut tokens = tokens.into_iter().peekable();
        if tokens.peek().is_none() {
            return;
        }
        if ktime_ns <= self.last_watermark {
            self.late += 1;
        }
        while tokens.peek().is_some() {
            let slot = match self.free_slots.pop() {
                Some(s) => s,
                None => {
                    self.slots.push(Held { key, len: 0, tokens: [0; HELD] });
                    self.slots.len() as u64 - 1
                }
            };
            let held = &mut self.slots[slot as usize];
            held.key = key;
            // Counted in a local: counted in the slot, every token waited on the last store.
            let mut len = 0u8;
            for (dst, t) in held.tokens.iter_mut().zip(tokens.by_ref()) {
                *dst = t;
                len += 1;
            }
            held.len = len;
            self.pending_tokens += usize::from(len);
            self.pending.push(Reverse((ktime_ns, self.arrivals, slot)));
            self.arrivals += 1;
        }
    }

    /// Hands out, in time order, every token at or before `watermark` (kernel CLOCK_MONOTONIC ns),
    /// one process's tokens together.
    pub fn release(&mut self, watermark: u64, mut out: impl FnMut(ProcessKey, &[Token])) {
        // Only real watermarks define lateness; a forced release (memory cap, shutdown) does not.
        if watermark != u64::MAX {
            self.last_watermark = self.last_watermark.max(watermark);
        }
        let watermark = if self.pending_tokens > MAX_PENDING_TOKENS { u64::MAX } else { watermark };
        let mut due = std::mem::take(&mut self.due);
        while let Some(&Reverse((ktime_ns, _, _))) = self.pending.peek()
            && ktime_ns <= watermark
        {
            let Some(Reverse(entry)) = self.pending.pop() else { break };
            due.push((self.slots[entry.2 as usize].key, entry));
        }
        // Each process's records stay in (time, arrival) order, as a stable sort by key would
        // keep them; unstable, because the stable sort allocated scratch space per release.
        due.sort_unstable();
        for &(key, (_, _, slot)) in &due {
            let held = &self.slots[slot as usize];
            self.pending_tokens -= usize::from(held.len);
            out(key, &held.tokens[..usize::from(held.len)]);
            self.free_slots.push(slot);
        }
        due.clear();
        self.due = due;
    }

    pub fn release_all(&mut self, out: impl FnMut(ProcessKey, &[Token])) {
        self.release(u64::MAX, out);
    }

    pub fn pending_tokens(&self) -> usize {
        self.pending_tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(order: &mut TimeOrder, watermark: u64) -> Vec<(u32, Vec<Token>)> {
        let mut out = Vec::new();
        order.release(watermark, |k, t| out.push((k.tgid, t.to_vec())));
        out
    }

    #[test]
    fn restores_kernel_order_across_arrival_order() {
        let p = ProcessKey::new(10, 1);
        let mut o = TimeOrder::default();
        // The exit record (t=300) is read before the batch flushed at t=250.
        o.push(p, 300, [514]);
        o.push(p, 250, [0, 1, 231]);
        o.push(p, 100, [512]);
        assert_eq!(collect(&mut o, 260), vec![(10, vec![512]), (10, vec![0, 1, 231])]);
        assert_eq!(collect(&mut o, 400), vec![(10, vec![514])]);
        assert_eq!(o.pending_tokens(), 0);
    }

    #[test]
    fn equal_times_keep_arrival_order_and_late_records_are_counted() {
        let p = ProcessKey::new(1, 1);
        let mut o = TimeOrder::default();
        o.push(p, 5, [1]);
        o.push(p, 5, [2]);
        assert_eq!(collect(&mut o, 10), vec![(1, vec![1]), (1, vec![2])]);
        o.push(p, 7, [3]);
        assert_eq!(o.late, 1);
        assert_eq!(collect(&mut o, 10), vec![(1, vec![3])]);
    }

    #[test]
    fn released_slots_are_reused_and_interleaved_records_keep_their_order() {
        let (a, b) = (ProcessKey::new(1, 1), ProcessKey::new(2, 1));
        let mut o = TimeOrder::default();
        for round in 0..100u64 {
            let t = round * 10;
            // Arrival order differs from time order within each process.
            o.push(a, t + 3, [3]);
            o.push(b, t + 2, [2]);
            o.push(a, t + 1, [1]);
            o.push(a, t + 3, [4]);
            let mut out = Vec::new();
            o.release(t + 5, |k, toks| out.push((k.tgid, toks.to_vec())));
            assert_eq!(out, vec![(1, vec![1]), (1, vec![3]), (1, vec![4]), (2, vec![2])]);
        }
        assert_eq!(o.pending_tokens(), 0);
        assert_eq!(o.slots.len(), 4, "slots are recycled, not grown per record");
    }

    #[test]
    fn a_forced_release_does_not_make_later_records_late() {
        let p = ProcessKey::new(1, 1);
        let mut o = TimeOrder::default();
        o.push(p, 5, [1]);
        o.release_all(|_, _| {});
        o.push(p, 6, [2]);
        assert_eq!(o.late, 0);
    }

    #[test]
    fn release_all_empties_and_processes_stay_separate() {
        let (a, b) = (ProcessKey::new(1, 1), ProcessKey::new(2, 1));
        let mut o = TimeOrder::default();
        o.push(a, 9, [1]);
        o.push(b, 3, [2]);
        o.push(a, 4, []);
        let mut out = Vec::new();
        o.release_all(|k, t| out.push((k.tgid, t.to_vec())));
        out.sort();
        assert_eq!(out, vec![(1, vec![1]), (2, vec![2])]);
        assert_eq!(o.pending_tokens(), 0);
    }

    #[test]
    fn a_long_record_is_held_whole_and_processes_come_out_grouped_in_time_order() {
        let (a, b) = (ProcessKey::new(1, 1), ProcessKey::new(2, 1));
        let mut o = TimeOrder::default();
        let long: Vec<Token> = (0..200).collect();
        o.push(a, 1, long.clone());
        o.push(b, 2, [7]);
        o.push(a, 3, [8]);
        let mut out: Vec<(u32, Vec<Token>)> = Vec::new();
        o.release(10, |k, t| match out.last_mut() {
            Some((p, v)) if *p == k.tgid => v.extend_from_slice(t),
            _ => out.push((k.tgid, t.to_vec())),
        });
        let mut want_a = long;
        want_a.push(8);
        assert_eq!(out, vec![(1, want_a), (2, vec![7])]);
        assert_eq!(o.pending_tokens(), 0);
    }
}
