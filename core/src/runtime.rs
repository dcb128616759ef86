//! The [`Runtime`] trait: everything the runner needs from an async executor.
//!
//! `pjp-core` never calls `tokio::spawn` or `tokio::time`: it asks its `Runtime`.
//! `pjp-runtime-tokio` implements it for production, `pjp-runtime-sim` for
//! deterministic simulation, so the same component code runs on both.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Spawning, blocking work, time and randomness.
///
/// Implementations must be cheap to clone (a handle).
pub trait Runtime: Clone + Send + Sync + 'static {
    /// Spawns an async task.
    fn spawn<F>(&self, future: F) -> TaskHandle
    where
        F: Future<Output = ()> + Send + 'static;

    /// Spawns a long-lived worker that may run blocking work inline through
    /// [`run_blocking`](Self::run_blocking). On a real runtime this is a dedicated
    /// OS thread, so handing a job to it costs a channel send rather than a
    /// thread-pool round trip.
    fn spawn_worker<F>(&self, name: &str, future: F) -> TaskHandle
    where
        F: Future<Output = ()> + Send + 'static;

    /// Runs blocking work of modeled `cost` *from inside a worker* spawned with
    /// [`spawn_worker`](Self::spawn_worker).
    ///
    /// A real runtime runs `work` inline (the worker owns its thread) and ignores
    /// `cost`; a simulated one takes a modeled core and advances virtual time by
    /// `cost` first. Calling it from an ordinary task blocks that task's thread.
    fn run_blocking<T, W>(&self, cost: Duration, work: W) -> impl Future<Output = T> + Send
    where
        W: FnOnce() -> T + Send,
        T: Send;

    /// Runs blocking work on a separate pool, so that the caller can stop waiting
    /// for it (a timeout). Resolves to an error if `work` panicked.
    fn spawn_blocking<T, W>(
        &self,
        cost: Duration,
        work: W,
    ) -> impl Future<Output = Result<T, TaskPanicked>> + Send
    where
        W: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;

    /// The current instant (virtual under simulation).
    fn now(&self) -> Instant;

    /// A random number (seeded under simulation). Used for back-off jitter.
    fn random_u64(&self) -> u64;
}

/// A spawned task or worker, resolving when it ends.
///
/// Dropping the handle detaches the task.
#[must_use = "a TaskHandle does nothing unless awaited; drop it to detach"]
pub struct TaskHandle {
    inner: Pin<Box<dyn Future<Output = Result<(), TaskPanicked>> + Send>>,
}

impl TaskHandle {
    /// Wraps a future that resolves when the task ends. For runtime implementors.
    pub fn new<F>(done: F) -> Self
    where
        F: Future<Output = Result<(), TaskPanicked>> + Send + 'static,
    {
        Self {
            inner: Box::pin(done),
        }
    }
}

impl Future for TaskHandle {
    type Output = Result<(), TaskPanicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for TaskHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle").finish_non_exhaustive()
    }
}

/// A task or blocking closure panicked (or its runtime dropped it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task panicked: {message}")]
pub struct TaskPanicked {
    /// The panic message, if the payload was a string.
    pub message: String,
}

impl TaskPanicked {
    /// Builds the error from a caught panic payload.
    pub fn from_payload(payload: &(dyn std::any::Any + Send)) -> Self {
        Self {
            message: crate::guard::panic_message(payload),
        }
    }
}
