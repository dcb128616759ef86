//! Wires the component: its queue (the embedded one or PostgreSQL, chosen at
//! run time), the two stages and the sink; runs them pipelined (two runners
//! and a stage channel) or as one plain loop.
//!
//! The pipeline is written once, over a [`BoxPicker`] and a [`BoxSaver`]: the
//! executors see [`AnyMeta`] and the same payload
//! bytes whatever the queue.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pjp_core::boxed::{AnyMeta, BoxPicker, BoxSaver};
use pjp_core::latency::Latent;
use pjp_core::memory::{JobOptions, MemoryQueue};
use pjp_core::observe::Recorder;
use pjp_core::stage::{StagePicker, StageSaver};
use pjp_core::{
    BackoffPolicy, Blocking, ExecError, Executor, JobCancels, JobContext, JobId, JobPicker,
    JobResult, JobRunner, JobSaver, LatencySummary, Picked, Progress, RunError, RunReport,
    RunnerBuilder, Shutdown, StopReason, stage,
};
use pjp_gpu::{NttConfig, NttExecutor};
use pjp_postgres::{PayloadStore, PgQueue, PgWorker, WorkerConfig};
use pjp_runtime_tokio::TokioRuntime;
use pjp_timeline::Timeline;

use crate::aggregate::{AGGREGATE, AggregateJob, BASIC, Roots, kind};
use crate::circuit::{CircuitProver, FaultRates, ProveError};
use crate::cli::{FleetArgs, RunArgs};
use crate::fleet::Failure;
use crate::job::{Proof, ProofJob, Witness};
use crate::sink::{FailuresOf, FleetSink, SavedFailure};
use crate::store::{ResultStore, Tally};
use crate::witness::WitnessGenerator;

/// Where jobs come from: any picker of payload bytes.
pub(crate) type Origin = BoxPicker<Bytes>;
/// Where results go: any saver of proofs.
pub(crate) type Sink = BoxSaver<Proof, ProveError>;

/// The embedded run's queue: payload bytes in, results settled as `()` or
/// a failure's reason.
pub(crate) type EmbeddedQueue = MemoryQueue<Bytes, (), String>;

/// The queue a run serves.
pub(crate) enum Source {
    /// The in-process queue, seeded with `--jobs` payloads.
    Embedded(Embedded),
    /// A PostgreSQL queue shared by a fleet.
    Fleet(PgWorker),
}

/// The embedded run's queue and what its tree needs.
pub(crate) struct Embedded {
    pub(crate) queue: EmbeddedQueue,
    /// The results, and (in a tree run) the proofs' leaves.
    pub(crate) store: Arc<ResultStore>,
    /// Each batch's aggregation job (empty with `--circuits 0`).
    pub(crate) batches: Vec<JobId>,
    /// The roots the aggregations committed to.
    pub(crate) roots: Arc<Roots>,
}

/// Everything a run sets up.
pub(crate) struct Component {
    pub(crate) origin: Origin,
    pub(crate) sink: Sink,
    pub(crate) source: Source,
    pub(crate) tally: Arc<Tally>,
    pub(crate) cancels: JobCancels,
    pub(crate) prover: CircuitProver,
    pub(crate) args: RunArgs,
}

impl Component {
    /// Selects the NTT backend and the queue: PostgreSQL with
    /// `--database-url`, else the embedded one, seeded.
    pub(crate) async fn new(args: &RunArgs) -> Result<Self, Failure> {
        let ntt = NttExecutor::new(NttConfig::new().backend(args.backend))
            .map_err(|e| Failure::runtime(format!("selecting the NTT backend: {e}")))?;
        let prover = CircuitProver {
            ntt,
            faults: FaultRates {
                fail: args.fail_rate,
                panic: args.panic_rate,
                seed: args.seed,
            },
        };
        let (origin, sink, source, tally, cancels) = match &args.fleet.database_url {
            None => embedded(args),
            Some(url) => fleet(url, &args.fleet, args.verify_every).await?,
        };
        Ok(Self {
            origin,
            sink,
            source,
            tally,
            cancels,
            prover,
            args: args.clone(),
        })
    }
}

type Parts = (Origin, Sink, Source, Arc<Tally>, JobCancels);

