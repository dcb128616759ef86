//! [`MemoryQueue`]: an in-memory job queue with picker and saver halves.
//!
//! A production part, not only a test double: a single-process component (the
//! reference prover's embedded run) uses it as its queue, and `pjp-testkit`
//! builds its checks on it. With [`MemoryQueue::set_lease`] it models a durable
//! queue's leases and fencing.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::{Job, JobId, JobMeta, JobPicker, JobResult, JobSaver, Picked, Runtime};

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
}

/// Where a job stands in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Claimed(u32),
    Saved(u32),
}

/// The clock a leased queue reads, and how long a claim lasts.
struct Lease {
    ttl: Duration,
    clock: Box<dyn Fn() -> Instant + Send + Sync>,
}

struct Inner<I, O, F> {
    /// Inputs by job id (ids are dense indexes), kept so a released job can be
    /// handed out again.
    inputs: Vec<I>,
    attempts: Vec<u32>,
    slots: Vec<Slot>,
    pending: VecDeque<u64>,
    saved: Vec<SavedJob<O, F>>,
    closed: bool,
    lease: Option<Lease>,
    /// Claims in the order they were made, with their deadlines (monotonic,
    /// since every claim lasts `ttl`). Stale entries are skipped.
    leases: VecDeque<(Instant, u64, u32)>,
    claimed: usize,
    reclaimed: u64,
}

impl<I, O, F> Inner<I, O, F> {
    fn push(&mut self, input: I) -> u64 {
        let id = self.inputs.len() as u64;
        self.inputs.push(input);
        self.attempts.push(0);
        self.slots.push(Slot::Pending);
        self.pending.push_back(id);
        id
    }

    fn slot(&mut self, id: JobId) -> Option<&mut Slot> {
        usize::try_from(id.get())
            .ok()
            .and_then(|i| self.slots.get_mut(i))
    }

    /// Hands expired claims back to the pending queue (leased queues only).
    fn reclaim_expired(&mut self) {
        let Some(lease) = &self.lease else { return };
        let now = (lease.clock)();
        while let Some(&(deadline, id, attempt)) = self.leases.front() {
            if deadline > now {
                break;
            }
            self.leases.pop_front();
            let Some(slot) = usize::try_from(id).ok().and_then(|i| self.slots.get_mut(i)) else {
                continue;
            };
            if *slot == Slot::Claimed(attempt) {
                *slot = Slot::Pending;
                self.claimed = self.claimed.saturating_sub(1);
                self.reclaimed += 1;
                self.pending.push_back(id);
            }
        }
    }

    /// Whether a picker should report the source exhausted: closed, nothing
    /// pending, and (when leased) no claim outstanding that could expire.
    fn exhausted(&self) -> bool {
        self.closed && self.pending.is_empty() && (self.lease.is_none() || self.claimed == 0)
    }
}

struct Shared<I, O, F> {
    inner: Mutex<Inner<I, O, F>>,
}

impl<I, O, F> Shared<I, O, F> {
    fn lock(&self) -> MutexGuard<'_, Inner<I, O, F>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An in-memory job queue: push inputs, hand [`picker`](Self::picker) and
/// [`saver`](Self::saver) to a runner, then inspect what was
/// [`saved`](Self::saved).
///
/// A *closed* queue reports [`Picked::Exhausted`] once empty, so a runner over it
/// finishes by itself; an open one reports [`Picked::Empty`] and the runner backs
/// off. Released jobs go back to the front.
///
/// By default a claim lasts until the job is saved or released, and every save
/// is stored (a broken runner that saves twice shows up in [`saved`](Self::saved)).
/// [`set_lease`](Self::set_lease) turns claims into leases with fencing, like a
/// durable database queue: see there.
///
/// The queue lives outside any runner (clones share it), so in a simulation it
/// survives the crash of the node that runs the runner.
///
/// ```
/// use pjp_core::memory::MemoryQueue;
///
/// let queue: MemoryQueue<u64, u64> = MemoryQueue::closed_with(0..10);
/// assert_eq!(queue.pending(), 10);
/// let (picker, saver) = (queue.picker(), queue.saver());
/// # let _ = (picker, saver);
/// ```
pub struct MemoryQueue<I, O = (), F = std::convert::Infallible> {
    shared: Arc<Shared<I, O, F>>,
}

impl<I, O, F> Clone for MemoryQueue<I, O, F> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<I, O, F> Default for MemoryQueue<I, O, F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I, O, F> fmt::Debug for MemoryQueue<I, O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.shared.lock();
        f.debug_struct("MemoryQueue")
            .field("jobs", &inner.inputs.len())
            .field("pending", &inner.pending.len())
            .field("claimed", &inner.claimed)
            .field("saved", &inner.saved.len())
            .field("closed", &inner.closed)
            .field("leased", &inner.lease.as_ref().map(|l| l.ttl))
            .finish()
    }
}

