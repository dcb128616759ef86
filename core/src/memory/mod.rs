//! [`MemoryQueue`]: an in-memory job queue with picker and saver halves.
//!
//! A production part, not only a test double: a single-process component (the
//! reference prover's embedded run) uses it as its queue, and `pjp-testkit`
//! builds its checks on it. With [`MemoryQueue::set_lease`] it models a durable
//! queue's leases and fencing.
//!
//! The handle and the queue's state live here; `meta` holds what the queue
//! reports (job metadata, saves, states, errors), `options` how a job is
//! pushed and what a failure does, `lines` the claim order (a line of ready
//! jobs per kind), `picker` and `saver` the two halves.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use crate::ClaimOrder;
use crate::{
    ErrorClass, ExecError, Job, JobId, JobKind, JobMeta, JobPicker, JobResult, JobSaver,
    KindFilter, Picked, ReleaseReason, Runtime,
};

mod lines;
mod meta;
mod options;
mod picker;
mod saver;

pub use crate::JobOptions;
pub use crate::runner::LateResults;
use lines::{Kinds, Lines};
pub use meta::{JobState, JobStatus, QueueError, QueueMeta, SavedJob};
pub use options::FailurePolicy;
use options::RowOptions;
pub use picker::QueuePicker;
pub use saver::QueueSaver;

/// Where a job stands in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Ready, or waiting for its retry delay.
    Pending,
    Claimed(u32),
    Saved(u32),
    /// A parent waiting for its children ([`MemoryQueue::push_tree`]).
    Waiting,
    /// Settled for good without a result: failed for good, or dead.
    Settled(JobStatus),
}

/// Per-job bookkeeping, by dense id.
#[derive(Debug, Clone, Copy)]
struct Row {
    slot: Slot,
    options: RowOptions,
    claims: u32,
    attempts: u32,
    lost_leases: u32,
    /// The current claim's lease deadline (leased queues only).
    deadline: Option<Instant>,
    /// The claim whose save or release settled the job last: a repeat of
    /// that write is idempotent, any other stale write is fenced.
    last_write: Option<u32>,
    /// The job waiting for this one ([`MemoryQueue::push_tree`]).
    parent: Option<u64>,
    /// Children still to succeed (a waiting parent).
    waiting_on: u32,
    /// Its kind's line ([`Lines`]).
    line: u16,
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
    rows: Vec<Row>,
    lines: Lines,
    /// Jobs waiting for their `run_after`, earliest first.
    delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    saved: Vec<SavedJob<O, F>>,
    closed: bool,
    lease: Option<Lease>,
    failures: Option<FailurePolicy<F>>,
    /// Lease deadlines in the order they were set (monotonic, since every
    /// claim and heartbeat sets now + ttl). Entries a heartbeat superseded or
    /// a save settled are skipped.
    leases: VecDeque<(Instant, u64, u32)>,
    claimed: usize,
    reclaimed: u64,
    /// Jobs that reached an end state (succeeded, failed or dead).
    settled: usize,
    /// Parents waiting for their children.
    waiting: usize,
    /// Each parent's children, in the order they were pushed.
    children: HashMap<u64, Vec<u64>>,
    /// What a stale claim's success does ([`MemoryQueue::set_late_results`]).
    late_results: LateResults,
    /// Stale successes accepted.
    late_accepted: u64,
}

impl<I, O, F> Inner<I, O, F> {
    fn now(&self) -> Option<Instant> {
        self.lease.as_ref().map(|lease| (lease.clock)())
    }

    fn push(&mut self, input: I, options: JobOptions) -> u64 {
        let (id, _) = self.add_row(input, &options, Slot::Pending, None, 0);
        self.enqueue(id, options.delay);
        id
    }

