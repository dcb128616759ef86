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
use pjp_core::memory::JobOptions;
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
use crate::circuit::{CircuitProver, ProveError};
use crate::config::{ConfigError, FleetConfig, RunConfig};
use crate::job::{Proof, ProofJob, Witness};
use crate::sink::{FailuresOf, FleetSink, SavedFailure};
use crate::store::{EmbeddedQueue, ResultStore, Tally};
use crate::witness::WitnessGenerator;

/// Where jobs come from: any picker of payload bytes.
pub type Origin = BoxPicker<Bytes>;
/// Where results go: any saver of proofs.
pub type Sink = BoxSaver<Proof, ProveError>;

/// The queue a run serves.
pub enum Source {
    /// The in-process queue, seeded with [`RunConfig::jobs`] payloads.
    Embedded(Embedded),
    /// A PostgreSQL queue shared by a fleet.
    Fleet(PgWorker),
}

/// The embedded run's queue and what its tree needs.
pub struct Embedded {
    /// The in-process queue, seeded and closed.
    pub queue: EmbeddedQueue,
    /// The results, and (in a tree run) the proofs' leaves.
    pub store: Arc<ResultStore>,
    /// Each batch's aggregation job (empty with no circuits per batch).
    pub batches: Vec<JobId>,
    /// The roots the aggregations committed to.
    pub roots: Arc<Roots>,
}

