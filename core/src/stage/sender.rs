//! [`StageSender`]: the sending half of a stage channel.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::Job;
use crate::guard::lock;

use super::Shared;
use super::error::StageError;

/// The sending half of a stage channel. Turn it into runner A's saver with
/// [`on_failure`](Self::on_failure).
pub struct StageSender<T, M> {
    pub(super) shared: Arc<Shared<T, M>>,
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
