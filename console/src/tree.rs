//! Proof trees: the newest trees (`/trees`, or one batch's), and one tree as
//! a picture (`/trees/{id}`, the SVG alone at `/trees/{id}/svg`): a row of
//! cells per round, coloured by state, each a link to its job, and the
//! critical path (from the top, always the child that finished last, or one
//! that has not finished) drawn through them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use pjp_postgres::{JOB_STATUSES, JobTree, TreeNode};
use serde::Deserialize;

use crate::actions::{self, NoticeQuery};
use crate::error::PageError;
use crate::html::{self, escape};
use crate::job::parse_id;
use crate::overview::chrome;
use crate::state::Console;

/// The most jobs of one tree the console reads and draws.
const TREE_LIMIT: i64 = 20_000;
/// The most cells drawn in one round; the rest are counted.
const CELLS_PER_ROUND: usize = 4_000;
/// The picture's width.
const WIDTH: usize = 1_000;
/// A cell's side and the pitch between cells.
const CELL: usize = 14;
const PITCH: usize = 17;
const MARGIN: usize = 12;

/// The list's parameters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TreesQuery {
    batch: Option<String>,
}

/// `GET /trees`.
pub(crate) async fn list(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(query): Query<TreesQuery>,
) -> Result<Html<String>, PageError> {
    let batch = match query
        .batch
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        Some(b) => Some(b.parse::<i64>().map_err(|_| {
            PageError::BadRequest(format!(
                "batch `{}` is not a whole number",
                b.chars().take(40).collect::<String>()
            ))
        })?),
        None => None,
    };
    let tops = console.queue().recent_trees(batch, 50).await?;
    let chrome = chrome(&console, &headers);
    let mut body = String::from("<h2>Trees</h2>");
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/trees\" class=\"filters\"><label>batch<input name=\"batch\" value=\"{}\" size=\"8\"></label><button type=\"submit\">find</button> <a href=\"/trees\">newest</a></form>",
        batch.map(|b| b.to_string()).unwrap_or_default()
    );
    if tops.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-trees\">No trees found.</p>");
    } else {
        body.push_str("<table id=\"trees\"><thead><tr><th>top</th><th>queue</th><th>kind</th><th>status</th><th class=\"num\">batch</th><th class=\"num\">children done</th><th>created</th><th>finished</th></tr></thead><tbody>");
        for t in &tops {
            let _ = write!(
                body,
                "<tr data-tree=\"{id}\"><td><a href=\"/trees/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{} / {}</td><td>{}</td><td>{}</td></tr>",
                escape(&t.queue),
                escape(&t.kind),
                html::status(&t.status),
                t.batch,
                t.children_succeeded,
                t.children,
                html::time(t.created_at),
                html::maybe_time(t.finished_at),
                id = t.id,
            );
        }
        body.push_str("</tbody></table>");
    }
    Ok(html::page("Trees", "/trees", &chrome, &body))
}

async fn load(console: &Console, id: &str) -> Result<JobTree, PageError> {
    let id = parse_id(id)?;
    console
        .queue()
        .tree(id, TREE_LIMIT)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("no job {id}")))
}

/// `GET /trees/{id}`: the tree job `id` belongs to.
pub(crate) async fn page(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Html<String>, PageError> {
    let tree = load(&console, &id).await?;
    let chrome = chrome(&console, &headers);
    let picture = Picture::of(&tree);
    let mut body = actions::notice(&notice);
    let top = &tree.nodes[0];
    let _ = write!(
        body,
        "<h2>Tree of job <a href=\"/jobs/{t}\">{t}</a> {} · batch {} · {} job(s){}</h2>",
        html::status(&top.status),
        top.batch,
        tree.nodes.len(),
        if tree.truncated {
            format!(" (the first {TREE_LIMIT} drawn)")
        } else {
            String::new()
        },
        t = tree.top,
    );
    let first = tree.nodes.iter().map(|n| n.created_at).min();
    if let (Some(first), Some(done)) = (first, top.finished_at) {
        let _ = write!(
            body,
            "<p>Enqueued {} · finished {} · {} end to end.</p>",
            html::time(first),
            html::time(done),
            html::duration(done.duration_since(first).unwrap_or_default())
        );
    }
    let _ = write!(
        body,
        "<div class=\"picture\" id=\"tree-picture\">{}</div>",
        picture.svg
    );
    body.push_str("<h2>Critical path</h2><ol id=\"critical-path\">");
    for node in &picture.path {
        let ran = match (node.started_at, node.finished_at) {
            (Some(s), Some(f)) => format!(
                ", ran {}",
                html::duration(f.duration_since(s).unwrap_or_default())
            ),
            _ => String::new(),
        };
        let _ = write!(
            body,
            "<li data-job=\"{id}\"><a href=\"/jobs/{id}\">job {id}</a> ({}, round {}) {}{ran}, finished {}</li>",
            escape(&node.kind),
            node.level,
            html::status(&node.status),
            html::maybe_time(node.finished_at),
            id = node.id,
        );
    }
    body.push_str("</ol><p class=\"muted\">From the top down, each step is the child that finished last (or one not finished yet): the chain that decided when the tree finished.</p>");
    Ok(html::page(
        &format!("Tree of job {}", tree.top),
        "/trees",
        &chrome,
        &body,
    ))
}

/// `GET /trees/{id}/svg`: the picture alone.
pub(crate) async fn svg(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let tree = load(&console, &id).await?;
    let picture = Picture::of(&tree);
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        picture.svg,
    )
        .into_response())
}

