//! Rendering: the SVG is valid XML with an `svg` root, shows every lane,
//! marker and range label, and is the same bytes every time.
//!
//! Set `PJP_TIMELINE_SVG_DIR` to a folder to keep the pictures and look at them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pjp_core::memory::MemoryQueue;
use pjp_core::observe::{Activity, ActivitySpan, Lane, Recorder, Role};
use pjp_core::{Executor, JobContext, JobRunner, Runtime, Shutdown};
use pjp_runtime_tokio::TokioRuntime;
use pjp_timeline::{Timeline, TimelineError, compare};

/// The texts of the picture's `<text>` elements, in document order.
fn texts(svg: &str) -> anyhow::Result<Vec<String>> {
    let doc = roxmltree::Document::parse(svg)?;
    anyhow::ensure!(
        doc.root_element().has_tag_name("svg"),
        "root is <{}>",
        doc.root_element().tag_name().name()
    );
    Ok(doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_owned())
        .collect())
}

/// The `y` of the `<text>` element that reads `label`.
fn text_y(svg: &str, label: &str) -> anyhow::Result<f64> {
    let doc = roxmltree::Document::parse(svg)?;
    let node = doc
        .descendants()
        .find(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some(label))
        .ok_or_else(|| anyhow::anyhow!("no text {label:?}"))?;
    let y = node
        .attribute("y")
        .ok_or_else(|| anyhow::anyhow!("text {label:?} has no y"))?;
    Ok(y.parse()?)
}

/// The rectangles filled with `color` (`#RRGGBB`).
fn rects_filled(svg: &str, color: &str) -> anyhow::Result<usize> {
    let doc = roxmltree::Document::parse(svg)?;
    Ok(doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(color))
        .count())
}

fn root_size(svg: &str) -> anyhow::Result<(u32, u32)> {
    let doc = roxmltree::Document::parse(svg)?;
    let root = doc.root_element();
    let attribute = |name| -> anyhow::Result<u32> {
        let value = root
            .attribute(name)
            .ok_or_else(|| anyhow::anyhow!("the svg has no {name}"))?;
        Ok(value.parse()?)
    };
    Ok((attribute("width")?, attribute("height")?))
}

fn keep(name: &str, svg: &str) -> anyhow::Result<()> {
    if let Some(dir) = std::env::var_os("PJP_TIMELINE_SVG_DIR") {
        std::fs::write(std::path::Path::new(&dir).join(name), svg)?;
    }
    Ok(())
}

fn by_hand() -> Timeline {
    let mut timeline = Timeline::new("by hand");
    let picker = timeline.lane("picker");
    let workers = [timeline.lane("worker 0"), timeline.lane("worker 1")];
    let saver = timeline.lane("saver");
    timeline
        .span(picker, 0.0, 0.2, Activity::Pick)
        .span(picker, 0.2, 0.4, Activity::Pick)
        .span(picker, 0.4, 1.4, Activity::Backoff)
        .span(picker, 1.4, 1.6, Activity::Pick);
    for (n, worker) in workers.into_iter().enumerate() {
        let start = 0.2 * (n as f64 + 1.0);
        timeline.span(worker, start, start + 2.0, Activity::Execute);
        timeline.span(worker, start + 2.0, start + 3.5, Activity::Execute);
    }
    timeline
        .span(saver, 2.2, 2.5, Activity::Save)
        .span(saver, 2.5, 3.0, Activity::Backoff)
        .span_jobs(saver, 3.0, 3.3, Activity::Save, 3)
        .marker(1.0, "node-2 crashed")
        .marker(2.9, "node-2 restarted")
        .range(1.2, 2.0, "partition");
    timeline
}

#[test]
fn a_timeline_drawn_by_hand_shows_every_label_and_span() -> anyhow::Result<()> {
    let timeline = by_hand();
    let svg = timeline.render_svg()?;
    keep("by_hand.svg", &svg)?;
    let texts = texts(&svg)?;
    for label in [
        "by hand",
        "picker",
        "worker 0",
        "worker 1",
        "saver",
        "node-2 crashed",
        "node-2 restarted",
        "partition",
    ] {
        assert!(
            texts.iter().any(|t| t == label),
            "{label:?} missing from {texts:?}"
        );
    }
    // Lanes top to bottom in the order they were made.
    let ys = ["picker", "worker 0", "worker 1", "saver"]
        .map(|label| text_y(&svg, label))
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    assert!(ys.windows(2).all(|w| w[0] < w[1]), "label ys: {ys:?}");
    // Every execute span is a green rectangle (and one more in the legend).
    assert_eq!(rects_filled(&svg, "#54A24B")?, 4 + 1);
    // Same input, same bytes.
    assert_eq!(svg, timeline.render_svg()?);
    assert_eq!(svg, timeline.clone().render_svg()?);
    Ok(())
}

