//! [`Timeline`]: builds the picture of one run (lanes, spans, markers and
//! ranges) and hands it to the renderer; [`compare`] draws two of them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use pjp_core::observe::{Activity, ActivitySpan, Lane};

use crate::error::TimelineError;
use crate::event::{Band, Marker};
use crate::lane::{LaneEntry, LaneId};
use crate::picture::Picture;
use crate::render;
use crate::span::SpanEntry;

/// A timeline of one run (or of a fleet of runners): one lane per task, its
/// spans of activity, instant markers and shaded ranges, and the throughput
/// over time below. All times are in seconds from the start of the picture.
///
/// Lanes are drawn top to bottom in the order their groups were created: a
/// lane made with [`lane`](Self::lane) is its own group; the lanes of one node
/// added with [`add_lanes`](Self::add_lanes) form one group, ordered pickers,
/// workers, savers, then by index. The same input always gives the same SVG,
/// byte for byte.
///
/// See the [crate docs](crate) for an example.
#[derive(Debug, Clone)]
pub struct Timeline {
    picture: Picture,
    nodes: Vec<NodeLanes>,
    groups: usize,
}

/// The lanes of one node, by the runner's lane.
#[derive(Debug, Clone)]
struct NodeLanes {
    name: String,
    group: usize,
    lanes: BTreeMap<Lane, LaneId>,
}

