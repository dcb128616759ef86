//! # pjp-timeline
//!
//! Draws what a prover-job-processor run did, and when, as an SVG: one lane
//! per picker, worker and saver task (of one runner or of a fleet of nodes),
//! coloured spans for picking, executing, saving and backing off (idle is the
//! background), markers for instant events (a crash, a restart), shaded
//! ranges for periods (a partition, an outage), and a strip with the jobs
//! saved per second below the lanes.
//!
//! A run's spans come from a [`Recorder`](pjp_core::observe::Recorder) given
//! to [`RunnerBuilder::observer`](pjp_core::RunnerBuilder::observer) and are
//! added with [`Timeline::add_lanes`]; a timeline can also be drawn by hand
//! with [`Timeline::lane`] and [`Timeline::span`]. [`compare`] draws two
//! timelines one above the other on one time axis.
//!
//! Drawing uses `plotters`' SVG backend with no font files: text is written
//! as SVG `<text>` elements that the viewer lays out, so label widths are
//! estimated. The same timeline always renders to the same bytes.
//!
//! ```
//! use pjp_core::observe::Activity;
//! use pjp_timeline::Timeline;
//!
//! let mut timeline = Timeline::new("two workers");
//! let picker = timeline.lane("picker");
//! let worker_0 = timeline.lane("worker 0");
//! let worker_1 = timeline.lane("worker 1");
//! let saver = timeline.lane("saver");
//! timeline
//!     .span(picker, 0.0, 0.1, Activity::Pick)
//!     .span(picker, 0.1, 0.2, Activity::Pick)
//!     .span(picker, 0.2, 0.5, Activity::Backoff)
//!     .span(worker_0, 0.1, 1.1, Activity::Execute)
//!     .span(worker_1, 0.2, 1.3, Activity::Execute)
//!     .span(saver, 1.1, 1.2, Activity::Save)
//!     .span_jobs(saver, 1.3, 1.4, Activity::Save, 1)
//!     .marker(0.6, "node-2 crashed")
//!     .range(0.7, 0.9, "partition");
//!
//! let svg = timeline.render_svg()?;
//! assert!(svg.starts_with("<svg"));
//! assert!(svg.contains("worker 1") && svg.contains("partition"));
//! // Deterministic: the same timeline gives the same bytes.
//! assert_eq!(svg, timeline.render_svg()?);
//! # Ok::<(), pjp_timeline::TimelineError>(())
//! ```

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

// Layers, each module importing only from layers below its own:
//   timeline                          the public builder, `compare`
//   render                            drawing with plotters
//   picture, throughput, axis, style  what is drawn, and how it looks
//   error, span, event
//   lane
mod axis;
mod error;
mod event;
mod lane;
mod picture;
mod render;
mod span;
mod style;
mod throughput;
mod timeline;

pub use error::TimelineError;
pub use lane::LaneId;
pub use picture::DEFAULT_WIDTH;
pub use timeline::{Timeline, compare};