/// Spans of one node, as a recorder would hold them, out of lane order.
fn node_spans(origin: Instant, offset_ms: u64) -> Vec<ActivitySpan> {
    let at = |ms: u64| origin + Duration::from_millis(offset_ms + ms);
    let span = |role, index, activity, from, to, jobs| ActivitySpan {
        lane: Lane::new(role, index),
        activity,
        start: at(from),
        end: at(to),
        jobs,
    };
    vec![
        span(Role::Saver, 0, Activity::Save, 300, 320, 2),
        span(Role::Worker, 1, Activity::Execute, 50, 300, 1),
        span(Role::Picker, 0, Activity::Pick, 0, 50, 2),
        span(Role::Worker, 0, Activity::Execute, 50, 280, 1),
        span(Role::Picker, 0, Activity::Backoff, 50, 150, 0),
    ]
}

#[test]
fn lanes_from_spans_are_ordered_by_node_role_and_index() -> anyhow::Result<()> {
    let origin = Instant::now();
    let mut timeline = Timeline::new("fleet");
    timeline
        .add_lanes("node-1", origin, &node_spans(origin, 0))
        .add_lanes("node-2", origin, &node_spans(origin, 100))
        .range(0.15, 0.25, "node-2 partitioned");
    let expected = [
        "node-1 picker 0",
        "node-1 worker 0",
        "node-1 worker 1",
        "node-1 saver 0",
        "node-2 picker 0",
        "node-2 worker 0",
        "node-2 worker 1",
        "node-2 saver 0",
    ];
    assert_eq!(timeline.lane_labels(), expected);
    let svg = timeline.render_svg()?;
    keep("fleet.svg", &svg)?;
    let ys = expected
        .map(|label| text_y(&svg, label))
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    assert!(ys.windows(2).all(|w| w[0] < w[1]), "label ys: {ys:?}");
    assert!(texts(&svg)?.iter().any(|t| t == "node-2 partitioned"));
    // The same spans in another order give the same picture.
    let mut reversed = node_spans(origin, 0);
    reversed.reverse();
    let mut again = Timeline::new("fleet");
    again
        .add_lanes("node-1", origin, &reversed)
        .add_lanes("node-2", origin, &node_spans(origin, 100))
        .range(0.15, 0.25, "node-2 partitioned");
    assert_eq!(again.lane_labels(), expected);
    Ok(())
}

/// `input + 1`.
struct Inc;

