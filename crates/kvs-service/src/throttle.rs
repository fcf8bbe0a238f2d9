//! Warnings that a flood of unauthenticated events cannot multiply: at
//! most one a period, saying how many were held back.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub struct Throttle {
    period: Duration,
    /// When the last event was let through, and the events held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub const fn new(period: Duration) -> Throttle {
        Throttle {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(held_back)` when this event is to be logged, with the number
    /// of events held back since the last one that was; `None` otherwise.
    pub fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock();
        let (last, held) = &mut *state;
        if last.is_some_and(|t| t.elapsed() < self.period) {
            *held += 1;
            return None;
        }
        *last = Some(Instant::now());
        Some(std::mem::take(held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_a_period_gets_through_with_a_count_of_the_rest() {
        let throttle = Throttle::new(Duration::from_secs(3600));
        assert_eq!(throttle.admit(), Some(0));
        for _ in 0..1000 {
            assert_eq!(throttle.admit(), None);
        }
        let open = Throttle::new(Duration::ZERO);
        assert_eq!(open.admit(), Some(0));
        assert_eq!(open.admit(), Some(0));
    }
}
