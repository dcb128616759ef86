//! [`StagePicker`]: runner B's picker, draining the channel.

use std::sync::Arc;

use crate::guard::lock;
use crate::{ErrorClass, Job, JobMeta, JobPicker, Picked, ReleaseReason};

use super::{Shared, StageError};

/// The receiving half of a stage channel: runner B's picker.
///
/// When runner B abandons, the picker hands every job still in the channel
/// back to the upstream picker given to [`channel`](super::channel), and the channel refuses
/// every later send.
pub struct StagePicker<T, M> {
    pub(super) shared: Arc<Shared<T, M>>,
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

    async fn release(&self, meta: M, reason: ReleaseReason) -> Result<(), StageError> {
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

    fn classify(&self, _error: &StageError) -> ErrorClass {
        ErrorClass::Permanent
    }

    fn pick_is_cancel_safe(&self) -> bool {
        true
    }
}
