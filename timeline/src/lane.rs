//! Lanes: [`LaneId`] (how callers name a lane) and [`LaneEntry`] (its label and
//! place in the drawing).

use pjp_core::observe::Lane;

/// A lane of a [`Timeline`](crate::Timeline), from
/// [`Timeline::lane`](crate::Timeline::lane) or
/// [`Timeline::lane_of`](crate::Timeline::lane_of).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LaneId(pub(crate) usize);

/// One lane: its label and where it is drawn.
#[derive(Debug, Clone)]
pub(crate) struct LaneEntry {
    pub(crate) label: String,
    /// The lane's group (creation order), then its place within the group.
    pub(crate) order: (usize, Option<Lane>),
}