impl Timeline {
    /// An empty timeline with a title, drawn [`DEFAULT_WIDTH`](crate::DEFAULT_WIDTH)
    /// pixels wide.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            picture: Picture::new(title.into()),
            nodes: Vec::new(),
            groups: 0,
        }
    }

    /// The title.
    pub fn title(&self) -> &str {
        &self.picture.title
    }

    /// Sets the picture's width in pixels (at least 400). The height follows
    /// from the number of lanes.
    pub fn set_width(&mut self, width: u32) -> &mut Self {
        self.picture.width = width.max(400);
        self
    }

    /// Adds the spans a runner on `node` reported (through a
    /// [`Recorder`](pjp_core::observe::Recorder)), one lane per task seen,
    /// labelled `"{node} {role} {index}"` (`"node-1 worker 0"`), with times
    /// counted from `origin`. Use one origin for every node so that their
    /// lanes line up; a span before it starts at 0.
    ///
    /// A node added again (a restarted runner) reuses its lanes.
    pub fn add_lanes(&mut self, node: &str, origin: Instant, spans: &[ActivitySpan]) -> &mut Self {
        let seconds = |at: Instant| at.saturating_duration_since(origin).as_secs_f64();
        for span in spans {
            let lane = self.lane_of(node, span.lane);
            self.picture.spans.push(SpanEntry {
                lane,
                start: seconds(span.start),
                end: seconds(span.end),
                activity: span.activity,
                jobs: span.jobs,
            });
        }
        self
    }

    /// The lane of task `lane` on `node`, created (empty) if it is new; see
    /// [`add_lanes`](Self::add_lanes).
    pub fn lane_of(&mut self, node: &str, lane: Lane) -> LaneId {
        let index = match self.nodes.iter().position(|n| n.name == node) {
            Some(index) => index,
            None => {
                let group = self.next_group();
                self.nodes.push(NodeLanes {
                    name: node.to_owned(),
                    group,
                    lanes: BTreeMap::new(),
                });
                self.nodes.len() - 1
            }
        };
        let group = self.nodes[index].group;
        if let Some(&id) = self.nodes[index].lanes.get(&lane) {
            return id;
        }
        let label = if node.is_empty() {
            lane.to_string()
        } else {
            format!("{node} {lane}")
        };
        let id = self.push_lane(label, (group, Some(lane)));
        self.nodes[index].lanes.insert(lane, id);
        id
    }

    /// A new lane labelled `label`, drawn below the lanes made before it
    /// (each call makes a new lane, even with a label seen before).
    pub fn lane(&mut self, label: impl Into<String>) -> LaneId {
        let group = self.next_group();
        self.push_lane(label.into(), (group, None))
    }

    /// A span of `activity` on `lane`, from `start_s` to `end_s` seconds. A
    /// save or an execution counts one job (a save adds to the throughput at
    /// its end); use [`span_jobs`](Self::span_jobs) for a batch.
    ///
    /// Times are checked when the timeline is rendered: they must be finite,
    /// not negative, and end at or after the start.
    pub fn span(
        &mut self,
        lane: LaneId,
        start_s: f64,
        end_s: f64,
        activity: Activity,
    ) -> &mut Self {
        let jobs = u32::from(matches!(activity, Activity::Save | Activity::Execute));
        self.span_jobs(lane, start_s, end_s, activity, jobs)
    }

    /// A span of `activity` on `lane` that concerned `jobs` jobs (a save
    /// call's batch size: the throughput strip counts the jobs of save spans).
    pub fn span_jobs(
        &mut self,
        lane: LaneId,
        start_s: f64,
        end_s: f64,
        activity: Activity,
        jobs: u32,
    ) -> &mut Self {
        self.picture.spans.push(SpanEntry {
            lane,
            start: start_s,
            end: end_s,
            activity,
            jobs,
        });
        self
    }

    /// An instant event (a crash, a restart) at `at_s` seconds: a vertical
    /// line across every lane, with its label above them.
    pub fn marker(&mut self, at_s: f64, label: impl Into<String>) -> &mut Self {
        self.picture.markers.push(Marker {
            at: at_s,
            label: label.into(),
        });
        self
    }

    /// A period (a partition, an outage) from `from_s` to `to_s` seconds: a
    /// shaded band across every lane, with its label above them.
    pub fn range(&mut self, from_s: f64, to_s: f64, label: impl Into<String>) -> &mut Self {
        self.picture.ranges.push(Band {
            from: from_s,
            to: to_s,
            label: label.into(),
        });
        self
    }

    /// The labels of the lanes, top to bottom as drawn.
    pub fn lane_labels(&self) -> Vec<&str> {
        self.picture
            .drawing_order()
            .into_iter()
            .map(|id| self.picture.lanes[id.0].label.as_str())
            .collect()
    }

    /// Seconds from the start to the last span end, marker or range end; 0
    /// for a timeline with none. Invalid times (not finite) are ignored.
    pub fn duration_s(&self) -> f64 {
        self.picture.duration_s()
    }

    /// Renders the timeline as an SVG document.
    ///
    /// A timeline with no lanes renders as a valid picture with its title,
    /// the note "no activity recorded" and an empty throughput strip.
    ///
    /// # Errors
    ///
    /// A span, marker or range with invalid times, a span on a lane of
    /// another timeline, or a failure of the drawing library.
    pub fn render_svg(&self) -> Result<String, TimelineError> {
        render::render(&[&self.picture])
    }

    /// Renders the timeline and writes it to `path`.
    ///
    /// # Errors
    ///
    /// As [`render_svg`](Self::render_svg), or [`TimelineError::Io`] if the
    /// file cannot be written.
    pub fn write_svg(&self, path: impl AsRef<Path>) -> Result<(), TimelineError> {
        let svg = self.render_svg()?;
        let path = path.as_ref();
        std::fs::write(path, svg).map_err(|source| TimelineError::Io {
            path: path.to_owned(),
            source,
        })
    }

    fn next_group(&mut self) -> usize {
        self.groups += 1;
        self.groups
    }

    fn push_lane(&mut self, label: String, order: (usize, Option<Lane>)) -> LaneId {
        let lanes = &mut self.picture.lanes;
        lanes.push(LaneEntry { label, order });
        LaneId(lanes.len() - 1)
    }
}

