//! How the runner drives an executor: [`Blocking`] for [`Executor`]s, [`Async`] for
//! [`AsyncExecutor`]s. Both catch panics and apply the per-job timeout.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use crate::guard::guard;
use crate::{AsyncExecutor, ExecError, Executor, JobContext, JobMeta, JobResult, Runtime};

mod sealed {
    pub trait Sealed {}
}

/// The way a runner executes jobs; implemented by [`Blocking`] and [`Async`] only.
///
/// [`JobRunner::builder`](crate::JobRunner::builder) wraps an [`Executor`] in
/// [`Blocking`]; [`JobRunner::builder_async`](crate::JobRunner::builder_async)
/// wraps an [`AsyncExecutor`] in [`Async`].
pub trait Execution: sealed::Sealed + Send + Sync + 'static {
    /// The executor's input.
    type Input: Send + 'static;
    /// The executor's output.
    type Output: Send + Sync + 'static;
    /// The executor's error.
    type Failure: fmt::Display + fmt::Debug + Send + Sync + 'static;

    /// Whether workers need threads of their own (blocking work runs inline).
    #[doc(hidden)]
    fn needs_dedicated_workers(&self) -> bool;

    /// Executes one job, catching panics and applying `timeout`, and hands
    /// the result to `deliver` as soon as it is known. Resolves once the work
    /// has really stopped: for a blocking job past its timeout, that is when
    /// its closure returns (which cannot be interrupted). Resolves to whether
    /// the job was such a straggler. A job cancelled through `job` is
    /// delivered as [`ExecError::Cancelled`].
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    fn execute_job<R, M, D, Fut>(
        &self,
        runtime: &R,
        input: Self::Input,
        meta: M,
        job: JobContext,
        timeout: Option<Duration>,
        deliver: D,
    ) -> impl Future<Output = bool> + Send
    where
        R: Runtime,
        M: JobMeta,
        D: FnOnce(JobResult<Self::Output, Self::Failure>, M) -> Fut + Send,
        Fut: Future<Output = ()> + Send;
}

/// Runs a synchronous [`Executor`] on the runtime's blocking workers.
///
/// Without a timeout each job runs inline on a dedicated worker (one channel hop
/// per job). With a timeout it runs on the runtime's blocking pool so the worker
/// can stop waiting: once the timeout passes the job is saved as timed out, but
/// a closure cannot be interrupted, so the worker stays taken until it returns
/// (its result is discarded, and the report counts it in `stragglers`). Work in
/// flight stays bounded by the number of workers: a GPU job that hangs holds
/// its worker, not a new stream and buffers on top of the next job's.
#[derive(Debug)]
pub struct Blocking<E>(Arc<E>);

/// Runs an [`AsyncExecutor`] on ordinary tasks.
#[derive(Debug)]
pub struct Async<E>(Arc<E>);

impl<E> Blocking<E> {
    /// Wraps an executor.
    pub fn new(executor: E) -> Self {
        Self(Arc::new(executor))
    }

    /// The wrapped executor.
    pub fn inner(&self) -> &E {
        &self.0
    }
}

impl<E> Async<E> {
    /// Wraps an executor.
    pub fn new(executor: E) -> Self {
        Self(Arc::new(executor))
    }

    /// The wrapped executor.
    pub fn inner(&self) -> &E {
        &self.0
    }
}

impl<E> sealed::Sealed for Blocking<E> {}

/// A result that arrived after its job was cancelled is not wanted.
fn unless_cancelled<O, F>(job: &JobContext, result: JobResult<O, F>) -> JobResult<O, F> {
    if job.is_cancelled() {
        Err(ExecError::Cancelled)
    } else {
        result
    }
}
impl<E> sealed::Sealed for Async<E> {}

fn flatten<O, F>(caught: std::thread::Result<Result<O, F>>) -> JobResult<O, F> {
    match caught {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(error)) => Err(ExecError::Failed(error)),
        Err(payload) => Err(ExecError::from_panic(payload.as_ref())),
    }
}

impl<E: Executor> Execution for Blocking<E> {
    type Input = E::Input;
    type Output = E::Output;
    type Failure = E::Error;

    fn needs_dedicated_workers(&self) -> bool {
        true
    }

    async fn execute_job<R, M, D, Fut>(
        &self,
        runtime: &R,
        input: E::Input,
        meta: M,
        job: JobContext,
        timeout: Option<Duration>,
        deliver: D,
    ) -> bool
    where
        R: Runtime,
        M: JobMeta,
        D: FnOnce(JobResult<E::Output, E::Error>, M) -> Fut + Send,
        Fut: Future<Output = ()> + Send,
    {
        let cost = match guard(|| self.0.cost_hint(&input)) {
            Ok(cost) => cost,
            Err(message) => {
                let message = format!("Executor::cost_hint panicked: {message}");
                deliver(Err(ExecError::Panicked { message }), meta).await;
                return false;
            }
        };
        let Some(limit) = timeout else {
            let exec = &*self.0;
            let context = &job;
            // Flatten inside the closure so that no `Box<dyn Any>` crosses an
            // await point (that trips rustc's higher-ranked `Send` inference).
            let result = runtime
                .run_blocking(cost, move || {
                    flatten(catch_unwind(AssertUnwindSafe(|| {
                        exec.execute(input, context)
                    })))
                })
                .await;
            deliver(unless_cancelled(&job, result), meta).await;
            return false;
        };
        let exec = Arc::clone(&self.0);
        let context = job.clone();
        let work = runtime
            .spawn_blocking(cost, move || exec.execute(input, &context))
            .map(|done| match done {
                Ok(result) => result.map_err(ExecError::Failed),
                Err(panicked) => Err(ExecError::Panicked {
                    message: panicked.message,
                }),
            });
        let mut work = std::pin::pin!(work);
        let finished = tokio::select! {
            biased;
            result = &mut work => Some(result),
            () = runtime.sleep(limit) => None,
        };
        match finished {
            Some(result) => {
                deliver(unless_cancelled(&job, result), meta).await;
                false
            }
            None => {
                deliver(Err(ExecError::TimedOut { after: limit }), meta).await;
                // The closure cannot be stopped: hold the worker until it returns.
                let _discarded = work.await;
                true
            }
        }
    }
}

impl<E: AsyncExecutor> Execution for Async<E> {
    type Input = E::Input;
    type Output = E::Output;
    type Failure = E::Error;

    fn needs_dedicated_workers(&self) -> bool {
        false
    }

    async fn execute_job<R, M, D, Fut>(
        &self,
        runtime: &R,
        input: E::Input,
        meta: M,
        job: JobContext,
        timeout: Option<Duration>,
        deliver: D,
    ) -> bool
    where
        R: Runtime,
        M: JobMeta,
        D: FnOnce(JobResult<E::Output, E::Error>, M) -> Fut + Send,
        Fut: Future<Output = ()> + Send,
    {
        let result = {
            // An async job is dropped at its timeout or its cancellation:
            // nothing keeps running.
            let run = AssertUnwindSafe(self.0.execute(input, &job))
                .catch_unwind()
                .map(flatten);
            let work = async {
                tokio::select! {
                    biased;
                    result = run => result,
                    () = job.cancelled() => Err(ExecError::Cancelled),
                }
            };
            match timeout {
                None => work.await,
                Some(limit) => {
                    tokio::select! {
                        biased;
                        result = work => result,
                        () = runtime.sleep(limit) => Err(ExecError::TimedOut { after: limit }),
                    }
                }
            }
        };
        deliver(result, meta).await;
        false
    }
}
