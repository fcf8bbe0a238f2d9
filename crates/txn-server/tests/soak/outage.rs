//! What the outages did to the load: every answer counted on a timeline,
//! and the 503s (and 504s, "outcome unknown") placed against the outages of
//! txn-server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use kvs_bench::client::Observer;
use kvs_bench::stats::ErrorKind;
use kvs_bench::workload::OpClass;

/// Resolution of the timeline that places each answer in or out of an
/// outage.
const TICK: Duration = Duration::from_millis(100);

/// One outage of txn-server; times from its start (the signal).
#[derive(Debug, Clone, Serialize)]
pub struct Outage {
    /// Seconds into the load.
    pub at_s: f64,
    /// Until kvs-server's /readyz stopped answering 200.
    pub noticed_ms: Option<f64>,
    /// Until txn-server was back: the new one listening, or the frozen one
    /// resumed.
    pub back_ms: f64,
    /// Until kvs-server's /readyz answered 200 again.
    pub recovered_ms: Option<f64>,
    /// Bytes of a torn record the new txn-server cut off its log (the kill
    /// came in the middle of a write); none after a freeze.
    pub torn_bytes: Option<u64>,
    /// 503s answered from the start to shortly after the recovery.
    pub unavailable: u64,
}

/// The 503s of the load, placed against the outages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Unavailable {
    pub total: u64,
    pub during_outages: u64,
    /// Answered while txn-server was up: failures.
    pub outside_outages: u64,
    /// Reads go on while the log is down: any is a failure.
    pub to_reads: u64,
}

/// Counts of one tick of the timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickCounts {
    pub requests: u64,
    pub unavailable: u64,
    pub unavailable_reads: u64,
    /// Transport errors and statuses other than 2xx and 503.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Tick {
    requests: AtomicU64,
    unavailable: AtomicU64,
    unavailable_reads: AtomicU64,
    failed: AtomicU64,
}

/// Every answer of the load, counted by the tick it came in.
#[derive(Debug)]
pub(super) struct Timeline {
    start: Instant,
    ticks: Box<[Tick]>,
}

impl Timeline {
    pub(super) fn new(start: Instant, span: Duration) -> Timeline {
        let n = (span.as_millis() / TICK.as_millis()) as usize + 1;
        Timeline {
            start,
            ticks: (0..n).map(|_| Tick::default()).collect(),
        }
    }

    pub(super) fn counts(&self) -> Vec<TickCounts> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.ticks
            .iter()
            .map(|t| TickCounts {
                requests: get(&t.requests),
                unavailable: get(&t.unavailable),
                unavailable_reads: get(&t.unavailable_reads),
                failed: get(&t.failed),
            })
            .collect()
    }
}

impl Observer for Timeline {
    fn observe(&self, at: Instant, class: OpClass, outcome: Result<u16, ErrorKind>) {
        let i = (at.saturating_duration_since(self.start).as_millis() / TICK.as_millis()) as usize;
        let t = &self.ticks[i.min(self.ticks.len() - 1)];
        t.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            // A 504 is a write whose append was in flight when txn-server
            // went away: an answer of the outage, as a 503 is.
            Ok(503 | 504) => {
                t.unavailable.fetch_add(1, Ordering::Relaxed);
                if class == OpClass::Read {
                    t.unavailable_reads.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(status) if acceptable(status) => {}
            _ => {
                t.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A status the soak accepts at any time. Not even a 404: every key was
/// written before the load and none is deleted, so a 404 is a lost value.
pub(super) fn acceptable(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The 503s of `ticks` in each window (a tick counts for the first window
/// it overlaps), and those in none.
pub fn unavailable_by_window(
    ticks: &[TickCounts],
    windows: &[(Duration, Duration)],
) -> (Vec<u64>, u64) {
    let mut inside = vec![0; windows.len()];
    let mut outside = 0;
    for (i, t) in ticks.iter().enumerate() {
        let from = TICK * i as u32;
        let to = from + TICK;
        match windows.iter().position(|&(a, b)| from <= b && to > a) {
            Some(w) => inside[w] += t.unavailable,
            None => outside += t.unavailable,
        }
    }
    (inside, outside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_answers_are_placed_in_their_outage() {
        let mut ticks = vec![TickCounts::default(); 50];
        ticks[5].unavailable = 1; // 0.5 s: before any outage
        ticks[10].unavailable = 2; // 1.0 s: the first
        ticks[19].unavailable = 3; // 1.9 s: the first still
        ticks[30].unavailable = 4; // 3.0 s: the second
        ticks[49].unavailable = 5; // 4.9 s: after both
        let windows = [
            (Duration::from_millis(1050), Duration::from_millis(1900)),
            (Duration::from_secs(3), Duration::from_secs(4)),
        ];
        assert_eq!(unavailable_by_window(&ticks, &windows), (vec![5, 4], 6));
        assert_eq!(unavailable_by_window(&ticks, &[]), (vec![], 15));
    }

    #[test]
    fn timeline_counts_by_tick_and_kind() {
        let start = Instant::now();
        let t = Timeline::new(start, Duration::from_secs(1));
        t.observe(start, OpClass::Write, Ok(200));
        t.observe(start + TICK, OpClass::Write, Ok(503));
        t.observe(start + TICK, OpClass::Read, Ok(503));
        t.observe(start + TICK * 2, OpClass::Read, Ok(204));
        t.observe(start + TICK * 2, OpClass::Read, Ok(404));
        t.observe(start + TICK * 2, OpClass::Read, Err(ErrorKind::Timeout));
        // Past the span: the last tick.
        t.observe(start + Duration::from_secs(5), OpClass::Write, Ok(200));
        let c = t.counts();
        assert_eq!(c.len(), 11);
        assert_eq!(c[0].requests, 1);
        assert_eq!(
            c[1],
            TickCounts {
                requests: 2,
                unavailable: 2,
                unavailable_reads: 1,
                failed: 0
            }
        );
        assert_eq!((c[2].requests, c[2].failed), (3, 2));
        assert_eq!(c[10].requests, 1);
    }
}