/// Why a [`Component`] could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The configuration cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The NTT backend asked for is not usable.
    #[error("selecting the NTT backend: {0}")]
    Backend(#[from] pjp_gpu::BackendError),
    /// The PostgreSQL queue or its store could not be opened.
    #[error(transparent)]
    Queue(#[from] pjp_postgres::QueueError),
    /// The object store cannot be written.
    #[error("the store {url} cannot be written: {source}")]
    StoreNotWritable {
        /// The store, its password hidden.
        url: String,
        /// What the probe write said.
        source: pjp_postgres::QueueError,
    },
}

/// Everything a run sets up: the queue, where jobs come from and results
/// go, the counts of what was saved, and the prover.
pub struct Component {
    /// Where jobs come from.
    pub origin: Origin,
    /// Where results go.
    pub sink: Sink,
    /// The queue served.
    pub source: Source,
    /// What the sink has saved so far.
    pub tally: Arc<Tally>,
    /// Cancellations of jobs whose lease was lost.
    pub cancels: JobCancels,
    /// Stage two's executor.
    pub prover: CircuitProver,
    /// What the run was told.
    pub config: RunConfig,
}

impl Component {
    /// Selects the NTT backend and the queue: PostgreSQL with
    /// [`RunConfig::fleet`], else the embedded one, seeded.
    ///
    /// # Errors
    ///
    /// A config that cannot run, an unusable backend, or a queue or store
    /// that cannot be opened.
    pub async fn new(config: RunConfig) -> Result<Self, SetupError> {
        config.validate()?;
        let ntt = NttExecutor::new(NttConfig::new().backend(config.backend))?;
        let prover = CircuitProver {
            ntt,
            faults: config.faults,
        };
        let (origin, sink, source, tally, cancels) = match &config.fleet {
            None => embedded(&config),
            Some(fleet_config) => fleet(fleet_config, config.verify_every).await?,
        };
        Ok(Self {
            origin,
            sink,
            source,
            tally,
            cancels,
            prover,
            config,
        })
    }
}

type Parts = (Origin, Sink, Source, Arc<Tally>, JobCancels);

/// The embedded queue, seeded with [`RunConfig::jobs`] payloads: as proof
/// trees of [`RunConfig::circuits`] basic proofs under one aggregation each
/// (the aggregation runner takes those), or flat with no circuits. Round
/// trips modeled by the config's pick and save latencies.
fn embedded(args: &RunConfig) -> Parts {
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
    let origin = BoxPicker::new(Latent::new(picker, &runtime, args.pick_latency.clone()));
    let sink = BoxSaver::new(Latent::new(
        Arc::clone(&store),
        &runtime,
        args.save_latency.clone(),
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
/// (in the object store above the inline limit) with fenced completions.
async fn fleet(fleet: &FleetConfig, verify_every: u64) -> Result<Parts, SetupError> {
    let mut builder = PgQueue::builder(&fleet.database_url)
        .schema(&fleet.schema)
        .wait(fleet.db_wait)
        .max_connections(fleet.connections)
        .application_name("pjp-prover")
        .pooler(fleet.pooler);
    if let Some(direct) = &fleet.direct_url {
        builder = builder.direct_url(direct);
    }
    // The default id names the host and process.
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
                .map_err(|source| SetupError::StoreNotWritable {
                    url: store.url().to_owned(),
                    source,
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
    if let Some(target) = fleet.adaptive_claims {
        config = config.adaptive_claims(target);
    }
    if let Some(poll) = fleet.poll_interval {
        config = config.poll_interval(poll);
    }
    let worker = queue.worker(config).await?;
    // Every kind but the aggregations (a runner of their own takes those),
    // on the kind-agnostic claim's index scan.
    let picker = worker
        .picker(&fleet.queue)?
        .except_kinds([AGGREGATE])
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
pub type StageResult = Result<RunReport, RunError>;

/// The report of a stage's run, failed or not.
pub fn report_of(result: &StageResult) -> &RunReport {
    match result {
        Ok(report) => report,
        Err(error) => error.report(),
    }
}

/// Live handles for the progress display: (stage, workers, progress). None
/// for the sequential loop.
#[derive(Default)]
pub struct Live {
    /// Each stage's name, worker count and live progress.
    pub stages: Vec<(&'static str, usize, Progress)>,
}

type WitnessRunner = JobRunner<
    Origin,
    Blocking<WitnessGenerator>,
    StageSaver<Arc<Witness>, AnyMeta, FailuresOf<Sink, Arc<Witness>>>,
>;
type ProveRunner = JobRunner<StagePicker<Arc<Witness>, AnyMeta>, Blocking<CircuitProver>, Sink>;

/// The two stages, built: a witness runner feeding a prover runner through a
/// stage channel.
pub struct Pipeline {
    witness: WitnessRunner,
    prove: ProveRunner,
    witness_workers: usize,
    prover_workers: usize,
    grace_period: Option<Duration>,
    recorders: Option<Recorders>,
}

/// What each stage's tasks did, when ([`RunConfig::record_timeline`]).
#[derive(Clone)]
pub struct Recorders {
    witness: Recorder,
    prove: Recorder,
}

impl Recorders {
    /// The run as a picture, times from `origin`.
    pub fn timeline(&self, title: String, origin: std::time::Instant) -> Timeline {
        let mut timeline = Timeline::new(title);
        timeline
            .add_lanes("witness", origin, &self.witness.spans())
            .add_lanes("prove", origin, &self.prove.spans());
        timeline
    }
}

impl Pipeline {
    /// Builds both runners over the component's queue and sink.
    ///
    /// # Errors
    ///
    /// A runner the config cannot build.
    pub fn build(component: &Component) -> Result<Self, pjp_core::ConfigError> {
        let args = &component.config;
        let (witness_workers, prover_workers) = (args.witness_workers, args.prover_workers);
        let origin = component.origin.clone();

        // Room for each prover worker's next witness, so the prover never waits.
        let (tx, rx) = stage::channel(2 * prover_workers, origin.clone());
        let failures = FailuresOf::new(component.sink.clone());
        let witness = JobRunner::builder(origin, WitnessGenerator, tx.on_failure(failures))
            .stage("witness")
            .workers(witness_workers)
            // Picks in flight and batched picks hide the queue's round trip
            // behind execution.
            .prefetch(args.prefetch)
            .pickers(args.pickers)
            .pick_batch(args.pick_batch)
            // Its outputs are witnesses (up to GiBs each): a short queue to
            // the stage channel, so that the generator is held back rather
            // than piling them up in memory.
            .savers(args.savers);
        let recorders = args.record_timeline.then(|| Recorders {
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
            .savers(args.savers)
            .save_batch(args.save_batch)
            .save_queue(args.savers.saturating_mul(args.save_batch));
        let mut prove = with_queue(prove, component);
        if let Some(recorders) = &recorders {
            prove = prove.observer(Arc::new(recorders.prove.clone()));
        }
        let prove = prove.build()?;
        Ok(Self {
            recorders,
            witness,
            prove,
            witness_workers,
            prover_workers,
            grace_period: args.grace_period,
        })
    }

    /// The stages' recorders, with [`RunConfig::record_timeline`].
    pub fn recorders(&self) -> Option<Recorders> {
        self.recorders.clone()
    }

    /// Live progress handles.
    pub fn live(&self) -> Live {
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
    pub async fn run(self, shutdown: Shutdown) -> Vec<StageResult> {
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
/// The baseline the pipeline is compared with. Panics are caught and saved
/// as failures, as the runner does.
///
/// # Errors
///
/// A pick or a save that failed.
pub async fn run_sequential(
    component: &Component,
    shutdown: Shutdown,
) -> Result<RunReport, SequentialError> {
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
        let job = match picker.pick().await.map_err(SequentialError::Pick)? {
            Picked::Some(job) => job,
            // A queue that long-polls (PostgreSQL) has waited already.
            Picked::Empty => continue,
            Picked::Exhausted => break,
        };
        let picked_at = Instant::now();
        report.counts.picked += 1;
        let meta = job.meta;
        let result = prove_whole_job(component, job.input, &meta);
        let executed = picked_at.elapsed();
        match &result {
            Ok(_) => report.counts.succeeded += 1,
            Err(error) => {
                report.counts.failed += 1;
                report.counts.panicked += u64::from(error.is_panic());
            }
        }
        saver
            .save(&result, &meta)
            .await
            .map_err(SequentialError::Save)?;
        exec_times.push(executed);
        job_times.push(picked_at.elapsed());
    }
    report.elapsed = started.elapsed();
    report.busy = exec_times.iter().sum();
    report.exec_time = LatencySummary::from_samples(exec_times);
    report.job_latency = LatencySummary::from_samples(job_times);
    Ok(report)
}

/// Why the plain loop stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SequentialError {
    /// A pick failed.
    #[error("picking: {0}")]
    Pick(<Origin as JobPicker>::Error),
    /// A save failed.
    #[error("saving: {0}")]
    Save(<Sink as JobSaver>::Error),
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
