//! Running a [`Scenario`]: wiring the queue, the decorators and the runner,
//! then measuring.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pjp_core::observe::Recorder;
use pjp_core::{Blocking, JobId, JobRunner, RunReport, Runtime, Shutdown, Step, StopReason};
use pjp_testkit::{
    ExecFault, ExecutorExt, Faulty, FaultyExecutor, Latent, Ledger, MemoryQueue, PickerExt,
    QueuePicker, QueueSaver, Recorded, RunnerPlan, SaverExt, Workload,
};
use tokio::sync::Notify;

use super::{Mode, Scenario, ScenarioError, ScenarioReport};
use crate::SimRuntime;

type Queue = MemoryQueue<u64, u64, ExecFault<String>>;
type SimPicker =
    Latent<Faulty<Recorded<QueuePicker<u64, u64, ExecFault<String>>>, SimRuntime>, SimRuntime>;
type SimSaver =
    Latent<Faulty<Recorded<QueueSaver<u64, u64, ExecFault<String>>>, SimRuntime>, SimRuntime>;
type SimExecutor = Blocking<Recorded<FaultyExecutor<Workload, SimRuntime>>>;
type SimRunner = JobRunner<SimPicker, SimExecutor, SimSaver>;

/// What one run of the runner (one node incarnation, or the sequential
/// loops) left behind.
#[derive(Default)]
struct Outcome {
    report: Option<RunReport>,
    error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything one incarnation of the worker needs; cheap to clone.
#[derive(Clone)]
struct Wiring {
    scenario: Arc<Scenario>,
    plan: RunnerPlan,
    runtime: SimRuntime,
    queue: Queue,
    ledger: Ledger,
    recorder: Option<Recorder>,
}

impl Wiring {
    fn runner(&self) -> Result<SimRunner, pjp_core::ConfigError> {
        let s = &self.scenario;
        let rt = &self.runtime;
        let picker = self
            .queue
            .picker()
            .with_ledger(&self.ledger)
            .with_faults(rt, s.picker_faults.clone())
            .with_latency(rt, s.picker_latency.clone());
        let saver = self
            .queue
            .saver()
            .with_ledger(&self.ledger)
            .with_faults(rt, s.saver_faults.clone())
            .with_latency(rt, s.saver_latency.clone());
        let executor = Workload::modeled(s.exec_cost)
            .with_faults(rt, s.exec_faults)
            .with_ledger(&self.ledger);
        let mut builder = self.plan.apply(JobRunner::builder(picker, executor, saver));
        if let Some(recorder) = &self.recorder {
            builder = builder.observer(Arc::new(recorder.clone()));
        }
        builder.build()
    }

    /// Runs the pipelined runner to the end.
    async fn pipelined(&self) -> Result<Outcome, ScenarioError> {
        let runner = self.runner()?;
        let shutdown = Shutdown::new();
        let _cancel = self.scenario.cancel.spawn(&self.runtime, &shutdown);
        Ok(match runner.run(&self.runtime, shutdown).await {
            Ok(report) => Outcome {
                report: Some(report),
                error: None,
            },
            Err(error) => Outcome {
                error: Some(error.to_string()),
                report: Some(error.into_parts().1),
            },
        })
    }

