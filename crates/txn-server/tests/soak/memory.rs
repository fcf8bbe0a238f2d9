//! kvs-server's resident memory: sampled during the load, and the bounds it
//! is held to against the live keys and values.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use kvs_core::{PlainState, Value};
use serde::Serialize;

use super::outage::{TickCounts, Timeline};

/// Memory figures of a process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcMemory {
    /// VmRSS: resident now.
    pub rss_bytes: u64,
    /// VmHWM: the peak resident size.
    pub peak_rss_bytes: u64,
}

impl ProcMemory {
    /// The figures of process `pid`.
    pub fn of(pid: u32) -> std::io::Result<ProcMemory> {
        Ok(ProcMemory::parse(&std::fs::read_to_string(format!(
            "/proc/{pid}/status"
        ))?))
    }

    /// Reads `VmRSS` and `VmHWM` out of a /proc/PID/status text.
    fn parse(status: &str) -> ProcMemory {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map_or(0, |kb| kb * 1024)
        };
        ProcMemory {
            rss_bytes: field("VmRSS:"),
            peak_rss_bytes: field("VmHWM:"),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct RssSample {
    /// Seconds into the load.
    pub at_s: f64,
    pub rss_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// kvs-server once ready, before any key.
    pub baseline_rss_bytes: u64,
    /// Once every key was written, before the load.
    pub prefilled_rss_bytes: u64,
    /// The largest of the samples and the kernel's high-water mark.
    pub peak_rss_bytes: u64,
    /// After the load, once kvs-server took writes again.
    pub end_rss_bytes: u64,
    pub live_keys: u64,
    /// Bytes of the live keys and values (see [`payload_bytes`]).
    pub live_bytes: u64,
    pub factor: f64,
    pub allowance_bytes: u64,
    /// `baseline + factor * live + allowance`.
    pub bound_bytes: u64,
    /// Means of the samples in the second and final thirds of the load.
    pub second_third_mean_bytes: Option<f64>,
    pub final_third_mean_bytes: Option<f64>,
    /// `second_third_mean * (1 + growth)`.
    pub final_third_limit_bytes: Option<f64>,
    /// `(bound - end) / requests`: a leak of more than this per request
    /// (prefill and load) would have failed the bound.
    pub headroom_per_request_bytes: f64,
    pub samples: Vec<RssSample>,
}

/// Bytes of a value's data: 4 for a number, a string's bytes, the fields
/// and values of a map, the members of a set.
pub fn payload_bytes(value: &Value) -> u64 {
    let n = match value {
        Value::Int(_) | Value::Uint(_) | Value::Float(_) => 4,
        Value::Str(s) => s.len(),
        Value::Map(m) => m.iter().map(|(k, v)| k.len() + v.len()).sum(),
        Value::Set(s) => s.iter().map(String::len).sum(),
    };
    n as u64
}

/// Bytes of every live key and its value.
pub fn live_bytes(state: &PlainState) -> u64 {
    state
        .iter()
        .map(|((_, key), value)| key.as_str().len() as u64 + payload_bytes(value))
        .sum()
}

/// `baseline + factor * live + allowance`.
pub fn rss_bound(baseline: u64, live: u64, factor: f64, allowance: u64) -> u64 {
    baseline + (live as f64 * factor) as u64 + allowance
}

/// The mean RSS of the samples in the second third of `duration` and in the
/// final third (samples after the end count in it); `None` for a third
/// without samples.
pub fn third_means(samples: &[RssSample], duration: Duration) -> (Option<f64>, Option<f64>) {
    let d = duration.as_secs_f64();
    let mean = |keep: &dyn Fn(f64) -> bool| {
        let xs: Vec<f64> = samples
            .iter()
            .filter(|s| keep(s.at_s))
            .map(|s| s.rss_bytes as f64)
            .collect();
        (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
    };
    (
        mean(&|t| t >= d / 3.0 && t < 2.0 * d / 3.0),
        mean(&|t| t >= 2.0 * d / 3.0),
    )
}

pub(super) fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

/// Samples kvs-server's RSS every second and prints the progress line, until
/// `done` fires.
pub(super) async fn sample(
    pid: u32,
    load_start: Instant,
    duration: Duration,
    timeline: Arc<Timeline>,
    txn_state: Arc<Mutex<String>>,
    progress: bool,
    mut done: tokio::sync::oneshot::Receiver<()>,
) -> Vec<RssSample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut done => return samples,
        }
        let now = Instant::now();
        let rss = ProcMemory::of(pid).ok().map(|m| m.rss_bytes);
        if let Some(rss_bytes) = rss {
            samples.push(RssSample {
                at_s: (now - load_start).as_secs_f64(),
                rss_bytes,
            });
        }
        if progress {
            let total = timeline
                .counts()
                .iter()
                .fold(TickCounts::default(), |a, t| TickCounts {
                    requests: a.requests + t.requests,
                    unavailable: a.unavailable + t.unavailable,
                    unavailable_reads: a.unavailable_reads + t.unavailable_reads,
                    failed: a.failed + t.failed,
                });
            let rate = (total.requests - last.1) as f64 / (now - last.0).as_secs_f64();
            last = (now, total.requests);
            eprintln!(
                "kvs-bench soak: {:>6.0}s of {:.0}s {:>8.0} req/s {:>10} requests  503: {:<7} failed: {:<4} RSS {:>7.1} MiB  {}",
                (now - load_start).as_secs_f64(),
                duration.as_secs_f64(),
                rate,
                total.requests,
                total.unavailable,
                total.failed,
                rss.map_or(0.0, |b| mib(b as f64)),
                txn_state.lock(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use kvs_core::{Key, ValueType};

    use super::*;

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }
    #[test]
    fn live_bytes_count_keys_and_payloads() {
        let mut s = PlainState::new();
        s.insert((ValueType::Int, key("ab")), Value::Int(1));
        s.insert((ValueType::Str, key("abc")), Value::Str("hello".into()));
        let map: BTreeMap<String, String> = [("f".into(), "xyz".into())].into();
        s.insert((ValueType::Map, key("m")), Value::Map(map));
        let set: BTreeSet<String> = ["m0".into(), "m1".into()].into();
        s.insert((ValueType::Set, key("t")), Value::Set(set));
        assert_eq!(live_bytes(&s), (2 + 4) + (3 + 5) + (1 + 4) + (1 + 4));
    }

    #[test]
    fn rss_bound_and_thirds() {
        assert_eq!(rss_bound(100, 10, 8.0, 1000), 1180);
        let samples: Vec<RssSample> = (0..9)
            .map(|i| RssSample {
                at_s: f64::from(i) + 0.5,
                rss_bytes: 100 * (i as u64 + 1),
            })
            .collect();
        // Thirds of 9 s: [3, 6) holds 400, 500, 600; [6, ..) 700, 800, 900.
        let (second, last) = third_means(&samples, Duration::from_secs(9));
        assert_eq!(second, Some(500.0));
        assert_eq!(last, Some(800.0));
        assert_eq!(
            third_means(&samples[..2], Duration::from_secs(9)),
            (None, None)
        );
    }

    #[test]
    fn parses_proc_status() {
        let status = "Name:\tkvs-server\nVmPeak:\t  999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t3\n";
        assert_eq!(
            ProcMemory::parse(status),
            ProcMemory {
                rss_bytes: 1024 * 1024,
                peak_rss_bytes: 2048 * 1024
            }
        );
        assert_eq!(ProcMemory::parse(""), ProcMemory::default());
    }
}
