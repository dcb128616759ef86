//! [`QueuePicker`]: the picking half.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The picking half of a [`MemoryQueue`].
pub struct QueuePicker<I, O = (), F = std::convert::Infallible> {
    pub(super) shared: Arc<Shared<I, O, F>>,
    pub(super) kinds: Kinds,
}

impl<I, O, F> Clone for QueuePicker<I, O, F> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            kinds: self.kinds.clone(),
        }
    }
}

impl<I, O, F> fmt::Debug for QueuePicker<I, O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuePicker")
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

fn take<I: Clone, O, F>(inner: &mut Inner<I, O, F>, kinds: &Kinds) -> Option<Job<I, QueueMeta>> {
    let id = inner.lines.pop(kinds)?;
    let deadline = inner.lease.as_ref().map(|l| (l.clock)() + l.ttl);
    let index = usize::try_from(id).ok()?;
    let input = inner.inputs.get(index)?.clone();
    let row = inner.rows.get_mut(index)?;
    row.claims += 1;
    let attempt = row.claims;
    row.slot = Slot::Claimed(attempt);
    row.deadline = deadline;
    let line = row.line;
    inner.claimed += 1;
    if let Some(line) = inner.lines.line(line) {
        line.claimed += 1;
    }
    if let Some(deadline) = deadline {
        inner.leases.push_back((deadline, id, attempt));
    }
    let meta = QueueMeta {
        id: JobId::new(id),
        attempt,
    };
    Some(Job::new(input, meta))
}

impl<I, O, F> QueuePicker<I, O, F> {
    /// Takes only jobs of these kinds, in this order of preference: a job of
    /// the first kind whenever one is ready, one of the next only when none
    /// of the kinds before it is. Reports [`Picked::Exhausted`] once the
    /// queue is closed and no job of these kinds is left to come (waiting
    /// parents of these kinds included), whatever other kinds still hold. An
    /// empty list takes every kind (the default). Replaces an earlier
    /// [`except_kinds`](Self::except_kinds).
    ///
    /// ```
    /// use pjp_core::JobKind;
    /// use pjp_core::memory::{JobOptions, MemoryQueue};
    ///
    /// let aggregate = JobKind::new("aggregate").expect("a short kind");
    /// let queue: MemoryQueue<&str> = MemoryQueue::new();
    /// // One aggregation over two basic proofs, from one queue.
    /// let (parent, _) = queue.push_tree(
    ///     ("root", JobOptions::new().kind(aggregate)),
    ///     vec![("a", JobOptions::new()), ("b", JobOptions::new())],
    ///     None,
    /// );
    /// let provers = queue.picker().except_kinds([aggregate]);
    /// let aggregators = queue.picker().kinds([aggregate]);
    /// # let _ = (parent, provers, aggregators);
    /// ```
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = JobKind>) -> Self {
        self.kinds = KindFilter::only(kinds);
        self
    }

    /// Takes jobs of every kind except these (a proving runner that leaves
    /// the aggregations to a runner of their own), front-most first. An
    /// empty list takes every kind. Replaces an earlier
    /// [`kinds`](Self::kinds).
    pub fn except_kinds(mut self, kinds: impl IntoIterator<Item = JobKind>) -> Self {
        self.kinds = KindFilter::except(kinds);
        self
    }
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

    /// Takes the job at the front: highest priority, then oldest.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: the pick completes at its first poll.
    async fn pick(&self) -> Result<Picked<Job<I, QueueMeta>>, QueueError> {
        let mut inner = self.shared.lock();
        inner.advance();
        Ok(match take(&mut inner, &self.kinds) {
            Some(job) => Picked::Some(job),
            None if inner.exhausted(&self.kinds) => Picked::Exhausted,
            None => Picked::Empty,
        })
    }

    async fn pick_many(&self, max: usize) -> Result<Picked<Vec<Job<I, QueueMeta>>>, QueueError> {
        let mut inner = self.shared.lock();
        inner.advance();
        let mut jobs = Vec::with_capacity(max.min(inner.lines.ready_len()));
        while jobs.len() < max {
            match take(&mut inner, &self.kinds) {
                Some(job) => jobs.push(job),
                None => break,
            }
        }
        Ok(if !jobs.is_empty() {
            Picked::Some(jobs)
        } else if inner.exhausted(&self.kinds) {
            Picked::Exhausted
        } else {
            Picked::Empty
        })
    }

    async fn release(&self, meta: QueueMeta, _reason: ReleaseReason) -> Result<(), QueueError> {
        let mut inner = self.shared.lock();
        let leased = inner.lease.is_some();
        let id = meta.id.get();
        let Some(row) = inner.row_mut(id) else {
            return Err(QueueError::UnknownJob(meta.id));
        };
        match row.slot {
            Slot::Claimed(attempt) if attempt == meta.attempt => {
                row.last_write = Some(meta.attempt);
                inner.unclaim(id);
            }
            // A stale claim has nothing left to hand back: the job is someone
            // else's, or settled. Nothing changes.
            _ if leased => return Ok(()),
            // Without leases the queue trusts its caller, as it always has.
            _ => {}
        }
        inner.enqueue(id, Duration::ZERO);
        Ok(())
    }

    fn classify(&self, error: &QueueError) -> ErrorClass {
        error.class()
    }
}
