//! [`Fleet`]: many worker nodes in several regions on one leased queue, with
//! crashes, partitions, rolling restarts, queue outages, stragglers and
//! poison jobs on a timeline, run to a [`FleetReport`].
//!
//! Each worker node is a madsim node running its own
//! [`JobRunner`](pjp_core::JobRunner) and a heartbeat task. The queue is the
//! leased in-memory model ([`MemoryQueue`](pjp_core::memory::MemoryQueue)
//! with [`set_lease`](pjp_core::memory::MemoryQueue::set_lease)), which the
//! durable-queue conformance suite checks against PostgreSQL
//! ([`pjp_testkit::durable`]). It lives outside every worker: a crash kills a
//! node's tasks mid-flight, never the queue. Every call a node makes to the
//! queue (pick, save, release, heartbeat) crosses its region's link: half the
//! round trip out, the call, half back. A cut link fails the call on either
//! leg, so a save can land while its reply is lost, as on a real network.
//!
//! ```
//! # #[cfg(madsim)]
//! # fn main() -> Result<(), pjp_runtime_sim::ScenarioError> {
//! use std::time::Duration;
//! use pjp_runtime_sim::{Fleet, FleetEvent, LatencyProfile};
//!
//! let report = Fleet::new("two regions, one crash")
//!     .jobs(2_000)
//!     .region("near", LatencyProfile::same_region())
//!     .region("far", LatencyProfile::cross_cloud())
//!     .nodes("near", 2, 4)
//!     .nodes("far", 2, 4)
//!     .event(FleetEvent::Crash { node: 0, at: Duration::from_secs(1), down_for: Duration::from_secs(2) })
//!     .simulate(1)?;
//! assert_eq!((report.succeeded, report.lost, report.saved_twice), (2_000, 0, 0));
//! assert!(report.recovery.is_some());
//! # Ok(())
//! # }
//! # #[cfg(not(madsim))]
//! # fn main() {}
//! ```

mod liveness;
mod report;
mod run;
mod wire;

use std::time::Duration;

use pjp_core::autoscale::ScalePolicy;
use pjp_core::memory::ClaimOrder;
use pjp_testkit::{LatencyProfile, RunnerPlan};

pub use liveness::{HeartbeatDelay, Liveness, QueueCalls};
pub use report::{FleetReport, Marker, NodeSpans};

use crate::{ScenarioError, SimConfig};

/// A region: where some nodes run, and the link between it and the queue.
#[derive(Debug, Clone)]
pub struct Region {
    /// Its name.
    pub name: String,
    /// Round trip between a node there and the queue.
    pub latency: LatencyProfile,
}

/// One worker node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Its name (`{region}-{n}` by default).
    pub name: String,
    /// Index into the fleet's regions.
    pub region: usize,
    /// Its runner (sized for its workers and its region's round trip unless
    /// given).
    pub plan: RunnerPlan,
    /// Every job takes this many times the fleet's cost here (a straggler
    /// node above 1).
    pub slowdown: f64,
}

/// Something that happens to the fleet at a point in its run.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum FleetEvent {
    /// Node `node` is killed at `at` (no drain, no release) and restarts
    /// after `down_for`.
    Crash {
        /// Index of the node.
        node: usize,
        /// From the start.
        at: Duration,
        /// Until it restarts.
        down_for: Duration,
    },
    /// Region `region` is cut off from the queue from `at` for `lasting`:
    /// its calls fail at once (`hang: false`, connections refused) or hang
    /// until the link returns (`hang: true`, packets dropped). Its leases
    /// expire meanwhile, and whatever it saves when it comes back is fenced.
    Partition {
        /// Index of the region.
        region: usize,
        /// From the start.
        at: Duration,
        /// How long.
        lasting: Duration,
        /// Whether calls hang rather than fail.
        hang: bool,
    },
    /// The queue is unreachable for everyone from `at` for `lasting`.
    QueueOutage {
        /// From the start.
        at: Duration,
        /// How long.
        lasting: Duration,
    },
    /// From `at`, every node in turn is drained (SIGTERM: finish and save
    /// what it holds, pick nothing new), then restarted, `pause` apart.
    RollingRestart {
        /// From the start.
        at: Duration,
        /// Between one node's restart and the next one's drain.
        pause: Duration,
    },
}

