//! What each of a run's tasks was doing, and when: an observer hook.
//!
//! A [`JobRunner`](crate::JobRunner) built with
//! [`RunnerBuilder::observer`](crate::RunnerBuilder::observer) reports an
//! [`ActivitySpan`] for every pick call, every back-off sleep, every execution
//! and every save call, each on the [`Lane`] of the task that did it. Times come
//! from the run's [`Runtime`](crate::Runtime), so they are virtual under
//! simulation. Without an observer the runner does nothing more than check an
//! `Option`.
//!
//! [`Recorder`] keeps every span, for a test or a timeline (`pjp-timeline`
//! draws one as an SVG).
//!
//! ```
//! use std::sync::Arc;
//! use pjp_core::memory::MemoryQueue;
//! use pjp_core::observe::{Activity, Recorder, Role};
//! use pjp_core::{Executor, JobContext, JobRunner, Shutdown};
//!
//! struct Double;
//!
//! impl Executor for Double {
//!     type Input = u64;
//!     type Output = u64;
//!     type Error = std::convert::Infallible;
//!
//!     fn execute(&self, n: u64, _job: &JobContext) -> Result<u64, Self::Error> {
//!         Ok(n * 2)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! let queue: MemoryQueue<u64, u64> = MemoryQueue::closed_with(1..=10);
//! let recorder = Recorder::new();
//! let runner = JobRunner::builder(queue.picker(), Double, queue.saver())
//!     .workers(2)
//!     .observer(Arc::new(recorder.clone()))
//!     .build()?;
//! runner.run(&pjp_runtime_tokio::TokioRuntime::current(), Shutdown::new()).await?;
//!
//! let spans = recorder.take();
//! let executed = spans.iter().filter(|s| s.activity == Activity::Execute).count();
//! assert_eq!(executed, 10);
//! assert!(spans.iter().all(|s| s.activity != Activity::Execute || s.lane.role == Role::Worker));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::guard::{guard, lock};

/// The kind of task a [`Lane`] belongs to.
///
/// Ordered as the pipeline runs: pickers, then workers, then savers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A picker task (`pickers` of them).
    Picker,
    /// An executor worker (`workers` of them).
    Worker,
    /// A saver task (`savers` of them).
    Saver,
}

impl Role {
    /// The role's name in lower case: `"picker"`, `"worker"` or `"saver"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Picker => "picker",
            Self::Worker => "worker",
            Self::Saver => "saver",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One task of a run: its role and its number within that role.
///
/// Ordered by role (pickers, workers, savers), then by index. Displays as
/// `"worker 0"`.
///
/// ```
/// use pjp_core::observe::{Lane, Role};
///
/// let lane = Lane::new(Role::Worker, 1);
/// assert_eq!(lane.to_string(), "worker 1");
/// assert!(Lane::new(Role::Picker, 3) < lane);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lane {
    /// The kind of task.
    pub role: Role,
    /// The task's number within its role, from 0.
    pub index: usize,
}

impl Lane {
    /// The lane of task `index` (from 0) of `role`.
    pub const fn new(role: Role, index: usize) -> Self {
        Self { role, index }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.index)
    }
}

/// What a task was doing during an [`ActivitySpan`]. Time between spans is
/// idle (waiting for work, for room, or for a batch to fill).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Activity {
    /// A call to the picker (`pick` or `pick_many`), on a picker lane.
    Pick,
    /// One job executing, on a worker lane, until its result is ready (a job
    /// that overran its timeout: until it really returned and freed the
    /// worker).
    Execute,
    /// A call to the saver (`save` or `save_many`), on a saver lane.
    Save,
    /// A back-off sleep: after an empty pick or a pick error (picker lanes),
    /// or before retrying a save (saver lanes).
    Backoff,
}

impl Activity {
    /// The activity's name in lower case: `"pick"`, `"execute"`, `"save"` or
    /// `"backoff"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pick => "pick",
            Self::Execute => "execute",
            Self::Save => "save",
            Self::Backoff => "backoff",
        }
    }
}

impl fmt::Display for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One stretch of activity of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivitySpan {
    /// The task.
    pub lane: Lane,
    /// What it did.
    pub activity: Activity,
    /// When it started (the runtime's clock).
    pub start: Instant,
    /// When it ended; never before `start`.
    pub end: Instant,
    /// The jobs it concerned: picked by a pick call (0 if it found none or
    /// failed), 1 for an execution, the batch size of a save call (a job whose
    /// save is retried counts in each call), 0 for a back-off.
    pub jobs: u32,
}

impl ActivitySpan {
    /// How long the span lasted.
    pub fn duration(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

/// Receives the spans of a run as they end.
///
/// `on_span` is called from the run's tasks, often from several threads at
/// once, on the path of every pick, execution and save: keep it short (push to
/// a buffer or a channel). A panic in it is caught and logged; the run goes
/// on.
pub trait RunObserver: Send + Sync + 'static {
    /// A task finished a span of activity.
    fn on_span(&self, span: &ActivitySpan);
}

/// A [`RunObserver`] that keeps every span, in the order they were reported.
///
/// A handle: clones share the spans, so keep one and give one to the builder
/// (see the [module docs](self)). It keeps about three spans per job (pick,
/// execution, save; fewer with batches), some 60 bytes each, until
/// [`take`](Self::take)n: for a run of millions of jobs, take them as you go.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    spans: Arc<Mutex<Vec<ActivitySpan>>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the spans recorded so far.
    pub fn spans(&self) -> Vec<ActivitySpan> {
        lock(&self.spans).clone()
    }

    /// Takes the spans recorded so far, leaving the recorder empty.
    pub fn take(&self) -> Vec<ActivitySpan> {
        std::mem::take(&mut *lock(&self.spans))
    }
}

impl RunObserver for Recorder {
    fn on_span(&self, span: &ActivitySpan) {
        lock(&self.spans).push(*span);
    }
}

/// The observer a runner was given, shared by its runs' tasks.
#[derive(Clone)]
pub(crate) struct Observer(Arc<dyn RunObserver>);

impl Observer {
    pub(crate) fn new(observer: Arc<dyn RunObserver>) -> Self {
        Self(observer)
    }

    /// Reports a span, catching a panicking observer.
    pub(crate) fn report(&self, span: &ActivitySpan) {
        if let Err(message) = guard(|| self.0.on_span(span)) {
            tracing::error!(%message, "RunObserver::on_span panicked");
        }
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}
