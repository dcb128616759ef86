//! Job identity: [`JobId`], the [`JobMeta`] trait and the [`Job`] a picker hands out.

use std::fmt;

/// Identifies a job across pick, execute, save and release.
///
/// A plain `u64` so that it is cheap to copy on the runner's hot path, to put into
/// tracing spans and metrics, and to store in a database `bigint`. Sources with
/// other keys (UUIDs, object-store paths) map them to a `u64` in their metadata.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct JobId(u64);

impl JobId {
    /// Wraps a raw id.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The raw id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for JobId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What the runner needs to know about a job's metadata.
///
/// Metadata travels beside a job's input from the picker, through the executor, to
/// the saver (or back to the picker on release). The runner reads the id and attempt
/// for tracing spans, metrics, reports and errors. Metadata is cloned only off the
/// hot path (releases, timeouts), so keep it small: ids, attempt counters, lease
/// tokens.
///
/// ```
/// use pjp_core::{JobId, JobMeta};
///
/// #[derive(Clone, Debug)]
/// struct Lease { id: u64, attempt: u32, token: u64 }
///
/// impl JobMeta for Lease {
///     fn job_id(&self) -> JobId { JobId::new(self.id) }
///     fn attempt(&self) -> u32 { self.attempt }
/// }
/// ```
pub trait JobMeta: Clone + Send + Sync + 'static {
    /// The job's id.
    fn job_id(&self) -> JobId;

    /// Which attempt at this job this is, starting at 1.
    fn attempt(&self) -> u32 {
        1
    }
}

impl JobMeta for JobId {
    fn job_id(&self) -> JobId {
        *self
    }
}

/// A job handed out by a [`JobPicker`](crate::JobPicker): the executor's input and
/// the metadata that identifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job<I, M> {
    /// The executor's input.
    pub input: I,
    /// The job's metadata.
    pub meta: M,
}

impl<I, M> Job<I, M> {
    /// Pairs an input with its metadata.
    pub fn new(input: I, meta: M) -> Self {
        Self { input, meta }
    }
}