    /// Stores a new job's input and row; returns its id and its line.
    fn add_row(
        &mut self,
        input: I,
        options: &JobOptions,
        slot: Slot,
        parent: Option<u64>,
        waiting_on: u32,
    ) -> (u64, u16) {
        let id = self.inputs.len() as u64;
        let line = self.lines.line_of(options.kind);
        self.inputs.push(input);
        self.rows.push(Row {
            slot,
            options: RowOptions::from(options),
            claims: 0,
            attempts: 0,
            lost_leases: 0,
            deadline: None,
            last_write: None,
            parent,
            waiting_on,
            line,
        });
        (id, line)
    }

    /// Adds a parent waiting for `children` jobs (its children are pushed
    /// after it with [`push_child`](Self::push_child)).
    fn push_waiting(
        &mut self,
        input: I,
        options: JobOptions,
        children: u32,
        parent: Option<u64>,
    ) -> u64 {
        let (id, line) = self.add_row(input, &options, Slot::Waiting, parent, children);
        self.waiting += 1;
        if let Some(line) = self.lines.line(line) {
            line.waiting += 1;
        }
        id
    }

    /// One more member for the waiting group `group` (if any).
    fn join(&mut self, group: Option<u64>) {
        if let Some(row) = group.and_then(|g| self.row_mut(g))
            && row.slot == Slot::Waiting
        {
            row.waiting_on += 1;
        }
    }

    /// Adds a job whose success counts towards `parent`.
    fn push_child(&mut self, input: I, options: JobOptions, parent: u64) -> u64 {
        let id = self.push(input, options);
        if let Some(row) = self.row_mut(id) {
            row.parent = Some(parent);
        }
        self.children.entry(parent).or_default().push(id);
        id
    }

    /// A waiting parent is waiting no more (claimable, or settled).
    fn unwait(&mut self, parent: u64) {
        self.waiting = self.waiting.saturating_sub(1);
        if let Some(line) = self.row(parent).map(|r| r.line)
            && let Some(line) = self.lines.line(line)
        {
            line.waiting = line.waiting.saturating_sub(1);
        }
    }

    /// A job ended: tell its parent. A success counts down (the last one
    /// makes the parent claimable, in the same step); a dead or failed job
    /// settles its parent dead, and so on up the tree.
    fn settle_parent(&mut self, child: u64, succeeded: bool) {
        let mut at = child;
        let mut succeeded = succeeded;
        while let Some(parent) = self.row(at).and_then(|r| r.parent) {
            let Some(row) = self.row_mut(parent) else {
                return;
            };
            if row.slot != Slot::Waiting {
                return;
            }
            if succeeded {
                row.waiting_on = row.waiting_on.saturating_sub(1);
                if row.waiting_on == 0 {
                    self.unwait(parent);
                    self.enqueue(parent, Duration::ZERO);
                }
                return;
            }
            row.slot = Slot::Settled(JobStatus::Dead);
            self.unwait(parent);
            self.settled += 1;
            at = parent;
            succeeded = false;
        }
    }

    /// Puts a job back in line, now or after `delay` (leased queues only have
    /// a clock to wait on).
    fn enqueue(&mut self, id: u64, delay: Duration) {
        let Some(row) = self.row_mut(id) else { return };
        row.slot = Slot::Pending;
        row.deadline = None;
        let (options, line) = (row.options, row.line);
        match self.now() {
            Some(now) if !delay.is_zero() => {
                self.delayed.push(Reverse((now + delay, id)));
                if let Some(line) = self.lines.line(line) {
                    line.delayed += 1;
                }
            }
            _ => self.lines.push(line, &options, id),
        }
    }

    fn row_mut(&mut self, id: u64) -> Option<&mut Row> {
        usize::try_from(id).ok().and_then(|i| self.rows.get_mut(i))
    }

    fn row(&self, id: u64) -> Option<&Row> {
        usize::try_from(id).ok().and_then(|i| self.rows.get(i))
    }

