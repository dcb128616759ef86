//! Components from closures: [`executor_fn`], [`async_executor_fn`] and
//! [`saver_fn`], in the manner of tower's `service_fn`.
//!
//! The job metadata type is never named: it is inferred from the picker the
//! closure is paired with in [`JobRunner::builder`](crate::JobRunner::builder).
//!
//! ```
//! use pjp_core::{JobRunner, Shutdown, executor_fn, memory::MemoryQueue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let queue = MemoryQueue::closed_with(1..=10u64);
//! let square = executor_fn(|n: u64| n.checked_mul(n).ok_or("overflow"));
//! let runner = JobRunner::builder(queue.picker(), square, queue.saver()).build()?;
//! let report = runner.run(&pjp_runtime_tokio::TokioRuntime::current(), Shutdown::new()).await?;
//! assert_eq!(report.counts.succeeded, 10);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use crate::{AsyncExecutor, Executor, JobContext, JobMeta, JobResult, JobSaver};

/// The types a closure component stands for. `fn(…) -> …` keeps the wrapper
/// `Send + Sync` whatever they are.
type Types<I, O, E> = PhantomData<fn(I) -> (O, E)>;

/// An [`Executor`] made from a closure by [`executor_fn`].
pub struct ExecutorFn<F, I, O, E> {
    f: F,
    types: Types<I, O, E>,
}

/// Makes an [`Executor`] from a synchronous closure `input -> Result<output, error>`.
///
/// The closure runs on the runtime's blocking workers, as
/// [`Executor::execute`] does, and may block for as long as the work takes. An
/// error (or a panic) is saved as the job's failure. For an executor that
/// checks for cancellation between rounds, implement [`Executor`]: its
/// `execute` sees the job's [`JobContext`].
///
/// ```
/// use pjp_core::{Executor, JobContext, JobId, executor_fn};
///
/// let double = executor_fn(|n: u64| Ok::<_, String>(n * 2));
/// assert_eq!(double.execute(21, &JobContext::new(JobId::new(1), 1)), Ok(42));
/// ```
pub fn executor_fn<F, I, O, E>(f: F) -> ExecutorFn<F, I, O, E>
where
    F: Fn(I) -> Result<O, E> + Send + Sync + 'static,
{
    ExecutorFn {
        f,
        types: PhantomData,
    }
}

impl<F, I, O, E> Executor for ExecutorFn<F, I, O, E>
where
    F: Fn(I) -> Result<O, E> + Send + Sync + 'static,
    I: Send + 'static,
    O: Send + Sync + 'static,
    E: fmt::Display + fmt::Debug + Send + Sync + 'static,
{
    type Input = I;
    type Output = O;
    type Error = E;

    fn execute(&self, input: I, _job: &JobContext) -> Result<O, E> {
        (self.f)(input)
    }
}

impl<F, I, O, E> fmt::Debug for ExecutorFn<F, I, O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorFn").finish_non_exhaustive()
    }
}

/// An [`AsyncExecutor`] made from a closure by [`async_executor_fn`].
pub struct AsyncExecutorFn<F, I, O, E> {
    f: F,
    types: Types<I, O, E>,
}

/// Makes an [`AsyncExecutor`] from a closure `input -> future of Result<output, error>`,
/// for work that awaits (a remote prover, a GPU stream). Run it with
/// [`JobRunner::builder_async`](crate::JobRunner::builder_async).
///
/// ```
/// use pjp_core::{AsyncExecutor, JobContext, JobId, async_executor_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let echo = async_executor_fn(|s: String| async move { Ok::<_, std::io::Error>(s) });
/// let out = echo.execute("hi".to_string(), &JobContext::new(JobId::new(1), 1)).await;
/// assert_eq!(out.ok().as_deref(), Some("hi"));
/// # }
/// ```
pub fn async_executor_fn<F, Fut, I, O, E>(f: F) -> AsyncExecutorFn<F, I, O, E>
where
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send,
{
    AsyncExecutorFn {
        f,
        types: PhantomData,
    }
}

impl<F, Fut, I, O, E> AsyncExecutor for AsyncExecutorFn<F, I, O, E>
where
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send,
    I: Send + 'static,
    O: Send + Sync + 'static,
    E: fmt::Display + fmt::Debug + Send + Sync + 'static,
{
    type Input = I;
    type Output = O;
    type Error = E;

    fn execute(&self, input: I, _job: &JobContext) -> impl Future<Output = Result<O, E>> + Send {
        (self.f)(input)
    }
}

impl<F, I, O, E> fmt::Debug for AsyncExecutorFn<F, I, O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncExecutorFn").finish_non_exhaustive()
    }
}

/// A [`JobSaver`] made from a closure by [`saver_fn`].
pub struct SaverFn<F, O, X, E, M> {
    f: F,
    types: PhantomData<fn(O, X, M) -> E>,
}

/// Makes a [`JobSaver`] from a synchronous closure
/// `(result, metadata) -> Result<(), error>`.
///
/// The closure runs on the saver task, so it should be quick: print, send on
/// a channel, push to a collection. A saver that does I/O implements
/// [`JobSaver`] and awaits it. An error is retried with back-off by its
/// [class](JobSaver::classify) (transient by default).
///
/// ```
/// use std::convert::Infallible;
/// use pjp_core::{JobId, JobResult, JobSaver, saver_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let print = saver_fn(|result: &JobResult<u64, String>, meta: &JobId| {
///     println!("job {}: {:?}", meta.get(), result.as_ref().ok());
///     Ok::<_, Infallible>(())
/// });
/// assert!(print.save(&Ok(4), &JobId::new(2)).await.is_ok());
/// # }
/// ```
pub fn saver_fn<F, O, X, E, M>(f: F) -> SaverFn<F, O, X, E, M>
where
    F: Fn(&JobResult<O, X>, &M) -> Result<(), E> + Send + Sync + 'static,
{
    SaverFn {
        f,
        types: PhantomData,
    }
}

impl<F, O, X, E, M> JobSaver for SaverFn<F, O, X, E, M>
where
    F: Fn(&JobResult<O, X>, &M) -> Result<(), E> + Send + Sync + 'static,
    O: Send + Sync + 'static,
    X: Send + Sync + 'static,
    E: std::error::Error + Send + Sync + 'static,
    M: JobMeta,
{
    type Output = O;
    type Failure = X;
    type Metadata = M;
    type Error = E;

    async fn save(&self, result: &JobResult<O, X>, meta: &M) -> Result<(), E> {
        (self.f)(result, meta)
    }
}

impl<F, O, X, E, M> fmt::Debug for SaverFn<F, O, X, E, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaverFn").finish_non_exhaustive()
    }
}
