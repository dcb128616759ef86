//! How a job is queued ([`JobOptions`]), whatever the queue.

use std::time::Duration;

use crate::JobKind;

/// How a job is queued: its place in line, when it may run and how many
/// failures it may use. One type for every queue: the in-memory model
/// ([`MemoryQueue::push_with`](crate::memory::MemoryQueue::push_with)) and
/// `pjp-postgres` (its `NewJob::options`) read the same knobs the same way.
///
/// The fields are public to read; build with the setters, which keep the
/// counts at least 1.
///
/// ```
/// use std::time::Duration;
/// use pjp_core::JobOptions;
/// use pjp_core::memory::MemoryQueue;
///
/// let queue: MemoryQueue<u64, u64> = MemoryQueue::new();
/// queue.push_with(7, JobOptions::new().priority(5).delay(Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobOptions {
    /// Higher is claimed first ([`JobOptions::priority`]).
    pub priority: i16,
    /// Not claimable before this has passed ([`JobOptions::delay`]).
    pub delay: Duration,
    /// Executor failures before the job is dead ([`JobOptions::max_attempts`]).
    pub max_attempts: u32,
    /// Lost leases before the job is dead ([`JobOptions::max_lost_leases`]).
    pub max_lost_leases: u32,
    /// The batch it belongs to ([`JobOptions::batch`]).
    pub batch: i64,
    /// Rounds below its tree's final proof ([`JobOptions::depth`]).
    pub depth: u16,
    /// Its kind ([`JobOptions::kind`]).
    pub kind: JobKind,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl JobOptions {
    /// Priority 0, runnable now, 5 attempts, 3 lost leases (the durable
    /// queue's defaults).
    pub const fn new() -> Self {
        Self {
            priority: 0,
            delay: Duration::ZERO,
            max_attempts: 5,
            max_lost_leases: 3,
            batch: 0,
            depth: 0,
            kind: JobKind::none(),
        }
    }

    /// Its kind: a picker told which kinds it serves (the in-memory
    /// [`QueuePicker::kinds`](crate::memory::QueuePicker::kinds), a
    /// PostgreSQL picker's `kinds`) hands out only those (the proving runner takes `basic`, the aggregation runner
    /// `aggregate`, from one queue). Default: no kind.
    pub const fn kind(mut self, kind: JobKind) -> Self {
        self.kind = kind;
        self
    }

    /// The batch (or deadline) it belongs to: the proof-first order takes
    /// the oldest (lowest) first. Default 0.
    pub const fn batch(mut self, batch: i64) -> Self {
        self.batch = batch;
        self
    }

    /// Rounds between it and its tree's final proof (0 for the final proof):
    /// within a batch, the proof-first order takes the lowest first.
    pub const fn depth(mut self, depth: u16) -> Self {
        self.depth = depth;
        self
    }

    /// Higher is claimed first; equal priorities go oldest first.
    pub const fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Not claimable before `delay` has passed (on a leased queue's clock;
    /// ignored without one).
    pub const fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Executor failures before the job is dead (in memory, with a
    /// [`FailurePolicy`](crate::memory::FailurePolicy); at least 1).
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = if attempts == 0 { 1 } else { attempts };
        self
    }

    /// Lost leases before the job is dead: a job that kills or strands every
    /// worker that takes it stops being handed out (at least 1).
    pub const fn max_lost_leases(mut self, leases: u32) -> Self {
        self.max_lost_leases = if leases == 0 { 1 } else { leases };
        self
    }
}
