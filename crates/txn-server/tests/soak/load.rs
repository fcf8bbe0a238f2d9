//! The parts of the load run at once, and their counts merged.

use std::time::Duration;

use super::SoakError;
use kvs_bench::client::{self, BenchConfig, BenchError, RunResult};
use kvs_bench::report::PhaseReport;
use kvs_bench::stats::Stats;

/// Runs the parts' configurations at once; returns each with its result.
pub(super) async fn run_parts(
    cfgs: Vec<BenchConfig>,
) -> Result<Vec<(BenchConfig, RunResult)>, SoakError> {
    let tasks: Vec<_> = cfgs
        .into_iter()
        .map(|c| {
            tokio::spawn(async move {
                let r = client::run(&c).await;
                (c, r)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (c, r) = t
            .await
            .map_err(|e| SoakError::Bench(BenchError::Other(e.to_string())))?;
        out.push((c, r?));
    }
    Ok(out)
}

/// Every part's counts of one phase together.
pub(super) fn merged(
    results: &[(BenchConfig, RunResult)],
    phase: fn(&RunResult) -> Option<&client::PhaseResult>,
) -> PhaseReport {
    let mut stats = Stats::new();
    let mut elapsed = Duration::ZERO;
    for (_, r) in results {
        if let Some(p) = phase(r) {
            stats.merge(&p.stats);
            elapsed = elapsed.max(p.elapsed);
        }
    }
    PhaseReport::of(&client::PhaseResult { stats, elapsed })
}
