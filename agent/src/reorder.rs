//! Puts the tokens of one process back in kernel time order across the two ring buffers.
//!
//! Lifecycle and security records (EVENTS ring) and syscall batches (SYSCALLS ring) are read by
//! separate readers, so an exit can be read before the batch the kernel flushed just ahead of it.
//! Every record carries the kernel time it was written (for a batch: when it was flushed, which
//! the kernel does before it writes the exec or exit record that caused the flush), so holding
//! tokens until both readers have drained past that time restores one deterministic order — the
//! same for live scoring and for recorded training data.

use std::collections::BTreeMap;

use foldhash::HashMap;

use crate::{process::ProcessKey, sequence::Token};

/// Tokens waiting for the watermark, per process, keyed by (kernel time, arrival) so equal
/// times keep arrival order.
#[derive(Debug, Default)]
pub struct TimeOrder {
    pending: HashMap<ProcessKey, BTreeMap<(u64, u64), Vec<Token>>>,
    arrivals: u64,
    pending_tokens: usize,
    /// Tokens that arrived after the watermark had already passed their time.
    pub late: u64,
    last_watermark: u64,
}

/// Past this many held tokens everything is released at once: memory stays bounded even if a
/// reader stalls and the watermark stops moving.
const MAX_PENDING_TOKENS: usize = 1 << 20;

impl TimeOrder {
    pub fn push(&mut self, key: ProcessKey, ktime_ns: u64, tokens: impl IntoIterator<Item = Token>) {
        let tokens: Vec<Token> = tokens.into_iter().collect();
        if tokens.is_empty() {
            return;
        }
        if ktime_ns <= self.last_watermark {
            self.late += 1;
        }
        self.arrivals += 1;
        self.pending_tokens += tokens.len();
        self.pending.entry(key).or_default().insert((ktime_ns, self.arrivals), tokens);
    }

    /// Hands out, in time order, every token at or before `watermark` (kernel CLOCK_MONOTONIC ns).
    pub fn release(&mut self, watermark: u64, mut out: impl FnMut(ProcessKey, &[Token])) {
        // Only real watermarks define lateness; a forced release (memory cap, shutdown) does not.
        if watermark != u64::MAX {
            self.last_watermark = self.last_watermark.max(watermark);
        }
        let watermark = if self.pending_tokens > MAX_PENDING_TOKENS { u64::MAX } else { watermark };
        self.pending.retain(|key, chunks| {
            let later = match watermark.checked_add(1) {
                Some(next) => chunks.split_off(&(next, 0)),
                None => BTreeMap::new(),
            };
            for tokens in chunks.values() {
                self.pending_tokens -= tokens.len();
                out(*key, tokens);
            }
            *chunks = later;
            !chunks.is_empty()
        });
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
}
