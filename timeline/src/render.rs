//! Drawing: one or more pictures, one above the other, on plotters'
//! `SVGBackend`.
//!
//! Each picture is a title, its lanes (idle background, coloured spans,
//! ranges and markers on top, their labels in header rows above the lanes), a
//! throughput strip on the same time axis, and a legend.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::axis::Axis;
use crate::error::TimelineError;
use crate::picture::{DEFAULT_WIDTH, Picture};
use crate::span::SpanEntry;
use crate::style::{
    BACKOFF, EXECUTE, FONT, GRID, IDLE, INK, MARKER, PICK, RANGE, SAVE, SEPARATOR, color,
    text_style,
};
use crate::throughput::Throughput;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

const TITLE_H: u32 = 36;
const ROW_H: u32 = 22;
/// Header rows for marker and range labels, at most.
const MAX_HEADER_ROWS: usize = 3;
const LANES_TOP: u32 = 6;
const LANES_AXIS_H: u32 = 28;
const STRIP_H: u32 = 150;
const LEGEND_H: u32 = 34;
const RIGHT_MARGIN: u32 = 24;
/// Roughly how wide one character of a 13 px label is.
const CHAR_W: u32 = 7;

fn err<E>(error: E) -> TimelineError
where
    E: std::error::Error + Send + Sync + 'static,
{
    TimelineError::draw(error)
}

