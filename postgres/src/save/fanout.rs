//! [`FanOutSaver`]: a job's save that creates more jobs, atomically with its
//! own fenced completion (dynamic fan-out).

use std::fmt;

use pjp_core::{ErrorClass, JobResult, JobSaver};

use crate::enqueue::NewJob;
use crate::error::QueueError;
use crate::job::PgJob;
use crate::saver::PgSaver;
use crate::sql::Completion;
use crate::state::WorkerShared;
use crate::write;

/// A job's output and the jobs its save creates ([`FanOutSaver`]).
///
/// * [`Spawn::jobs`]: plain jobs;
/// * [`Spawn::tree`]: a new waiting parent and its children (a witness
///   generator creating N basic proofs and their aggregation);
/// * [`Spawn::join`]: the new jobs (or the new parent) become children of an
///   existing waiting job, whose count grows by as many: a group whose size
///   is known only when its members are generated.
#[derive(Debug, Clone)]
pub struct FanOut<O> {
    /// What the job itself produced.
    pub output: O,
    /// What its save creates.
    pub spawn: Spawn,
}

impl<O> FanOut<O> {
    /// An output that creates nothing.
    pub fn only(output: O) -> Self {
        Self {
            output,
            spawn: Spawn::default(),
        }
    }
}

impl<O: AsRef<[u8]>> AsRef<[u8]> for FanOut<O> {
    fn as_ref(&self) -> &[u8] {
        self.output.as_ref()
    }
}

/// Jobs created by a save ([`FanOut`]).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Spawn {
    parent: Option<NewJob>,
    children: Vec<NewJob>,
    group: Option<i64>,
}

impl Spawn {
    /// These jobs.
    pub fn jobs(jobs: Vec<NewJob>) -> Self {
        Self {
            children: jobs,
            ..Self::default()
        }
    }

    /// A parent that waits for `children` (claimable once the last one
    /// succeeds), and the children.
    pub fn tree(parent: NewJob, children: Vec<NewJob>) -> Self {
        Self {
            parent: Some(parent),
            children,
            group: None,
        }
    }

    /// Makes the new jobs (the new parent, for a tree) children of `group`, a
    /// job that is `waiting`: its count of children to wait for grows by as
    /// many, in the same transaction. Make the job that saves a child of
    /// `group` too, and the group cannot become claimable before its
    /// generated members exist (the save adds them before it counts itself
    /// done).
    pub fn join(mut self, group: i64) -> Self {
        self.group = Some(group);
        self
    }

    /// Whether it creates nothing.
    pub fn is_empty(&self) -> bool {
        self.parent.is_none() && self.children.is_empty()
    }

    /// Jobs added to the group: the new parent, or the jobs.
    fn members(&self) -> usize {
        if self.parent.is_some() {
            1
        } else {
            self.children.len()
        }
    }
}

/// Completes jobs whose output is a [`FanOut`]: the completion and every job
/// it spawns commit in one transaction, fenced like every completion. A
/// stale worker's save (its lease was lost) is rejected whole: the job is
/// not completed and none of its jobs exist, so a retry by the current
/// holder creates them once. A stale worker's success accepted late
/// ([`PgQueueBuilder::late_results`](crate::PgQueueBuilder::late_results))
/// commits whole, once: the holder's fan-out is then rejected whole.
///
/// Get one from [`PgWorker::fan_out_saver`](crate::PgWorker::fan_out_saver).
/// Failures complete as with [`PgSaver`] and spawn nothing.
pub struct FanOutSaver<O, F> {
    pub(crate) shared: std::sync::Arc<WorkerShared>,
    pub(crate) inner: PgSaver<O, F>,
}

impl<O, F> Clone for FanOutSaver<O, F> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<O, F> fmt::Debug for FanOutSaver<O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOutSaver")
            .field("worker", &self.shared.config.id)
            .finish_non_exhaustive()
    }
}

