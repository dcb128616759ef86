//! The timeline (`/timeline`, the picture at `/timeline.svg`): the last
//! minutes of the fleet drawn with [`pjp_timeline`], a lane per worker
//! (more when it runs jobs side by side) and the jobs finished per second
//! below.
//!
//! A finished row keeps no lease owner, so the console remembers the worker
//! it saw holding each running job (it samples them while it serves, and on
//! every overview refresh); a job that finished before the console saw it
//! running is drawn on a lane of its kind, marked unattributed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use pjp_core::observe::Activity;
use pjp_postgres::{JobSpan, QueueError};
use pjp_timeline::Timeline;
use serde::Deserialize;

use crate::error::PageError;
use crate::html::{self, escape};
use crate::overview::chrome;
use crate::state::Console;

/// The most jobs one timeline draws.
const SPAN_LIMIT: i64 = 20_000;
/// The most lanes one worker (or kind) gets; more jobs at once share them.
const LANES_PER_GROUP: usize = 8;

/// The timeline's parameters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TimelineQuery {
    minutes: Option<String>,
}

impl TimelineQuery {
    fn minutes(&self, default: u32) -> Result<u32, PageError> {
        match self
            .minutes
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            None => Ok(default),
            Some(m) => m
                .parse::<u32>()
                .ok()
                .filter(|m| (1..=60).contains(m))
                .ok_or_else(|| {
                    PageError::BadRequest(format!(
                        "minutes `{}` is not a whole number from 1 to 60",
                        m.chars().take(40).collect::<String>()
                    ))
                }),
        }
    }
}

/// Records the workers holding the running jobs now.
pub(crate) async fn sample_running(console: &Console) -> Result<(), QueueError> {
    let (_, spans) = console
        .queue()
        .recent_spans(Duration::ZERO, SPAN_LIMIT)
        .await?;
    record(console, &spans);
    Ok(())
}

fn record(console: &Console, spans: &[JobSpan]) {
    console.saw(
        spans
            .iter()
            .filter_map(|s| s.lease_owner.as_deref().map(|o| (s.id, o))),
    );
}

/// One drawn job: its lane group, start and end (seconds from the
/// window's start), and whether it finished.
struct Bar {
    group: String,
    start: f64,
    end: f64,
    finished: bool,
}

/// The fleet's window as bars, and the totals per group.
struct Fleet {
    bars: Vec<Bar>,
    window_s: f64,
}

async fn fleet(console: &Console, minutes: u32) -> Result<Fleet, PageError> {
    let window = Duration::from_secs(u64::from(minutes) * 60);
    let (now, spans) = console.queue().recent_spans(window, SPAN_LIMIT).await?;
    record(console, &spans);
    let origin = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let since = |at: SystemTime| match at.duration_since(origin) {
        Ok(d) => d.as_secs_f64(),
        Err(_) => 0.0,
    };
    let window_s = window.as_secs_f64();
    let bars = spans
        .iter()
        .map(|s| {
            let group = match s.lease_owner.clone().or_else(|| console.seen_owner(s.id)) {
                Some(owner) => owner,
                None => format!(
                    "unattributed · {}",
                    if s.kind.is_empty() { "-" } else { &s.kind }
                ),
            };
            let end = s.finished_at.map_or(window_s, since).min(window_s);
            Bar {
                group,
                start: since(s.started_at).min(end),
                end,
                finished: s.finished_at.is_some(),
            }
        })
        .collect();
    Ok(Fleet { bars, window_s })
}

