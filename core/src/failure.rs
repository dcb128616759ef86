//! How the runner treats what goes wrong: [`ErrorClass`] for picker and saver
//! errors, [`ReleaseReason`] for a job handed back.

use std::fmt;

/// What a picker or saver error means for the job, as told by
/// [`JobSaver::classify`](crate::JobSaver::classify) and
/// [`JobPicker::classify`](crate::JobPicker::classify).
///
/// ```
/// use pjp_core::ErrorClass;
///
/// // A database saver might classify its errors like this:
/// fn classify(rows_fenced: bool, connection_lost: bool) -> ErrorClass {
///     if rows_fenced {
///         ErrorClass::LostClaim // another worker holds the job now
///     } else if connection_lost {
///         ErrorClass::Transient // retry with back-off
///     } else {
///         ErrorClass::Permanent // give up on this job only
///     }
/// }
/// assert_eq!(classify(true, false), ErrorClass::LostClaim);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Worth retrying: back off and try again (a dropped connection, a
    /// failover, a deadlock).
    Transient,
    /// Retrying will not help. A save gives up on this job only (the job is
    /// released and listed in the report's `save_gave_up`); a pick error stops
    /// picking and the run drains.
    Permanent,
    /// The job's claim was superseded: another worker holds it now (its lease
    /// expired, a fencing token moved on). The result is dropped, the job is
    /// counted in the report's `fenced`, and the run goes on.
    LostClaim,
    /// The stage downstream is gone and will take no more jobs: the job is
    /// released and the runner stops picking and finishes
    /// ([`StopReason::DownstreamGone`](crate::StopReason::DownstreamGone)).
    DownstreamGone,
}

impl ErrorClass {
    /// The class of an error from a plain `is_retryable` answer.
    pub fn from_retryable(retryable: bool) -> Self {
        if retryable {
            Self::Transient
        } else {
            Self::Permanent
        }
    }
}

/// Why the runner hands a job back to its picker
/// ([`JobPicker::release`](crate::JobPicker::release)).
///
/// A durable queue uses it to decide what a release costs: none of these is the
/// job's own fault, so none should burn one of its attempts, but a queue may
/// record the last one or dead-letter a job whose saves keep giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReleaseReason {
    /// The run was abandoned (a second signal, a fatal error, a dead task)
    /// before the job started.
    Abandon,
    /// A drain ran past its grace period and turned into abandon.
    Drain,
    /// Every save of the job's result failed; the result is lost, the job is
    /// not done.
    SaveGaveUp,
    /// The next stage went away before it could take the job.
    DownstreamGone,
}

impl fmt::Display for ReleaseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Abandon => "abandon",
            Self::Drain => "drain past its grace period",
            Self::SaveGaveUp => "save gave up",
            Self::DownstreamGone => "downstream gone",
        })
    }
}