impl<O, F> FanOutSaver<O, F>
where
    O: AsRef<[u8]> + Send + Sync,
    F: fmt::Display + Send + Sync,
{
    async fn save_one(
        &self,
        result: &JobResult<FanOut<O>, F>,
        job: PgJob,
    ) -> Result<(), QueueError> {
        let finish = self
            .inner
            .finish_parts(result.as_ref().map(|f| &f.output), job)
            .await?;
        let spawn = match result {
            Ok(fan) if finish.kind == Completion::Succeeded && !fan.spawn.is_empty() => &fan.spawn,
            _ => {
                let mut outcome =
                    write::complete(&self.shared, std::slice::from_ref(&finish)).await;
                return outcome.pop().map_or(Ok(()), |done| done.map(drop));
            }
        };
        let queue = &self.shared.queue;
        let mut tx = queue.inner.pool.begin().await?;
        if let Some(group) = spawn.group {
            // Grown before this job's completion counts it done, so the group
            // never reaches zero with members still to come.
            let members = i32::try_from(spawn.members())
                .map_err(|_| QueueError::invalid("fan-out", "more than 2^31 jobs"))?;
            let grown: Option<i64> = sqlx::query_scalar(&queue.inner.sql.grow_group)
                .bind(group)
                .bind(members)
                .fetch_optional(&mut *tx)
                .await?;
            if grown.is_none() {
                return Err(QueueError::invalid(
                    "fan-out",
                    format!("job {group} is not waiting: its group is settled or gone"),
                ));
            }
        }
        let one = std::slice::from_ref(&finish);
        let (mut written, woken) = write::complete_on(&mut tx, &self.shared, one).await;
        let outcome = written
            .pop()
            .ok_or_else(|| QueueError::invalid("fan-out", "the completion wrote no outcome"))?;
        if !matches!(&outcome, Ok(done) if !done.repeat) {
            // Fenced or failed: the transaction rolls back when dropped, and
            // with it the group's count; nothing was created. Or a repeat:
            // this claim's earlier save committed (its reply was lost) and
            // its jobs exist; roll back, spawning nothing twice.
            write::account(&self.shared, one, std::slice::from_ref(&outcome));
            return outcome.map(drop);
        }
        let (parent, children) = (spawn.parent.clone(), spawn.children.clone());
        let children_parent = match parent {
            Some(parent) => {
                let waiting_on = i32::try_from(children.len())
                    .map_err(|_| QueueError::invalid("fan-out", "more than 2^31 children"))?;
                let parent = NewJob {
                    parent_id: spawn.group,
                    waiting_on,
                    ..parent
                };
                let created = queue.enqueue_in(&mut tx, vec![parent]).await?;
                created.first().map(|p| p.id)
            }
            None => spawn.group,
        };
        let children = children
            .into_iter()
            .map(|child| NewJob {
                parent_id: children_parent,
                ..child
            })
            .collect();
        queue.enqueue_in(&mut tx, children).await?;
        tx.commit().await?;
        // Counted and woken only now: the commit could still have failed,
        // and before it a woken worker would find nothing.
        write::account(&self.shared, one, std::slice::from_ref(&outcome));
        write::wake_parents(&self.shared, woken).await;
        Ok(())
    }
}

impl<O, F> JobSaver for FanOutSaver<O, F>
where
    O: AsRef<[u8]> + Send + Sync + 'static,
    F: fmt::Display + Send + Sync + 'static,
{
    type Output = FanOut<O>;
    type Failure = F;
    type Metadata = PgJob;
    type Error = QueueError;

    /// Completes the job and creates the jobs it spawns in one fenced
    /// transaction.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: the completion and the spawned jobs commit together or
    /// not at all; a repeat by the same claim after a commit whose reply was
    /// lost succeeds without spawning twice.
    async fn save(&self, result: &JobResult<FanOut<O>, F>, meta: &PgJob) -> Result<(), QueueError> {
        self.save_one(result, *meta).await
    }

    fn classify(&self, error: &QueueError) -> ErrorClass {
        error.class()
    }
}
