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
//!   and then sees [`Picked::Exhausted`](crate::Picked::Exhausted): B drains and finishes. Give B a
//!   [`Shutdown::downstream`](crate::Shutdown::downstream) so that a drain
//!   signal stops A's picking but lets B finish A's jobs.
//! * A job B releases (abandon) goes back to the *upstream* picker given to
//!   [`channel`], usually A's own picker shared through an `Arc`: the stage
//!   channel keeps no copy of released inputs. On abandon, jobs still in the
//!   channel go back there too.
//! * Once B has abandoned (or its picker is dropped), the channel refuses
//!   sends: runner A's save of such a job fails with
//!   [`ErrorClass::DownstreamGone`](crate::ErrorClass::DownstreamGone), so A
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
//! # impl pjp_core::Executor for Witness { type Input = u64; type Output = Vec<u64>; type Error = String;
//! #   fn execute(&self, seed: u64, _: &pjp_core::JobContext) -> Result<Vec<u64>, String> { Ok(vec![seed; 4]) } }
//! # impl pjp_core::Executor for Prove { type Input = Vec<u64>; type Output = Vec<u64>; type Error = String;
//! #   fn execute(&self, w: Vec<u64>, _: &pjp_core::JobContext) -> Result<Vec<u64>, String> { Ok(w) } }
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
//! assert_eq!(a_report?.counts.succeeded, 100);
//! assert_eq!(b_report?.counts.succeeded, 100);
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};

use crate::guard::lock;
use crate::{Job, JobMeta, JobPicker, ReleaseReason};

mod error;
mod picker;
mod saver;
mod sender;

pub use error::StageError;
pub use picker::StagePicker;
pub use saver::{StageSaveError, StageSaver};
pub use sender::{SendError, StageSender};

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

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Object-safe view of an upstream picker's `release`.
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
            JobPicker::release(self, meta, reason)
                .await
                .map_err(|e| StageError::Upstream(Box::new(e)))
        })
    }
}
