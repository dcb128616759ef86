//! A job's page (`/jobs/{id}`): its state and budgets, its lease, its last
//! error, its place in a tree (parent, children and their states), its
//! payload and result, and the actions that apply to it.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Html;
use pjp_postgres::{DataRef, JobDetail};

use crate::actions::{self, NoticeQuery};
use crate::auth::Access;
use crate::error::PageError;
use crate::html::{self, escape};
use crate::overview::chrome;
use crate::state::Console;

/// Children listed on a parent's page.
const CHILDREN_LISTED: i64 = 100;

/// A job id from a path, or a clear error.
pub(crate) fn parse_id(text: &str) -> Result<i64, PageError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            PageError::BadRequest(format!(
                "`{}` is not a job id (a positive whole number)",
                text.chars().take(40).collect::<String>()
            ))
        })
}

fn data(what: Option<&DataRef>) -> String {
    match what {
        None => "<span class=\"muted\">none</span>".to_owned(),
        Some(DataRef::Inline { bytes }) => format!("inline, {}", html::bytes(*bytes)),
        Some(DataRef::Stored { key, crc }) => format!(
            "in the object store: <code>{}</code>{}",
            escape(key),
            crc.map(|c| format!(" (CRC-32C {c:08x})"))
                .unwrap_or_default()
        ),
        Some(_) => "?".to_owned(),
    }
}

fn unfinished(status: &str) -> bool {
    matches!(status, "queued" | "running" | "waiting")
}

