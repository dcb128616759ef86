//! Stage channels: chain runners so that one stage's saver feeds the next
//! stage's picker (witness-vector generator → GPU prover).
//!
//! ```text
//!  runner A: picker ─▶ executor ─▶ StageSaver ──(bounded stage channel)──▶ StagePicker ─▶ executor ─▶ saver :runner B
//!                                      │ failures                               │ releases
//!                                      ▼                                        ▼
//!                                 failure saver                          upstream picker
//! ```
//!
//! * Successful outputs of A become B's inputs, with the same metadata; A's
//!   failures go to a saver of your choice (they never reach B).
//! * The channel is bounded: when B falls behind, A's saves wait, so A's
//!   workers stop, so A stops picking. Memory stays bounded.
//! * When every [`StageSender`]/[`StageSaver`] is dropped or
//!   [`close`](StageSender::close)d (runner A finished: run it with
//!   [`JobRunner::into_run`](crate::JobRunner::into_run)), B picks what is left
//!   and then sees [`Picked::Exhausted`]: B drains and finishes. Give B a
//!   [`Shutdown::downstream`](crate::Shutdown::downstream) so that a drain
//!   signal stops A's picking but lets B finish A's jobs.
//! * A job B releases (abandon) goes back to the *upstream* picker given to
//!   [`channel`], usually A's own picker shared through an `Arc`: the stage
//!   channel keeps no copy of released inputs. On abandon, jobs still in the
//!   channel and jobs A sends afterwards go back there too.
//!
//! ```
//! use std::sync::Arc;
//! use pjp_core::{stage, JobRunner, Shutdown};
//! use pjp_testkit::MemoryQueue;
//! # struct Witness; struct Prove;
//! # impl pjp_core::Executor for Witness { type Input = u64; type Output = Vec<u64>; type Metadata = pjp_testkit::QueueMeta; type Error = String;
//! #   fn execute(&self, seed: u64, _: &Self::Metadata) -> Result<Vec<u64>, String> { Ok(vec![seed; 4]) } }
//! # impl pjp_core::Executor for Prove { type Input = Vec<u64>; type Output = Vec<u64>; type Metadata = pjp_testkit::QueueMeta; type Error = String;
//! #   fn execute(&self, w: Vec<u64>, _: &Self::Metadata) -> Result<Vec<u64>, String> { Ok(w) } }
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! let jobs: MemoryQueue<u64, Vec<u64>, String> = MemoryQueue::closed_with(0..100);
//! let results = jobs.clone();
//! let origin = Arc::new(jobs.picker());
//!
//! let (tx, rx) = stage::channel::<Vec<u64>, _, _>(4, Arc::clone(&origin));
//! // A: seeds → witness vectors; failures go straight to the results.
//! let a = JobRunner::builder(origin, Witness, tx.on_failure(results.saver()))
//!     .stage("witness")
//!     .build()?;
//! // B: witness vectors → proofs.
//! let b = JobRunner::builder(rx, Prove, results.saver()).stage("prove").build()?;
//!
//! let runtime = pjp_runtime_tokio::TokioRuntime::current();
//! let shutdown = Shutdown::new();
//! // `into_run` drops A when it ends, closing the channel: B finishes once it is empty.
//! let (a_report, b_report) = tokio::join!(
//!     a.into_run(&runtime, shutdown.clone()),
//!     b.run(&runtime, shutdown.downstream()),
//! );
//! assert_eq!(a_report?.succeeded, 100);
//! assert_eq!(b_report?.succeeded, 100);
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};

use crate::runner::lock_unpoisoned as lock;
use crate::{Job, JobMeta, JobPicker, JobResult, JobSaver, Picked};

struct Shared<T, M> {
    queue: Mutex<VecDeque<Job<T, M>>>,
    /// Where jobs go when the downstream stage cannot take them.
    upstream: Arc<dyn Release<M>>,
    /// Set when the downstream stage abandons or goes away: sends hand their
    /// job back upstream instead of queueing it.
    abandoned: AtomicBool,
    /// Free slots: a sender takes one per job, the picker gives it back.
    slots: Semaphore,
    items: Notify,
    senders: AtomicUsize,
    closed: AtomicBool,
}

impl<T, M> Shared<T, M> {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.items.notify_waiters();
    }

    /// Gives a job the downstream stage will never run back to the upstream picker.
    async fn hand_back(&self, meta: M) -> Result<(), StageError>
    where
        M: 'static,
    {
        self.upstream.release(meta).await
    }
}

/// Creates a stage channel holding at most `capacity` jobs (at least 1).
///
/// `upstream` takes back jobs the downstream stage releases or abandons: the
/// first stage's picker, shared through an `Arc`. The channel keeps no copy of
/// a released input, so the job goes back to where it came from.
pub fn channel<T, M, U>(capacity: usize, upstream: U) -> (StageSender<T, M>, StagePicker<T, M>)
where
    M: JobMeta,
    U: JobPicker<Metadata = M>,
{
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::with_capacity(capacity.max(1))),
        upstream: Arc::new(upstream),
        abandoned: AtomicBool::new(false),
        slots: Semaphore::new(capacity.max(1)),
        items: Notify::new(),
        senders: AtomicUsize::new(1),
        closed: AtomicBool::new(false),
    });
    (
        StageSender {
            shared: Arc::clone(&shared),
        },
        StagePicker { shared },
    )
}

/// The sending half of a stage channel. Turn it into runner A's saver with
/// [`on_failure`](Self::on_failure).
pub struct StageSender<T, M> {
    shared: Arc<Shared<T, M>>,
}