/// Renders `pictures` one above the other on one time axis, as wide as the
/// widest.
pub(crate) fn render(pictures: &[&Picture]) -> Result<String, TimelineError> {
    for picture in pictures {
        picture.check()?;
    }
    let width = pictures
        .iter()
        .map(|p| p.width)
        .max()
        .unwrap_or(DEFAULT_WIDTH);
    let longest = pictures.iter().map(|p| p.duration_s()).fold(0.0, f64::max);
    let axis = Axis::new(if longest > 0.0 { longest } else { 1.0 });
    let label_w = pictures
        .iter()
        .flat_map(|p| p.lanes.iter().map(|l| l.label.chars().count()))
        .max()
        .map_or(0, |chars| u32::try_from(chars).unwrap_or(u32::MAX))
        .saturating_mul(CHAR_W)
        .saturating_add(24)
        .clamp(90, 360);
    let heights: Vec<u32> = pictures.iter().map(|p| height(p)).collect();
    let total = heights.iter().fold(0u32, |sum, h| sum.saturating_add(*h));
    let layout = Layout {
        axis,
        label_w,
        width,
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, total)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut rest = root.clone();
        for (picture, height) in pictures.iter().zip(heights) {
            let (area, below) = rest.split_vertically(height);
            draw_picture(picture, &area, &layout)?;
            rest = below;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// What every picture of one SVG shares, so that their axes line up.
struct Layout {
    axis: Axis,
    label_w: u32,
    width: u32,
}

/// Header rows for the labels of markers and ranges.
fn header_rows(picture: &Picture) -> usize {
    (picture.markers.len() + picture.ranges.len()).min(MAX_HEADER_ROWS)
}

/// Lane rows: an empty picture keeps one, for its note.
fn lane_rows(picture: &Picture) -> usize {
    picture.lanes.len().max(1)
}

fn lanes_height(picture: &Picture) -> u32 {
    let rows = u32::try_from(lane_rows(picture) + header_rows(picture)).unwrap_or(u32::MAX);
    rows.saturating_mul(ROW_H)
        .saturating_add(LANES_TOP + LANES_AXIS_H)
}

fn height(picture: &Picture) -> u32 {
    lanes_height(picture).saturating_add(TITLE_H + STRIP_H + LEGEND_H)
}

fn draw_picture(picture: &Picture, area: &Area<'_>, layout: &Layout) -> Result<(), TimelineError> {
    let (title, body) = area.split_vertically(TITLE_H);
    let (lanes, below) = body.split_vertically(lanes_height(picture));
    let (strip, legend) = below.split_vertically(STRIP_H);
    let title_style = TextStyle::from((FONT, 20).into_font().style(FontStyle::Bold))
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let middle = i32::try_from(TITLE_H / 2).unwrap_or(0);
    title
        .draw(&Text::new(
            picture.title.as_str(),
            (12, middle),
            title_style,
        ))
        .map_err(err)?;
    draw_lanes(picture, &lanes, layout)?;
    let throughput = Throughput::of(&picture.spans, layout.axis.duration);
    draw_strip(picture, &throughput, &strip, layout)?;
    draw_legend(&throughput, &legend, layout)
}

/// The spans of every lane in time order, with each span narrower than
/// `pixel` seconds merged into the span before it on its lane if that is of
/// the same activity and ends less than a pixel before it: the picture looks
/// the same, and a long run of short jobs stays a small file.
fn coalesce(spans: &[SpanEntry], lanes: usize, pixel: f64) -> impl Iterator<Item = SpanEntry> {
    let mut by_lane: Vec<Vec<SpanEntry>> = vec![Vec::new(); lanes];
    for span in spans {
        // `check` made sure that every lane exists.
        if let Some(lane) = by_lane.get_mut(span.lane.0) {
            lane.push(*span);
        }
    }
    by_lane.into_iter().flat_map(move |mut lane| {
        lane.sort_by(|a, b| {
            a.start
                .total_cmp(&b.start)
                .then(a.end.total_cmp(&b.end))
                .then(a.activity.cmp(&b.activity))
        });
        let mut merged: Vec<SpanEntry> = Vec::with_capacity(lane.len());
        for span in lane {
            match merged.last_mut() {
                Some(last)
                    if last.activity == span.activity
                        && span.end - span.start < pixel
                        && span.start <= last.end + pixel =>
                {
                    last.end = last.end.max(span.end);
                    last.jobs = last.jobs.saturating_add(span.jobs);
                }
                _ => merged.push(span),
            }
        }
        merged
    })
}

/// A marker or a range, with the header row of its label.
enum Note<'t> {
    Marker { at: f64, label: &'t str },
    Range { from: f64, to: f64, label: &'t str },
}

impl Note<'_> {
    fn at(&self) -> f64 {
        match self {
            Self::Marker { at, .. } => *at,
            Self::Range { from, .. } => *from,
        }
    }
}

/// Markers and ranges in time order (ties in the order they were added:
/// markers first).
fn notes(picture: &Picture) -> Vec<Note<'_>> {
    let markers = picture.markers.iter().map(|m| Note::Marker {
        at: m.at,
        label: &m.label,
    });
    let ranges = picture.ranges.iter().map(|r| Note::Range {
        from: r.from,
        to: r.to,
        label: &r.label,
    });
    let mut notes: Vec<Note<'_>> = markers.chain(ranges).collect();
    notes.sort_by(|a, b| a.at().total_cmp(&b.at()));
    notes
}

fn draw_lanes(picture: &Picture, area: &Area<'_>, layout: &Layout) -> Result<(), TimelineError> {
    let axis = &layout.axis;
    let order = picture.drawing_order();
    let rows = lane_rows(picture) as f64;
    let header = header_rows(picture);
    let top = rows + header as f64;
    let mut chart = ChartBuilder::on(area)
        .margin_top(LANES_TOP)
        .margin_right(RIGHT_MARGIN)
        .x_label_area_size(LANES_AXIS_H)
        .y_label_area_size(layout.label_w)
        .build_cartesian_2d(0f64..axis.duration, 0f64..top)
        .map_err(err)?;
    // Lane `i` (0 at the top) spans `base(i)..base(i) + 1`.
    let base = |i: usize| rows - 1.0 - i as f64;
    let mut row_of = vec![0; picture.lanes.len()];
    for (i, id) in order.iter().enumerate() {
        row_of[id.0] = i;
    }

    // Idle is the lanes' background.
    chart
        .draw_series(order.iter().enumerate().map(|(i, _)| {
            Rectangle::new(
                [(0.0, base(i) + 0.08), (axis.duration, base(i) + 0.92)],
                IDLE.filled(),
            )
        }))
        .map_err(err)?;
    let format = |v: &f64| axis.format(*v);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .y_labels(0)
        .x_labels(10)
        .x_max_light_lines(0)
        .bold_line_style(GRID)
        .x_label_formatter(&format)
        .label_style((FONT, 12))
        .draw()
        .map_err(err)?;

    // A span narrower than a pixel still shows.
    let plot_w = layout
        .width
        .saturating_sub(layout.label_w + RIGHT_MARGIN)
        .max(1);
    let min_w = axis.duration / f64::from(plot_w);
    chart
        .draw_series(
            coalesce(&picture.spans, picture.lanes.len(), min_w).map(|span| {
                let y = base(row_of[span.lane.0]);
                let end = span.end.max(span.start + min_w);
                Rectangle::new(
                    [(span.start, y + 0.2), (end, y + 0.8)],
                    color(span.activity).filled(),
                )
            }),
        )
        .map_err(err)?;

    // A line between nodes (groups of lanes).
    let separators = order.windows(2).enumerate().filter_map(|(i, pair)| {
        let (above, below) = (&picture.lanes[pair[0].0], &picture.lanes[pair[1].0]);
        let other_group = above.order.0 != below.order.0;
        let a_node = above.order.1.is_some() || below.order.1.is_some();
        (other_group && a_node).then(|| {
            let y = base(i + 1) + 1.0;
            PathElement::new(vec![(0.0, y), (axis.duration, y)], SEPARATOR)
        })
    });
    chart.draw_series(separators).map_err(err)?;

    let labels = text_style(13, Pos::new(HPos::Right, VPos::Center));
    chart
        .draw_series(order.iter().enumerate().map(|(i, id)| {
            EmptyElement::at((0.0, base(i) + 0.5))
                + Text::new(picture.lanes[id.0].label.clone(), (-8, 0), labels.clone())
        }))
        .map_err(err)?;
    if order.is_empty() {
        let note = text_style(14, Pos::new(HPos::Center, VPos::Center));
        chart
            .draw_series(std::iter::once(Text::new(
                "no activity recorded",
                (axis.duration / 2.0, 0.5),
                note,
            )))
            .map_err(err)?;
    }

    // Ranges shade every lane; markers cross them. Labels go in the header
    // rows, taking turns so that close labels do not overlap.
    let label_style = text_style(12, Pos::new(HPos::Left, VPos::Center));
    for (k, note) in notes(picture).iter().enumerate() {
        let row = k % header.max(1);
        let label_y = top - row as f64 - 0.5;
        match *note {
            Note::Range { from, to, label } => {
                chart
                    .draw_series([
                        Rectangle::new([(from, 0.0), (to, rows)], RANGE.mix(0.18).filled()),
                        Rectangle::new(
                            [(from, label_y - 0.4), (to, label_y - 0.3)],
                            RANGE.filled(),
                        ),
                    ])
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((from, label_y))
                            + Text::new(label.to_owned(), (3, 0), label_style.clone()),
                    ))
                    .map_err(err)?;
            }
            Note::Marker { at, label } => {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(at, 0.0), (at, label_y)],
                        MARKER.stroke_width(2),
                    )))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((at, label_y))
                            + Text::new(label.to_owned(), (4, 0), label_style.clone()),
                    ))
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

