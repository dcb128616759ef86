//! [`FleetReport`]: what a simulated fleet did.

use std::fmt;
use std::time::{Duration, Instant};

use pjp_core::observe::{ActivitySpan, Role};

use super::liveness::{HeartbeatDelay, QueueCalls};

/// One node's runner activity over all its incarnations (recorded with
/// [`Fleet::record`](super::Fleet::record)).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpans {
    /// The node's name.
    pub node: String,
    /// What its picker, worker and saver tasks did, when.
    pub spans: Vec<ActivitySpan>,
}

/// An event on the fleet's timeline: a crash or drain (an instant) or a
/// partition or outage (a range), from the start of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// When it starts.
    pub at: Duration,
    /// When it ends (`None` for an instant).
    pub until: Option<Duration>,
    /// What it was.
    pub label: String,
}

impl Marker {
    pub(crate) fn instant(at: Duration, label: String) -> Self {
        Self {
            at,
            until: None,
            label,
        }
    }

    pub(crate) fn range(at: Duration, until: Duration, label: String) -> Self {
        Self {
            at,
            until: Some(until),
            label,
        }
    }
}

/// What a [`Fleet`](super::Fleet) did, in virtual time.
///
/// `Display` prints a table of everything but the wall time, so the same
/// seed prints the same report.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FleetReport {
    /// The fleet's name.
    pub name: String,
    /// The simulation seed.
    pub seed: u64,
    /// Jobs in the queue.
    pub jobs: u64,
    /// Worker nodes.
    pub nodes: usize,
    /// Executor workers over all nodes.
    pub workers: usize,
    /// Virtual time until every job was settled.
    pub elapsed: Duration,
    /// Jobs saved with a result.
    pub succeeded: u64,
    /// Jobs the queue dead-lettered (a poison job past its lost-lease budget).
    pub dead: u64,
    /// Their ids.
    pub dead_jobs: Vec<u64>,
    /// With [`Fleet::proof_trees`](super::Fleet::proof_trees): each batch's
    /// time from the start to its final proof (to the monitor's 10 ms).
    pub final_proofs: Vec<Duration>,
    /// Jobs neither saved nor dead at the end: always 0 for a correct fleet.
    pub lost: u64,
    /// Saves the queue accepted beyond a job's first: always 0.
    pub saved_twice: u64,
    /// Executions whose result the queue fenced (their lease had expired):
    /// wasted work.
    pub wasted: u64,
    /// Expired leases handed out again.
    pub reclaimed: u64,
    /// Node crashes (poisoned nodes included).
    pub crashes: u64,
    /// The longest time from a crash until the last job its node held was
    /// claimed again or settled (`None` without a crash).
    pub recovery: Option<Duration>,
    /// Jobs settled per second, sampled every simulated second: `(from,
    /// rate)`.
    pub throughput: Vec<(Duration, f64)>,
    /// A digest of every accepted save (job, claim) and the elapsed time:
    /// the same seed gives the same digest.
    pub digest: u64,
    /// The instant the run started (span times are relative to it).
    pub origin: Instant,
    /// Per node, what its runner did (empty unless recorded).
    pub spans: Vec<NodeSpans>,
    /// Crashes, drains, partitions and outages.
    pub markers: Vec<Marker>,
    /// With [`Fleet::autoscale`](super::Fleet::autoscale): each change of
    /// the nodes running, `(when, nodes)`, from the first plan until one
    /// drain window after the last job.
    pub scaling: Vec<(Duration, usize)>,
    /// Statements that reached the queue, by kind.
    pub calls: QueueCalls,
    /// How late heartbeats reached the queue.
    pub heartbeat_delay: HeartbeatDelay,
    /// Wall time of the simulation, through
    /// [`Fleet::simulate`](super::Fleet::simulate). Not part of `Display`.
    pub wall: Option<Duration>,
}

impl FleetReport {
    /// The run as a timeline picture: per node, a lane per executor worker
    /// plus its first picker and saver task (the rest do the same, further
    /// apart), with crashes, drains, partitions and outages marked
    /// ([`Fleet::record`](super::Fleet::record) must be on).
    pub fn timeline(&self) -> pjp_timeline::Timeline {
        let mut timeline =
            pjp_timeline::Timeline::new(format!("{} (seed {})", self.name, self.seed));
        for node in &self.spans {
            let shown: Vec<ActivitySpan> = node
                .spans
                .iter()
                .filter(|s| s.lane.role == Role::Worker || s.lane.index == 0)
                .copied()
                .collect();
            timeline.add_lanes(&node.node, self.origin, &shown);
        }
        for marker in &self.markers {
            match marker.until {
                // A cut that outlasts the run is drawn to its end.
                Some(until) => {
                    let until = until.min(self.elapsed).max(marker.at);
                    timeline.range(marker.at.as_secs_f64(), until.as_secs_f64(), &marker.label);
                }
                None => {
                    timeline.marker(marker.at.as_secs_f64(), &marker.label);
                }
            }
        }
        timeline
    }