    /// `workers` loops of pick, execute, save.
    async fn sequential(&self) -> Result<Outcome, ScenarioError> {
        let runner = Arc::new(self.runner()?);
        let shutdown = Shutdown::new();
        let _cancel = self.scenario.cancel.spawn(&self.runtime, &shutdown);
        let first_error: Arc<Mutex<Option<String>>> = Arc::default();
        let loops: Vec<_> = (0..self.scenario.workers)
            .map(|worker| {
                let (runner, rt, shutdown) =
                    (Arc::clone(&runner), self.runtime.clone(), shutdown.clone());
                let first_error = Arc::clone(&first_error);
                self.runtime.spawn(async move {
                    while !shutdown.is_draining() {
                        match runner.step_on(&rt, worker).await {
                            Ok(Step::Saved { .. }) => {}
                            Ok(Step::Empty) => rt.sleep(Duration::from_millis(10)).await,
                            Ok(_) => break,
                            Err(error) => {
                                lock(&first_error).get_or_insert_with(|| error.to_string());
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for handle in loops {
            if let Err(died) = handle.await {
                lock(&first_error).get_or_insert(died.message);
            }
        }
        let error = lock(&first_error).take();
        Ok(Outcome {
            report: None,
            error,
        })
    }
}

pub(super) async fn run(scenario: &Scenario) -> Result<ScenarioReport, ScenarioError> {
    let seed = madsim::runtime::Handle::try_current()
        .map_err(|_| crate::NotInSimulation)?
        .seed();
    let runtime = SimRuntime::builder()
        .cores(scenario.cores.unwrap_or(scenario.workers))
        .jitter(scenario.jitter)
        .build()?;
    let queue = Queue::closed_with(0..scenario.jobs);
    if let Some(crash) = scenario.crash {
        queue.set_lease(&runtime, crash.lease);
    }
    let ledger = if scenario.ledger {
        Ledger::timed(&runtime).without_event_log()
    } else {
        Ledger::disabled()
    };
    let plan = scenario.runner_plan();
    let wiring = Wiring {
        scenario: Arc::new(scenario.clone()),
        plan: plan.clone(),
        runtime: runtime.clone(),
        queue: queue.clone(),
        ledger: ledger.clone(),
        recorder: scenario.record.then(Recorder::new),
    };
    // Validate the configuration up front, also for crash runs.
    drop(wiring.runner()?);

    let started = runtime.now();
    let busy_before = runtime.busy();
    let (outcome, crashes) = match (scenario.mode, scenario.crash) {
        (Mode::Pipelined, Some(crash)) => crashing(&wiring, crash).await,
        (Mode::Pipelined, None) => (wiring.pipelined().await?, 0),
        (Mode::Sequential, _) => (wiring.sequential().await?, 0),
    };
    let elapsed = runtime.now().saturating_duration_since(started);
    let busy = runtime.busy().saturating_sub(busy_before);

    Ok(measure(Measured {
        scenario,
        recorder: wiring.recorder.clone(),
        origin: started,
        plan: &plan,
        seed,
        queue: &queue,
        ledger: &ledger,
        outcome,
        crashes,
        elapsed,
        busy,
    }))
}

/// Runs the pipelined runner on a node of its own that crashes and restarts.
async fn crashing(wiring: &Wiring, crash: super::Crash) -> (Outcome, u32) {
    let handle = madsim::runtime::Handle::current();
    let done = Arc::new(Notify::new());
    let last: Arc<Mutex<Outcome>> = Arc::default();
    let node = {
        let (wiring, done, last) = (wiring.clone(), Arc::clone(&done), Arc::clone(&last));
        handle
            .create_node()
            .name("worker")
            .init(move || {
                let (wiring, done, last) = (wiring.clone(), Arc::clone(&done), Arc::clone(&last));
                async move {
                    let outcome = match wiring.pipelined().await {
                        Ok(outcome) => outcome,
                        Err(error) => Outcome {
                            report: None,
                            error: Some(error.to_string()),
                        },
                    };
                    *lock(&last) = outcome;
                    done.notify_one();
                }
            })
            .build()
    };
    let crashed = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let killer = {
        let (rt, id, crashed) = (wiring.runtime.clone(), node.id(), Arc::clone(&crashed));
        wiring.runtime.spawn(async move {
            rt.sleep(crash.at).await;
            handle.kill(id);
            crashed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            rt.sleep(crash.down_for).await;
            handle.restart(id);
        })
    };
    done.notified().await;
    drop(killer);
    let outcome = std::mem::take(&mut *lock(&last));
    (outcome, crashed.load(std::sync::atomic::Ordering::Relaxed))
}

struct Measured<'a> {
    scenario: &'a Scenario,
    recorder: Option<Recorder>,
    origin: std::time::Instant,
    plan: &'a RunnerPlan,
    seed: u64,
    queue: &'a Queue,
    ledger: &'a Ledger,
    outcome: Outcome,
    crashes: u32,
    elapsed: Duration,
    busy: Duration,
}

fn measure(m: Measured<'_>) -> ScenarioReport {
    let s = m.scenario;
    let report = m.outcome.report.as_ref();
    let stop = if s.mode == Mode::Pipelined {
        report.map(|r| r.stop)
    } else {
        None
    };
    let (
        picked,
        saved,
        failed,
        released,
        reclaimed,
        lost,
        duplicated,
        violations,
        digest,
        p50,
        p99,
    );
    if m.ledger.is_enabled() {
        let check = if matches!(
            stop,
            Some(StopReason::Abandoned | StopReason::DownstreamGone)
        ) || s.crash.is_some()
        {
            m.ledger.check()
        } else {
            // A job whose save gave up is released while the run goes on.
            let gave_up = report.map(|r| r.save_gave_up.as_slice()).unwrap_or(&[]);
            m.ledger.check_drained_except(gave_up)
        };
        let (summary, found) = match check {
            Ok(summary) => (summary, Vec::new()),
            Err(error) => (error.summary, error.violations),
        };
        picked = summary.picks;
        saved = summary.saved;
        failed = summary.failed;
        released = summary.released;
        reclaimed = summary.reclaimed;
        lost = summary.lost;
        duplicated = summary.duplicated;
        violations = found;
        digest = summary.digest;
        let latencies = pjp_core::LatencySummary::from_samples(
            m.ledger
                .job_latencies()
                .into_iter()
                .map(|(_, l)| l)
                .collect(),
        );
        p50 = latencies.p50;
        p99 = latencies.p99;
    } else {
        let saves = m.queue.saved();
        let mut ids: Vec<JobId> = saves.iter().map(|s| s.meta.id).collect();
        ids.sort_unstable();
        ids.dedup();
        picked = m.queue.pick_counts().iter().map(|&n| u64::from(n)).sum();
        saved = ids.len() as u64;
        failed = saves.iter().filter(|s| s.result.is_err()).count() as u64;
        released = report.map_or(0, |r| r.released.len() as u64);
        reclaimed = m.queue.reclaimed();
        lost = m.queue.claimed() as u64;
        duplicated = saves.len() as u64 - saved;
        violations = Vec::new();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for save in &saves {
            for word in [save.meta.id.get(), u64::from(save.meta.attempt)] {
                for byte in word.to_le_bytes() {
                    hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
        }
        digest = hash ^ u64::try_from(m.elapsed.as_nanos()).unwrap_or(u64::MAX);
        p50 = report.map_or(Duration::ZERO, |r| r.job_latency.p50);
        p99 = report.map_or(Duration::ZERO, |r| r.job_latency.p99);
    }
    let secs = m.elapsed.as_secs_f64();
    let throughput = if secs > 0.0 { saved as f64 / secs } else { 0.0 };
    let capacity = secs * s.workers as f64;
    let utilisation = if capacity > 0.0 {
        (m.busy.as_secs_f64() / capacity).min(1.0)
    } else {
        0.0
    };
    ScenarioReport {
        name: s.name.clone(),
        seed: m.seed,
        mode: s.mode,
        setup: setup(s, m.plan),
        jobs: s.jobs,
        workers: s.workers,
        stop,
        error: m.outcome.error,
        elapsed: m.elapsed,
        throughput,
        executor_bound: s.executor_bound(),
        utilisation,
        p50,
        p99,
        picked,
        saved,
        failed,
        released,
        reclaimed,
        lost,
        duplicated,
        crashes: m.crashes,
        violations,
        digest,
        wall: None,
        spans: m.recorder.map(|r| r.take()).unwrap_or_default(),
        origin: m.origin,
    }
}

fn setup(s: &Scenario, plan: &RunnerPlan) -> String {
    let mut text = format!(
        "{} jobs × {:?} on {} worker(s); latency: pick {}, save {}",
        s.jobs, s.exec_cost, s.workers, s.picker_latency, s.saver_latency
    );
    if !s.picker_faults.is_none() {
        text.push_str(&format!("; picker faults: {}", s.picker_faults));
    }
    if !s.saver_faults.is_none() {
        text.push_str(&format!("; saver faults: {}", s.saver_faults));
    }
    if !s.exec_faults.is_none() {
        text.push_str(&format!("; executor faults: {}", s.exec_faults));
    }
    if s.cancel != pjp_testkit::CancelPlan::Never {
        text.push_str(&format!("; cancel: {}", s.cancel));
    }
    if let Some(crash) = s.crash {
        text.push_str(&format!(
            "; crash at {:?} for {:?} (lease {:?})",
            crash.at, crash.down_for, crash.lease
        ));
    }
    match s.mode {
        Mode::Pipelined => text.push_str(&format!(
            "; runner: {} picker(s) × batch {}, prefetch {}, {} saver(s) × batch {}, save queue {}",
            plan.pickers,
            plan.pick_batch,
            plan.prefetch,
            plan.savers,
            plan.save_batch,
            plan.save_queue
        )),
        Mode::Sequential => text.push_str("; one job at a time per worker"),
    }
    text
}
