//! [`TimelineError`]: why a timeline could not be drawn or written.

use std::path::PathBuf;

use crate::lane::LaneId;

/// Why a [`Timeline`](crate::Timeline) could not be rendered or written.
///
/// See [`is_retryable`](Self::is_retryable) for which are worth trying again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimelineError {
    /// A span names a lane of another timeline.
    #[error("span on {lane:?}, which this timeline does not have")]
    UnknownLane {
        /// The lane.
        lane: LaneId,
    },
    /// A span's times are not finite, negative, or end before they start.
    #[error("span on lane `{lane}` from {start_s} s to {end_s} s is not a valid interval")]
    InvalidSpan {
        /// The lane's label.
        lane: String,
        /// Its start, in seconds.
        start_s: f64,
        /// Its end, in seconds.
        end_s: f64,
    },
    /// A marker's time is not finite or negative.
    #[error("marker `{label}` at {at_s} s is not a valid time")]
    InvalidMarker {
        /// The marker's label.
        label: String,
        /// Its time, in seconds.
        at_s: f64,
    },
    /// A range's times are not finite, negative, or end before they start.
    #[error("range `{label}` from {from_s} s to {to_s} s is not a valid interval")]
    InvalidRange {
        /// The range's label.
        label: String,
        /// Its start, in seconds.
        from_s: f64,
        /// Its end, in seconds.
        to_s: f64,
    },
    /// The drawing library failed.
    #[error("drawing the timeline failed")]
    Draw {
        /// What the drawing library reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The SVG could not be written.
    #[error("cannot write the timeline to {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl TimelineError {
    /// Whether trying again with the same timeline could succeed: only for
    /// [`Io`](Self::Io), whose cause is outside the timeline.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Io { .. })
    }

    /// Wraps an error of the drawing library.
    pub(crate) fn draw<E>(error: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self::Draw {
            source: Box::new(error),
        }
    }
}
