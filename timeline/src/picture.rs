//! [`Picture`]: what one timeline draws (its title, width, lanes, spans,
//! markers and ranges), checked and ordered for the renderer.

use crate::error::TimelineError;
use crate::event::{Band, Marker};
use crate::lane::{LaneEntry, LaneId};
use crate::span::SpanEntry;

/// The width of a picture unless [`Timeline::set_width`](crate::Timeline::set_width)
/// says otherwise.
pub const DEFAULT_WIDTH: u32 = 1200;

/// The content of one timeline's picture. [`Timeline`](crate::Timeline) builds
/// it; the renderer draws it.
#[derive(Debug, Clone)]
pub(crate) struct Picture {
    pub(crate) title: String,
    pub(crate) width: u32,
    pub(crate) lanes: Vec<LaneEntry>,
    pub(crate) spans: Vec<SpanEntry>,
    pub(crate) markers: Vec<Marker>,
    pub(crate) ranges: Vec<Band>,
}

impl Picture {
    /// An empty picture, [`DEFAULT_WIDTH`] pixels wide.
    pub(crate) fn new(title: String) -> Self {
        Self {
            title,
            width: DEFAULT_WIDTH,
            lanes: Vec::new(),
            spans: Vec::new(),
            markers: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// The lanes in the order they are drawn, top to bottom.
    pub(crate) fn drawing_order(&self) -> Vec<LaneId> {
        let mut order: Vec<LaneId> = (0..self.lanes.len()).map(LaneId).collect();
        order.sort_by_key(|id| self.lanes[id.0].order);
        order
    }

    /// Seconds from the start to the last span end, marker or range end; 0
    /// for none. Times that are not finite are ignored.
    pub(crate) fn duration_s(&self) -> f64 {
        let ends = self.spans.iter().map(|s| s.end);
        let marks = self.markers.iter().map(|m| m.at);
        let ranges = self.ranges.iter().map(|r| r.to);
        ends.chain(marks)
            .chain(ranges)
            .filter(|t| t.is_finite())
            .fold(0.0, f64::max)
    }

    /// Checks every time and lane id.
    pub(crate) fn check(&self) -> Result<(), TimelineError> {
        let time = |t: f64| t.is_finite() && t >= 0.0;
        for span in &self.spans {
            let Some(lane) = self.lanes.get(span.lane.0) else {
                return Err(TimelineError::UnknownLane { lane: span.lane });
            };
            if !(time(span.start) && time(span.end) && span.end >= span.start) {
                return Err(TimelineError::InvalidSpan {
                    lane: lane.label.clone(),
                    start_s: span.start,
                    end_s: span.end,
                });
            }
        }
        for marker in &self.markers {
            if !time(marker.at) {
                return Err(TimelineError::InvalidMarker {
                    label: marker.label.clone(),
                    at_s: marker.at,
                });
            }
        }
        for range in &self.ranges {
            if !(time(range.from) && time(range.to) && range.to >= range.from) {
                return Err(TimelineError::InvalidRange {
                    label: range.label.clone(),
                    from_s: range.from,
                    to_s: range.to,
                });
            }
        }
        Ok(())
    }
}