impl<I, O, F> MemoryQueue<I, O, F> {
    /// An open, empty queue.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    inputs: Vec::new(),
                    attempts: Vec::new(),
                    slots: Vec::new(),
                    pending: VecDeque::new(),
                    saved: Vec::new(),
                    closed: false,
                    lease: None,
                    leases: VecDeque::new(),
                    claimed: 0,
                    reclaimed: 0,
                }),
            }),
        }
    }

    /// A closed queue holding `inputs` (ids 0, 1, …).
    pub fn closed_with(inputs: impl IntoIterator<Item = I>) -> Self {
        let queue = Self::new();
        queue.extend(inputs);
        queue.close();
        queue
    }

    /// Turns claims into leases of `ttl`, read on `runtime`'s clock (virtual
    /// under simulation), with the attempt number as fencing token:
    ///
    /// * a claim not saved or released within `ttl` expires, and the job goes
    ///   back to the queue (checked on every pick) to be handed out again with
    ///   the next attempt number — so the jobs of a crashed worker are not lost;
    /// * a save or release from an expired (or already saved) claim fails with
    ///   [`QueueError::Fenced`] and stores nothing — so a job is saved once;
    ///   a repeated save by the attempt that saved the job succeeds without
    ///   storing again (a retry after a lost reply is idempotent);
    /// * a closed queue reports [`Picked::Exhausted`] only when no claim is
    ///   outstanding (an outstanding one may still expire), [`Picked::Empty`]
    ///   before that.
    ///
    /// There is no heartbeat: choose `ttl` above the longest a job can take
    /// from pick to save.
    pub fn set_lease<R: Runtime>(&self, runtime: &R, ttl: Duration) {
        let runtime = runtime.clone();
        self.shared.lock().lease = Some(Lease {
            ttl,
            clock: Box::new(move || runtime.now()),
        });
    }

    /// Adds a job; returns its id.
    pub fn push(&self, input: I) -> JobId {
        JobId::new(self.shared.lock().push(input))
    }

    /// Adds several jobs.
    pub fn extend(&self, inputs: impl IntoIterator<Item = I>) {
        let mut inner = self.shared.lock();
        for input in inputs {
            inner.push(input);
        }
    }

    /// No more jobs will be pushed: once empty, the picker reports exhaustion.
    pub fn close(&self) {
        self.shared.lock().closed = true;
    }

    /// Jobs waiting to be picked.
    pub fn pending(&self) -> usize {
        self.shared.lock().pending.len()
    }

    /// Jobs ever pushed.
    pub fn len(&self) -> usize {
        self.shared.lock().inputs.len()
    }

    /// Whether no job was ever pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids waiting to be picked, front first.
    pub fn pending_ids(&self) -> Vec<JobId> {
        self.shared
            .lock()
            .pending
            .iter()
            .map(|&id| JobId::new(id))
            .collect()
    }

    /// How many times each job was picked, by id.
    pub fn pick_counts(&self) -> Vec<u32> {
        self.shared.lock().attempts.clone()
    }

    /// Every save received, in order.
    pub fn saved(&self) -> Vec<SavedJob<O, F>>
    where
        O: Clone,
        F: Clone,
    {
        self.shared.lock().saved.clone()
    }

    /// How many saves were received.
    pub fn saved_count(&self) -> usize {
        self.shared.lock().saved.len()
    }

    /// Jobs claimed (picked, neither saved nor released nor expired) right now.
    pub fn claimed(&self) -> usize {
        self.shared.lock().claimed
    }

    /// Claims that expired and were handed back (leased queues only).
    pub fn reclaimed(&self) -> u64 {
        self.shared.lock().reclaimed
    }

    /// The picking half.
    pub fn picker(&self) -> QueuePicker<I, O, F> {
        QueuePicker {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The saving half.
    pub fn saver(&self) -> QueueSaver<I, O, F> {
        QueueSaver {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The picking half of a [`MemoryQueue`].
pub struct QueuePicker<I, O = (), F = std::convert::Infallible> {
    shared: Arc<Shared<I, O, F>>,
}

/// The saving half of a [`MemoryQueue`].
pub struct QueueSaver<I, O = (), F = std::convert::Infallible> {
    shared: Arc<Shared<I, O, F>>,
}

impl<I, O, F> Clone for QueuePicker<I, O, F> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<I, O, F> Clone for QueueSaver<I, O, F> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<I, O, F> fmt::Debug for QueuePicker<I, O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuePicker").finish_non_exhaustive()
    }
}

impl<I, O, F> fmt::Debug for QueueSaver<I, O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueSaver").finish_non_exhaustive()
    }
}