    /// Moves due retries to the ready line and hands expired claims back
    /// (leased queues only); returns how many claims expired.
    fn advance(&mut self) -> u64 {
        let Some(now) = self.now() else { return 0 };
        while let Some(&Reverse((at, id))) = self.delayed.peek() {
            if at > now {
                break;
            }
            self.delayed.pop();
            if let Some(row) = self.row(id) {
                let (options, line) = (row.options, row.line);
                if let Some(at) = self.lines.line(line) {
                    at.delayed = at.delayed.saturating_sub(1);
                }
                self.lines.push(line, &options, id);
            }
        }
        let mut expired = 0;
        while let Some(&(deadline, id, token)) = self.leases.front() {
            if deadline > now {
                break;
            }
            self.leases.pop_front();
            let Some(row) = self.row_mut(id) else {
                continue;
            };
            let current = row.slot == Slot::Claimed(token) && row.deadline <= Some(now);
            if !current {
                continue; // settled, or extended by a heartbeat
            }
            row.lost_leases += 1;
            let dead = row.lost_leases >= row.options.max_lost_leases;
            if dead {
                row.slot = Slot::Settled(JobStatus::Dead);
                row.deadline = None;
            }
            let line = row.line;
            self.settled += usize::from(dead);
            self.claimed = self.claimed.saturating_sub(1);
            if let Some(line) = self.lines.line(line) {
                line.claimed = line.claimed.saturating_sub(1);
            }
            self.reclaimed += 1;
            expired += 1;
            if dead {
                self.settle_parent(id, false);
            } else {
                self.enqueue(id, Duration::ZERO);
            }
        }
        expired
    }

    /// Whether a picker of `kinds` should report the source exhausted:
    /// closed, nothing of its kinds pending or waiting, and (when leased) no
    /// claim of its kinds outstanding that could expire.
    fn exhausted(&self, kinds: &Kinds) -> bool {
        let leased = self.lease.is_some();
        self.closed
            && self
                .lines
                .lines
                .iter()
                .filter(|l| kinds.admits(&l.kind))
                .all(|l| {
                    l.ready.len == 0
                        && l.delayed == 0
                        && l.waiting == 0
                        && (!leased || l.claimed == 0)
                })
    }

    fn pending(&self) -> usize {
        self.lines.ready_len() + self.delayed.len()
    }

    /// Takes a pending job out of line (ready, or waiting for its retry
    /// delay): a late save settled it.
    fn unqueue(&mut self, id: u64) {
        let Some(line) = self.row(id).map(|r| r.line) else {
            return;
        };
        let before = self.delayed.len();
        self.delayed.retain(|Reverse((_, other))| *other != id);
        let delayed = self.delayed.len() < before;
        if let Some(line) = self.lines.line(line) {
            if delayed {
                line.delayed = line.delayed.saturating_sub(1);
            } else {
                line.ready.remove(id);
            }
        }
    }

