//! The end-of-run summary: a table, or JSON with `--json`.

use std::fmt::Write as _;
use std::time::Duration;

use pjp_core::{JobId, LatencySummary, RunReport, StopReason};
use serde::Serialize;

use pjp_prover::store::StoreCounts;

/// Per-stage figures.
#[derive(Debug, Serialize)]
pub(crate) struct StageSummary {
    pub(crate) name: String,
    pub(crate) workers: usize,
    pub(crate) picked: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) released: u64,
    pub(crate) job_latency_p50_ms: f64,
    pub(crate) job_latency_p99_ms: f64,
    pub(crate) exec_p50_ms: f64,
    pub(crate) exec_p99_ms: f64,
    pub(crate) utilisation: f64,
    pub(crate) peak_claimed: u64,
    pub(crate) error: Option<String>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl StageSummary {
    pub(crate) fn from_report(report: &RunReport, error: Option<String>) -> Self {
        let lat = |l: &LatencySummary| (ms(l.p50), ms(l.p99));
        let (job_p50, job_p99) = lat(&report.job_latency);
        let (exec_p50, exec_p99) = lat(&report.exec_time);
        Self {
            name: report.stage.clone(),
            workers: report.workers,
            picked: report.counts.picked,
            succeeded: report.counts.succeeded,
            failed: report.counts.failed,
            released: report.released.len() as u64,
            job_latency_p50_ms: job_p50,
            job_latency_p99_ms: job_p99,
            exec_p50_ms: exec_p50,
            exec_p99_ms: exec_p99,
            utilisation: (report.utilisation() * 1000.0).round() / 1000.0,
            peak_claimed: report.peak_claimed,
            error,
        }
    }
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Ending {
    /// Every job was processed.
    Completed,
    /// Stopped by a signal; every picked job was saved.
    Drained,
    /// Stopped by a second signal (or the grace period): unstarted jobs released.
    Abandoned,
    /// A runner failed.
    Failed,
}

impl Ending {
    pub(crate) fn of(reports: &[&RunReport], failed: bool) -> Self {
        if failed {
            Self::Failed
        } else if reports.iter().any(|r| r.stop == StopReason::Abandoned) {
            Self::Abandoned
        } else if reports.iter().any(|r| r.stop == StopReason::Drained) {
            Self::Drained
        } else {
            Self::Completed
        }
    }
}

/// What a fleet worker adds: its queue's view of the run.
#[derive(Debug, Serialize)]
pub(crate) struct FleetSummary {
    /// The lease owner's name.
    pub(crate) worker: String,
    /// The queue it served.
    pub(crate) queue: String,
    /// Jobs it claimed.
    pub(crate) claimed: u64,
    /// Saves refused because another claim had superseded this worker's.
    pub(crate) fenced: u64,
    /// Leases its heartbeat found lost (the running jobs were cancelled).
    pub(crate) lost_leases: u64,
    /// Expired leases of dead workers it returned to the queue.
    pub(crate) reclaimed: u64,
    /// Jobs it dead-lettered (a broken payload, spent budgets).
    pub(crate) dead_lettered: u64,
    /// Aggregations (kind `aggregate`) it completed: each checked its
    /// batch's basic proofs and committed to them in a Merkle root.
    pub(crate) aggregated: u64,
}

/// One round of a proof tree (the embedded run with `--circuits`).
#[derive(Debug, Serialize)]
pub(crate) struct Round {
    /// The jobs' kind: `basic`, then `aggregate`.
    pub(crate) name: &'static str,
    /// Jobs in the round (for `aggregate`: batches).
    pub(crate) jobs: u64,
    /// Proved; for `aggregate`: batches closed with a root.
    pub(crate) succeeded: u64,
    /// Failed; for `aggregate`: batches with a failed proof, or whose
    /// aggregation failed.
    pub(crate) failed: u64,
    /// Never finished (a drain or an abandon stopped the run first).
    pub(crate) not_run: u64,
    /// Each closed batch's Merkle root over its proofs, by batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) roots: Option<std::collections::BTreeMap<u64, String>>,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) mode: &'static str,
    pub(crate) backend: String,
    pub(crate) ending: Ending,
    pub(crate) jobs: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) panicked: u64,
    /// Jobs handed back to the queue after an abandon.
    pub(crate) released: Vec<u64>,
    /// Jobs never picked (a drain stopped picking).
    pub(crate) not_started: u64,
    pub(crate) verified: u64,
    pub(crate) verify_mismatches: Vec<u64>,
    pub(crate) elapsed_s: f64,
    pub(crate) throughput_jobs_per_s: f64,
    pub(crate) log_n: u32,
    pub(crate) batch: u64,
    pub(crate) stages: Vec<StageSummary>,
    /// Set for a fleet worker (`run --database-url`).
    pub(crate) fleet: Option<FleetSummary>,
    /// The proof tree's rounds, in order (an embedded tree run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) rounds: Vec<Round>,
}

