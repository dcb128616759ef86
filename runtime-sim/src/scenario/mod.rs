//! [`Scenario`]: a whole simulated deployment — jobs, executor cost, latency,
//! faults, cancellation, crashes and the runner's configuration — run to a
//! [`ScenarioReport`].

mod report;
mod run;

use std::time::Duration;

use pjp_core::ConfigError;
use pjp_testkit::{CancelPlan, ExecFaults, IoFaults, LatencyProfile, RunnerPlan};

pub use report::ScenarioReport;

use crate::{NotInSimulation, SimConfig, SimFailure};

/// How jobs flow through a worker node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Mode {
    /// The [`JobRunner`](pjp_core::JobRunner): picks, executions and saves
    /// overlap.
    #[default]
    Pipelined,
    /// The loop this framework replaces: each of the workers picks one job,
    /// executes it, saves it, and only then picks the next
    /// ([`JobRunner::step`](pjp_core::JobRunner::step) in a loop).
    Sequential,
}

impl Mode {
    /// `"pipelined"` or `"sequential"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pipelined => "pipelined",
            Self::Sequential => "sequential",
        }
    }
}

/// A crash of the worker node, and its restart.
///
/// The runner runs on its own madsim node; the queue lives outside it and
/// hands out leases of `lease`. At `at` the node is killed (its tasks vanish
/// mid-flight: no drain, no release), and after `down_for` it restarts and
/// runs a fresh runner. The dead runner's claims expire and are handed out
/// again, fenced: nothing is lost and nothing is saved twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    /// When the node dies, from the start.
    pub at: Duration,
    /// How long it stays down.
    pub down_for: Duration,
    /// How long a claim lasts at the queue.
    pub lease: Duration,
}

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The runner configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// [`Scenario::run`] was called outside a simulation.
    #[error(transparent)]
    NotInSimulation(#[from] NotInSimulation),
    /// The simulation itself failed (a panic, a deadlock, the time limit).
    #[error(transparent)]
    Simulation(#[from] SimFailure),
    /// A [`Fleet`](crate::Fleet) that cannot run as described.
    #[error("invalid fleet: {0}")]
    InvalidFleet(String),
    /// A fleet that had not settled every job when its time limit came.
    #[error("the fleet settled {settled} of {jobs} jobs in {after:?} of simulated time, its limit")]
    Stalled {
        /// The limit.
        after: Duration,
        /// Jobs settled by then.
        settled: usize,
        /// Jobs in all.
        jobs: usize,
    },
}

/// A simulated deployment, built step by step.
///
/// ```
/// # #[cfg(madsim)]
/// # fn main() -> Result<(), pjp_runtime_sim::ScenarioError> {
/// use std::time::Duration;
/// use pjp_runtime_sim::{IoFaults, LatencyProfile, Outage, Scenario};
///
/// let report = Scenario::new("flaky database")
///     .jobs(300)
///     .workers(2)
///     .exec_cost(Duration::from_millis(10))
///     .latency(LatencyProfile::cross_region())
///     .saver_faults(IoFaults::none().error_rate(0.1).outage(Outage::new(
///         Duration::from_millis(500),
///         Duration::from_millis(800),
///     )))
///     .simulate(3)?;
/// assert!(report.is_clean(), "{report}");
/// assert_eq!(report.saved, 300);
/// # Ok(())
/// # }
/// # #[cfg(not(madsim))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Scenario {
    pub(crate) name: String,
    pub(crate) jobs: u64,
    pub(crate) workers: usize,
    pub(crate) cores: Option<usize>,
    pub(crate) jitter: f64,
    pub(crate) exec_cost: Duration,
    pub(crate) picker_latency: LatencyProfile,
    pub(crate) saver_latency: LatencyProfile,
    pub(crate) picker_faults: IoFaults,
    pub(crate) saver_faults: IoFaults,
    pub(crate) exec_faults: ExecFaults,
    pub(crate) cancel: CancelPlan,
    pub(crate) crash: Option<Crash>,
    pub(crate) runner: Option<RunnerPlan>,
    pub(crate) mode: Mode,
    pub(crate) ledger: bool,
    pub(crate) record: bool,
}

