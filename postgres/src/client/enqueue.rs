//! [`NewJob`]: what a producer puts on the queue, and what it gets back.

use std::time::Duration;

use pjp_core::{JobKind, JobOptions};

use crate::error::QueueError;

/// The highest priority a job can have; `0` is the lowest and the default.
pub const MAX_PRIORITY: i16 = 100;

/// A job to enqueue: its queue and payload, the [`JobOptions`] every queue
/// shares (priority, delay, attempts, kind, batch, depth), and what only
/// PostgreSQL has (a unique key, a resource class, tree settings).
///
/// ```
/// use std::time::Duration;
/// use pjp_postgres::NewJob;
///
/// let job = NewJob::new("proofs", b"input bytes".to_vec())
///     .priority(10)
///     .run_after(Duration::from_secs(5))
///     .max_attempts(3)
///     .unique_key("batch-42/circuit-7");
/// assert_eq!(job.queue(), "proofs");
///
/// // The same options as a job in the in-memory model:
/// use pjp_core::JobOptions;
/// let options = JobOptions::new().priority(10).batch(42).depth(1);
/// let job = NewJob::new("proofs", b"input".to_vec()).options(options);
/// assert_eq!(job.job_options(), &options);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub(crate) queue: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) options: JobOptions,
    /// A kind given as text that a [`JobKind`] cannot hold (over 64
    /// bytes), kept to be refused by `validate` with its text.
    pub(crate) unfit_kind: Option<String>,
    pub(crate) unique_key: Option<String>,
    pub(crate) resource_class: String,
    pub(crate) cancel_tree: bool,
    /// Set by [`PgQueue::enqueue_tree`](crate::PgQueue::enqueue_tree).
    pub(crate) parent_id: Option<i64>,
    /// Set by [`PgQueue::enqueue_tree`](crate::PgQueue::enqueue_tree).
    pub(crate) waiting_on: i32,
}

