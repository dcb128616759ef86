//! [`StageError`]: why a stage channel operation failed.

/// Why a stage channel operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StageError {
    /// The channel was closed.
    #[error("the stage channel is closed")]
    Closed,
    /// The downstream stage abandoned or went away: it will take no more jobs.
    #[error("the downstream stage is gone")]
    DownstreamGone,
    /// The upstream picker failed to take a released job back.
    #[error("the upstream picker failed to release the job: {0}")]
    Upstream(#[source] Box<dyn std::error::Error + Send + Sync>),
}
