//! The soak's settings, the fault done to txn-server, and the parts of the
//! load that together write every value type.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

use super::SoakError;
use kvs_bench::client::{BenchConfig, Target};
use kvs_bench::workload::{ValueKind, WorkloadKind, WorkloadSpec};

/// One part of the load: a workload of the bench over a key space of its
/// own, on connections of its own. Together they write every value type.
struct Part {
    kind: WorkloadKind,
    value_type: ValueKind,
    prefix: &'static str,
    /// The part's key space is `--keys` divided by this.
    keys_divisor: u64,
    /// Share of the connections.
    weight: usize,
}

const fn part(
    kind: WorkloadKind,
    value_type: ValueKind,
    prefix: &'static str,
    keys_divisor: u64,
    weight: usize,
) -> Part {
    Part {
        kind,
        value_type,
        prefix,
        keys_divisor,
        weight,
    }
}

/// Counters get a prefix of their own so that increments never meet the
/// random ints of the mixed part (one plus i32::MAX would be a 409).
const PARTS: [Part; 7] = [
    part(WorkloadKind::Mixed, ValueKind::Str, "k", 1, 4),
    part(WorkloadKind::Mixed, ValueKind::Int, "k", 1, 2),
    part(WorkloadKind::Mixed, ValueKind::Uint, "k", 10, 1),
    part(WorkloadKind::Mixed, ValueKind::Float, "k", 10, 1),
    // The value type is mixed's; these write maps and sets.
    part(WorkloadKind::MapField, ValueKind::Str, "k", 10, 2),
    part(WorkloadKind::SetAdd, ValueKind::Str, "k", 10, 2),
    part(WorkloadKind::Incr, ValueKind::Int, "c", 100, 1),
];

/// How txn-server is taken away in each outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGKILL, then a new process on the same port and log: a crash.
    Kill,
    /// SIGSTOP, then SIGCONT: a hang, as of a stalled disk or a network
    /// partition; requests already sent are still processed afterwards.
    Stop,
}

impl Fault {
    pub(super) fn name(self) -> &'static str {
        match self {
            Fault::Kill => "killed (SIGKILL) and restarted",
            Fault::Stop => "frozen (SIGSTOP) and resumed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Length of the load (after the prefill).
    pub duration: Duration,
    /// Key space of the string and int parts; the others use a tenth or a
    /// hundredth of it.
    pub keys: u64,
    /// Connections of all parts together.
    pub connections: usize,
    pub value_size: usize,
    /// Share of GETs in the mixed parts.
    pub read_ratio: f64,
    /// Map fields and set members per key.
    pub fields: u64,
    /// Outages of txn-server, spread evenly over the load.
    pub restarts: u32,
    pub fault: Fault,
    /// How long txn-server stays away each time.
    pub downtime: Duration,
    /// A request without an answer by then is stuck: a failure.
    pub timeout: Duration,
    /// The end RSS may be at most the baseline plus `rss_factor` times the
    /// live keys and values plus `rss_allowance`.
    pub rss_factor: f64,
    pub rss_allowance: u64,
    /// The mean RSS of the final third of the load may exceed the second
    /// third's by at most this fraction.
    pub rss_growth: f64,
    /// txn-server's `--compact-min-bytes`: small enough that compactions run
    /// (and get killed) during the soak.
    pub txn_compact_min_bytes: u64,
    pub seed: u64,
    pub progress: bool,
    pub stop: Arc<AtomicBool>,
}

impl Default for SoakConfig {
    fn default() -> SoakConfig {
        SoakConfig {
            duration: Duration::from_secs(300),
            keys: 100_000,
            connections: 48,
            value_size: 32,
            read_ratio: 0.8,
            fields: 4,
            restarts: 2,
            fault: Fault::Kill,
            downtime: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            rss_factor: 8.0,
            rss_allowance: 64 << 20,
            rss_growth: 0.10,
            txn_compact_min_bytes: 16 << 20,
            seed: 1,
            progress: false,
            stop: Arc::default(),
        }
    }
}

/// How many connections each part gets: `total` split by weight, at least
/// one each.
pub fn split_connections(total: usize, weights: &[usize]) -> Vec<usize> {
    let sum: usize = weights.iter().sum();
    weights
        .iter()
        .map(|w| (total * w / sum.max(1)).max(1))
        .collect()
}

impl SoakConfig {
    pub(super) fn validate(&self) -> Result<(), SoakError> {
        let bad = |s: &str| Err(SoakError::Config(s.to_owned()));
        if self.duration < Duration::from_secs(3) {
            return bad("the load must last at least 3 seconds (KVS_SOAK_SECONDS)");
        }
        if self.connections < PARTS.len() {
            return bad(&format!(
                "at least {} connections are needed (one per part of the load)",
                PARTS.len()
            ));
        }
        if self.keys == 0 {
            return bad("at least 1 key is needed (KVS_SOAK_KEYS)");
        }
        let slot = self.duration / (self.restarts + 1);
        if self.restarts > 0 && self.downtime >= slot {
            return bad(
                "the downtime (KVS_SOAK_DOWNTIME) must be shorter than the time between restarts",
            );
        }
        Ok(())
    }

    /// The bench configuration of each part.
    pub(super) fn parts(&self, target: &Target) -> Result<Vec<BenchConfig>, SoakError> {
        let weights: Vec<usize> = PARTS.iter().map(|p| p.weight).collect();
        let conns = split_connections(self.connections, &weights);
        PARTS
            .iter()
            .zip(conns)
            .enumerate()
            .map(|(i, (p, connections))| {
                let mut spec = WorkloadSpec::new(p.kind, (self.keys / p.keys_divisor).max(1));
                spec.value_type = p.value_type;
                spec.value_size = self.value_size;
                spec.read_ratio = self.read_ratio;
                spec.fields = self.fields;
                spec.key_prefix = p.prefix.to_owned();
                let mut b = BenchConfig::new(target.clone(), spec.build()?);
                b.connections = connections;
                b.seed = self.seed.wrapping_add(i as u64);
                b.timeout = Some(self.timeout);
                b.stop = self.stop.clone();
                Ok(b)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use kvs_core::ValueType;

    use super::*;
    use kvs_bench::report::WorkloadReport;

    #[test]
    fn connections_are_split_by_weight() {
        assert_eq!(
            split_connections(48, &[4, 2, 1, 1, 2, 2, 1]),
            [14, 7, 3, 3, 7, 7, 3]
        );
        assert_eq!(
            split_connections(7, &[4, 2, 1, 1, 2, 2, 1]),
            [2, 1, 1, 1, 1, 1, 1]
        );
    }

    #[test]
    fn every_value_type_is_written() {
        let written: BTreeSet<&str> = PARTS
            .iter()
            .map(|p| {
                WorkloadReport::of(&WorkloadSpec {
                    value_type: p.value_type,
                    ..WorkloadSpec::new(p.kind, 1)
                })
                .value_type
            })
            .collect();
        assert_eq!(written.len(), ValueType::ALL.len(), "{written:?}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let cfg = SoakConfig {
            duration: Duration::from_secs(1),
            ..SoakConfig::default()
        };
        assert!(cfg.validate().is_err());
        let cfg = SoakConfig {
            connections: 3,
            ..SoakConfig::default()
        };
        assert!(cfg.validate().is_err());
        let cfg = SoakConfig {
            duration: Duration::from_secs(6),
            downtime: Duration::from_secs(2),
            ..SoakConfig::default()
        };
        assert!(cfg.validate().is_err(), "2 s outages every 2 s");
        assert!(SoakConfig::default().validate().is_ok());
    }
}
