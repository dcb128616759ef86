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
            // A late success: the claim lost its lease, but the job has not
            // finished (pending, or claimed again). Accepted once: the job
            // settles below, and every other write of it is fenced after.
            let late = result.is_ok()
                && inner.late_results.accepts()
                && (1..=row.claims).contains(&meta.attempt)
                && matches!(row.slot, Slot::Pending | Slot::Claimed(_));
            if !late {
                return Err(QueueError::Fenced {
                    job: meta.id,
                    attempt: meta.attempt,
                });
            }
            match row.slot {
                // The current holder loses the job: its heartbeat extends
                // nothing, its save is fenced, its release changes nothing.
                Slot::Claimed(_) => inner.unclaim(id),
                _ => inner.unqueue(id),
            }
            inner.late_accepted += 1;
            crate::runner::accepted_late(meta.id);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;

    use super::*;
    use crate::memory::LateResults;

    /// A leased queue (1 s leases) on a clock the test moves.
    fn leased() -> (MemoryQueue<u64, u64, String>, Arc<Mutex<Duration>>) {
        let queue = MemoryQueue::new();
        let moved = Arc::new(Mutex::new(Duration::ZERO));
        let (start, clock) = (Instant::now(), Arc::clone(&moved));
        queue.set_lease_clock(Duration::from_secs(1), move || {
            start + *clock.lock().unwrap()
        });
        queue.set_failure_policy(FailurePolicy::new(
            Duration::from_secs(1),
            Duration::from_secs(1),
        ));
        (queue, moved)
    }

    fn pass(moved: &Mutex<Duration>, by: Duration) {
        *moved.lock().unwrap() += by;
    }

    async fn claim(queue: &MemoryQueue<u64, u64, String>) -> QueueMeta {
        match queue.picker().pick().await.unwrap() {
            Picked::Some(job) => job.meta,
            _ => panic!("nothing claimed"),
        }
    }

    fn status(queue: &MemoryQueue<u64, u64, String>, job: JobId) -> JobStatus {
        queue.state(job).unwrap().status
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_late_success_is_accepted_once_and_the_holder_loses_the_job() {
        let (queue, moved) = leased();
        let job = queue.push(1);
        let slow = claim(&queue).await;
        pass(&moved, Duration::from_secs(10)); // ten lease times
        let holder = claim(&queue).await; // expired on the pick, claimed again
        assert_eq!(holder.id, job);
        let saver = queue.saver();

        // Downgrades of the stale claim are still rejected.
        let failed = saver.save(&Err(ExecError::Failed("x".into())), &slow).await;
        assert!(matches!(failed, Err(QueueError::Fenced { .. })));
        let cancelled = saver.save(&Err(ExecError::Cancelled), &slow).await;
        assert!(matches!(cancelled, Err(QueueError::Fenced { .. })));
        queue
            .picker()
            .release(slow, ReleaseReason::Abandon)
            .await
            .unwrap();
        assert_eq!(queue.heartbeat(&[slow]), 0);
        assert_eq!(status(&queue, job), JobStatus::Running);

        // Its success is kept.
        saver.save(&Ok(10), &slow).await.unwrap();
        assert_eq!(status(&queue, job), JobStatus::Succeeded);
        assert_eq!((queue.late_accepted(), queue.saved_count()), (1, 1));
        assert_eq!((queue.claimed(), queue.settled()), (0, 1));
        // A repeat of it (its reply was lost) is idempotent.
        saver.save(&Ok(10), &slow).await.unwrap();
        assert_eq!(queue.saved_count(), 1);
        // The holder lost the job: no heartbeat, no save, no release.
        assert_eq!(queue.heartbeat(&[holder]), 0);
        let fenced = saver.save(&Ok(20), &holder).await;
        assert!(matches!(fenced, Err(QueueError::Fenced { .. })));
        queue
            .picker()
            .release(holder, ReleaseReason::Abandon)
            .await
            .unwrap();
        assert_eq!(status(&queue, job), JobStatus::Succeeded);
        assert!(queue.pending_ids().is_empty());
        assert_eq!(queue.late_accepted(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn of_two_late_successes_one_is_accepted() {
        let (queue, moved) = leased();
        let job = queue.push(1);
        let first = claim(&queue).await;
        pass(&moved, Duration::from_secs(2));
        let second = claim(&queue).await;
        pass(&moved, Duration::from_secs(2));
        queue.rescue(); // nobody holds it now: queued
        assert_eq!(status(&queue, job), JobStatus::Queued);
        let saver = queue.saver();
        saver.save(&Ok(1), &second).await.unwrap();
        let again = saver.save(&Ok(2), &first).await;
        assert!(matches!(again, Err(QueueError::Fenced { .. })));
        assert_eq!(queue.saved_count(), 1);
        assert_eq!(queue.late_accepted(), 1);
        // Out of line: nothing left to claim, and the source is finished.
        queue.close();
        assert!(matches!(
            queue.picker().pick().await.unwrap(),
            Picked::Exhausted
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_late_success_while_waiting_for_a_retry_settles_the_job() {
        let (queue, moved) = leased();
        let job = queue.push(1);
        let slow = claim(&queue).await;
        pass(&moved, Duration::from_secs(2));
        let next = claim(&queue).await;
        let flaky = Err(ExecError::Failed("flaky".into()));
        queue.saver().save(&flaky, &next).await.unwrap();
        assert_eq!(queue.pending(), 1, "waiting for its retry delay");
        queue.saver().save(&Ok(1), &slow).await.unwrap();
        assert_eq!(status(&queue, job), JobStatus::Succeeded);
        assert_eq!(queue.pending(), 0);
        pass(&moved, Duration::from_secs(5));
        assert!(matches!(
            queue.picker().pick().await.unwrap(),
            Picked::Empty
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn rejecting_late_results_fences_a_stale_success() {
        let (queue, moved) = leased();
        queue.set_late_results(LateResults::Reject);
        let job = queue.push(1);
        let slow = claim(&queue).await;
        pass(&moved, Duration::from_secs(2));
        let holder = claim(&queue).await;
        let late = queue.saver().save(&Ok(1), &slow).await;
        assert!(matches!(late, Err(QueueError::Fenced { .. })));
        assert_eq!(status(&queue, job), JobStatus::Running);
        queue.saver().save(&Ok(2), &holder).await.unwrap();
        assert_eq!((queue.saved_count(), queue.late_accepted()), (1, 0));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_late_child_counts_once_towards_its_parent() {
        let (queue, moved) = leased();
        let (parent, children) = queue.push_tree(
            (0, JobOptions::new()),
            vec![(1, JobOptions::new()), (2, JobOptions::new())],
            None,
        );
        let a = claim(&queue).await;
        let b = claim(&queue).await;
        pass(&moved, Duration::from_secs(2));
        let a_again = claim(&queue).await;
        assert_eq!((a.id, a_again.id), (children[0], children[0]));
        let saver = queue.saver();
        saver.save(&Ok(1), &a).await.unwrap(); // late, while a_again holds it
        assert!(saver.save(&Ok(1), &a_again).await.is_err());
        assert_eq!(status(&queue, parent), JobStatus::Waiting);
        saver.save(&Ok(2), &b).await.unwrap(); // late too: b's lease expired
        assert_eq!(status(&queue, parent), JobStatus::Queued);
        assert_eq!(queue.late_accepted(), 2);
    }
}