    /// Settles a held claim: the job leaves the claimed set.
    fn unclaim(&mut self, id: u64) {
        self.claimed = self.claimed.saturating_sub(1);
        let Some(row) = self.row_mut(id) else { return };
        row.deadline = None;
        let line = row.line;
        if let Some(line) = self.lines.line(line) {
            line.claimed = line.claimed.saturating_sub(1);
        }
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
            .field("pending", &inner.pending())
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
                    rows: Vec::new(),
                    lines: Lines::default(),
                    delayed: BinaryHeap::new(),
                    saved: Vec::new(),
                    closed: false,
                    lease: None,
                    failures: None,
                    leases: VecDeque::new(),
                    claimed: 0,
                    reclaimed: 0,
                    settled: 0,
                    waiting: 0,
                    children: HashMap::new(),
                    late_results: LateResults::default(),
                    late_accepted: 0,
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
    /// under simulation), with the claim number as fencing token:
    ///
    /// * a claim not saved, released or extended by a
    ///   [`heartbeat`](Self::heartbeat) within `ttl` expires (checked on every
    ///   pick, and by [`rescue`](Self::rescue)). The job goes back to the
    ///   queue to be handed out again with the next claim number, so the jobs
    ///   of a crashed worker are not lost; that costs a lost lease, not an
    ///   attempt, and a job past its lost-lease budget
    ///   ([`JobOptions::max_lost_leases`]) ends dead;
    /// * a save from an expired (or already saved) claim fails with
    ///   [`QueueError::Fenced`] and stores nothing, so a job is saved once; a
    ///   repeated save by the claim that saved the job succeeds without
    ///   storing again (a retry after a lost reply is idempotent). One
    ///   exception, on by default ([`set_late_results`](Self::set_late_results)):
    ///   an expired claim's *success* is accepted while the job has not
    ///   finished (see [`LateResults`]);
    /// * a release from an expired claim changes nothing and succeeds: the job
    ///   is someone else's now, there is nothing left to hand back;
    /// * a closed queue reports [`Picked::Exhausted`] only when no claim is
    ///   outstanding (an outstanding one may still expire), [`Picked::Empty`]
    ///   before that.
    ///
    /// These are the durable PostgreSQL queue's rules (`pjp-postgres`); the
    /// testkit's durable-queue conformance suite checks both against the
    /// same cases.
    pub fn set_lease<R: Runtime>(&self, runtime: &R, ttl: Duration) {
        let runtime = runtime.clone();
        self.set_lease_clock(ttl, move || runtime.now());
    }

    /// Like [`set_lease`](Self::set_lease), reading time from `clock`: for
    /// tests that move time by hand.
    pub fn set_lease_clock(
        &self,
        ttl: Duration,
        clock: impl Fn() -> Instant + Send + Sync + 'static,
    ) {
        self.shared.lock().lease = Some(Lease {
            ttl,
            clock: Box::new(clock),
        });
    }

    /// What a save of an expired claim's success does (leased queues only):
    /// with [`LateResults::Accept`] (the default, as in `pjp-postgres`) it
    /// is stored once if the job has not finished yet (it is pending,
    /// waiting for a retry delay, or claimed again): the job ends
    /// succeeded, its parent counts it, and the claim holding it then loses
    /// it (its heartbeat no longer extends it, its save is fenced, its
    /// release changes nothing). The saver reports it to the runner
    /// ([`accepted_late`](crate::runner::accepted_late)), and
    /// [`late_accepted`](Self::late_accepted) counts it. A stale failure is
    /// fenced whatever this says; with [`LateResults::Reject`] a stale
    /// success is fenced too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::{Arc, Mutex};
    /// use std::time::{Duration, Instant};
    /// use pjp_core::memory::{JobStatus, LateResults, MemoryQueue};
    /// use pjp_core::{JobPicker, JobSaver, Picked};
    ///
    /// let queue: MemoryQueue<u64, u64> = MemoryQueue::new();
    /// let (start, moved) = (Instant::now(), Arc::new(Mutex::new(Duration::ZERO)));
    /// let clock = Arc::clone(&moved);
    /// queue.set_lease_clock(Duration::from_secs(1), move || start + *clock.lock().unwrap());
    /// let job = queue.push(7);
    /// let claim = |picked: Picked<pjp_core::Job<u64, _>>| match picked {
    ///     Picked::Some(job) => job.meta,
    ///     _ => panic!("nothing claimed"),
    /// };
    /// let slow = claim(queue.picker().pick().await.unwrap());
    /// *moved.lock().unwrap() += Duration::from_secs(10); // the lease expires ten times over
    /// let now = claim(queue.picker().pick().await.unwrap()); // and the job is claimed again
    ///
    /// // The slow claim finishes first: its proof is kept, once.
    /// queue.saver().save(&Ok(49), &slow).await.unwrap();
    /// assert_eq!(queue.state(job).unwrap().status, JobStatus::Succeeded);
    /// assert!(queue.saver().save(&Ok(49), &now).await.is_err()); // fenced
    /// assert_eq!((queue.saved_count(), queue.late_accepted()), (1, 1));
    /// # let _ = LateResults::Reject; }
    /// ```
    pub fn set_late_results(&self, late: LateResults) {
        self.shared.lock().late_results = late;
    }

    /// Stale successes accepted so far
    /// ([`set_late_results`](Self::set_late_results)).
    pub fn late_accepted(&self) -> u64 {
        self.shared.lock().late_accepted
    }

    /// Makes saved failures retry, or end dead or failed, like a durable
    /// queue's: see [`FailurePolicy`]. Needs a lease clock
    /// ([`set_lease`](Self::set_lease)) for the retry delay; without one a
    /// failed job is ready again at once.
    pub fn set_failure_policy(&self, policy: FailurePolicy<F>) {
        self.shared.lock().failures = Some(policy);
    }

    /// Adds a job; returns its id.
    pub fn push(&self, input: I) -> JobId {
        self.push_with(input, JobOptions::new())
    }

    /// Adds a job with a priority, a delay and budgets; returns its id.
    pub fn push_with(&self, input: I, options: JobOptions) -> JobId {
        JobId::new(self.shared.lock().push(input, options))
    }

    /// The order jobs are handed out in ([`ClaimOrder::ProofFirst`] by
    /// default). Set it before pushing: jobs already queued keep their place.
    pub fn set_order(&self, order: ClaimOrder) {
        self.shared.lock().lines.order = order;
    }

    /// Adds a tree: `parent` waits for every child to succeed and becomes
    /// claimable when the last one's save is stored, in the same step (as in
    /// `pjp-postgres`); a child that ends dead or failed (or, without a
    /// [`FailurePolicy`], is saved with an error) settles it dead, and its
    /// parents up the tree. [`children`](Self::children) lists its children. `under` makes the new parent one more member
    /// of a waiting group ([`push_group`](Self::push_group)), for deeper
    /// trees. Returns the parent's id and the children's.
    ///
    /// ```
    /// use pjp_core::memory::{JobOptions, JobStatus, MemoryQueue};
    ///
    /// // A final proof over one aggregation over two basic proofs.
    /// let queue: MemoryQueue<&str, ()> = MemoryQueue::new();
    /// let final_proof = queue.push_group("final", JobOptions::new().depth(0), None);
    /// let basic = JobOptions::new().depth(2);
    /// let (aggregate, basics) = queue.push_tree(
    ///     ("aggregate", JobOptions::new().depth(1)),
    ///     vec![("a", basic), ("b", basic)],
    ///     Some(final_proof),
    /// );
    /// assert_eq!(queue.state(final_proof).map(|s| s.status), Some(JobStatus::Waiting));
    /// assert_eq!(queue.state(aggregate).map(|s| s.status), Some(JobStatus::Waiting));
    /// assert_eq!(queue.pending_ids(), basics);
    /// ```
    pub fn push_tree(
        &self,
        parent: (I, JobOptions),
        children: Vec<(I, JobOptions)>,
        under: Option<JobId>,
    ) -> (JobId, Vec<JobId>) {
        let mut inner = self.shared.lock();
        let under = under.map(JobId::get);
        inner.join(under);
        let count = u32::try_from(children.len()).unwrap_or(u32::MAX);
        let id = if count == 0 {
            let id = inner.push(parent.0, parent.1);
            if let Some(row) = inner.row_mut(id) {
                row.parent = under;
            }
            id
        } else {
            inner.push_waiting(parent.0, parent.1, count, under)
        };
        let children = children
            .into_iter()
            .map(|(input, options)| JobId::new(inner.push_child(input, options, id)))
            .collect();
        (JobId::new(id), children)
    }

    /// The children pushed under `parent` with [`push_tree`](Self::push_tree),
    /// in the order they were given (empty for a job with none): what a
    /// parent's executor reads its inputs from.
    pub fn children(&self, parent: JobId) -> Vec<JobId> {
        self.shared
            .lock()
            .children
            .get(&parent.get())
            .map(|ids| ids.iter().copied().map(JobId::new).collect())
            .unwrap_or_default()
    }

    /// Adds a waiting job with no members yet: trees pushed
    /// [`under`](Self::push_tree) it join it, and it becomes claimable when
    /// they have all succeeded. `under` makes it a member of another group.
    pub fn push_group(&self, input: I, options: JobOptions, under: Option<JobId>) -> JobId {
        let mut inner = self.shared.lock();
        let under = under.map(JobId::get);
        inner.join(under);
        JobId::new(inner.push_waiting(input, options, 0, under))
    }

    /// Adds several jobs.
    pub fn extend(&self, inputs: impl IntoIterator<Item = I>) {
        let mut inner = self.shared.lock();
        for input in inputs {
            inner.push(input, JobOptions::new());
        }
    }

    /// No more jobs will be pushed: once empty, the picker reports exhaustion.
    pub fn close(&self) {
        self.shared.lock().closed = true;
    }

    /// Jobs waiting to be picked (also those waiting for a retry delay).
    pub fn pending(&self) -> usize {
        self.shared.lock().pending()
    }

    /// Jobs ever pushed.
    pub fn len(&self) -> usize {
        self.shared.lock().inputs.len()
    }

    /// Whether no job was ever pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids ready to be picked, in the order they will be (priority, then
    /// oldest first); jobs waiting for a retry delay come after.
    pub fn pending_ids(&self) -> Vec<JobId> {
        let inner = self.shared.lock();
        let mut delayed: Vec<(Instant, u64)> = inner.delayed.iter().map(|r| r.0).collect();
        delayed.sort_unstable();
        inner
            .lines
            .ids()
            .into_iter()
            .chain(delayed.into_iter().map(|(_, id)| id))
            .map(JobId::new)
            .collect()
    }

    /// How many times each job was picked, by id.
    pub fn pick_counts(&self) -> Vec<u32> {
        self.shared.lock().rows.iter().map(|r| r.claims).collect()
    }

    /// A job's status and counters, or `None` for an id never pushed.
    pub fn state(&self, job: JobId) -> Option<JobState> {
        let inner = self.shared.lock();
        let row = inner.row(job.get())?;
        let status = match row.slot {
            Slot::Pending => JobStatus::Queued,
            Slot::Claimed(_) => JobStatus::Running,
            Slot::Saved(_) => JobStatus::Succeeded,
            Slot::Waiting => JobStatus::Waiting,
            Slot::Settled(status) => status,
        };
        Some(JobState {
            status,
            attempts: row.attempts,
            lost_leases: row.lost_leases,
            claims: row.claims,
        })
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

    /// Jobs in an end state: saved (succeeded), failed for good, or dead.
    /// With [`close`](Self::close)d input, the work is done when this
    /// reaches [`len`](Self::len).
    pub fn settled(&self) -> usize {
        self.shared.lock().settled
    }

    /// Extends the leases of `claims` that still hold their job to now + ttl;
    /// returns how many it extended (a claim that expired, was superseded or
    /// settled is not extended). A leased worker calls it every interval
    /// shorter than the ttl for the jobs it holds, like a durable queue's
    /// heartbeat. Without a lease it extends nothing.
    pub fn heartbeat(&self, claims: &[QueueMeta]) -> usize {
        let mut inner = self.shared.lock();
        let Some(lease) = &inner.lease else { return 0 };
        let deadline = (lease.clock)() + lease.ttl;
        // Expire first: a heartbeat cannot revive a lease already past due.
        inner.advance();
        let mut extended = 0;
        for claim in claims {
            let id = claim.id.get();
            let Some(row) = inner.row_mut(id) else {
                continue;
            };
            if row.slot == Slot::Claimed(claim.attempt) {
                row.deadline = Some(deadline);
                inner.leases.push_back((deadline, id, claim.attempt));
                extended += 1;
            }
        }
        extended
    }

    /// Hands every expired claim back (or to dead, past its lost-lease
    /// budget) now; returns how many expired. Picks do this too.
    pub fn rescue(&self) -> u64 {
        self.shared.lock().advance()
    }

    /// The picking half.
    pub fn picker(&self) -> QueuePicker<I, O, F> {
        QueuePicker {
            shared: Arc::clone(&self.shared),
            kinds: KindFilter::Every,
        }
    }

    /// The saving half.
    pub fn saver(&self) -> QueueSaver<I, O, F> {
        QueueSaver {
            shared: Arc::clone(&self.shared),
        }
    }
}