/// The timeline of `fleet`: bars packed into at most [`LANES_PER_GROUP`]
/// lanes per group, groups in name order (unattributed last).
fn draw(fleet: &Fleet, title: &str) -> Timeline {
    let mut groups: BTreeMap<(bool, &str), Vec<&Bar>> = BTreeMap::new();
    for bar in &fleet.bars {
        groups
            .entry((bar.group.starts_with("unattributed"), bar.group.as_str()))
            .or_default()
            .push(bar);
    }
    let mut timeline = Timeline::new(title);
    timeline.set_width(1_200);
    for ((_, group), mut bars) in groups {
        bars.sort_by(|a, b| a.start.total_cmp(&b.start));
        // Greedy packing: each bar on the first lane free at its start.
        let mut lanes: Vec<(f64, Vec<&Bar>)> = Vec::new();
        for bar in bars {
            let free = lanes.iter().position(|(end, _)| *end <= bar.start);
            let lane = match free {
                Some(i) => i,
                None if lanes.len() < LANES_PER_GROUP => {
                    lanes.push((0.0, Vec::new()));
                    lanes.len() - 1
                }
                None => lanes
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1.0.total_cmp(&b.1.0))
                    .map_or(0, |(i, _)| i),
            };
            lanes[lane].0 = lanes[lane].0.max(bar.end);
            lanes[lane].1.push(bar);
        }
        let many = lanes.len() > 1;
        for (i, (_, bars)) in lanes.iter().enumerate() {
            let label = if many {
                format!("{group} #{i}")
            } else {
                group.to_owned()
            };
            let lane = timeline.lane(label);
            for bar in bars {
                timeline.span_jobs(lane, bar.start, bar.end, Activity::Execute, 0);
                if bar.finished {
                    timeline.span_jobs(lane, bar.end, bar.end, Activity::Save, 1);
                }
            }
        }
    }
    timeline.marker(fleet.window_s, "now");
    timeline
}

/// `GET /timeline.svg`.
pub(crate) async fn svg(
    State(console): State<Console>,
    Query(query): Query<TimelineQuery>,
) -> Result<Response, PageError> {
    let minutes = query.minutes(console.config().timeline_minutes)?;
    let fleet = fleet(&console, minutes).await?;
    let title = format!(
        "schema {}: the last {minutes} min (lanes per worker; jobs finished per second below)",
        console.queue().schema()
    );
    let svg = draw(&fleet, &title)
        .render_svg()
        .map_err(|e| PageError::Internal(format!("cannot draw the timeline: {e}")))?;
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        svg,
    )
        .into_response())
}

/// `GET /timeline`.
pub(crate) async fn page(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(query): Query<TimelineQuery>,
) -> Result<Html<String>, PageError> {
    let minutes = query.minutes(console.config().timeline_minutes)?;
    let fleet = fleet(&console, minutes).await?;
    let chrome = chrome(&console, &headers);
    let mut per: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for bar in &fleet.bars {
        let entry = per.entry(bar.group.as_str()).or_default();
        if bar.finished {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    let mut body = String::from(
        "<h2>Timeline</h2><form method=\"get\" action=\"/timeline\" class=\"filters\"><label>minutes",
    );
    let _ = write!(
        body,
        "<input name=\"minutes\" value=\"{minutes}\" size=\"4\"></label><button type=\"submit\">draw</button></form>"
    );
    let _ = write!(
        body,
        "<div class=\"picture\"><img id=\"timeline\" src=\"/timeline.svg?minutes={minutes}\" alt=\"the fleet's last {minutes} minutes: a lane per worker, jobs finished per second below\"></div>"
    );
    if per.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-activity\">No job ran in this window.</p>");
    } else {
        body.push_str("<table id=\"timeline-workers\"><thead><tr><th>worker</th><th class=\"num\">finished in the window</th><th class=\"num\">running now</th></tr></thead><tbody>");
        for (group, (finished, running)) in &per {
            let _ = write!(
                body,
                "<tr><td class=\"mono\">{}</td><td class=\"num\">{finished}</td><td class=\"num\">{running}</td></tr>",
                escape(group)
            );
        }
        body.push_str("</tbody></table>");
    }
    let _ = write!(
        body,
        "<p class=\"muted\">A job is drawn from its latest claim to its end. A finished row keeps no owner: the console names the worker it saw holding the job (it looks every {}); the rest are drawn per kind, unattributed.</p>",
        html::duration(console.config().refresh)
    );
    Ok(html::page("Timeline", "/timeline", &chrome, &body))
}
