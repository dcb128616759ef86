//! [`JobRunner`]: picks, executes and saves jobs as a pipeline.
//!
//! ```text
//!  picker tasks ──(prefetch queue)──▶ executor workers ──(save queue)──▶ saver tasks
//!   pick / pick_many                    execute(input, meta)             save(result, meta)
//!   back-off when empty                 panics caught, timeout           retries with back-off
//! ```

mod builder;
mod config;
mod context;
mod counts;
mod error;
mod late;
mod latency;
mod meters;
mod pick;
mod release;
mod report;
mod save;
mod stats;
mod work;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use builder::RunnerBuilder;
pub use config::{ConfigError, RunnerConfig};
pub use counts::Counts;
pub use error::{RunError, RunErrorKind};
pub use late::{LateResults, accepted_late};
pub use report::{LatencySummary, RunReport, StopReason};
pub use stats::{Progress, ProgressSnapshot};

use counts::Count;

use context::Context;
use latency::latency_histogram;
use stats::Stats;

use crate::guard::lock;
use crate::observe::Observer;

use crate::{
    Async, AsyncExecutor, Blocking, Execution, Executor, Job, JobId, JobMeta, JobPicker, JobSaver,
    Picked, Runtime, Shutdown,
};

/// Runs a component: picks jobs, executes them on workers and saves the results,
/// all at once, with back-off, retries, drain and abandon.
///
/// See the [crate docs](crate) for a complete example and the semantics.
#[derive(Debug)]
pub struct JobRunner<P, X, S> {
    picker: Arc<P>,
    execution: Arc<X>,
    saver: Arc<S>,
    config: RunnerConfig,
    stats: Arc<Stats>,
    observer: Option<Observer>,
}

impl<P, E, S> JobRunner<P, Blocking<E>, S>
where
    E: Executor,
    P: JobPicker<Input = E::Input>,
    S: JobSaver<Output = E::Output, Failure = E::Error, Metadata = P::Metadata>,
{
    /// Starts building a runner for a synchronous (CPU/GPU-bound) executor.
    ///
    /// The three parts must fit together (the picker hands the executor its
    /// input, the saver takes the executor's output and error and the
    /// picker's metadata): a mismatch is a compile error here, where the
    /// parts are chosen.
    pub fn builder(picker: P, executor: E, saver: S) -> RunnerBuilder<P, Blocking<E>, S> {
        RunnerBuilder::new(picker, Blocking::new(executor), saver)
    }
}

impl<P, E, S> JobRunner<P, Async<E>, S>
where
    E: AsyncExecutor,
    P: JobPicker<Input = E::Input>,
    S: JobSaver<Output = E::Output, Failure = E::Error, Metadata = P::Metadata>,
{
    /// Starts building a runner for an executor that awaits. The parts must
    /// fit together, as for [`builder`](JobRunner::builder).
    pub fn builder_async(picker: P, executor: E, saver: S) -> RunnerBuilder<P, Async<E>, S> {
        RunnerBuilder::new(picker, Async::new(executor), saver)
    }
}

/// What one [`JobRunner::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// A job was picked, executed and saved.
    Saved {
        /// The job.
        job: JobId,
        /// Whether it was saved with an output.
        succeeded: bool,
    },
    /// The picker had nothing.
    Empty,
    /// The picker's source is exhausted.
    Exhausted,
}

