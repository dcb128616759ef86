//! [`MemoryQueue`]: an in-memory job queue with picker and saver halves.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pjp_core::{Job, JobId, JobMeta, JobPicker, JobResult, JobSaver, Picked};

/// The metadata of a [`MemoryQueue`] job: its id and which attempt this is.
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
}

struct Inner<I, O, F> {
    /// Inputs by job id (ids are dense indexes), kept so a released job can be
    /// handed out again.
    inputs: Vec<I>,
    attempts: Vec<u32>,
    pending: VecDeque<u64>,
    saved: Vec<SavedJob<O, F>>,
    closed: bool,
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
/// ```
/// use pjp_testkit::MemoryQueue;
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

impl<I, O, F> MemoryQueue<I, O, F> {
    /// An open, empty queue.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    inputs: Vec::new(),
                    attempts: Vec::new(),
                    pending: VecDeque::new(),
                    saved: Vec::new(),
                    closed: false,
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

    /// Adds a job; returns its id.
    pub fn push(&self, input: I) -> JobId {
        let mut inner = self.shared.lock();
        let id = inner.inputs.len() as u64;
        inner.inputs.push(input);
        inner.attempts.push(0);
        inner.pending.push_back(id);
        JobId::new(id)
    }

    /// Adds several jobs.
    pub fn extend(&self, inputs: impl IntoIterator<Item = I>) {
        let mut inner = self.shared.lock();
        for input in inputs {
            let id = inner.inputs.len() as u64;
            inner.inputs.push(input);
            inner.attempts.push(0);
            inner.pending.push_back(id);
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

fn take<I: Clone, O, F>(inner: &mut Inner<I, O, F>) -> Option<Job<I, QueueMeta>> {
    let id = inner.pending.pop_front()?;
    let index = usize::try_from(id).ok()?;
    let attempt = inner.attempts.get_mut(index)?;
    *attempt += 1;
    let meta = QueueMeta {
        id: JobId::new(id),
        attempt: *attempt,
    };
    Some(Job::new(inner.inputs.get(index)?.clone(), meta))
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

    async fn pick(&self) -> Result<Picked<Job<I, QueueMeta>>, QueueError> {
        let mut inner = self.shared.lock();
        Ok(match take(&mut inner) {
            Some(job) => Picked::Some(job),
            None if inner.closed => Picked::Exhausted,
            None => Picked::Empty,
        })
    }

    async fn pick_many(&self, max: usize) -> Result<Picked<Vec<Job<I, QueueMeta>>>, QueueError> {
        let mut inner = self.shared.lock();
        let mut jobs = Vec::with_capacity(max.min(inner.pending.len()));
        while jobs.len() < max {
            match take(&mut inner) {
                Some(job) => jobs.push(job),
                None => break,
            }
        }
        Ok(if !jobs.is_empty() {
            Picked::Some(jobs)
        } else if inner.closed {
            Picked::Exhausted
        } else {
            Picked::Empty
        })
    }

    async fn release(&self, meta: QueueMeta) -> Result<(), QueueError> {
        let mut inner = self.shared.lock();
        if meta.id.get() >= inner.inputs.len() as u64 {
            return Err(QueueError::UnknownJob(meta.id));
        }
        inner.pending.push_front(meta.id.get());
        Ok(())
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
        let saved = SavedJob {
            meta: *meta,
            result: result.clone(),
        };
        self.shared.lock().saved.push(saved);
        Ok(())
    }
}