impl<T, M> StageSender<T, M> {
    /// Sends a job, waiting for room.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: a dropped send has sent nothing.
    pub async fn send(&self, job: Job<T, M>) -> Result<(), StageError>
    where
        M: 'static,
    {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(StageError::Closed);
        }
        let Ok(permit) = self.shared.slots.acquire().await else {
            // The downstream stage abandoned or went away while we waited.
            return self.shared.hand_back(job.meta).await;
        };
        if self.shared.abandoned.load(Ordering::Acquire) {
            return self.shared.hand_back(job.meta).await;
        }
        // The slot is returned by the picker when it takes the job.
        permit.forget();
        lock(&self.shared.queue).push_back(job);
        self.shared.items.notify_one();
        Ok(())
    }

    /// Closes the channel for every sender: the picker drains what is queued,
    /// then reports the source exhausted.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Makes runner A's saver: outputs go down the channel, failures to `failures`.
    pub fn on_failure<F>(self, failures: F) -> StageSaver<T, M, F> {
        StageSaver {
            sender: self,
            failures,
        }
    }
}

impl<T, M> Clone for StageSender<T, M> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T, M> Drop for StageSender<T, M> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.close();
        }
    }
}

/// Runner A's saver: successful outputs go to the next stage, failures to `F`.
pub struct StageSaver<T, M, F> {
    sender: StageSender<T, M>,
    failures: F,
}

impl<T, M, F> StageSaver<T, M, F> {
    /// Closes the channel (as dropping every sender does).
    pub fn close(&self) {
        self.sender.close();
    }
}

/// Why a stage channel operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StageError {
    /// The channel was closed.
    #[error("the stage channel is closed")]
    Closed,
    /// The upstream picker failed to take a released job back.
    #[error("the upstream picker failed to release the job: {0}")]
    Upstream(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a [`StageSaver`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StageSaveError<E> {
    /// Sending the output down the channel failed.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// The failure saver failed.
    #[error("saving a failed job: {0}")]
    Failure(#[source] E),
}

impl<T, M, F> JobSaver for StageSaver<T, M, F>
where
    T: Clone + Send + Sync + 'static,
    M: JobMeta,
    F: JobSaver<Output = T, Metadata = M>,
{
    type Output = T;
    type Failure = F::Failure;
    type Metadata = M;
    type Error = StageSaveError<F::Error>;

    async fn save(&self, result: &JobResult<T, F::Failure>, meta: &M) -> Result<(), Self::Error> {
        match result {
            Ok(output) => Ok(self
                .sender
                .send(Job::new(output.clone(), meta.clone()))
                .await?),
            Err(_) => self
                .failures
                .save(result, meta)
                .await
                .map_err(StageSaveError::Failure),
        }
    }

    fn is_retryable(&self, error: &Self::Error) -> bool {
        match error {
            StageSaveError::Stage(_) => false,
            StageSaveError::Failure(e) => self.failures.is_retryable(e),
        }
    }
}

/// The receiving half of a stage channel: runner B's picker.
///
/// When runner B abandons, the picker hands every job still in the channel, and
/// every job runner A sends afterwards, back to the upstream picker given to
/// [`channel`].
pub struct StagePicker<T, M> {
    shared: Arc<Shared<T, M>>,
}

impl<T, M> StagePicker<T, M> {
    /// Jobs waiting in the channel.
    pub fn len(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// Whether no job is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T, M> Drop for StagePicker<T, M> {
    fn drop(&mut self) {
        // Nothing will take jobs any more: senders hand them back upstream.
        self.shared.abandoned.store(true, Ordering::Release);
        self.shared.slots.close();
    }
}

impl<T, M> JobPicker for StagePicker<T, M>
where
    T: Send + 'static,
    M: JobMeta,
{
    type Input = T;
    type Metadata = M;
    type Error = StageError;

    /// Waits for a job; [`Picked::Exhausted`] once closed and empty.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: a dropped pick has taken nothing.
    async fn pick(&self) -> Result<Picked<Job<T, M>>, StageError> {
        loop {
            let notified = self.shared.items.notified();
            tokio::pin!(notified);
            // Register before checking, so a send or close in between wakes us.
            notified.as_mut().enable();
            if let Some(job) = lock(&self.shared.queue).pop_front() {
                self.shared.slots.add_permits(1);
                return Ok(Picked::Some(job));
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return Ok(Picked::Exhausted);
            }
            notified.await;
        }
    }

    async fn release(&self, meta: M) -> Result<(), StageError> {
        self.shared.hand_back(meta).await
    }

    /// Stops taking jobs: wakes blocked senders, which hand their jobs back
    /// upstream, and hands back every job still queued.
    async fn on_abandon(&self) {
        self.shared.abandoned.store(true, Ordering::Release);
        self.shared.slots.close();
        loop {
            let Some(job) = lock(&self.shared.queue).pop_front() else {
                break;
            };
            let id = job.meta.job_id();
            if let Err(error) = self.shared.hand_back(job.meta).await {
                tracing::error!(job = %id, %error, "stage channel: could not hand a queued job back upstream");
            }
        }
    }

    fn is_retryable(&self, _error: &StageError) -> bool {
        false
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Object-safe view of an upstream picker's `release`.
trait Release<M>: Send + Sync + 'static {
    fn release(&self, meta: M) -> BoxFuture<'_, Result<(), StageError>>;
}

impl<P: JobPicker> Release<P::Metadata> for P {
    fn release(&self, meta: P::Metadata) -> BoxFuture<'_, Result<(), StageError>> {
        Box::pin(async move {
            JobPicker::release(self, meta)
                .await
                .map_err(|e| StageError::Upstream(Box::new(e)))
        })
    }
}
