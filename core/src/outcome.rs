//! The result of executing one job: [`ExecError`] and [`JobResult`].

use std::fmt;
use std::time::Duration;

/// What a saver receives for one job: the executor's output, or why there is none.
pub type JobResult<O, F> = Result<O, ExecError<F>>;

/// Why a job produced no output.
///
/// Executor errors, panics and timeouts are all *results*: the runner hands them to
/// the saver like any output, so that a failing job is recorded rather than lost,
/// and the runner keeps running.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecError<F> {
    /// The executor returned an error.
    Failed(F),
    /// The executor panicked; the panic was caught and its message kept.
    Panicked {
        /// The panic payload, if it was a string.
        message: String,
    },
    /// The job ran past the runner's per-job timeout.
    TimedOut {
        /// The timeout that was exceeded.
        after: Duration,
    },
    /// The job was cancelled while it ran ([`JobCancels`](crate::JobCancels)).
    Cancelled,
}

impl<F> ExecError<F> {
    /// The failure of a caught panic, keeping its message (for code that runs
    /// an executor itself, outside a runner).
    ///
    /// ```
    /// use pjp_core::ExecError;
    ///
    /// let caught = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
    /// let error: ExecError<String> = ExecError::from_panic(caught.as_ref());
    /// assert_eq!(error, ExecError::Panicked { message: "boom".into() });
    /// ```
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        Self::Panicked {
            message: crate::guard::panic_message(payload),
        }
    }

    /// Whether the executor panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, Self::Panicked { .. })
    }

    /// Whether the job timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::TimedOut { .. })
    }

    /// Borrows the executor's error, like [`Option::as_ref`]: with
    /// [`map`](Self::map), converts a borrowed failure without cloning it.
    ///
    /// ```
    /// use pjp_core::ExecError;
    ///
    /// let error: ExecError<std::io::Error> = ExecError::Failed(std::io::Error::other("disk full"));
    /// let message: ExecError<String> = error.as_ref().map(ToString::to_string);
    /// assert_eq!(message, ExecError::Failed("disk full".to_owned()));
    /// ```
    pub fn as_ref(&self) -> ExecError<&F> {
        match self {
            Self::Failed(e) => ExecError::Failed(e),
            Self::Panicked { message } => ExecError::Panicked {
                message: message.clone(),
            },
            Self::TimedOut { after } => ExecError::TimedOut { after: *after },
            Self::Cancelled => ExecError::Cancelled,
        }
    }

    /// Maps the executor's error type.
    pub fn map<G>(self, f: impl FnOnce(F) -> G) -> ExecError<G> {
        match self {
            Self::Failed(e) => ExecError::Failed(f(e)),
            Self::Panicked { message } => ExecError::Panicked { message },
            Self::TimedOut { after } => ExecError::TimedOut { after },
            Self::Cancelled => ExecError::Cancelled,
        }
    }
}

impl<F: fmt::Display> fmt::Display for ExecError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "executor failed: {e}"),
            Self::Panicked { message } => write!(f, "executor panicked: {message}"),
            Self::TimedOut { after } => write!(f, "job timed out after {after:?}"),
            Self::Cancelled => f.write_str("job cancelled"),
        }
    }
}

impl<F: fmt::Display + fmt::Debug> std::error::Error for ExecError<F> {}
