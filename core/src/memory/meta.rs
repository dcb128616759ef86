//! What a queue tells about its jobs: their metadata, saves, states and errors.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The metadata of a [`MemoryQueue`] job: its id and which attempt this is.
///
/// The attempt doubles as the claim's fencing token when the queue hands out
/// leases ([`MemoryQueue::set_lease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueMeta {
    /// The job.
    pub id: JobId,
    /// 1 for the first pick, +1 for each pick after a release.
    pub attempt: u32,
}

impl JobMeta for QueueMeta {
    fn job_id(&self) -> JobId {
        self.id
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// One save a [`QueueSaver`] received.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedJob<O, F> {
    /// The job.
    pub meta: QueueMeta,
    /// What was saved.
    pub result: JobResult<O, F>,
}

/// Errors of the queue halves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// A release named a job this queue never handed out.
    #[error("job {0} is not in this queue")]
    UnknownJob(JobId),
    /// A leased queue refused a save or release from a claim that no longer
    /// holds the job: its lease expired and the job was handed out again (or
    /// it was already saved). Not worth retrying.
    #[error("job {job}: attempt {attempt} no longer holds the lease")]
    Fenced {
        /// The job.
        job: JobId,
        /// The stale attempt.
        attempt: u32,
    },
}

impl QueueError {
    /// Whether retrying the same call could succeed. Neither error can.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// What the error means to the runner: a fenced write is
    /// [`ErrorClass::LostClaim`] (the job is someone else's now: the result
    /// is dropped and counted as fenced), as for the PostgreSQL queue; an
    /// unknown job is [`ErrorClass::Permanent`].
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Fenced { .. } => ErrorClass::LostClaim,
            Self::UnknownJob(_) => ErrorClass::Permanent,
        }
    }
}

/// What a job is in the queue right now ([`MemoryQueue::state`]), in the
/// durable queue's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobStatus {
    /// Waiting to be claimed (perhaps after a retry delay).
    Queued,
    /// Claimed and not yet saved, released or expired.
    Running,
    /// Saved with an output (or, without a [`FailurePolicy`], with any result).
    Succeeded,
    /// Its executor failed for good (a permanent failure).
    Failed,
    /// Dead-lettered: its attempts or its lost-lease budget are spent (or,
    /// for a parent, a child ended dead or failed).
    Dead,
    /// A parent waiting for its children to succeed.
    Waiting,
}

/// A job's state: its status and its two budgets' counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobState {
    /// Where it stands.
    pub status: JobStatus,
    /// Executor failures recorded (a retry or a permanent failure uses one).
    pub attempts: u32,
    /// Leases that expired and were reclaimed (a crashed or cut-off worker's
    /// claim). They use no attempt: the job was not at fault, its worker was.
    pub lost_leases: u32,
    /// Claims so far; the latest is the fencing token ([`QueueMeta::attempt`]).
    pub claims: u32,
}