/// A tree drawn: the SVG and its critical path, top first.
struct Picture<'a> {
    svg: String,
    path: Vec<&'a TreeNode>,
}

/// When a node stopped mattering to its parent: unfinished nodes last.
fn end_key(node: &TreeNode) -> (u8, SystemTime, i64) {
    match node.finished_at {
        Some(at) => (0, at, node.id),
        None => (1, node.started_at.unwrap_or(node.created_at), node.id),
    }
}

/// From the top, the child that finished last (or has not), each level.
fn critical_path(tree: &JobTree) -> Vec<&TreeNode> {
    let mut children: HashMap<i64, Vec<&TreeNode>> = HashMap::new();
    for node in &tree.nodes {
        if let Some(parent) = node.parent_id {
            children.entry(parent).or_default().push(node);
        }
    }
    let mut path = Vec::new();
    let mut at = tree.nodes.iter().find(|n| n.id == tree.top);
    while let Some(node) = at {
        path.push(node);
        at = children
            .get(&node.id)
            .and_then(|c| c.iter().copied().max_by_key(|n| end_key(n)));
        if path.len() > 64 {
            break;
        }
    }
    path
}

impl<'a> Picture<'a> {
    fn of(tree: &'a JobTree) -> Self {
        let path = critical_path(tree);
        let on_path: HashMap<i64, usize> =
            path.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        let mut levels: Vec<Vec<&TreeNode>> = Vec::new();
        for node in &tree.nodes {
            let level = usize::try_from(node.level).unwrap_or(0);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            levels[level].push(node);
        }
        let cols = (WIDTH - 2 * MARGIN) / PITCH;
        let mut body = String::new();
        let mut centres: Vec<Option<(usize, usize)>> = vec![None; path.len()];
        let mut y = MARGIN;
        for (level, nodes) in levels.iter().enumerate() {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for status in JOB_STATUSES {
                let n = nodes.iter().filter(|n| n.status == status).count();
                if n > 0 {
                    counts.push((status.to_owned(), n));
                }
            }
            let mut kinds: Vec<&str> = nodes.iter().map(|n| n.kind.as_str()).collect();
            kinds.sort_unstable();
            kinds.dedup();
            let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            y += 14;
            let _ = write!(
                body,
                "<text x=\"{MARGIN}\" y=\"{y}\" font-size=\"13\" fill=\"#1f2933\">round {level} · {} · {} job(s): {}</text>",
                escape(&kinds.join(", ")),
                nodes.len(),
                escape(&summary.join(", "))
            );
            y += 6;
            let drawn = nodes.len().min(CELLS_PER_ROUND);
            for (i, node) in nodes.iter().take(drawn).enumerate() {
                let x = MARGIN + (i % cols) * PITCH;
                let cy = y + (i / cols) * PITCH;
                let (stroke, width) = if on_path.contains_key(&node.id) {
                    ("#111111", "2.5")
                } else {
                    ("none", "0")
                };
                if let Some(&step) = on_path.get(&node.id) {
                    centres[step] = Some((x + CELL / 2, cy + CELL / 2));
                }
                let _ = write!(
                    body,
                    "<a href=\"/jobs/{id}\"><rect x=\"{x}\" y=\"{cy}\" width=\"{CELL}\" height=\"{CELL}\" rx=\"2\" fill=\"{}\" stroke=\"{stroke}\" stroke-width=\"{width}\" data-job=\"{id}\" data-status=\"{}\"><title>job {id} · {} · {}</title></rect></a>",
                    html::status_colour(&node.status),
                    escape(&node.status),
                    escape(&node.kind),
                    escape(&node.status),
                    id = node.id,
                );
            }
            let rows = drawn.div_ceil(cols).max(1);
            y += rows * PITCH;
            if nodes.len() > drawn {
                y += 4;
                let _ = write!(
                    body,
                    "<text x=\"{MARGIN}\" y=\"{y}\" font-size=\"12\" fill=\"#66788a\">… and {} more in this round</text>",
                    nodes.len() - drawn
                );
                y += 6;
            }
            y += 8;
        }
        let points: Vec<String> = centres
            .iter()
            .flatten()
            .map(|(x, y)| format!("{x},{y}"))
            .collect();
        if points.len() > 1 {
            let _ = write!(
                body,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"#111111\" stroke-width=\"2\" stroke-dasharray=\"4 3\" id=\"critical-line\"/>",
                points.join(" ")
            );
        }
        // The legend.
        y += 10;
        let mut x = MARGIN;
        for status in JOB_STATUSES {
            let _ = write!(
                body,
                "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#1f2933\">{status}</text>",
                y - 10,
                html::status_colour(status),
                x + 16,
                y
            );
            x += 100;
        }
        let _ = write!(
            body,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#111111\" stroke-width=\"2\" stroke-dasharray=\"4 3\"/><text x=\"{}\" y=\"{y}\" font-size=\"12\" fill=\"#1f2933\">critical path</text>",
            y - 4,
            x + 24,
            y - 4,
            x + 30
        );
        let height = y + MARGIN;
        let svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" id=\"tree-svg\"><rect width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>{body}</svg>"
        );
        Self { svg, path }
    }
}
