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
//!   channel go back there too.
//! * Once B has abandoned (or its picker is dropped), the channel refuses
//!   sends: runner A's save of such a job fails with
//!   [`ErrorClass::DownstreamGone`], so A
//!   releases the job (counted as released, not succeeded), stops picking and
//!   finishes with [`StopReason::DownstreamGone`](crate::StopReason::DownstreamGone).
//!   Checking for the abandon and queueing a job happen under one lock, so a
//!   job is never queued after the channel was emptied.
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
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};

use crate::guard::lock;
use crate::{ErrorClass, Job, JobMeta, JobPicker, JobResult, JobSaver, Picked, ReleaseReason};

/// The channel's queue and its two flags, under one lock: a send checks the
/// flags and queues its job atomically with respect to an abandon's drain.
struct State<T, M> {
    jobs: VecDeque<Job<T, M>>,
    /// No sender will send again: the picker drains what is queued.
    closed: bool,
    /// The downstream stage abandoned or went away: sends are refused.
    abandoned: bool,
}

struct Shared<T, M> {
    state: Mutex<State<T, M>>,
    /// Where jobs go when the downstream stage cannot take them.
    upstream: Arc<dyn Release<M>>,
    /// Free slots: a sender takes one per job, the picker gives it back.
    slots: Semaphore,
    items: Notify,
    senders: AtomicUsize,
}

impl<T, M> Shared<T, M> {
    fn close(&self) {
        lock(&self.state).closed = true;
        self.items.notify_waiters();
    }

    /// Refuses further sends and takes every queued job.
    fn abandon(&self) -> VecDeque<Job<T, M>> {
        let jobs = {
            let mut state = lock(&self.state);
            state.abandoned = true;
            std::mem::take(&mut state.jobs)
        };
        self.slots.close();
        self.items.notify_waiters();
        jobs
    }

    /// Gives a job the downstream stage will never run back to the upstream picker.
    async fn hand_back(&self, meta: M, reason: ReleaseReason) -> Result<(), StageError>
    where
        M: 'static,
    {
        self.upstream.release(meta, reason).await
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
        state: Mutex::new(State {
            jobs: VecDeque::with_capacity(capacity.max(1)),
            closed: false,
            abandoned: false,
        }),
        upstream: Arc::new(upstream),
        slots: Semaphore::new(capacity.max(1)),
        items: Notify::new(),
        senders: AtomicUsize::new(1),
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

/// A job the channel refused, with the reason: the caller still owns it (a
/// runner releases it to its picker).
pub struct SendError<T, M> {
    /// The refused job.
    pub job: Job<T, M>,
    /// Why: [`StageError::Closed`] or [`StageError::DownstreamGone`].
    pub error: StageError,
}

impl<T, M> fmt::Debug for SendError<T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T, M> fmt::Display for SendError<T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage channel refused a job: {}", self.error)
    }
}

impl<T, M> std::error::Error for SendError<T, M> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T, M> StageSender<T, M> {
    /// Sends a job, waiting for room. A closed channel, or one whose
    /// downstream stage is gone, refuses it and gives it back.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: a dropped send has sent nothing.
    pub async fn send(&self, job: Job<T, M>) -> Result<(), SendError<T, M>> {
        let refuse = |job, error| Err(SendError { job, error });
        let Ok(permit) = self.shared.slots.acquire().await else {
            // The downstream stage abandoned or went away while we waited.
            return refuse(job, StageError::DownstreamGone);
        };
        let mut state = lock(&self.shared.state);
        if state.abandoned {
            return refuse(job, StageError::DownstreamGone);
        }
        if state.closed {
            return refuse(job, StageError::Closed);
        }
        // The slot is returned by the picker when it takes the job.
        permit.forget();
        state.jobs.push_back(job);
        drop(state);
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
    /// The downstream stage abandoned or went away: it will take no more jobs.
    #[error("the downstream stage is gone")]
    DownstreamGone,
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
            Ok(output) => self
                .sender
                .send(Job::new(output.clone(), meta.clone()))
                .await
                .map_err(|refused| StageSaveError::Stage(refused.error)),
            Err(_) => self
                .failures
                .save(result, meta)
                .await
                .map_err(StageSaveError::Failure),
        }
    }

    fn is_retryable(&self, error: &Self::Error) -> bool {
        self.classify(error) == ErrorClass::Transient
    }

    fn classify(&self, error: &Self::Error) -> ErrorClass {
        match error {
            StageSaveError::Stage(StageError::DownstreamGone) => ErrorClass::DownstreamGone,
            StageSaveError::Stage(_) => ErrorClass::Permanent,
            StageSaveError::Failure(e) => self.failures.classify(e),
        }
    }
}

/// The receiving half of a stage channel: runner B's picker.
///
/// When runner B abandons, the picker hands every job still in the channel
/// back to the upstream picker given to [`channel`], and the channel refuses
/// every later send.
pub struct StagePicker<T, M> {
    shared: Arc<Shared<T, M>>,
}

impl<T, M> StagePicker<T, M> {
    /// Jobs waiting in the channel.
    pub fn len(&self) -> usize {
        lock(&self.shared.state).jobs.len()
    }

    /// Whether no job is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T, M> Drop for StagePicker<T, M> {
    fn drop(&mut self) {
        // Nothing will take jobs any more: senders are refused. A runner calls
        // `on_abandon` when it stops early, so the queue is normally empty
        // here; jobs left behind can only wait for their leases to expire.
        let stranded = self.shared.abandon();
        if !stranded.is_empty() {
            tracing::error!(
                jobs = stranded.len(),
                "stage picker dropped with jobs queued; they were never handed back"
            );
        }
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

    /// Waits for a job; [`Picked::Exhausted`] once closed and empty, or abandoned.
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
            {
                let mut state = lock(&self.shared.state);
                if let Some(job) = state.jobs.pop_front() {
                    drop(state);
                    self.shared.slots.add_permits(1);
                    return Ok(Picked::Some(job));
                }
                if state.closed || state.abandoned {
                    return Ok(Picked::Exhausted);
                }
            }
            notified.await;
        }
    }

    async fn release(&self, meta: M) -> Result<(), StageError> {
        self.shared.hand_back(meta, ReleaseReason::Abandon).await
    }

    async fn release_for(&self, meta: M, reason: ReleaseReason) -> Result<(), StageError> {
        self.shared.hand_back(meta, reason).await
    }

    /// Stops taking jobs: refuses later sends (their senders release the jobs)
    /// and hands back every job still queued.
    async fn on_abandon(&self) {
        for job in self.shared.abandon() {
            let id = job.meta.job_id();
            if let Err(error) = self
                .shared
                .hand_back(job.meta, ReleaseReason::Abandon)
                .await
            {
                tracing::error!(job = %id, %error, "stage channel: could not hand a queued job back upstream");
            }
        }
    }

    fn is_retryable(&self, _error: &StageError) -> bool {
        false
    }

    fn pick_is_cancel_safe(&self) -> bool {
        true
    }
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Object-safe view of an upstream picker's `release_for`.
trait Release<M>: Send + Sync + 'static {
    fn release(&self, meta: M, reason: ReleaseReason) -> BoxFuture<'_, Result<(), StageError>>;
}

impl<P: JobPicker> Release<P::Metadata> for P {
    fn release(
        &self,
        meta: P::Metadata,
        reason: ReleaseReason,
    ) -> BoxFuture<'_, Result<(), StageError>> {
        Box::pin(async move {
            JobPicker::release_for(self, meta, reason)
                .await
                .map_err(|e| StageError::Upstream(Box::new(e)))
        })
    }
}