/// A fleet of worker nodes on one queue, built step by step.
#[derive(Debug, Clone)]
#[must_use]
pub struct Fleet {
    pub(crate) name: String,
    pub(crate) jobs: u64,
    pub(crate) exec_cost: Duration,
    pub(crate) regions: Vec<Region>,
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) lease: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) events: Vec<FleetEvent>,
    pub(crate) poison: Option<Poison>,
    pub(crate) trees: Option<Trees>,
    pub(crate) order: ClaimOrder,
    pub(crate) record: bool,
    pub(crate) time_limit: Duration,
    pub(crate) autoscale: Option<Autoscale>,
    pub(crate) liveness: Liveness,
    pub(crate) cpu_bound: bool,
}

/// The fleet's autoscaler: the planner's policy, how often it plans, and
/// how long it holds each peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Autoscale {
    pub(crate) policy: ScalePolicy,
    pub(crate) every: Duration,
    pub(crate) hold: Duration,
}

/// The jobs as proof trees: per batch, `circuits` basic proofs, one
/// aggregation over them, one final proof over the aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trees {
    pub(crate) batches: u64,
    pub(crate) circuits: u64,
}

/// A job that kills every worker that executes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Poison {
    pub(crate) job: u64,
    pub(crate) down_for: Duration,
    pub(crate) max_lost_leases: u32,
}