impl Executor for Inc {
    type Input = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, Self::Error> {
        Ok(input + 1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_run_renders_one_lane_per_task() -> anyhow::Result<()> {
    let queue: MemoryQueue<u64, u64> = MemoryQueue::closed_with(1..=30);
    let recorder = Recorder::new();
    let runner = JobRunner::builder(queue.picker(), Inc, queue.saver())
        .workers(2)
        .pickers(1)
        .savers(1)
        .observer(Arc::new(recorder.clone()))
        .build()?;
    let runtime = TokioRuntime::current();
    let origin = runtime.now();
    let report = runner.run(&runtime, Shutdown::new()).await?;
    assert_eq!(report.counts.succeeded, 30);

    let spans = recorder.take();
    let mut timeline = Timeline::new("a real run");
    timeline.add_lanes("node-1", origin, &spans);
    let svg = timeline.render_svg()?;
    keep("recorded.svg", &svg)?;
    let texts = texts(&svg)?;
    // Both workers may not have run a job, but the picker and saver did.
    for label in timeline.lane_labels() {
        assert!(texts.iter().any(|t| t == label), "{label:?} missing");
    }
    for label in ["node-1 picker 0", "node-1 saver 0"] {
        assert!(texts.iter().any(|t| t == label), "{label:?} missing");
    }
    // Which of the two workers ran the jobs is the scheduler's choice.
    assert!(
        texts.iter().any(|t| t.starts_with("node-1 worker ")),
        "no worker lane"
    );
    let executes = spans
        .iter()
        .filter(|s| s.activity == Activity::Execute)
        .count();
    assert_eq!(executes, 30);
    // Executions shorter than a pixel may merge with the one before them.
    let green = rects_filled(&svg, "#54A24B")?;
    assert!(
        (2..=executes + 1).contains(&green),
        "{green} execute rectangles"
    );
    assert_eq!(svg, timeline.render_svg()?);
    Ok(())
}

#[test]
fn many_short_spans_merge_into_few_rectangles() -> anyhow::Result<()> {
    let mut timeline = Timeline::new("ten thousand jobs");
    let worker = timeline.lane("worker 0");
    let saver = timeline.lane("saver 0");
    // 10,000 back-to-back executions of 1 ms in 10 s: 1,000 to a pixel.
    for n in 0..10_000 {
        let start = f64::from(n) * 0.001;
        timeline.span(worker, start, start + 0.001, Activity::Execute);
        timeline.span(saver, start + 0.001, start + 0.001, Activity::Save);
    }
    // A long execution stays apart from the one before it.
    timeline.span(worker, 10.0, 12.0, Activity::Execute);
    let svg = timeline.render_svg()?;
    // One merged run, the long one, and the legend's.
    assert_eq!(rects_filled(&svg, "#54A24B")?, 3);
    assert!(svg.len() < 100_000, "{} bytes", svg.len());
    // Every save still counts in the throughput: 10,000 jobs in 10 s, in
    // bins of 0.2 s (12 s / 60): 1,000 a second.
    let texts = texts(&svg)?;
    assert!(texts.iter().any(|t| t == "1000"), "{texts:?}");
    Ok(())
}

#[test]
fn compare_draws_both_timelines_on_one_picture() -> anyhow::Result<()> {
    let origin = Instant::now();
    let mut pipelined = Timeline::new("pipelined");
    pipelined.add_lanes("node-1", origin, &node_spans(origin, 0));
    let mut sequential = Timeline::new("sequential");
    sequential.add_lanes("node-1", origin, &node_spans(origin, 400));
    let svg = compare(&pipelined, &sequential)?;
    keep("compare.svg", &svg)?;
    let texts = texts(&svg)?;
    assert!(texts.iter().any(|t| t == "pipelined"));
    assert!(texts.iter().any(|t| t == "sequential"));
    // One above the other: the picture is as tall as both.
    let (_, both) = root_size(&svg)?;
    let (_, top) = root_size(&pipelined.render_svg()?)?;
    let (_, bottom) = root_size(&sequential.render_svg()?)?;
    assert_eq!(both, top + bottom);
    assert!(text_y(&svg, "pipelined")? < text_y(&svg, "sequential")?);
    assert_eq!(svg, compare(&pipelined, &sequential)?);
    Ok(())
}

#[test]
fn an_empty_timeline_is_a_valid_picture_that_says_so() -> anyhow::Result<()> {
    let timeline = Timeline::new("nothing happened");
    let svg = timeline.render_svg()?;
    keep("empty.svg", &svg)?;
    let texts = texts(&svg)?;
    assert!(texts.iter().any(|t| t == "nothing happened"));
    assert!(texts.iter().any(|t| t == "no activity recorded"));
    // Markers alone still show.
    let mut marked = Timeline::new("marked");
    marked.marker(2.0, "deploy");
    assert!(texts_of(&marked)?.iter().any(|t| t == "deploy"));
    Ok(())
}

fn texts_of(timeline: &Timeline) -> anyhow::Result<Vec<String>> {
    texts(&timeline.render_svg()?)
}

#[test]
fn labels_are_escaped() -> anyhow::Result<()> {
    let mut timeline = Timeline::new("a <b> & \"c\"");
    let lane = timeline.lane("lane <1> & 2");
    timeline.span(lane, 0.0, 1.0, Activity::Execute);
    let texts = texts_of(&timeline)?;
    assert!(texts.iter().any(|t| t == "a <b> & \"c\""));
    assert!(texts.iter().any(|t| t == "lane <1> & 2"));
    Ok(())
}

#[test]
fn write_svg_writes_the_rendered_picture() -> anyhow::Result<()> {
    let timeline = by_hand();
    let dir = std::env::temp_dir().join(format!("pjp-timeline-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("run.svg");
    timeline.write_svg(&path)?;
    assert_eq!(std::fs::read_to_string(&path)?, timeline.render_svg()?);
    std::fs::remove_dir_all(&dir)?;

    let missing = dir.join("no-such-folder").join("run.svg");
    match timeline.write_svg(&missing) {
        Err(error @ TimelineError::Io { .. }) => {
            assert!(error.is_retryable());
            assert!(error.to_string().contains("no-such-folder"), "{error}");
        }
        other => anyhow::bail!("expected an I/O error, got {other:?}"),
    }
    Ok(())
}