impl<P, X, S> JobRunner<P, X, S> {
    pub(crate) fn from_parts(
        picker: P,
        execution: X,
        saver: S,
        config: RunnerConfig,
        observer: Option<Observer>,
    ) -> Self {
        Self {
            picker: Arc::new(picker),
            execution: Arc::new(execution),
            saver: Arc::new(saver),
            config,
            stats: Arc::default(),
            observer,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// A live view of the counters, for progress bars.
    pub fn progress(&self) -> Progress {
        Progress(Arc::clone(&self.stats))
    }

    /// The picker.
    pub fn picker(&self) -> &P {
        &self.picker
    }

    /// The saver.
    pub fn saver(&self) -> &S {
        &self.saver
    }
}

impl<P, X, S> JobRunner<P, X, S>
where
    X: Execution,
    P: JobPicker<Input = X::Input>,
    S: JobSaver<Output = X::Output, Failure = X::Failure, Metadata = P::Metadata>,
{
    /// Runs until the picker is exhausted or `shutdown` drains or abandons the run,
    /// and every picked job is saved or released.
    ///
    /// Resolves to the [`RunReport`], or to a [`RunError`] (which carries the
    /// report too) if a save gave up, the picker failed fatally or a task died.
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future detaches the runner's tasks rather than stopping
    /// them; use `shutdown` to stop.
    pub async fn run<R: Runtime>(
        &self,
        runtime: &R,
        shutdown: Shutdown,
    ) -> Result<RunReport, RunError> {
        let started = runtime.now();
        let config = &self.config;
        let ctx = Arc::new(
            Context::new(
                Arc::clone(&self.picker),
                Arc::clone(&self.execution),
                Arc::clone(&self.saver),
                runtime.clone(),
                config.clone(),
                Arc::clone(&self.stats),
            )
            .with_observer(self.observer.clone()),
        );
        let before = self.stats_baseline();
        // A shutdown signalled before the run starts applies before any task
        // runs (the watcher below is only polled once the tasks are spawned).
        if shutdown.is_abandoned() {
            ctx.abandon_now();
        } else if shutdown.is_draining() {
            ctx.stop_picking.cancel();
        }
        let (queue_tx, queue_rx) = async_channel::unbounded();
        let (results_tx, results_rx) = async_channel::bounded(config.save_queue);
        let room = Arc::new(Semaphore::new(config.prefetch));

        let mut tasks = Vec::with_capacity(config.pickers + config.workers + config.savers);
        for index in 0..config.pickers {
            let handle = runtime.spawn(pick::pick_loop(
                Arc::clone(&ctx),
                queue_tx.clone(),
                Arc::clone(&room),
                index,
            ));
            tasks.push((Task::Picker, handle));
        }
        drop(queue_tx);
        let dedicated = self.execution.needs_dedicated_workers();
        for n in 0..config.workers {
            let work = work::work_loop(Arc::clone(&ctx), queue_rx.clone(), results_tx.clone(), n);
            let handle = if dedicated {
                runtime.spawn_worker(&format!("pjp-{}-{n}", config.stage), work)
            } else {
                runtime.spawn(work)
            };
            tasks.push((Task::Worker, handle));
        }
        drop(results_tx);
        for index in 0..config.savers {
            let handle =
                runtime.spawn(save::save_loop(Arc::clone(&ctx), results_rx.clone(), index));
            tasks.push((Task::Saver, handle));
        }

        // Supervise every task at once: the first to die abandons the run, so
        // nothing waits on it. Meanwhile follow the shutdown handle; on abandon
        // release queued jobs; if every saver died, release the results they
        // left. The run ends when the tasks are done *and* no release is
        // half-way (dropping one would lose its job).
        let tasks_done = CancellationToken::new();
        let savers_dead = CancellationToken::new();
        let finish = supervise(&ctx, tasks, &tasks_done, &savers_dead);
        let work = async {
            tokio::join!(
                finish,
                release_on_abandon(&ctx, queue_rx, &tasks_done),
                release_orphaned_results(&ctx, results_rx, &tasks_done, &savers_dead),
            );
        };
        tokio::select! {
            biased;
            _ = work => {}
            () = follow_shutdown(&ctx, &shutdown) => {}
        }
        // A run that stopped picking early leaves nothing in the picker's own
        // buffers (a stage channel hands its queue back upstream).
        if !ctx.abandon.is_cancelled() && !ctx.exhausted.load(Relaxed) {
            self.picker.on_abandon().await;
        }

        let report = self.report(&ctx, &before, started, &shutdown);
        match ctx.take_fatal() {
            None => Ok(report),
            Some(kind) => Err(RunError::new(kind, report)),
        }
    }

    /// Like [`run`](Self::run), but consumes the runner and drops it (with its
    /// picker, executor and saver) as soon as the run ends.
    ///
    /// Use it for the upstream runner of a [stage channel](crate::stage): its
    /// stage saver is dropped with it, which closes the channel, so the
    /// downstream runner drains what is queued and finishes.
    pub async fn into_run<R: Runtime>(
        self,
        runtime: &R,
        shutdown: Shutdown,
    ) -> Result<RunReport, RunError> {
        self.run(runtime, shutdown).await
    }

    /// Picks one job, executes it inline and saves it (with retries): a
    /// deterministic single step for tests. A synchronous executor runs on the
    /// calling task. An [observer](RunnerBuilder::observer) sees its pick,
    /// execution and save on the lane of worker 0.
    pub async fn step<R: Runtime>(&self, runtime: &R) -> Result<Step, RunError> {
        self.step_on(runtime, 0).await
    }

    /// Like [`step`](Self::step), reporting to the observer on the lane of
    /// worker `worker`: for several loops of steps side by side (the
    /// sequential pick-execute-save loop a timeline compares the runner with).
    pub async fn step_on<R: Runtime>(&self, runtime: &R, worker: usize) -> Result<Step, RunError> {
        let ctx = Context::new(
            Arc::clone(&self.picker),
            Arc::clone(&self.execution),
            Arc::clone(&self.saver),
            runtime.clone(),
            self.config.clone(),
            Arc::clone(&self.stats),
        )
        .with_observer(self.observer.clone());
        let lane = crate::observe::Lane::new(crate::observe::Role::Worker, worker);
        let before = self.stats_baseline();
        let started = runtime.now();
        let pick_start = ctx.span_start();
        let picked = self.picker.pick().await;
        ctx.observe(
            lane,
            crate::observe::Activity::Pick,
            pick_start,
            u32::from(matches!(picked, Ok(Picked::Some(_)))),
        );
        let picked = match picked {
            Ok(picked) => picked,
            Err(error) => {
                ctx.count(Count::PickErrors, 1);
                let report = self.report(&ctx, &before, started, &Shutdown::new());
                return Err(RunError::new(
                    RunErrorKind::PickFailed {
                        source: Box::new(error),
                    },
                    report,
                ));
            }
        };
        let Job { input, meta } = match picked {
            Picked::Some(job) => job,
            Picked::Empty => return Ok(Step::Empty),
            Picked::Exhausted => return Ok(Step::Exhausted),
        };
        ctx.claim();
        let attempt = crate::guard::guard(|| meta.attempt()).unwrap_or(1);
        let job = match crate::guard::guard(|| meta.job_id()) {
            Ok(job) => job,
            Err(message) => {
                ctx.release(meta, JobId::new(u64::MAX), crate::ReleaseReason::Abandon)
                    .await;
                let report = self.report(&ctx, &before, started, &Shutdown::new());
                return Err(RunError::new(
                    RunErrorKind::CallbackPanicked {
                        callback: "JobMeta::job_id",
                        message,
                    },
                    report,
                ));
            }
        };
        let picked_at = runtime.now();
        let exec_start = ctx.span_start();
        let delivered = std::sync::Mutex::new(None);
        let _straggled = self
            .execution
            .execute_job(
                runtime,
                input,
                meta,
                crate::JobContext::new(job, attempt),
                self.config.job_timeout,
                |result, meta| {
                    *lock(&delivered) = Some((result, meta));
                    std::future::ready(())
                },
            )
            .await;
        let Some((result, meta)) = lock(&delivered).take() else {
            return Err(RunError::new(
                RunErrorKind::TaskDied {
                    task: "step",
                    message: "the executor delivered no result".to_owned(),
                },
                self.report(&ctx, &before, started, &Shutdown::new()),
            ));
        };
        ctx.observe(lane, crate::observe::Activity::Execute, exec_start, 1);
        let succeeded = result.is_ok();
        let done = work::Done {
            meta,
            id: job,
            result,
            picked_at,
            span: tracing::Span::none(),
        };
        save::save_batch(&ctx, vec![done], &mut latency_histogram(), lane).await;
        let saved = self.stats.counts().saved() > before.counts.saved();
        if !saved {
            let report = self.report(&ctx, &before, started, &Shutdown::new());
            return Err(RunError::new(RunErrorKind::SaveGaveUp { job }, report));
        }
        match ctx.take_fatal() {
            None => Ok(Step::Saved { job, succeeded }),
            Some(kind) => {
                let report = self.report(&ctx, &before, started, &Shutdown::new());
                Err(RunError::new(kind, report))
            }
        }
    }
}

/// Counter values at the start of a run, so a report counts only its own run.
struct Baseline {
    counts: Counts,
    busy_nanos: u64,
}

impl<P, X, S> JobRunner<P, X, S> {
    fn stats_baseline(&self) -> Baseline {
        let s = &self.stats;
        s.peak_claimed.store(s.claimed.load(Relaxed), Relaxed);
        Baseline {
            counts: s.counts(),
            busy_nanos: s.busy_nanos.load(Relaxed),
        }
    }

    fn report<R: Runtime>(
        &self,
        ctx: &Context<P, X, S, R>,
        before: &Baseline,
        started: std::time::Instant,
        shutdown: &Shutdown,
    ) -> RunReport {
        let s = &self.stats;
        let since = |now: u64, then: u64| now.saturating_sub(then);
        let stop = if ctx.downstream_gone.load(Relaxed) {
            StopReason::DownstreamGone
        } else if ctx.abandon.is_cancelled() {
            StopReason::Abandoned
        } else if ctx.exhausted.load(Relaxed) && !shutdown.is_draining() {
            StopReason::Exhausted
        } else {
            StopReason::Drained
        };
        RunReport {
            stage: self.config.stage.to_string(),
            stop,
            counts: s.counts().since(&before.counts),
            released: std::mem::take(&mut *lock(&ctx.released)),
            release_failed: std::mem::take(&mut *lock(&ctx.release_failed)),
            save_gave_up: std::mem::take(&mut *lock(&ctx.save_gave_up)),
            peak_claimed: s.peak_claimed.load(Relaxed),
            max_claimed: self.config.max_claimed() as u64,
            workers: self.config.workers,
            elapsed: ctx.runtime.now().saturating_duration_since(started),
            busy: std::time::Duration::from_nanos(since(
                s.busy_nanos.load(Relaxed),
                before.busy_nanos,
            )),
            job_latency: LatencySummary::from_histogram(&lock(&ctx.job_latency)),
            exec_time: LatencySummary::from_histogram(&lock(&ctx.exec_time)),
        }
    }
}

/// On abandon, takes unstarted jobs off the queue and releases them at once,
/// rather than waiting for busy workers to get to them (the workers release the
/// ones they take, too). Resolves at once if the tasks finish without an
/// abandon; after an abandon, once the queue is closed and every job taken
/// off it is released.
async fn release_on_abandon<P, X, S, R>(
    ctx: &Context<P, X, S, R>,
    queue: async_channel::Receiver<pick::Queued<P::Input, P::Metadata>>,
    tasks_done: &CancellationToken,
) where
    P: JobPicker,
    R: Runtime,
{
    tokio::select! {
        biased;
        () = ctx.abandon.cancelled() => {}
        () = tasks_done.cancelled() => return,
    }
    ctx.picker.on_abandon().await;
    while let Ok(first) = queue.recv().await {
        // Everything queued goes back in one `release_many`.
        let mut batch = vec![first];
        while let Ok(queued) = queue.try_recv() {
            batch.push(queued);
        }
        let ids: Vec<JobId> = batch.iter().map(|queued| queued.id).collect();
        let metas: Vec<P::Metadata> = batch
            .into_iter()
            .map(|queued| {
                drop(queued.permit);
                queued.job.meta
            })
            .collect();
        ctx.release_batch(metas, ids, ctx.abandon_reason()).await;
    }
}

/// Which of the run's tasks a handle belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Picker,
    Worker,
    Saver,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Self::Picker => "picker",
            Self::Worker => "worker",
            Self::Saver => "saver",
        }
    }
}