impl Fleet {
    /// 1,000 jobs of 20 ms, no region or node yet, 3 s leases heartbeated
    /// every second.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            jobs: 1_000,
            exec_cost: Duration::from_millis(20),
            regions: Vec::new(),
            nodes: Vec::new(),
            lease: Duration::from_secs(3),
            heartbeat: Duration::from_secs(1),
            events: Vec::new(),
            poison: None,
            trees: None,
            order: ClaimOrder::ProofFirst,
            record: false,
            time_limit: Duration::from_secs(24 * 3600),
            autoscale: None,
            liveness: Liveness::PerProcess,
            cpu_bound: false,
        }
    }

    /// Jobs in the queue (ids 0..jobs).
    pub fn jobs(mut self, jobs: u64) -> Self {
        self.jobs = jobs;
        self
    }

    /// Modeled cost of one job.
    pub fn exec_cost(mut self, cost: Duration) -> Self {
        self.exec_cost = cost;
        self
    }

    /// Adds a region with its round trip to the queue.
    pub fn region(mut self, name: impl Into<String>, latency: LatencyProfile) -> Self {
        self.regions.push(Region {
            name: name.into(),
            latency,
        });
        self
    }

    /// Adds `count` nodes of `workers` executor workers in region `region`
    /// (by name), each with a runner sized for its round trip. An unknown
    /// region adds nothing (and [`run`](Self::run) reports it).
    pub fn nodes(mut self, region: &str, count: usize, workers: usize) -> Self {
        let Some(index) = self.regions.iter().position(|r| r.name == region) else {
            self.nodes.push(NodeSpec {
                name: format!("{region}-?"),
                region: usize::MAX,
                plan: RunnerPlan::default(),
                slowdown: 1.0,
            });
            return self;
        };
        let rtt = self.regions[index].latency.mean();
        for _ in 0..count {
            let n = self.nodes.iter().filter(|s| s.region == index).count();
            self.nodes.push(NodeSpec {
                name: format!("{region}-{n}"),
                region: index,
                plan: crate::scenario::tuned(workers, self.exec_cost, rtt, rtt),
                slowdown: 1.0,
            });
        }
        self
    }

    /// Adds a node as given.
    pub fn node(mut self, node: NodeSpec) -> Self {
        self.nodes.push(node);
        self
    }

    /// Makes node `node` a straggler: its jobs take `factor` times as long.
    pub fn straggler(mut self, node: usize, factor: f64) -> Self {
        if let Some(spec) = self.nodes.get_mut(node) {
            spec.slowdown = factor.max(0.0);
        }
        self
    }

    /// Leases of `lease`, extended by every node's heartbeat every
    /// `heartbeat` (which must be shorter).
    pub fn leases(mut self, lease: Duration, heartbeat: Duration) -> Self {
        self.lease = lease;
        self.heartbeat = heartbeat;
        self
    }

    /// Adds an event to the timeline.
    pub fn event(mut self, event: FleetEvent) -> Self {
        self.events.push(event);
        self
    }

    /// Job `job` kills the node that executes it (which restarts after
    /// `down_for`); after `max_lost_leases` lost leases the queue
    /// dead-letters it, and the fleet goes on without it.
    pub fn poison(mut self, job: u64, down_for: Duration, max_lost_leases: u32) -> Self {
        self.poison = Some(Poison {
            job,
            down_for,
            max_lost_leases: max_lost_leases.max(1),
        });
        self
    }

    /// Makes the jobs proof trees, as a prover's are: per batch, `circuits`
    /// basic proofs (depth 2), an aggregation over them (depth 1) that the
    /// last basic proof's save makes claimable, and a final proof (depth 0)
    /// over the aggregation. Replaces [`jobs`](Self::jobs) (the fleet has
    /// `batches × (circuits + 2)` jobs); the report gives each batch's time
    /// to its final proof ([`FleetReport::final_proofs`]).
    pub fn proof_trees(mut self, batches: u64, circuits: u64) -> Self {
        self.trees = Some(Trees {
            batches: batches.max(1),
            circuits: circuits.max(1),
        });
        self.jobs = batches.max(1) * (circuits.max(1) + 2);
        self
    }

    /// The queue's claim order ([`ClaimOrder::ProofFirst`] by default).
    pub fn order(mut self, order: ClaimOrder) -> Self {
        self.order = order;
        self
    }

    /// Keeps every node's runner activity for a timeline picture
    /// ([`FleetReport::spans`]).
    pub fn record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// Scales the fleet with the planner of [`pjp_core::autoscale`]: the
    /// nodes added so far become a pool, parked until asked for. Every
    /// `every`, an autoscaler reads the work (jobs not yet settled) and the
    /// p95 of the last 1,000 jobs' execution times, plans the nodes it needs
    /// ([`desired_workers`](pjp_core::autoscale::desired_workers), the
    /// policy's `jobs_per_worker` being one node's capacity), holds each
    /// plan's peak for the policy's drain window
    /// ([`Stabilizer`](pjp_core::autoscale::Stabilizer)), starts parked
    /// nodes and drains surplus ones. After the last job it keeps planning
    /// for one drain window, so the report shows the fleet shrink back to
    /// the policy's `min` ([`FleetReport::scaling`]).
    pub fn autoscale(mut self, policy: ScalePolicy, every: Duration) -> Self {
        self.autoscale = Some(Autoscale {
            policy,
            every: every.max(Duration::from_millis(10)),
            hold: policy.drain_window,
        });
        self
    }

    /// How nodes keep their leases ([`Liveness::PerProcess`] by default):
    /// the report counts the statements that reach the queue
    /// ([`FleetReport::calls`]) and how late each heartbeat arrives
    /// ([`FleetReport::heartbeat_delay`]).
    pub fn liveness(mut self, liveness: Liveness) -> Self {
        self.liveness = liveness;
        self
    }

    /// Makes jobs CPU-bound: each holds one of its node's cores (a node has
    /// as many as it has executor workers) for its cost, so every core is
    /// busy proving while work remains. Off by default (a job then only
    /// waits its cost, as on a GPU).
    pub fn cpu_bound(mut self, cpu_bound: bool) -> Self {
        self.cpu_bound = cpu_bound;
        self
    }

    /// "1,000 provers holding 10 jobs each": 1,000 nodes × 10 CPU-bound
    /// workers in one cross-region setup, 30,000 jobs of 2 s, 3 s leases
    /// heartbeated every second, kept alive as `liveness` says.
    pub fn liveness_at_scale(liveness: Liveness) -> Self {
        Self::new(format!("1,000 provers × 10 jobs ({liveness:?})"))
            .jobs(30_000)
            .exec_cost(Duration::from_secs(2))
            .region("dc", LatencyProfile::cross_region())
            .nodes("dc", 1_000, 10)
            .cpu_bound(true)
            .liveness(liveness)
    }

    /// Gives up (an error) once this much simulated time has passed.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Nodes so far.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Runs the fleet inside the current simulation.
    pub async fn run(&self) -> Result<FleetReport, ScenarioError> {
        run::run(self).await
    }

    /// Runs the fleet in a fresh simulation seeded with `seed`, and records
    /// the wall time it took.
    pub fn simulate(&self, seed: u64) -> Result<FleetReport, ScenarioError> {
        let fleet = self.clone();
        let started = std::time::Instant::now();
        let mut report = crate::try_simulate(seed, SimConfig::default(), move || async move {
            fleet.run().await
        })??;
        report.wall = Some(started.elapsed());
        Ok(report)
    }

    /// "3 clouds, one partitioned for 30 s": 3 regions (same-region,
    /// cross-region and cross-cloud round trips) of 3 nodes × 4 workers,
    /// 60,000 jobs of 20 ms; the cross-cloud region is cut off from the
    /// queue from 5 s to 35 s (its calls hang), and comes back while work
    /// remains: its held saves land then, and are fenced.
    pub fn three_clouds_partitioned() -> Self {
        Self::new("3 clouds, one partitioned for 30 s")
            .jobs(60_000)
            .region("aws", LatencyProfile::same_region())
            .region("gcp", LatencyProfile::cross_region())
            .region("azure", LatencyProfile::cross_cloud())
            .nodes("aws", 3, 4)
            .nodes("gcp", 3, 4)
            .nodes("azure", 3, 4)
            .event(FleetEvent::Partition {
                region: 2,
                at: Duration::from_secs(5),
                lasting: Duration::from_secs(30),
                hang: true,
            })
    }

    /// "rolling restart of 10 workers": 10 nodes × 4 workers in one
    /// cross-region setup, 30,000 jobs of 20 ms; from 2 s each node in turn
    /// drains and restarts, 500 ms apart.
    pub fn rolling_restart() -> Self {
        Self::new("rolling restart of 10 workers")
            .jobs(30_000)
            .region("dc", LatencyProfile::cross_region())
            .nodes("dc", 10, 4)
            .event(FleetEvent::RollingRestart {
                at: Duration::from_secs(2),
                pause: Duration::from_millis(500),
            })
    }

    /// "poison job that kills its worker": 4 nodes × 4 workers, 5,000 jobs
    /// of 20 ms; job 1,000 kills whichever node runs it (down 2 s each
    /// time) until the queue dead-letters it after 3 lost leases.
    ///
    /// It shows a cost of batched claims: the jobs claimed in the same batch
    /// as the poison job die with each node it kills, are reclaimed together
    /// (in id order) and claimed together again, so they spend their
    /// lost-lease budget too and are dead-lettered beside it
    /// ([`FleetReport::dead_jobs`]).
    pub fn poison_job() -> Self {
        Self::new("poison job that kills its worker")
            .jobs(5_000)
            .region("dc", LatencyProfile::cross_region())
            .nodes("dc", 4, 4)
            .poison(1_000, Duration::from_secs(2), 3)
    }

    /// "20 batches of proof trees": 4 nodes × 4 workers in one region, 20
    /// batches of 64 basic proofs, an aggregation and a final proof each,
    /// all queued at once; compare [`ClaimOrder::ProofFirst`] with
    /// [`ClaimOrder::Fifo`] on [`FleetReport::final_proofs`].
    pub fn proof_batches(order: ClaimOrder) -> Self {
        Self::new(format!("20 batches of proof trees ({order:?})"))
            .region("dc", LatencyProfile::cross_region())
            .nodes("dc", 4, 4)
            .proof_trees(20, 64)
            .order(order)
    }

    /// A fleet of `nodes` nodes × 4 workers in one region, `jobs` no-op
    /// jobs of 1 ms with round trips of `latency`: the simulator's speed test.
    pub fn large(nodes: usize, jobs: u64, latency: LatencyProfile) -> Self {
        Self::new(format!("{nodes} nodes, {jobs} jobs"))
            .jobs(jobs)
            .exec_cost(Duration::from_millis(1))
            .region("dc", latency)
            .nodes("dc", nodes, 4)
    }
}
