//! The executor traits: [`Executor`] for CPU/GPU-bound work and [`AsyncExecutor`] for
//! work that awaits.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::JobContext;

/// The heavy payload of a component: turns one job's input into its output.
///
/// `execute` is synchronous and may block for as long as the work takes (witness
/// generation, a GPU proof): the runner calls it on the runtime's blocking workers,
/// never on an async task. Errors and panics become failure results that the saver
/// records; they never stop the runner. The executor sees the job through a
/// [`JobContext`] (its id, which attempt this is, whether it was cancelled), not
/// through the picker's metadata, so one executor runs behind any queue.
///
/// ```
/// use pjp_core::{Executor, JobContext};
///
/// struct Square;
///
/// impl Executor for Square {
///     type Input = u64;
///     type Output = u64;
///     type Error = std::convert::Infallible;
///
///     fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, Self::Error> {
///         Ok(input * input)
///     }
/// }
/// ```
pub trait Executor: Send + Sync + 'static {
    /// What a picker hands in.
    type Input: Send + 'static;
    /// What the saver stores.
    type Output: Send + Sync + 'static;
    /// Why a job failed. Saved as [`ExecError::Failed`](crate::ExecError::Failed).
    type Error: fmt::Display + fmt::Debug + Send + Sync + 'static;

    /// Executes one job. Runs on a blocking worker; may block.
    ///
    /// A long proof should check [`JobContext::is_cancelled`] between rounds
    /// and stop early: a job cancelled while it runs (its lease was lost) is
    /// saved as [`ExecError::Cancelled`](crate::ExecError::Cancelled) whatever
    /// it returns.
    fn execute(&self, input: Self::Input, job: &JobContext) -> Result<Self::Output, Self::Error>;

    /// The modeled cost of executing `input`, used by simulated runtimes to advance
    /// virtual time (real runtimes ignore it). Defaults to zero.
    fn cost_hint(&self, input: &Self::Input) -> Duration {
        let _ = input;
        Duration::ZERO
    }
}

/// An executor whose work awaits: I/O, a GPU stream, a remote prover.
///
/// Use this instead of calling `block_on` inside an [`Executor`]. The runner awaits
/// `execute` on an ordinary task, so it must not block the thread.
///
/// ```
/// use pjp_core::{AsyncExecutor, JobContext};
///
/// struct Echo;
///
/// impl AsyncExecutor for Echo {
///     type Input = String;
///     type Output = String;
///     type Error = std::io::Error;
///
///     async fn execute(&self, input: String, _job: &JobContext) -> Result<String, Self::Error> {
///         Ok(input)
///     }
/// }
/// ```
pub trait AsyncExecutor: Send + Sync + 'static {
    /// What a picker hands in.
    type Input: Send + 'static;
    /// What the saver stores.
    type Output: Send + Sync + 'static;
    /// Why a job failed. Saved as [`ExecError::Failed`](crate::ExecError::Failed).
    type Error: fmt::Display + fmt::Debug + Send + Sync + 'static;

    /// Executes one job.
    ///
    /// # Cancellation safety
    ///
    /// The runner drops this future when the job's timeout fires (the job is
    /// then saved as timed out) or when the job is cancelled (saved as
    /// cancelled). Work that must not be cut off half-way should not hold
    /// state that a drop would corrupt.
    fn execute(
        &self,
        input: Self::Input,
        job: &JobContext,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

impl<E: Executor + ?Sized> Executor for std::sync::Arc<E> {
    type Input = E::Input;
    type Output = E::Output;
    type Error = E::Error;

    fn execute(&self, input: Self::Input, job: &JobContext) -> Result<Self::Output, Self::Error> {
        (**self).execute(input, job)
    }

    fn cost_hint(&self, input: &Self::Input) -> Duration {
        (**self).cost_hint(input)
    }
}

impl<E: AsyncExecutor + ?Sized> AsyncExecutor for std::sync::Arc<E> {
    type Input = E::Input;
    type Output = E::Output;
    type Error = E::Error;

    fn execute(
        &self,
        input: Self::Input,
        job: &JobContext,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send {
        (**self).execute(input, job)
    }
}
