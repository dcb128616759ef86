//! [`QueueSaver`]: the saving half.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The saving half of a [`MemoryQueue`].
pub struct QueueSaver<I, O = (), F = std::convert::Infallible> {
    pub(super) shared: Arc<Shared<I, O, F>>,
}

impl<I, O, F> Clone for QueueSaver<I, O, F> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<I, O, F> fmt::Debug for QueueSaver<I, O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueSaver").finish_non_exhaustive()
    }
}

impl<I, O, F> JobSaver for QueueSaver<I, O, F>
where
    I: Send + 'static,
    O: Clone + Send + Sync + 'static,
    F: Clone + Send + Sync + 'static,
{
    type Output = O;
    type Failure = F;
    type Metadata = QueueMeta;
    type Error = QueueError;

    async fn save(&self, result: &JobResult<O, F>, meta: &QueueMeta) -> Result<(), QueueError> {
        let mut inner = self.shared.lock();
        let leased = inner.lease.is_some();
        let id = meta.id.get();
        let Some(row) = inner.row(id).copied() else {
            if leased {
                return Err(QueueError::UnknownJob(meta.id));
            }
            // A plain queue stores any result, also of jobs picked elsewhere
            // (a results queue fed by another stage).
            inner.saved.push(SavedJob {
                meta: *meta,
                result: result.clone(),
            });
            return Ok(());
        };
        let held = row.slot == Slot::Claimed(meta.attempt);
        if leased && !held {
            if row.last_write == Some(meta.attempt) && !matches!(row.slot, Slot::Claimed(_)) {
                // A retry of a write that went through: idempotent.
                return Ok(());
            }
            return Err(QueueError::Fenced {
                job: meta.id,
                attempt: meta.attempt,
            });
        }
        if held {
            inner.unclaim(id);
        }
        inner.saved.push(SavedJob {
            meta: *meta,
            result: result.clone(),
        });
        // Borrowed, not cloned: this is every save's path.
        let next = match (result, inner.failures.as_ref()) {
            (Ok(_), _) | (Err(_), None) => Next::Settle(Slot::Saved(meta.attempt), 0),
            (Err(ExecError::Cancelled), Some(_)) => Next::Requeue(Duration::ZERO, 0),
            (Err(error), Some(policy)) => {
                if policy.permanent.as_ref().is_some_and(|p| p(error)) {
                    Next::Settle(Slot::Settled(JobStatus::Failed), 1)
                } else if row.attempts + 1 >= row.options.max_attempts {
                    Next::Settle(Slot::Settled(JobStatus::Dead), 1)
                } else {
                    Next::Requeue(policy.delay(row.attempts), 1)
                }
            }
        };
        let Some(row) = inner.row_mut(id) else {
            return Ok(());
        };
        row.last_write = Some(meta.attempt);
        match next {
            Next::Settle(slot, used) => {
                let was_settled = matches!(row.slot, Slot::Saved(_) | Slot::Settled(_));
                row.slot = slot;
                row.attempts += used;
                if !was_settled {
                    inner.settled += 1;
                    // A failure saved without a policy settles the job, but
                    // its parent cannot use it: the tree fails.
                    inner.settle_parent(id, matches!(slot, Slot::Saved(_)) && result.is_ok());
                }
            }
            Next::Requeue(delay, used) => {
                row.attempts += used;
                inner.enqueue(id, delay);
            }
        }
        Ok(())
    }

    fn classify(&self, error: &QueueError) -> ErrorClass {
        error.class()
    }
}

/// What a save does to its job.
enum Next {
    /// Settle in this slot, using this many attempts.
    Settle(Slot, u32),
    /// Back in line after the delay, using this many attempts.
    Requeue(Duration, u32),
}
