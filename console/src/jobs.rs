//! The job list (`/jobs`): filtered by queue, status, kind, batch or parent,
//! newest first, paged by keyset on the primary key
//! ([`PgQueue::job_page`](pjp_postgres::PgQueue::job_page)): a page never
//! scans the table.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Html;
use pjp_postgres::{JOB_STATUSES, JobFilter};
use serde::Deserialize;

use crate::error::PageError;
use crate::html::{self, escape, url_encode};
use crate::overview::chrome;
use crate::state::Console;

/// The list's parameters, as typed (checked by [`JobsQuery::filter`]).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct JobsQuery {
    queue: Option<String>,
    status: Option<String>,
    kind: Option<String>,
    batch: Option<String>,
    parent: Option<String>,
    before: Option<String>,
}

/// A non-empty text parameter.
fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A whole-number parameter, or a clear error naming it.
fn number(name: &str, value: &Option<String>) -> Result<Option<i64>, PageError> {
    text(value)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                PageError::BadRequest(format!(
                    "{name} `{}` is not a whole number",
                    v.chars().take(40).collect::<String>()
                ))
            })
        })
        .transpose()
}

impl JobsQuery {
    /// The filter and the page's start, or what is wrong with them.
    fn filter(&self) -> Result<(JobFilter, Option<i64>), PageError> {
        let mut filter = JobFilter::default();
        if let Some(queue) = text(&self.queue) {
            filter = filter.queue(queue);
        }
        if let Some(status) = text(&self.status) {
            if !JOB_STATUSES.contains(&status.as_str()) {
                return Err(PageError::BadRequest(format!(
                    "unknown status `{}`: one of {}",
                    status.chars().take(40).collect::<String>(),
                    JOB_STATUSES.join(", ")
                )));
            }
            filter = filter.status(status);
        }
        if let Some(kind) = text(&self.kind) {
            filter = filter.kind(kind);
        }
        if let Some(batch) = number("batch", &self.batch)? {
            filter = filter.batch(batch);
        }
        if let Some(parent) = number("parent", &self.parent)? {
            filter = filter.parent(parent);
        }
        let before = number("before", &self.before)?;
        Ok((filter, before))
    }
}

/// The filters as a query string (for the pager's links).
fn query_of(filter: &JobFilter) -> String {
    let mut q = String::new();
    let mut add = |name: &str, value: String| {
        let _ = write!(q, "{name}={}&amp;", url_encode(&value));
    };
    if let Some(v) = &filter.queue {
        add("queue", v.clone());
    }
    if let Some(v) = &filter.status {
        add("status", v.clone());
    }
    if let Some(v) = &filter.kind {
        add("kind", v.clone());
    }
    if let Some(v) = filter.batch {
        add("batch", v.to_string());
    }
    if let Some(v) = filter.parent {
        add("parent", v.to_string());
    }
    q
}

/// `GET /jobs`.
pub(crate) async fn page(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(query): Query<JobsQuery>,
) -> Result<Html<String>, PageError> {
    let (filter, before) = query.filter()?;
    let page = console
        .queue()
        .job_page(&filter, before, console.config().page_size)
        .await?;
    let chrome = chrome(&console, &headers);

    let mut body = String::from("<h2>Jobs</h2>");
    let value = |v: &Option<String>| escape(v.as_deref().unwrap_or(""));
    let mut statuses = String::from("<option value=\"\">any</option>");
    for s in JOB_STATUSES {
        let selected = if filter.status.as_deref() == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(statuses, "<option{selected}>{s}</option>");
    }
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/jobs\" class=\"filters\" id=\"filters\"><label>queue<input name=\"queue\" value=\"{}\" size=\"10\"></label><label>status<select name=\"status\" id=\"status\">{statuses}</select></label><label>kind<input name=\"kind\" value=\"{}\" size=\"10\"></label><label>batch<input name=\"batch\" value=\"{}\" size=\"6\"></label><label>parent<input name=\"parent\" value=\"{}\" size=\"8\"></label><button type=\"submit\" id=\"apply\">filter</button> <a href=\"/jobs\">clear</a></form>",
        value(&filter.queue),
        value(&filter.kind),
        filter.batch.map(|b| b.to_string()).unwrap_or_default(),
        filter.parent.map(|p| p.to_string()).unwrap_or_default(),
    );

    if page.jobs.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-match\">No job matches in this range.</p>");
    } else {
        body.push_str("<table id=\"jobs\"><thead><tr><th>job</th><th>queue</th><th>kind</th><th>class</th><th>status</th><th class=\"num\">batch</th><th class=\"num\">depth</th><th class=\"num\">attempts</th><th class=\"num\">lost leases</th><th>worker</th><th>parent</th><th>created</th><th>finished</th><th>last error</th></tr></thead><tbody>");
        for j in &page.jobs {
            let error: String = j
                .last_error
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect();
            let _ = write!(
                body,
                "<tr data-job=\"{id}\" data-status=\"{}\"><td><a href=\"/jobs/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                escape(&j.status),
                escape(&j.queue),
                escape(&j.kind),
                escape(&j.resource_class),
                html::status(&j.status),
                j.batch,
                j.depth,
                j.attempts,
                j.lost_leases,
                escape(j.lease_owner.as_deref().unwrap_or("")),
                j.parent_id
                    .map(|p| format!("<a href=\"/jobs/{p}\">{p}</a>"))
                    .unwrap_or_default(),
                html::time(j.created_at),
                html::maybe_time(j.finished_at),
                escape(&error),
                id = j.id,
            );
        }
        body.push_str("</tbody></table>");
    }
    let filters = query_of(&filter);
    let _ = write!(
        body,
        "<div class=\"pager\"><span class=\"muted\" id=\"scanned\">{} shown · ids {}–{} looked through</span>",
        page.jobs.len(),
        page.scanned.0,
        page.scanned.1
    );
    if before.is_some() {
        let _ = write!(
            body,
            "<a href=\"/jobs?{}\" id=\"newest\">« newest</a>",
            filters.trim_end_matches("&amp;")
        );
    }
    if let Some(next) = page.next_before {
        let _ = write!(
            body,
            "<a href=\"/jobs?{filters}before={next}\" id=\"older\">older »</a>"
        );
    }
    body.push_str("</div>");
    Ok(html::page("Jobs", "/jobs", &chrome, &body))
}