fn take<I: Clone, O, F>(inner: &mut Inner<I, O, F>) -> Option<Job<I, QueueMeta>> {
    let id = inner.pending.pop_front()?;
    let index = usize::try_from(id).ok()?;
    let attempt = inner.attempts.get_mut(index)?;
    *attempt += 1;
    let attempt = *attempt;
    let input = inner.inputs.get(index)?.clone();
    if let Some(slot) = inner.slots.get_mut(index) {
        *slot = Slot::Claimed(attempt);
    }
    inner.claimed += 1;
    if let Some(lease) = &inner.lease {
        let deadline = (lease.clock)() + lease.ttl;
        inner.leases.push_back((deadline, id, attempt));
    }
    let meta = QueueMeta {
        id: JobId::new(id),
        attempt,
    };
    Some(Job::new(input, meta))
}

impl<I, O, F> JobPicker for QueuePicker<I, O, F>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    F: Send + 'static,
{
    type Input = I;
    type Metadata = QueueMeta;
    type Error = QueueError;

    /// Takes the job at the front.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: the pick completes at its first poll.
    async fn pick(&self) -> Result<Picked<Job<I, QueueMeta>>, QueueError> {
        let mut inner = self.shared.lock();
        inner.reclaim_expired();
        Ok(match take(&mut inner) {
            Some(job) => Picked::Some(job),
            None if inner.exhausted() => Picked::Exhausted,
            None => Picked::Empty,
        })
    }

    async fn pick_many(&self, max: usize) -> Result<Picked<Vec<Job<I, QueueMeta>>>, QueueError> {
        let mut inner = self.shared.lock();
        inner.reclaim_expired();
        let mut jobs = Vec::with_capacity(max.min(inner.pending.len()));
        while jobs.len() < max {
            match take(&mut inner) {
                Some(job) => jobs.push(job),
                None => break,
            }
        }
        Ok(if !jobs.is_empty() {
            Picked::Some(jobs)
        } else if inner.exhausted() {
            Picked::Exhausted
        } else {
            Picked::Empty
        })
    }

    async fn release(&self, meta: QueueMeta) -> Result<(), QueueError> {
        let mut inner = self.shared.lock();
        let leased = inner.lease.is_some();
        let Some(slot) = inner.slot(meta.id) else {
            return Err(QueueError::UnknownJob(meta.id));
        };
        match *slot {
            Slot::Claimed(attempt) if attempt == meta.attempt => {
                *slot = Slot::Pending;
                inner.claimed = inner.claimed.saturating_sub(1);
            }
            _ if leased => {
                return Err(QueueError::Fenced {
                    job: meta.id,
                    attempt: meta.attempt,
                });
            }
            // Without leases the queue trusts its caller, as it always has.
            _ => *slot = Slot::Pending,
        }
        inner.pending.push_front(meta.id.get());
        Ok(())
    }

    fn is_retryable(&self, error: &QueueError) -> bool {
        error.is_retryable()
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
        let Some(slot) = inner.slot(meta.id) else {
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
        let held = *slot == Slot::Claimed(meta.attempt);
        if leased && !held {
            if *slot == Slot::Saved(meta.attempt) {
                // A retry of a save that went through: idempotent.
                return Ok(());
            }
            return Err(QueueError::Fenced {
                job: meta.id,
                attempt: meta.attempt,
            });
        }
        *slot = Slot::Saved(meta.attempt);
        if held {
            inner.claimed = inner.claimed.saturating_sub(1);
        }
        inner.saved.push(SavedJob {
            meta: *meta,
            result: result.clone(),
        });
        Ok(())
    }

    fn is_retryable(&self, error: &QueueError) -> bool {
        error.is_retryable()
    }
}