/// Draws two timelines one above the other on one time axis (as long as the
/// longer of the two), each under its own title: a before/after or
/// pipelined/sequential comparison. The picture is as wide as the wider one.
///
/// # Errors
///
/// As [`Timeline::render_svg`], for either timeline.
pub fn compare(top: &Timeline, bottom: &Timeline) -> Result<String, TimelineError> {
    render::render(&[&top.picture, &bottom.picture])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pjp_core::observe::Role;

    use super::*;

    fn span(lane: Lane, from_ms: u64, to_ms: u64, origin: Instant) -> ActivitySpan {
        ActivitySpan {
            lane,
            activity: Activity::Execute,
            start: origin + Duration::from_millis(from_ms),
            end: origin + Duration::from_millis(to_ms),
            jobs: 1,
        }
    }

    #[test]
    fn lanes_are_ordered_by_node_then_role_then_index() {
        let origin = Instant::now();
        let mut timeline = Timeline::new("t");
        let hand = timeline.lane("by hand");
        timeline.span(hand, 0.0, 1.0, Activity::Pick);
        timeline.add_lanes(
            "node-2",
            origin,
            &[
                span(Lane::new(Role::Saver, 0), 0, 5, origin),
                span(Lane::new(Role::Worker, 1), 0, 5, origin),
                span(Lane::new(Role::Picker, 0), 0, 5, origin),
                span(Lane::new(Role::Worker, 0), 0, 5, origin),
            ],
        );
        timeline.add_lanes(
            "node-1",
            origin,
            &[span(Lane::new(Role::Worker, 0), 0, 5, origin)],
        );
        // node-2 again: its lanes are reused, a new one joins its group.
        timeline.add_lanes(
            "node-2",
            origin,
            &[
                span(Lane::new(Role::Worker, 0), 10, 20, origin),
                span(Lane::new(Role::Worker, 2), 10, 20, origin),
            ],
        );
        assert_eq!(
            timeline.lane_labels(),
            [
                "by hand",
                "node-2 picker 0",
                "node-2 worker 0",
                "node-2 worker 1",
                "node-2 worker 2",
                "node-2 saver 0",
                "node-1 worker 0",
            ]
        );
        assert_eq!(timeline.picture.lanes.len(), 7);
        // The hand-drawn span is the longest.
        assert_eq!(timeline.duration_s(), 1.0);
    }

    #[test]
    fn spans_before_the_origin_start_at_zero() {
        let origin = Instant::now() + Duration::from_secs(1);
        let mut timeline = Timeline::new("t");
        let early = span(
            Lane::new(Role::Worker, 0),
            0,
            2000,
            origin - Duration::from_secs(1),
        );
        timeline.add_lanes("n", origin, &[early]);
        assert_eq!(timeline.picture.spans[0].start, 0.0);
        assert!((timeline.picture.spans[0].end - 1.0).abs() < 1e-9);
        assert_eq!(timeline.lane_labels(), ["n worker 0"]);
    }

    #[test]
    fn invalid_times_are_refused() {
        let mut timeline = Timeline::new("t");
        let lane = timeline.lane("a");
        timeline.span(lane, 2.0, 1.0, Activity::Save);
        let refused = timeline.render_svg();
        assert!(matches!(
            &refused,
            Err(TimelineError::InvalidSpan { lane, .. }) if lane == "a"
        ));
        assert!(refused.is_err_and(|e| !e.is_retryable()));

        let mut timeline = Timeline::new("t");
        timeline.marker(f64::NAN, "crash");
        assert!(matches!(
            timeline.render_svg(),
            Err(TimelineError::InvalidMarker { .. })
        ));

        let mut timeline = Timeline::new("t");
        timeline.range(3.0, 1.0, "outage");
        assert!(matches!(
            timeline.render_svg(),
            Err(TimelineError::InvalidRange { .. })
        ));

        let mut other = Timeline::new("other");
        other.lane("x");
        let foreign = other.lane("y");
        let mut timeline = Timeline::new("t");
        timeline.span(foreign, 0.0, 1.0, Activity::Pick);
        assert!(matches!(
            timeline.render_svg(),
            Err(TimelineError::UnknownLane { .. })
        ));
    }
}