    /// Whether nothing was lost and nothing saved twice.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.saved_twice == 0
    }

    /// Jobs settled per simulated second over the whole run.
    pub fn mean_throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.succeeded + self.dead) as f64 / secs
        } else {
            0.0
        }
    }

    /// The `q`-quantile (0.5: median) of [`final_proofs`](Self::final_proofs).
    pub fn final_proof_quantile(&self, q: f64) -> Option<Duration> {
        let mut sorted = self.final_proofs.clone();
        sorted.sort_unstable();
        let last = sorted.len().checked_sub(1)?;
        sorted
            .get((last as f64 * q.clamp(0.0, 1.0)).round() as usize)
            .copied()
    }

    /// Statements per simulated second that reached the queue, over the
    /// whole run: `(all, heartbeats)`.
    pub fn statements_per_second(&self) -> (f64, f64) {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (
                self.calls.total() as f64 / secs,
                self.calls.heartbeats as f64 / secs,
            )
        } else {
            (0.0, 0.0)
        }
    }

    /// Simulated jobs per wall second, when the wall time is known.
    pub fn jobs_per_wall_second(&self) -> Option<f64> {
        let wall = self.wall?.as_secs_f64();
        (wall > 0.0).then(|| self.jobs as f64 / wall)
    }
}

impl fmt::Display for FleetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fleet: {} (seed {})", self.name, self.seed)?;
        writeln!(
            f,
            "  {} jobs on {} nodes ({} workers): {:.2?} simulated, {:.0} jobs/s",
            self.jobs,
            self.nodes,
            self.workers,
            self.elapsed,
            self.mean_throughput()
        )?;
        writeln!(
            f,
            "  succeeded {}  dead-lettered {}{}  lost {}  saved twice {}",
            self.succeeded,
            self.dead,
            if self.dead_jobs.is_empty() {
                String::new()
            } else {
                format!(" {:?}", self.dead_jobs)
            },
            self.lost,
            self.saved_twice
        )?;
        writeln!(
            f,
            "  wasted executions (fenced) {}  leases reclaimed {}  crashes {}  recovery {}",
            self.wasted,
            self.reclaimed,
            self.crashes,
            self.recovery
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2?}"))
        )?;
        let (per_sec, beats_per_sec) = self.statements_per_second();
        writeln!(
            f,
            "  queue statements {} ({per_sec:.0}/s): picks {}  saves {}  releases {}  heartbeats {} ({beats_per_sec:.0}/s)",
            self.calls.total(),
            self.calls.picks,
            self.calls.saves,
            self.calls.releases,
            self.calls.heartbeats,
        )?;
        let delay = &self.heartbeat_delay;
        if delay.beats > 0 {
            writeln!(
                f,
                "  heartbeat delay over {} beats: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
                delay.beats, delay.p50, delay.p99, delay.max
            )?;
        }
        if let (Some(p50), Some(p99)) = (
            self.final_proof_quantile(0.5),
            self.final_proof_quantile(0.99),
        ) {
            writeln!(
                f,
                "  time to final proof over {} batches: p50 {p50:.2?}, p99 {p99:.2?}",
                self.final_proofs.len()
            )?;
        }
        if !self.scaling.is_empty() {
            let peak = self.scaling.iter().map(|&(_, n)| n).max().unwrap_or(0);
            let steps: Vec<String> = self
                .scaling
                .iter()
                .map(|(at, n)| format!("{:.0}s→{n}", at.as_secs_f64()))
                .collect();
            writeln!(
                f,
                "  autoscaled: peak {peak} nodes; nodes over time: {}",
                steps.join(" ")
            )?;
        }
        if !self.markers.is_empty() {
            let events: Vec<String> = self
                .markers
                .iter()
                .map(|m| match m.until {
                    Some(until) => format!("{} {:.1?}–{:.1?}", m.label, m.at, until),
                    None => format!("{} at {:.1?}", m.label, m.at),
                })
                .collect();
            writeln!(f, "  events: {}", events.join(", "))?;
        }
        let rates: Vec<String> = self
            .throughput
            .iter()
            .map(|(_, rate)| format!("{rate:.0}"))
            .collect();
        writeln!(f, "  jobs/s by second: {}", rates.join(" "))?;
        write!(f, "  trace digest {:016x}", self.digest)
    }
}
