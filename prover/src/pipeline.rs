//! Wires the component: the embedded queue, the two stages and the result store;
//! runs them pipelined (two runners and a stage channel) or as one plain loop.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use std::convert::Infallible;

use pjp_core::stage::{StagePicker, StageSaver};
use pjp_core::{
    Blocking, ExecError, Executor, JobPicker, JobResult, JobRunner, JobSaver, LatencySummary,
    Picked, Progress, RunError, RunReport, Shutdown, stage,
};
use pjp_gpu::{NttConfig, NttExecutor, NttJob, NttOutput};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::{Latent, MemoryQueue, PickerExt, QueueMeta, QueuePicker, SaverExt};

use crate::circuit::{CircuitProver, FaultRates, ProveError};
use crate::cli::RunArgs;
use crate::store::{ResultStore, StageFailures};
use crate::witness::{WitnessGenerator, WitnessShape};

/// The embedded queue: job ids are the inputs; witnesses derive from them.
pub(crate) type EmbeddedQueue = MemoryQueue<u64>;

/// Everything a run sets up.
pub(crate) struct Component {
    pub(crate) queue: EmbeddedQueue,
    pub(crate) store: Arc<ResultStore>,
    pub(crate) witness: WitnessGenerator,
    pub(crate) prover: CircuitProver,
    pub(crate) args: RunArgs,
}

impl Component {
    /// Seeds the queue and selects the NTT backend.
    pub(crate) fn new(args: &RunArgs) -> anyhow::Result<Self> {
        let shape = WitnessShape {
            log_n: args.log_n,
            batch: usize::try_from(args.batch).context("--batch")?,
            seed: args.seed,
        };
        let ntt = NttExecutor::new(NttConfig::new().backend(args.backend))
            .context("selecting the NTT backend")?;
        Ok(Self {
            queue: MemoryQueue::closed_with(0..args.jobs),
            store: Arc::new(ResultStore::new(args.jobs, shape, args.verify_every)),
            witness: WitnessGenerator { shape },
            prover: CircuitProver {
                ntt,
                faults: FaultRates {
                    fail: args.fail_rate,
                    panic: args.panic_rate,
                    seed: args.seed,
                },
            },
            args: args.clone(),
        })
    }
}

/// How one stage's run ended.
pub(crate) type StageResult = Result<RunReport, RunError>;

/// The report of a stage's run, failed or not.
pub(crate) fn report_of(result: &StageResult) -> &RunReport {
    match result {
        Ok(report) => report,
        Err(error) => error.report(),
    }
}

/// Live handles for the progress display: (stage, workers, progress).
pub(crate) struct Live {
    pub(crate) stages: Vec<(&'static str, u64, Progress)>,
}

/// A component whose calls take `--pick-latency`/`--save-latency`.
type Delayed<T> = Latent<T, TokioRuntime>;
type Origin = Arc<Delayed<QueuePicker<u64>>>;
type WitnessRunner = JobRunner<
    Origin,
    Blocking<WitnessGenerator>,
    StageSaver<Arc<NttJob>, QueueMeta, Delayed<StageFailures<Arc<NttJob>, Infallible>>>,
>;
type ProveRunner = JobRunner<
    StagePicker<Arc<NttJob>, QueueMeta>,
    Blocking<CircuitProver>,
    Delayed<Arc<ResultStore>>,
>;

/// The two stages, built: a witness runner feeding a prover runner through a
/// stage channel.
pub(crate) struct Pipeline {
    witness: WitnessRunner,
    prove: ProveRunner,
    witness_workers: u64,
    prover_workers: u64,
    grace_period: Option<Duration>,
}

impl Pipeline {
    pub(crate) fn build(component: &Component) -> anyhow::Result<Self> {
        let args = &component.args;
        let runtime = TokioRuntime::current();
        let origin = Arc::new(
            component
                .queue
                .picker()
                .with_latency(&runtime, args.pick_profile()),
        );
        let witness_workers = usize::try_from(args.witness_workers)?;
        let prover_workers = usize::try_from(args.prover_workers)?;

        // Room for each prover worker's next witness, so the prover never waits.
        let (tx, rx) = stage::channel(2 * prover_workers, Arc::clone(&origin));
        let failures = component
            .store
            .failures_of("witness")
            .with_latency(&runtime, args.save_profile());
        let witness =
            JobRunner::builder(origin, component.witness.clone(), tx.on_failure(failures))
                .stage("witness")
                .workers(witness_workers)
                .prefetch(2 * witness_workers)
                // Picks and saves in flight hide a database round trip
                // (`--pick-latency`, `--save-latency`) behind execution.
                .pickers(4)
                .savers(4)
                .build()?;
        let saver = Arc::clone(&component.store).with_latency(&runtime, args.save_profile());
        let prove = JobRunner::builder(rx, component.prover.clone(), saver)
            .stage("prove")
            .workers(prover_workers)
            .prefetch(prover_workers)
            .savers(8)
            .build()?;
        Ok(Self {
            witness,
            prove,
            witness_workers: args.witness_workers,
            prover_workers: args.prover_workers,
            grace_period: args.grace_period,
        })
    }