impl Scenario {
    /// 100 jobs of 10 ms on one worker, no latency, no faults, pipelined,
    /// with a ledger.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            jobs: 100,
            workers: 1,
            cores: None,
            jitter: 0.05,
            exec_cost: Duration::from_millis(10),
            picker_latency: LatencyProfile::none(),
            saver_latency: LatencyProfile::none(),
            picker_faults: IoFaults::none(),
            saver_faults: IoFaults::none(),
            exec_faults: ExecFaults::none(),
            cancel: CancelPlan::Never,
            crash: None,
            runner: None,
            mode: Mode::Pipelined,
            ledger: true,
            record: false,
        }
    }

    /// Jobs in the queue.
    pub fn jobs(mut self, jobs: u64) -> Self {
        self.jobs = jobs;
        self
    }

    /// Executor workers (and, unless [`cores`](Self::cores) says otherwise,
    /// as many modeled cores).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Modeled cores of the worker node.
    pub fn cores(mut self, cores: usize) -> Self {
        self.cores = Some(cores.max(1));
        self
    }

    /// Seeded jitter of execution costs (fraction, default 0.05).
    pub fn cost_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Modeled cost of executing one job.
    pub fn exec_cost(mut self, cost: Duration) -> Self {
        self.exec_cost = cost;
        self
    }

    /// The round trip of both picker and saver.
    pub fn latency(self, profile: LatencyProfile) -> Self {
        self.picker_latency(profile.clone()).saver_latency(profile)
    }

    /// The picker's round trip.
    pub fn picker_latency(mut self, profile: LatencyProfile) -> Self {
        self.picker_latency = profile;
        self
    }

    /// The saver's round trip.
    pub fn saver_latency(mut self, profile: LatencyProfile) -> Self {
        self.saver_latency = profile;
        self
    }

    /// Picker faults.
    pub fn picker_faults(mut self, faults: IoFaults) -> Self {
        self.picker_faults = faults;
        self
    }

    /// Saver faults.
    pub fn saver_faults(mut self, faults: IoFaults) -> Self {
        self.saver_faults = faults;
        self
    }

    /// Executor faults: errors, panics, stragglers.
    pub fn exec_faults(mut self, faults: ExecFaults) -> Self {
        self.exec_faults = faults;
        self
    }

    /// Cancels the run (drain, abandon) at a given time.
    pub fn cancel(mut self, plan: CancelPlan) -> Self {
        self.cancel = plan;
        self
    }

    /// Crashes and restarts the worker node (pipelined mode only).
    pub fn crash(mut self, crash: Crash) -> Self {
        self.crash = Some(crash);
        self
    }

    /// The runner's configuration. By default the scenario sizes pickers,
    /// prefetch and savers for its latency and executor rate (Little's law:
    /// in flight = rate × round trip). The plan's `workers` is replaced by
    /// [`workers`](Self::workers).
    pub fn runner(mut self, plan: RunnerPlan) -> Self {
        self.runner = Some(plan);
        self
    }

    /// Pipelined (the runner) or sequential (pick, execute, save, repeat).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Whether to keep a [`Ledger`](pjp_testkit::Ledger) (default yes): it
    /// checks the run's promises and gives the trace digest and latencies.
    /// Without it, counts come from the queue and the runner's report: for
    /// throughput measurements.
    pub fn ledger(mut self, keep: bool) -> Self {
        self.ledger = keep;
        self
    }

    /// Keeps what every picker, worker and saver task did, and when
    /// ([`ScenarioReport::spans`]), for a timeline picture
    /// ([`ScenarioReport::timeline`]).
    pub fn record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runner configuration the scenario will use.
    pub fn runner_plan(&self) -> RunnerPlan {
        let mut plan = self.runner.clone().unwrap_or_else(|| {
            tuned(
                self.workers,
                self.exec_cost,
                self.picker_latency.mean(),
                self.saver_latency.mean(),
            )
        });
        plan.workers = self.workers;
        plan
    }

    /// Executor-bound throughput: workers ÷ cost, in jobs per second (`None`
    /// for zero-cost jobs).
    pub fn executor_bound(&self) -> Option<f64> {
        let cost = self.exec_cost.as_secs_f64();
        (cost > 0.0).then(|| self.workers as f64 / cost)
    }

    /// Runs the scenario inside the current simulation (see
    /// [`simulate`](Self::simulate) to start one).
    pub async fn run(&self) -> Result<ScenarioReport, ScenarioError> {
        run::run(self).await
    }

    /// Runs the scenario in a fresh simulation seeded with `seed`, and
    /// records the wall time it took.
    pub fn simulate(&self, seed: u64) -> Result<ScenarioReport, ScenarioError> {
        let scenario = self.clone();
        let started = std::time::Instant::now();
        let mut report = crate::try_simulate(seed, SimConfig::default(), move || async move {
            scenario.run().await
        })??;
        report.wall = Some(started.elapsed());
        Ok(report)
    }
}

/// Sizes the runner for `workers` executing jobs of `cost` behind round
/// trips of `pick_rtt` and `save_rtt` (means): enough picks and saves in
/// flight to keep the workers fed (Little's law, with 50 % headroom).
pub(crate) fn tuned(
    workers: usize,
    cost: Duration,
    pick_rtt: Duration,
    save_rtt: Duration,
) -> RunnerPlan {
    let base = RunnerPlan {
        workers,
        save_attempts: 10,
        backoff: Duration::from_millis(50),
        ..RunnerPlan::default()
    };
    if pick_rtt.is_zero() && save_rtt.is_zero() {
        // Nothing to hide: big batches keep the per-job overhead low.
        let depth = 256.max(workers * 4);
        return RunnerPlan {
            prefetch: depth,
            pick_batch: 64,
            save_queue: depth,
            savers: 1,
            ..base
        };
    }
    // Jobs per second the workers can take; a zero cost is capped so that
    // the buffers stay bounded.
    let rate = if cost.is_zero() {
        10_000.0
    } else {
        (workers as f64 / cost.as_secs_f64()).min(10_000.0)
    };
    let in_flight = |rtt: Duration| (rate * rtt.as_secs_f64() * 1.5).ceil() as usize;
    let picking = in_flight(pick_rtt).max(1);
    let pick_batch = (picking / 4).clamp(1, 64);
    let pickers = picking.div_ceil(pick_batch).clamp(1, 64);
    // Saves in batches of up to 64 ready results (one round trip for many
    // jobs), with twice the savers needed to carry one round trip's
    // results: a batch that is not full does not hold the others back.
    let saving = in_flight(save_rtt) + 1;
    let save_batch = (saving / 4).clamp(1, 64);
    let savers = (saving.div_ceil(save_batch) * 2).clamp(1, 256);
    RunnerPlan {
        prefetch: pickers * pick_batch + 2 * workers,
        pickers,
        pick_batch,
        save_queue: (savers * save_batch).max(workers),
        savers,
        save_batch,
        ..base
    }
}