/// The embedded queue, seeded with `--jobs` payloads: as proof trees of
/// `--circuits` basic proofs under one aggregation each (the aggregation
/// runner takes those), or flat with `--circuits 0`. Round trips modeled by
/// `--pick-latency` and `--save-latency`.
fn embedded(args: &RunArgs) -> Parts {
    let queue = EmbeddedQueue::new();
    let payload = |job| {
        ProofJob {
            job,
            log_n: args.log_n,
            batch: args.batch,
            seed: args.seed,
        }
        .encode()
    };
    let (basic, aggregate) = (kind(BASIC), kind(AGGREGATE));
    let mut batches = Vec::new();
    match args.circuits {
        0 => queue.extend((0..args.jobs).map(payload)),
        circuits => {
            for (number, first) in (0..args.jobs).step_by(circuits as usize).enumerate() {
                let last = first.saturating_add(circuits).min(args.jobs);
                let number = number as u64;
                let options = JobOptions::new().batch(i64::try_from(number).unwrap_or(i64::MAX));
                let job = AggregateJob {
                    aggregate: number,
                    circuits: last - first,
                };
                let children = (first..last)
                    .map(|j| (payload(j), options.kind(basic).depth(1)))
                    .collect();
                let parent = (Bytes::from(job.encode()), options.kind(aggregate));
                batches.push(queue.push_tree(parent, children, None).0);
            }
        }
    }
    queue.close();
    let runtime = TokioRuntime::current();
    let mut store = ResultStore::new(queue.len() as u64, args.verify_every);
    if !batches.is_empty() {
        store = store.settling(queue.clone());
    }
    let store = Arc::new(store);
    let tally = Arc::clone(store.tally());
    // Every kind but the aggregations: the aggregation runner takes those.
    let picker = queue.picker().except_kinds([aggregate]);
    let origin = BoxPicker::new(Latent::new(picker, &runtime, args.pick_profile()));
    let sink = BoxSaver::new(Latent::new(
        Arc::clone(&store),
        &runtime,
        args.save_profile(),
    ));
    let source = Source::Embedded(Embedded {
        queue,
        store,
        batches,
        roots: Arc::new(Roots::default()),
    });
    (origin, sink, source, tally, JobCancels::new())
}

