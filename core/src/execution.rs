//! How the runner drives an executor: [`Blocking`] for [`Executor`]s, [`Async`] for
//! [`AsyncExecutor`]s. Both catch panics and apply the per-job timeout.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use crate::{AsyncExecutor, ExecError, Executor, JobMeta, JobResult, Runtime};

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
    /// The job metadata.
    type Metadata: JobMeta;

    /// Whether workers need threads of their own (blocking work runs inline).
    #[doc(hidden)]
    fn needs_dedicated_workers(&self) -> bool;

    /// Executes one job, catching panics and applying `timeout`.
    #[doc(hidden)]
    fn execute_job<R: Runtime>(
        &self,
        runtime: &R,
        input: Self::Input,
        meta: &Self::Metadata,
        timeout: Option<Duration>,
    ) -> impl Future<Output = JobResult<Self::Output, Self::Failure>> + Send;
}

/// Runs a synchronous [`Executor`] on the runtime's blocking workers.
///
/// Without a timeout each job runs inline on a dedicated worker (one channel hop
/// per job). With a timeout it runs on the runtime's blocking pool so the worker
/// can stop waiting: a timed-out closure cannot be interrupted, so it runs to
/// completion there and its result is discarded.
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
impl<E> sealed::Sealed for Async<E> {}

fn flatten<O, F>(caught: std::thread::Result<Result<O, F>>) -> JobResult<O, F> {
    match caught {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(error)) => Err(ExecError::Failed(error)),
        Err(payload) => Err(ExecError::from_panic(payload.as_ref())),
    }
}

/// Resolves to `work`'s result, or to a timeout once `limit` has passed.
async fn within<R: Runtime, O, F>(
    runtime: &R,
    limit: Duration,
    work: impl Future<Output = JobResult<O, F>>,
) -> JobResult<O, F> {
    tokio::select! {
        biased;
        result = work => result,
        () = runtime.sleep(limit) => Err(ExecError::TimedOut { after: limit }),
    }
}

impl<E: Executor> Execution for Blocking<E> {
    type Input = E::Input;
    type Output = E::Output;
    type Failure = E::Error;
    type Metadata = E::Metadata;

    fn needs_dedicated_workers(&self) -> bool {
        true
    }

    async fn execute_job<R: Runtime>(
        &self,
        runtime: &R,
        input: E::Input,
        meta: &E::Metadata,
        timeout: Option<Duration>,
    ) -> JobResult<E::Output, E::Error> {
        let cost = self.0.cost_hint(&input);
        let Some(limit) = timeout else {
            let exec = &*self.0;
            // Flatten inside the closure so that no `Box<dyn Any>` crosses an
            // await point (that trips rustc's higher-ranked `Send` inference).
            return runtime
                .run_blocking(cost, move || {
                    flatten(catch_unwind(AssertUnwindSafe(|| exec.execute(input, meta))))
                })
                .await;
        };
        let exec = Arc::clone(&self.0);
        let owned_meta = meta.clone();
        let work = runtime
            .spawn_blocking(cost, move || exec.execute(input, &owned_meta))
            .map(|done| match done {
                Ok(result) => result.map_err(ExecError::Failed),
                Err(panicked) => Err(ExecError::Panicked {
                    message: panicked.message,
                }),
            });
        within(runtime, limit, work).await
    }
}

impl<E: AsyncExecutor> Execution for Async<E> {
    type Input = E::Input;
    type Output = E::Output;
    type Failure = E::Error;
    type Metadata = E::Metadata;

    fn needs_dedicated_workers(&self) -> bool {
        false
    }

    async fn execute_job<R: Runtime>(
        &self,
        runtime: &R,
        input: E::Input,
        meta: &E::Metadata,
        timeout: Option<Duration>,
    ) -> JobResult<E::Output, E::Error> {
        let work = AssertUnwindSafe(self.0.execute(input, meta))
            .catch_unwind()
            .map(flatten);
        match timeout {
            None => work.await,
            Some(limit) => within(runtime, limit, work).await,
        }
    }
}