impl NewJob {
    /// A job on `queue` with `payload` as its input: priority 0, runnable
    /// now, 5 attempts, 3 lost leases, no unique key.
    pub fn new(queue: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            queue: queue.into(),
            payload: payload.into(),
            options: JobOptions::new(),
            unfit_kind: None,
            unique_key: None,
            resource_class: String::new(),
            cancel_tree: false,
            parent_id: None,
            waiting_on: 0,
        }
    }

    /// Higher runs first, `0..=`[`MAX_PRIORITY`].
    pub fn priority(mut self, priority: i16) -> Self {
        self.options.priority = priority;
        self
    }

    /// Not claimable before `delay` from now (database clock).
    pub fn run_after(mut self, delay: Duration) -> Self {
        self.options.delay = delay;
        self
    }

    /// Executor failures allowed before the job is dead (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.options.max_attempts = attempts;
        self
    }

    /// Lost leases (its worker died or was cut off while holding it) allowed
    /// before the job is dead (at least 1). Keep it small: a job that kills
    /// every worker that takes it (out of memory, a GPU fault) must stop.
    pub fn max_lost_leases(mut self, leases: u32) -> Self {
        self.options.max_lost_leases = leases;
        self
    }

    /// At most one job per queue and key: enqueueing the same key again
    /// creates nothing and returns the existing job's id (while that row
    /// exists; a purged job's key is free again).
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Its kind (`basic`, `leaf`, `scheduler`, …): a picker told which kinds
    /// it serves ([`PgPicker::kinds`](crate::PgPicker::kinds)) claims only
    /// those. Default: none (`""`). 0–64 characters of ASCII letters, digits
    /// and `_ - . :`.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        let kind = kind.into();
        match JobKind::new(&kind) {
            Some(fits) => {
                self.options.kind = fits;
                self.unfit_kind = None;
            }
            None => self.unfit_kind = Some(kind),
        }
        self
    }

    /// The resource class it needs (`gpu-80g`, `gpu-24g`, `cpu`, …): a picker
    /// told which classes it can run ([`PgPicker::classes`](crate::PgPicker::classes))
    /// claims only those. Default: none (`""`). Same characters as a kind.
    pub fn resource_class(mut self, class: impl Into<String>) -> Self {
        self.resource_class = class.into();
        self
    }

    /// The batch (or deadline) it belongs to, as a number that grows with
    /// age: a block or batch number, a deadline in seconds. The default claim
    /// order takes the oldest batch first, so whole proofs finish sooner
    /// ([`ClaimOrder::ProofFirst`](crate::ClaimOrder::ProofFirst)). Default 0.
    pub fn batch(mut self, batch: i64) -> Self {
        self.options.batch = batch;
        self
    }

    /// Rounds between this job and its tree's final proof: 0 for the final
    /// proof, 1 for the round below it, and so on. Within a batch the default
    /// claim order takes the round closest to the final proof first (Aztec
    /// picks the root-most proof type first). Default 0; at most 32,767.
    pub fn depth(mut self, depth: u16) -> Self {
        self.options.depth = depth;
        self
    }

    /// For a parent ([`PgQueue::enqueue_tree`](crate::PgQueue::enqueue_tree),
    /// [`Spawn::tree`](crate::Spawn::tree)): what happens when one of its
    /// children ends dead or failed, or is cancelled. `false` (the default):
    /// the parent ends `dead`, its error naming the child. `true`: the parent
    /// is cancelled, and so are its children still queued or waiting (a
    /// running one finishes; its result settles nothing).
    pub fn cancel_tree_on_failure(mut self, cancel: bool) -> Self {
        self.cancel_tree = cancel;
        self
    }

    /// Its priority, delay, attempts, kind, batch and depth at once, as
    /// for any queue (replacing what the single setters set).
    pub fn options(mut self, options: JobOptions) -> Self {
        self.options = options;
        self.unfit_kind = None;
        self
    }

    /// Its kind (`""` for none).
    pub(crate) fn kind_name(&self) -> &str {
        self.options.kind.as_str()
    }

    /// The options every queue shares.
    pub fn job_options(&self) -> &JobOptions {
        &self.options
    }

    /// The queue it goes to.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    pub(crate) fn validate(&self) -> Result<(), QueueError> {
        check_queue_name(&self.queue)?;
        let options = &self.options;
        if !(0..=MAX_PRIORITY).contains(&options.priority) {
            return Err(QueueError::invalid(
                "priority",
                format!("{} is outside 0..={MAX_PRIORITY}", options.priority),
            ));
        }
        if options.max_attempts == 0 || options.max_attempts > i32::MAX as u32 {
            return Err(QueueError::invalid("max_attempts", "must be at least 1"));
        }
        if options.max_lost_leases == 0 || options.max_lost_leases > i32::MAX as u32 {
            return Err(QueueError::invalid("max_lost_leases", "must be at least 1"));
        }
        if options.delay > Duration::from_secs(10 * 365 * 24 * 3600) {
            return Err(QueueError::invalid("run_after", "more than ten years away"));
        }
        if options.depth > i16::MAX as u16 {
            return Err(QueueError::invalid("depth", "more than 32,767 rounds"));
        }
        check_label(
            "kind",
            self.unfit_kind.as_deref().unwrap_or(self.kind_name()),
        )?;
        check_label("resource class", &self.resource_class)?;
        if let Some(key) = &self.unique_key
            && (key.is_empty() || key.len() > 512)
        {
            return Err(QueueError::invalid(
                "unique key",
                "must be 1–512 bytes long",
            ));
        }
        Ok(())
    }
}

/// Checks a kind or resource class: 0–64 characters of ASCII letters, digits
/// and `_ - . :` (empty: none).
pub(crate) fn check_label(what: &'static str, label: &str) -> Result<(), QueueError> {
    if label.is_empty() {
        return Ok(());
    }
    check_queue_name(label).map_err(|_| {
        QueueError::invalid(
            what,
            format!("`{label}`: use up to 64 characters of ASCII letters, digits and _ - . :"),
        )
    })
}

/// Checks a queue name: 1–64 characters of ASCII letters, digits and `_ - . :`.
pub(crate) fn check_queue_name(name: &str) -> Result<(), QueueError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(QueueError::invalid(
            "queue name",
            format!("`{name}`: use 1–64 characters of ASCII letters, digits and _ - . :"),
        ))
    }
}

/// What enqueueing one job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id.
    pub id: i64,
    /// False when a job with the same unique key existed: nothing was created
    /// and `id` is that job's.
    pub created: bool,
}

/// What [`PgQueue::enqueue_tree`](crate::PgQueue::enqueue_tree) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The parent's id (the existing one when `created` is false).
    pub parent: i64,
    /// The children's ids, in the order given (empty when `created` is false).
    pub children: Vec<i64>,
    /// False when a parent with the same unique key existed: nothing was
    /// created.
    pub created: bool,
}
