//! [`SpanEntry`]: one span of activity on a lane.

use pjp_core::observe::Activity;

use crate::lane::LaneId;

/// A span of `activity` on `lane`, in seconds from the start of the picture,
/// that concerned `jobs` jobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanEntry {
    pub(crate) lane: LaneId,
    pub(crate) start: f64,
    pub(crate) end: f64,
    pub(crate) activity: Activity,
    pub(crate) jobs: u32,
}
