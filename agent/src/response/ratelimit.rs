//! A storm of decisions (a fork bomb of matching processes, a rule that matches everything)
//! becomes one escalated alert instead of a storm of kills.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLimit {
    max: u32,
    per: Duration,
    window_start: Option<Instant>,
    used: u32,
    suppressed: u64,
    escalated: bool,
}

/// What the limiter says about one more action.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// The first refusal of this window: raise the escalated alert.
    Escalate,
    /// Refused; already escalated in this window.
    No,
}

impl RateLimit {
    pub fn new(max: u32, per: Duration) -> Self {
        Self {
            max,
            per,
            window_start: None,
            used: 0,
            suppressed: 0,
            escalated: false,
        }
    }

    pub fn reconfigure(&mut self, max: u32, per: Duration) {
        self.max = max;
        self.per = per;
    }

    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.window_start {
            Some(start) if now.duration_since(start) < self.per => {}
            _ => {
                self.window_start = Some(now);
                self.used = 0;
                self.escalated = false;
            }
        }
        if self.used < self.max {
            self.used += 1;
            return Admit::Yes;
        }
        self.suppressed += 1;
        if self.escalated {
            Admit::No
        } else {
            self.escalated = true;
            Admit::Escalate
        }
    }

    /// Actions refused since start.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_escalates_once_per_window() {
        let mut rl = RateLimit::new(3, Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(rl.admit(t), Admit::Yes);
        assert_eq!(rl.admit(t), Admit::Yes);
        assert_eq!(rl.admit(t), Admit::Yes);
        assert_eq!(rl.admit(t), Admit::Escalate);
        for _ in 0..100 {
            assert_eq!(rl.admit(t), Admit::No);
        }
        assert_eq!(rl.suppressed(), 101);
        // A new window admits again and may escalate again.
        let later = t + Duration::from_secs(61);
        assert_eq!(rl.admit(later), Admit::Yes);
    }
}