/// Awaits every task at once. The first that dies fails the run with
/// `TaskDied` and abandons it; once every saver is gone, `savers_dead` lets
/// the results they would have saved be released instead.
async fn supervise<P, X, S, R>(
    ctx: &Context<P, X, S, R>,
    tasks: Vec<(Task, crate::TaskHandle)>,
    tasks_done: &CancellationToken,
    savers_dead: &CancellationToken,
) where
    P: JobPicker,
    R: Runtime,
{
    let mut savers = tasks
        .iter()
        .filter(|(task, _)| *task == Task::Saver)
        .count();
    let mut running: FuturesUnordered<_> = tasks
        .into_iter()
        .map(|(task, handle)| async move { (task, handle.await) })
        .collect();
    while let Some((task, ended)) = running.next().await {
        if let Err(panicked) = ended {
            ctx.fail(RunErrorKind::TaskDied {
                task: task.name(),
                message: panicked.message,
            });
            ctx.abandon_now();
        }
        if task == Task::Saver {
            savers -= 1;
            if savers == 0 {
                savers_dead.cancel();
            }
        }
    }
    tasks_done.cancel();
}

/// If every saver died while workers still had results for them, releases
/// those results' jobs rather than dropping them.
async fn release_orphaned_results<P, X, S, R>(
    ctx: &Context<P, X, S, R>,
    results: async_channel::Receiver<work::Done<S::Output, S::Failure, S::Metadata>>,
    tasks_done: &CancellationToken,
    savers_dead: &CancellationToken,
) where
    P: JobPicker<Metadata = S::Metadata>,
    S: JobSaver,
    R: Runtime,
{
    tokio::select! {
        biased;
        () = savers_dead.cancelled() => {}
        () = tasks_done.cancelled() => {}
    }
    // No saver is left: whatever is queued, or still sent by a worker, has
    // nobody to save it. Ends once the workers are gone and the queue empty.
    while let Ok(done) = results.recv().await {
        ctx.release(done.meta, done.id, crate::ReleaseReason::Abandon)
            .await;
    }
}

/// Turns the user's shutdown into the run's own tokens: drain stops picking;
/// abandon, or the grace period after a drain, releases unstarted jobs.
/// Never resolves; the run's `select!` drops it when the tasks are done.
async fn follow_shutdown<P, X, S, R>(ctx: &Context<P, X, S, R>, shutdown: &Shutdown)
where
    P: JobPicker,
    R: Runtime,
{
    shutdown.draining().await;
    tracing::info!(stage = %ctx.config.stage, "shutdown: draining");
    ctx.stop_picking.cancel();
    let grace = async {
        match ctx.config.grace_period {
            Some(grace) => ctx.runtime.sleep(grace).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        () = shutdown.abandoned() => {}
        () = grace => {
            ctx.grace_expired.store(true, Relaxed);
            tracing::warn!(stage = %ctx.config.stage, "grace period over");
        }
    }
    tracing::info!(stage = %ctx.config.stage, "shutdown: abandoning unstarted jobs");
    ctx.abandon_now();
    std::future::pending::<()>().await;
}