fn draw_strip(
    picture: &Picture,
    throughput: &Throughput,
    area: &Area<'_>,
    layout: &Layout,
) -> Result<(), TimelineError> {
    let axis = &layout.axis;
    let peak = throughput.peak();
    let y_max = if peak > 0.0 { peak * 1.15 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin_top(10)
        .margin_right(RIGHT_MARGIN)
        .x_label_area_size(40)
        .y_label_area_size(layout.label_w)
        .build_cartesian_2d(0f64..axis.duration, 0f64..y_max)
        .map_err(err)?;
    let format_x = |v: &f64| axis.format(*v);
    let y_decimals = if y_max >= 10.0 { 0 } else { 1 };
    let format_y = |v: &f64| format!("{v:.y_decimals$}");
    let x_desc = format!("time ({})", axis.unit);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(0)
        .bold_line_style(GRID)
        .x_labels(10)
        .y_labels(4)
        .x_label_formatter(&format_x)
        .y_label_formatter(&format_y)
        .x_desc(x_desc)
        .y_desc("saved / s")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(
            picture
                .ranges
                .iter()
                .map(|r| Rectangle::new([(r.from, 0.0), (r.to, y_max)], RANGE.mix(0.18).filled())),
        )
        .map_err(err)?;
    chart
        .draw_series(throughput.rates.iter().enumerate().map(|(bin, &rate)| {
            let from = bin as f64 * throughput.bin_s;
            let to = (from + throughput.bin_s).min(axis.duration);
            Rectangle::new([(from, 0.0), (to, rate)], SAVE.filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(
            picture.markers.iter().map(|m| {
                PathElement::new(vec![(m.at, 0.0), (m.at, y_max)], MARKER.stroke_width(2))
            }),
        )
        .map_err(err)?;
    Ok(())
}

fn draw_legend(
    throughput: &Throughput,
    area: &Area<'_>,
    layout: &Layout,
) -> Result<(), TimelineError> {
    let style = text_style(12, Pos::new(HPos::Left, VPos::Center));
    let items = [
        ("pick", PICK, false),
        ("execute", EXECUTE, false),
        ("save", SAVE, false),
        ("back-off", BACKOFF, false),
        ("idle", IDLE, false),
        ("marker", MARKER, true),
        ("range", RANGE, false),
    ];
    let mut x = i32::try_from(layout.label_w).unwrap_or(0);
    let (top, middle) = (10, 17);
    for (name, color, line) in items {
        if line {
            area.draw(&PathElement::new(
                vec![(x + 6, top), (x + 6, top + 14)],
                color.stroke_width(2),
            ))
            .map_err(err)?;
        } else {
            area.draw(&Rectangle::new(
                [(x, top), (x + 14, top + 14)],
                color.filled(),
            ))
            .map_err(err)?;
        }
        area.draw(&Text::new(name, (x + 20, middle), style.clone()))
            .map_err(err)?;
        x += 20 + i32::try_from(name.len()).unwrap_or(0) * 7 + 18;
    }
    let bin = round_number(throughput.bin_s * layout.axis.scale);
    let note = format!(
        "throughput: jobs saved per second, in bins of {bin} {}",
        layout.axis.unit
    );
    area.draw(&Text::new(note, (x + 12, middle), style))
        .map_err(err)?;
    Ok(())
}

/// `value` with up to six decimals and no trailing zeros: `0.2`, `5`.
fn round_number(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}
