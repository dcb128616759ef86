//! [`ScenarioReport`]: what a simulated scenario did.

use std::fmt;
use std::time::{Duration, Instant};

use pjp_core::observe::ActivitySpan;

use pjp_core::StopReason;
use pjp_testkit::Violation;

use super::Mode;

/// What a [`Scenario`](super::Scenario) did, in virtual time.
///
/// `Display` prints a table of everything but the wall time (so that a
/// report is the same for the same seed and can be snapshotted).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScenarioReport {
    /// The scenario's name.
    pub name: String,
    /// The simulation seed.
    pub seed: u64,
    /// Pipelined or sequential.
    pub mode: Mode,
    /// A one-line description of the setup (jobs, cost, latency, faults,
    /// runner configuration).
    pub setup: String,
    /// Jobs in the queue.
    pub jobs: u64,
    /// Executor workers.
    pub workers: usize,
    /// How the (last) run stopped; `None` in sequential mode.
    pub stop: Option<StopReason>,
    /// The (last) run's error, if it failed.
    pub error: Option<String>,
    /// Virtual time from start to the end of the run.
    pub elapsed: Duration,
    /// Saved jobs per second of virtual time.
    pub throughput: f64,
    /// Workers ÷ execution cost, in jobs per second (`None` for zero cost).
    pub executor_bound: Option<f64>,
    /// Fraction of worker time spent executing.
    pub utilisation: f64,
    /// Median job latency: from the claim at the source (the pick's
    /// arrival) to the result's arrival at the store. Without a ledger, the
    /// runner's own pick-to-saved latency.
    pub p50: Duration,
    /// 99th percentile job latency, as `p50`.
    pub p99: Duration,
    /// Picks (a job picked twice counts twice).
    pub picked: u64,
    /// Distinct jobs saved.
    pub saved: u64,
    /// Of `saved`, saved with a failure.
    pub failed: u64,
    /// Releases back to the queue.
    pub released: u64,
    /// Expired leases handed out again (after a crash).
    pub reclaimed: u64,
    /// Jobs picked but neither saved nor released at the end.
    pub lost: u64,
    /// Saves beyond the first of a job.
    pub duplicated: u64,
    /// Node crashes.
    pub crashes: u32,
    /// Broken promises the ledger found (empty for a correct runner).
    pub violations: Vec<Violation>,
    /// A digest of the trace (the ledger's events, with virtual times): the
    /// same seed gives the same digest.
    pub digest: u64,
    /// Wall time of the whole simulation, when run through
    /// [`Scenario::simulate`](super::Scenario::simulate). Not part of
    /// `Display`.
    pub wall: Option<Duration>,
    /// What the runner's tasks did, when ([`Scenario::record`](super::Scenario::record);
    /// empty otherwise). Not part of `Display`.
    pub spans: Vec<ActivitySpan>,
    /// The instant the run started: span times are relative to it.
    pub origin: Instant,
}

impl ScenarioReport {
    /// The run as a timeline picture: a lane per picker, worker and saver
    /// task ([`Scenario::record`](super::Scenario::record) must be on), a
    /// crash marked where it happened.
    pub fn timeline(&self) -> pjp_timeline::Timeline {
        let mut timeline = pjp_timeline::Timeline::new(format!(
            "{} ({}, seed {})",
            self.name,
            self.mode.as_str(),
            self.seed
        ));
        timeline.add_lanes("worker node", self.origin, &self.spans);
        timeline
    }

    /// Throughput as a fraction of executor-bound throughput.
    pub fn efficiency(&self) -> Option<f64> {
        self.executor_bound
            .filter(|b| *b > 0.0)
            .map(|bound| self.throughput / bound)
    }

    /// Whether every promise held: no violation, nothing lost, nothing
    /// duplicated.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.lost == 0 && self.duplicated == 0
    }

    /// Simulated jobs saved per second of wall time (`None` unless run
    /// through [`Scenario::simulate`](super::Scenario::simulate)).
    pub fn jobs_per_wall_second(&self) -> Option<f64> {
        self.wall
            .map(|w| w.as_secs_f64())
            .filter(|s| *s > 0.0)
            .map(|s| self.saved as f64 / s)
    }

    /// One line: mode, throughput, efficiency, latency, counts, digest.
    pub fn summary_line(&self) -> String {
        let efficiency = self
            .efficiency()
            .map(|e| format!(" ({:.1} % of bound)", e * 100.0))
            .unwrap_or_default();
        format!(
            "seed {:>4} {:<10} {:>9.1} jobs/s{efficiency}, p50 {}, p99 {}, saved {}/{}, lost {}, duplicated {}, digest {:016x}",
            self.seed,
            self.mode.as_str(),
            self.throughput,
            ms(self.p50),
            ms(self.p99),
            self.saved,
            self.jobs,
            self.lost,
            self.duplicated,
            self.digest
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scenario     {} ({}, seed {})",
            self.name,
            self.mode.as_str(),
            self.seed
        )?;
        writeln!(f, "setup        {}", self.setup)?;
        let stop = match self.stop {
            Some(StopReason::Exhausted) => "queue exhausted",
            Some(StopReason::Drained) => "drained",
            Some(StopReason::Abandoned) => "abandoned",
            Some(_) => "stopped",
            None => "loops finished",
        };
        writeln!(
            f,
            "run          {stop} after {:.3} s simulated{}",
            self.elapsed.as_secs_f64(),
            if self.crashes > 0 {
                format!(", {} crash(es)", self.crashes)
            } else {
                String::new()
            }
        )?;
        if let Some(error) = &self.error {
            writeln!(f, "error        {error}")?;
        }
        match (self.executor_bound, self.efficiency()) {
            (Some(bound), Some(efficiency)) => writeln!(
                f,
                "throughput   {:.1} jobs/s = {:.1} % of executor-bound {bound:.1} jobs/s",
                self.throughput,
                efficiency * 100.0
            )?,
            _ => writeln!(f, "throughput   {:.1} jobs/s", self.throughput)?,
        }
        writeln!(f, "utilisation  {:.1} %", self.utilisation * 100.0)?;
        writeln!(f, "job latency  p50 {}, p99 {}", ms(self.p50), ms(self.p99))?;
        writeln!(
            f,
            "jobs         picked {}, saved {}/{} (failed {}), released {}, reclaimed {}, lost {}, duplicated {}",
            self.picked,
            self.saved,
            self.jobs,
            self.failed,
            self.released,
            self.reclaimed,
            self.lost,
            self.duplicated
        )?;
        if self.violations.is_empty() {
            writeln!(f, "invariants   hold")?;
        } else {
            for violation in &self.violations {
                writeln!(f, "VIOLATION    {violation}")?;
            }
        }
        write!(f, "digest       {:016x}", self.digest)
    }
}