impl Summary {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        mode: &'static str,
        backend: String,
        ending: Ending,
        jobs: u64,
        counts: StoreCounts,
        released: Vec<JobId>,
        not_started: u64,
        mismatches: Vec<JobId>,
        elapsed: Duration,
        shape: (u32, u64),
        stages: Vec<StageSummary>,
        fleet: Option<FleetSummary>,
    ) -> Self {
        let secs = elapsed.as_secs_f64();
        let finished = counts.succeeded + counts.failed;
        Self {
            mode,
            backend,
            ending,
            jobs,
            succeeded: counts.succeeded,
            failed: counts.failed,
            panicked: counts.panicked,
            released: released.iter().map(|id| id.get()).collect(),
            not_started,
            verified: counts.verified,
            verify_mismatches: mismatches.iter().map(|id| id.get()).collect(),
            elapsed_s: (secs * 1000.0).round() / 1000.0,
            throughput_jobs_per_s: if secs > 0.0 {
                (finished as f64 / secs * 100.0).round() / 100.0
            } else {
                0.0
            },
            log_n: shape.0,
            batch: shape.1,
            stages,
            fleet,
            rounds: Vec::new(),
        }
    }

    /// The table shown without `--json`.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let ending = match self.ending {
            Ending::Completed => "completed",
            Ending::Drained => "drained after a signal",
            Ending::Abandoned => "abandoned after a second signal",
            Ending::Failed => "FAILED",
        };
        match &self.fleet {
            None => {
                let _ = writeln!(
                    out,
                    "pjp-prover: {} run, NTT on {}, {} job(s) of {} × 2^{} coefficients — {ending}",
                    self.mode, self.backend, self.jobs, self.batch, self.log_n,
                );
            }
            Some(fleet) => {
                let _ = writeln!(
                    out,
                    "pjp-prover: {} fleet worker {} on queue `{}`, NTT on {}, {} job(s) — {ending}",
                    self.mode, fleet.worker, fleet.queue, self.backend, self.jobs,
                );
            }
        }
        let _ = writeln!(
            out,
            "  jobs        {:>8} succeeded  {:>6} failed ({} panicked)  {:>6} released  {:>6} not started",
            self.succeeded,
            self.failed,
            self.panicked,
            self.released.len(),
            self.not_started
        );
        let _ = writeln!(
            out,
            "  verified    {:>8} sampled results by inverse NTT, {} mismatch(es)",
            self.verified,
            self.verify_mismatches.len()
        );
        let _ = writeln!(
            out,
            "  throughput  {:>8.2} jobs/s over {:.2} s",
            self.throughput_jobs_per_s, self.elapsed_s
        );
        for (i, round) in self.rounds.iter().enumerate() {
            let (unit, done) = match round.name {
                "aggregate" => ("batches", "closed (a Merkle root over every proof)"),
                _ => ("proofs", "succeeded"),
            };
            let _ = writeln!(
                out,
                "  {:<11} {:<9} {:>8} {unit}: {} {done}, {} failed, {} not run",
                if i == 0 { "rounds" } else { "" },
                round.name,
                round.jobs,
                round.succeeded,
                round.failed,
                round.not_run
            );
        }
        if let Some(fleet) = &self.fleet {
            let _ = writeln!(
                out,
                "  queue       {:>8} claimed  {:>6} fenced saves  {:>6} lost leases  {:>6} reclaimed from dead workers  {:>6} dead-lettered",
                fleet.claimed,
                fleet.fenced,
                fleet.lost_leases,
                fleet.reclaimed,
                fleet.dead_lettered
            );
            if fleet.aggregated > 0 {
                let _ = writeln!(
                    out,
                    "  aggregate   {:>8} batch(es) closed: each child proof checked, a Merkle root over them",
                    fleet.aggregated
                );
            }
        }
        let _ = writeln!(
            out,
            "  {:<10} {:>7} {:>7} {:>7} {:>7} {:>8} {:>11} {:>11} {:>11} {:>11} {:>6}",
            "stage",
            "workers",
            "picked",
            "ok",
            "failed",
            "released",
            "job p50 ms",
            "job p99 ms",
            "exec p50 ms",
            "exec p99 ms",
            "util"
        );
        for s in &self.stages {
            let _ = writeln!(
                out,
                "  {:<10} {:>7} {:>7} {:>7} {:>7} {:>8} {:>11.2} {:>11.2} {:>11.2} {:>11.2} {:>5.0}%",
                s.name,
                s.workers,
                s.picked,
                s.succeeded,
                s.failed,
                s.released,
                s.job_latency_p50_ms,
                s.job_latency_p99_ms,
                s.exec_p50_ms,
                s.exec_p99_ms,
                s.utilisation * 100.0
            );
            if let Some(error) = &s.error {
                let _ = writeln!(out, "  {:<10} error: {error}", "");
            }
        }
        if !self.released.is_empty() {
            let _ = writeln!(
                out,
                "  released jobs (back in the queue): {:?}",
                self.released
            );
        }
        if !self.verify_mismatches.is_empty() {
            let _ = writeln!(
                out,
                "  WRONG RESULTS (verification failed): {:?}",
                self.verify_mismatches
            );
        }
        out
    }
}
