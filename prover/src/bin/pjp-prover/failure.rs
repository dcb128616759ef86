//! How a command fails: a message and the exit code it maps to.

use std::process::ExitCode;

use pjp_postgres::QueueError;
use pjp_prover::SetupError;

/// A command's failure, with the exit code it maps to.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl From<QueueError> for Failure {
    fn from(error: QueueError) -> Self {
        // A malformed URL or name is a usage error; the rest happen at run time.
        let code = if matches!(error, QueueError::Invalid { .. }) {
            2
        } else {
            1
        };
        Self {
            code,
            message: error.to_string(),
        }
    }
}

impl From<SetupError> for Failure {
    fn from(error: SetupError) -> Self {
        match error {
            SetupError::Queue(error) => error.into(),
            // Values that cannot run together are bad usage, like a bad flag.
            SetupError::Config(error) => Self {
                code: 2,
                message: error.to_string(),
            },
            other => Self::runtime(other.to_string()),
        }
    }
}

impl Failure {
    /// A failure at run time (exit 1).
    pub(crate) fn runtime(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    pub(crate) fn exit(self) -> ExitCode {
        eprintln!("pjp-prover: error: {}", self.message);
        ExitCode::from(self.code)
    }
}