    /// Live progress handles.
    pub(crate) fn live(&self) -> Live {
        Live {
            stages: vec![
                ("witness", self.witness_workers, self.witness.progress()),
                ("prove", self.prover_workers, self.prove.progress()),
            ],
        }
    }

    /// Runs both stages. A drain stops the witness stage's picking; the prover
    /// stage finishes what the witness stage passed on, then stops. With a
    /// grace period, the whole pipeline abandons once that long has passed
    /// since the first signal.
    pub(crate) async fn run(self, shutdown: Shutdown) -> Vec<StageResult> {
        let Self {
            witness,
            prove,
            grace_period,
            ..
        } = self;
        let runtime = TokioRuntime::current();
        // `into_run` drops the witness runner, and with it its stage saver, as
        // it ends: the channel closes and the prover finishes what is queued.
        let stages = async {
            tokio::join!(
                witness.into_run(&runtime, shutdown.clone()),
                prove.run(&runtime, shutdown.downstream())
            )
        };
        // The timer covers both stages: the prover stage only drains when the
        // witness stage closes the channel, so a per-runner grace period on it
        // would never start.
        let grace = async {
            let Some(grace) = grace_period else {
                return std::future::pending().await;
            };
            shutdown.draining().await;
            tokio::time::sleep(grace).await;
            tracing::warn!(?grace, "grace period over: abandoning");
            shutdown.abandon();
        };
        tokio::pin!(stages);
        let ended = tokio::select! {
            biased;
            ended = &mut stages => Some(ended),
            () = grace => None,
        };
        let (witness, prove) = match ended {
            Some(ended) => ended,
            // Abandoned: the stages release what they hold and finish.
            None => stages.await,
        };
        vec![witness, prove]
    }
}

/// Runs the same work as one plain loop: pick, generate, prove, save, repeat.
/// The baseline the pipeline is compared with (`--sequential`). Panics are
/// caught and saved as failures, as the runner does.
pub(crate) async fn run_sequential(
    component: &Component,
    shutdown: Shutdown,
) -> anyhow::Result<RunReport> {
    let args = &component.args;
    let runtime = TokioRuntime::current();
    let picker = component
        .queue
        .picker()
        .with_latency(&runtime, args.pick_profile());
    let saver = Arc::clone(&component.store).with_latency(&runtime, args.save_profile());
    let started = Instant::now();
    let mut report = RunReport::default();
    report.stage = "sequential".to_owned();
    report.workers = 1;
    let (mut job_times, mut exec_times) = (Vec::new(), Vec::new());
    while !shutdown.is_draining() {
        let job = match picker.pick().await? {
            Picked::Some(job) => job,
            Picked::Empty | Picked::Exhausted => break,
        };
        let picked_at = Instant::now();
        report.picked += 1;
        let meta = job.meta;
        let result = prove_whole_job(component, job.input, &meta);
        let executed = picked_at.elapsed();
        match &result {
            Ok(_) => report.succeeded += 1,
            Err(error) => {
                report.failed += 1;
                report.panicked += u64::from(error.is_panic());
            }
        }
        saver.save(&result, &meta).await?;
        exec_times.push(executed);
        job_times.push(picked_at.elapsed());
    }
    report.elapsed = started.elapsed();
    report.busy = exec_times.iter().sum();
    report.exec_time = LatencySummary::from_samples(exec_times);
    report.job_latency = LatencySummary::from_samples(job_times);
    Ok(report)
}

/// Both stages inline, with panics caught.
fn prove_whole_job(
    component: &Component,
    input: u64,
    meta: &QueueMeta,
) -> JobResult<NttOutput, ProveError> {
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let Ok(witness) = component.witness.execute(input, meta);
        component.prover.execute(witness, meta)
    }));
    match caught {
        Ok(result) => result.map_err(ExecError::Failed),
        Err(payload) => Err(ExecError::from_panic(payload.as_ref())),
    }
}