/// A PostgreSQL worker: claims leased, heartbeated jobs; stores results
/// (in the object store above `--inline-limit`) with fenced completions.
async fn fleet(url: &str, fleet: &FleetArgs, verify_every: u64) -> Result<Parts, Failure> {
    let mut builder = PgQueue::builder(url)
        .schema(&fleet.schema)
        .wait(fleet.db_wait)
        .max_connections(fleet.connections)
        .application_name("pjp-prover");
    // The default id names the host and process; `--worker-id` names it.
    let id = fleet
        .worker_id
        .clone()
        .unwrap_or_else(|| WorkerConfig::default().id().to_owned());
    let store = match &fleet.store_url {
        Some(url) => {
            let store = PayloadStore::open(url)?.inline_limit(fleet.inline_limit);
            store
                // Outside every queue's prefix: a probe left by a crash is
                // nobody's blob to collect.
                .check_writable(&format!("probes/{}/{id}", fleet.schema))
                .await
                .map_err(|e| {
                    Failure::runtime(format!("the store {} cannot be written: {e}", store.url()))
                })?;
            store
        }
        // No object store: every result stays in the table, whatever its
        // size. (An in-process store would leave rows naming blobs that
        // vanish with the process.)
        None => PayloadStore::open("memory://")?.inline_limit(usize::MAX),
    };
    builder = builder.store(store);
    let queue = builder.connect().await?;
    queue.check_schema().await?;
    let mut config = WorkerConfig::new(id)
        .heartbeat_interval(fleet.heartbeat)
        .lease_ttl(fleet.lease_ttl)
        .rescue_interval(fleet.rescue_interval);
    if let Some(poll) = fleet.poll_interval {
        config = config.poll_interval(poll);
    }
    let worker = queue.worker(config).await?;
    // Every kind but the aggregations (a runner of their own takes those),
    // on the kind-agnostic claim's index scan.
    let picker = worker
        .picker(&fleet.queue)?
        .except_kinds([crate::aggregate::AGGREGATE])
        .exit_when_empty(fleet.exit_when_empty);
    let saver = worker
        .saver::<Vec<u8>, SavedFailure>()
        .permanent_if(|e| matches!(e, ExecError::Failed(f) if f.permanent));
    let sink = FleetSink::new(saver, verify_every);
    let tally = Arc::clone(sink.tally());
    let cancels = worker.job_cancels();
    Ok((
        BoxPicker::new(picker),
        BoxSaver::new(sink),
        Source::Fleet(worker),
        tally,
        cancels,
    ))
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

/// Live handles for the progress display: (stage, workers, progress). None
/// for the sequential loop.
#[derive(Default)]
pub(crate) struct Live {
    pub(crate) stages: Vec<(&'static str, u64, Progress)>,
}

type WitnessRunner = JobRunner<
    Origin,
    Blocking<WitnessGenerator>,
    StageSaver<Arc<Witness>, AnyMeta, FailuresOf<Sink, Arc<Witness>>>,
>;
type ProveRunner = JobRunner<StagePicker<Arc<Witness>, AnyMeta>, Blocking<CircuitProver>, Sink>;

/// The two stages, built: a witness runner feeding a prover runner through a
/// stage channel.
pub(crate) struct Pipeline {
    witness: WitnessRunner,
    prove: ProveRunner,
    witness_workers: u64,
    prover_workers: u64,
    grace_period: Option<Duration>,
    recorders: Option<Recorders>,
}

/// What each stage's tasks did, when (`--timeline`).
#[derive(Clone)]
pub(crate) struct Recorders {
    witness: Recorder,
    prove: Recorder,
}

impl Recorders {
    /// The run as a picture, times from `origin`.
    pub(crate) fn timeline(&self, title: String, origin: std::time::Instant) -> Timeline {
        let mut timeline = Timeline::new(title);
        timeline
            .add_lanes("witness", origin, &self.witness.spans())
            .add_lanes("prove", origin, &self.prove.spans());
        timeline
    }
}

impl Pipeline {
    pub(crate) fn build(component: &Component) -> anyhow::Result<Self> {
        let args = &component.args;
        let witness_workers = usize::try_from(args.witness_workers)?;
        let prover_workers = usize::try_from(args.prover_workers)?;
        let origin = component.origin.clone();

        // Room for each prover worker's next witness, so the prover never waits.
        let (tx, rx) = stage::channel(2 * prover_workers, origin.clone());
        let failures = FailuresOf::new(component.sink.clone());
        let witness = JobRunner::builder(origin, WitnessGenerator, tx.on_failure(failures))
            .stage("witness")
            .workers(witness_workers)
            // Picks in flight and batched picks hide the queue's round trip
            // behind execution.
            .prefetch(args.prefetch as usize)
            .pickers(args.pickers as usize)
            .pick_batch(args.pick_batch as usize)
            // Its outputs are witnesses (up to GiBs each): a short queue to
            // the stage channel, so that the generator is held back rather
            // than piling them up in memory.
            .savers(args.savers as usize);
        let recorders = args.timeline.as_ref().map(|_| Recorders {
            witness: Recorder::new(),
            prove: Recorder::new(),
        });
        let mut witness = with_queue(witness, component);
        if let Some(recorders) = &recorders {
            witness = witness.observer(Arc::new(recorders.witness.clone()));
        }
        let witness = witness.build()?;
        let prove = JobRunner::builder(rx, component.prover.clone(), component.sink.clone())
            .stage("prove")
            .workers(prover_workers)
            .prefetch(prover_workers)
            // Batched saves in flight hide the sink's round trip.
            .savers(args.savers as usize)
            .save_batch(args.save_batch as usize)
            .save_queue((args.savers * args.save_batch) as usize);
        let mut prove = with_queue(prove, component);
        if let Some(recorders) = &recorders {
            prove = prove.observer(Arc::new(recorders.prove.clone()));
        }
        let prove = prove.build()?;
        Ok(Self {
            recorders,
            witness,
            prove,
            witness_workers: args.witness_workers,
            prover_workers: args.prover_workers,
            grace_period: args.grace_period,
        })
    }

    /// The stages' recorders, with `--timeline`.
    pub(crate) fn recorders(&self) -> Option<Recorders> {
        self.recorders.clone()
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

/// What a queue needs of both stages: the lease-loss cancellations, and (on
/// a queue that long-polls) a short back-off when a pick finds nothing.
fn with_queue<P, E, S>(
    builder: RunnerBuilder<P, E, S>,
    component: &Component,
) -> RunnerBuilder<P, E, S>
where
    P: JobPicker,
    S: JobSaver,
{
    let builder = builder.job_cancels(component.cancels.clone());
    match component.source {
        // An idle PostgreSQL pick already waits for a notification.
        Source::Fleet(_) => builder.empty_backoff(BackoffPolicy::new(
            Duration::from_millis(1),
            Duration::from_millis(10),
        )),
        Source::Embedded(_) => builder,
    }
}

/// Runs the same work as one plain loop: pick, generate, prove, save, repeat.
/// The baseline the pipeline is compared with (`--sequential`). Panics are
/// caught and saved as failures, as the runner does.
pub(crate) async fn run_sequential(
    component: &Component,
    shutdown: Shutdown,
) -> anyhow::Result<RunReport> {
    let (picker, saver) = (&component.origin, &component.sink);
    let started = Instant::now();
    let mut report = RunReport::default();
    report.stage = "sequential".to_owned();
    report.workers = 1;
    let (mut job_times, mut exec_times) = (Vec::new(), Vec::new());
    loop {
        if shutdown.is_draining() {
            report.stop = StopReason::Drained;
            break;
        }
        let job = match picker.pick().await? {
            Picked::Some(job) => job,
            // A queue that long-polls (PostgreSQL) has waited already.
            Picked::Empty => continue,
            Picked::Exhausted => break,
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
    payload: Bytes,
    meta: &AnyMeta,
) -> JobResult<Proof, ProveError> {
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let context = JobContext::of(meta);
        let witness = WitnessGenerator.execute(payload, &context)?;
        component.prover.execute(witness, &context)
    }));
    match caught {
        Ok(result) => result.map_err(ExecError::Failed),
        Err(payload) => Err(ExecError::from_panic(payload.as_ref())),
    }
}