/// `GET /jobs/{id}`.
pub(crate) async fn page(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Html<String>, PageError> {
    let id = parse_id(&id)?;
    let queue = console.queue();
    let Some(job) = queue.job_detail(id).await? else {
        return Err(PageError::NotFound(format!("no job {id}")));
    };
    let parent = match job.parent_id {
        Some(p) => queue.job_detail(p).await?,
        None => None,
    };
    let child_counts = queue.child_counts(id).await?;
    let children = if child_counts.is_empty() {
        Vec::new()
    } else {
        queue.child_page(id, CHILDREN_LISTED).await?
    };
    let chrome = chrome(&console, &headers);

    let mut body = actions::notice(&notice);
    let _ = write!(
        body,
        "<h2>Job {id} <span id=\"job-status\" data-status=\"{}\">{}</span></h2>",
        escape(&job.status),
        html::status(&job.status)
    );
    body.push_str(&fields(&job));
    if let Some(error) = &job.last_error {
        let _ = write!(
            body,
            "<h2>Last error</h2><pre class=\"last-error\" id=\"last-error\">{}</pre>",
            escape(error)
        );
    }

    body.push_str("<h2>Tree</h2>");
    if parent.is_none() && child_counts.is_empty() {
        body.push_str("<p class=\"muted\">Not part of a tree (no parent, no children).</p>");
    } else {
        let _ = write!(
            body,
            "<p><a href=\"/trees/{id}\" id=\"tree-link\">the tree as a picture</a></p>"
        );
        if let Some(p) = &parent {
            let _ = write!(
                body,
                "<p>Parent: <a href=\"/jobs/{pid}\" id=\"parent\">job {pid}</a> ({}, {}), waiting on {} child(ren).</p>",
                escape(&p.kind),
                html::status(&p.status),
                p.waiting_on,
                pid = p.id,
            );
        }
        if !child_counts.is_empty() {
            let total: i64 = child_counts.values().sum();
            let counts: Vec<String> = child_counts
                .iter()
                .map(|(status, n)| format!("{n} {}", html::status(status)))
                .collect();
            let _ = write!(
                body,
                "<p id=\"children-counts\">{total} child(ren): {}</p>",
                counts.join(", ")
            );
            body.push_str("<table id=\"children\"><thead><tr><th>child</th><th>kind</th><th>status</th><th class=\"num\">attempts</th><th class=\"num\">lost leases</th><th>finished</th></tr></thead><tbody>");
            for c in &children {
                let _ = write!(
                    body,
                    "<tr data-job=\"{cid}\"><td><a href=\"/jobs/{cid}\">{cid}</a></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                    escape(&c.kind),
                    html::status(&c.status),
                    c.attempts,
                    c.lost_leases,
                    html::maybe_time(c.finished_at),
                    cid = c.id,
                );
            }
            body.push_str("</tbody></table>");
            if total > children.len() as i64 {
                let _ = write!(
                    body,
                    "<p><a href=\"/jobs?parent={id}\">all {total} children</a></p>"
                );
            }
        }
    }

    body.push_str("<h2>Actions</h2>");
    let in_tree = parent.is_some() || !child_counts.is_empty();
    match chrome.access {
        Access::ReadOnly => body.push_str(
            "<p class=\"muted\">Read-only console: start it with <code>--admin-token</code> to act.</p>",
        ),
        Access::Viewer => {
            let _ = write!(
                body,
                "<p><a href=\"/login?next=/jobs/{id}\" id=\"login-to-act\">Log in</a> to act on this job.</p>"
            );
        }
        Access::Admin => {
            let csrf = html::csrf_field(&console.inner.csrf);
            let mut buttons = String::new();
            if job.status == "dead" {
                let _ = write!(
                    buttons,
                    "<form method=\"post\" action=\"/actions/requeue\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"id\" value=\"{id}\"><button type=\"submit\" id=\"requeue\">requeue</button></form>"
                );
            }
            if unfinished(&job.status) {
                let _ = write!(
                    buttons,
                    "<form method=\"post\" action=\"/actions/cancel\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"id\" value=\"{id}\"><button type=\"submit\" class=\"danger\" id=\"cancel\">cancel this job</button></form>"
                );
            }
            if in_tree {
                let _ = write!(
                    buttons,
                    "<form method=\"post\" action=\"/actions/cancel-tree\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"id\" value=\"{id}\"><button type=\"submit\" class=\"danger\" id=\"cancel-tree\">cancel its whole tree</button></form>"
                );
            }
            if buttons.is_empty() {
                body.push_str("<p class=\"muted\">Nothing to do: the job has finished.</p>");
            } else {
                let _ = write!(body, "<div class=\"actions\">{buttons}</div>");
            }
        }
    }
    Ok(html::page(&format!("Job {id}"), "/jobs", &chrome, &body))
}

fn fields(job: &JobDetail) -> String {
    let mut f = String::from("<dl class=\"fields\" id=\"fields\">");
    let mut add = |name: &str, value: String| {
        let _ = write!(f, "<dt>{name}</dt><dd data-field=\"{name}\">{value}</dd>");
    };
    let or_none = |v: &str| {
        if v.is_empty() {
            "<span class=\"muted\">—</span>".to_owned()
        } else {
            escape(v)
        }
    };
    add("queue", escape(&job.queue));
    add("kind", or_none(&job.kind));
    add("class", or_none(&job.resource_class));
    add("priority", job.priority.to_string());
    add("batch", job.batch.to_string());
    add("depth", job.depth.to_string());
    add(
        "attempts",
        format!("{} of {}", job.attempts, job.max_attempts),
    );
    add(
        "lost leases",
        format!("{} of {}", job.lost_leases, job.max_lost_leases),
    );
    add("infrastructure retries", job.infra_retries.to_string());
    add("fencing token", job.token.to_string());
    add(
        "lease",
        match (&job.lease_owner, job.lease_expires_in) {
            (Some(owner), Some(expires)) => format!(
                "held by <code>{}</code>, expires {}",
                escape(owner),
                html::relative(expires)
            ),
            (Some(owner), None) => format!("held by <code>{}</code>", escape(owner)),
            _ => "<span class=\"muted\">none</span>".to_owned(),
        },
    );
    add("created", html::time(job.created_at));
    add("started", html::maybe_time(job.started_at));
    add("finished", html::maybe_time(job.finished_at));
    if unfinished(&job.status) {
        add(
            "claimable",
            if job.run_after_in > 0.0 {
                html::relative(job.run_after_in)
            } else {
                "now".to_owned()
            },
        );
    }
    if job.status == "waiting" || job.waiting_on > 0 {
        add("waiting on", format!("{} child(ren)", job.waiting_on));
    }
    add(
        "unique key",
        job.unique_key.as_deref().map_or_else(
            || "<span class=\"muted\">—</span>".to_owned(),
            |k| format!("<code>{}</code>", escape(k)),
        ),
    );
    add(
        "a failed child",
        if job.cancel_tree {
            "cancels the tree".to_owned()
        } else {
            "ends this job dead".to_owned()
        },
    );
    add("payload", data(job.payload.as_ref()));
    add("result", data(job.result.as_ref()));
    f.push_str("</dl>");
    f
}
