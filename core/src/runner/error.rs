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
    /// A save kept failing: the runner gave up on the job, released it back to
    /// the picker (if it could) and abandoned the run.
    #[error("saving job {job} failed after {attempts} attempt(s); {}: {source}", released_text(*.released))]
    SaveFailed {
        /// The job.
        job: JobId,
        /// Save attempts made.
        attempts: u32,
        /// Whether the job was released back to the picker.
        released: bool,
        /// The saver's last error.
        source: BoxError,
    },
    /// The saver panicked while saving a job.
    #[error("the saver panicked saving job {job}: {message}; {}", released_text(*.released))]
    SaverPanicked {
        /// The job.
        job: JobId,
        /// The panic message.
        message: String,
        /// Whether the job was released back to the picker.
        released: bool,
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
    /// One of the runner's own tasks died.
    #[error("runner task `{task}` died: {message}")]
    TaskDied {
        /// Which task.
        task: &'static str,
        /// Why.
        message: String,
    },
}

fn released_text(released: bool) -> &'static str {
    if released {
        "the job was released"
    } else {
        "releasing the job failed too"
    }
}

impl RunErrorKind {
    /// The job the error is about, if any.
    pub fn job(&self) -> Option<JobId> {
        match self {
            Self::SaveFailed { job, .. } | Self::SaverPanicked { job, .. } => Some(*job),
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
