//! [`RunError`]: why a run failed.

use std::error::Error as StdError;
use std::fmt;

use super::RunReport;
use crate::JobId;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong in a failed run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunErrorKind {
    /// Too many jobs in a row gave up saving: the sink is gone. The runner
    /// stopped picking and drained; each of those jobs was released.
    #[error(
        "the sink is gone: {jobs} job(s) in a row gave up saving, the last {last_job}: {last_error}"
    )]
    SinkGone {
        /// Jobs in a row whose saves gave up.
        jobs: u32,
        /// The last of them.
        last_job: JobId,
        /// Its saver's last error.
        last_error: String,
    },
    /// [`JobRunner::step`](crate::JobRunner::step) could not save its job: the
    /// save gave up, and the job was released (see the report).
    #[error("saving job {job} gave up")]
    SaveGaveUp {
        /// The job.
        job: JobId,
    },
    /// The picker returned an error it classifies as not retryable; the runner
    /// stopped picking and drained.
    #[error("the picker failed: {source}")]
    PickFailed {
        /// The picker's error.
        source: BoxError,
    },
    /// The picker panicked; the runner stopped picking and drained.
    #[error("the picker panicked: {message}")]
    PickerPanicked {
        /// The panic message.
        message: String,
    },
    /// A user callback panicked where the runner cannot go on safely (a
    /// metadata type whose `job_id` panics); the runner abandoned the run.
    #[error("`{callback}` panicked: {message}")]
    CallbackPanicked {
        /// Which callback.
        callback: &'static str,
        /// The panic message.
        message: String,
    },
    /// One of the runner's own tasks died; the runner abandoned the run and
    /// released what the task's queues held.
    #[error("runner task `{task}` died: {message}")]
    TaskDied {
        /// Which task.
        task: &'static str,
        /// Why.
        message: String,
    },
}

impl RunErrorKind {
    /// The job the error is about, if any.
    pub fn job(&self) -> Option<JobId> {
        match self {
            Self::SinkGone { last_job, .. } => Some(*last_job),
            Self::SaveGaveUp { job } => Some(*job),
            _ => None,
        }
    }
}

/// A run that ended with an error. It still drained or abandoned cleanly: the
/// [`report`](Self::report) accounts for every picked job.
pub struct RunError {
    kind: RunErrorKind,
    report: Box<RunReport>,
}

impl RunError {
    pub(crate) fn new(kind: RunErrorKind, report: RunReport) -> Self {
        Self {
            kind,
            report: Box::new(report),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &RunErrorKind {
        &self.kind
    }

    /// The job the error is about, if any.
    pub fn job(&self) -> Option<JobId> {
        self.kind.job()
    }

    /// What the run did before and after the error.
    pub fn report(&self) -> &RunReport {
        &self.report
    }

    /// Splits into the error and the report.
    pub fn into_parts(self) -> (RunErrorKind, RunReport) {
        (self.kind, *self.report)
    }
}

impl fmt::Debug for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunError")
            .field("kind", &self.kind)
            .field("report", &self.report)
            .finish()
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage `{}`: {}", self.report.stage, self.kind)
    }
}

impl StdError for RunError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.kind.source()
    }
}
