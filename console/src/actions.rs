//! The writes: requeue a dead job (or every dead job of a queue), cancel a
//! job or its whole tree, purge finished jobs. Each is a POST form checked
//! by [`auth::check_write`]; each answers with a redirect (303) to the page
//! it came from, which says what was done.

use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use serde::Deserialize;

use crate::auth;
use crate::error::PageError;
use crate::html::escape;
use crate::state::Console;

/// What a page says after an action: `?done=CODE[&n=COUNT]` (fixed texts,
/// never the request's own words).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NoticeQuery {
    done: Option<String>,
    n: Option<String>,
}

/// The notice for `query`, or nothing.
pub(crate) fn notice(query: &NoticeQuery) -> String {
    let n: u64 = query.n.as_deref().and_then(|n| n.parse().ok()).unwrap_or(0);
    let text = match query.done.as_deref() {
        Some("requeued") => "Requeued: the job is back on its queue with fresh budgets.".to_owned(),
        Some("not-requeued") => {
            "Nothing requeued: the job is not dead, or a child of it can never succeed.".to_owned()
        }
        Some("cancelled") => "Cancelled: a worker running it is fenced.".to_owned(),
        Some("not-cancelled") => "Nothing cancelled: the job had already finished.".to_owned(),
        Some("tree-cancelled") => format!("Cancelled {n} job(s) of the tree."),
        Some("requeued-dead") => format!("Requeued {n} dead job(s)."),
        Some("purged") => format!("Purged {n} finished job(s)."),
        _ => return String::new(),
    };
    format!("<p class=\"notice\" id=\"notice\">{}</p>", escape(&text))
}

/// A form naming one job.
#[derive(Debug, Deserialize)]
pub(crate) struct JobForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    back: String,
}

/// The job id of a form, or a clear error.
fn job_id(text: &str) -> Result<i64, PageError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            PageError::BadRequest(format!(
                "`{}` is not a job id (a positive whole number)",
                text.chars().take(40).collect::<String>()
            ))
        })
}

/// Where to go after acting on job `id`.
fn back_to(form: &JobForm, id: i64, done: &str) -> Redirect {
    if form.back == "overview" {
        Redirect::to(&format!("/?done={done}"))
    } else {
        Redirect::to(&format!("/jobs/{id}?done={done}"))
    }
}

/// The checks every action on one job makes: a write allowed (token and
/// CSRF), the cached counts dropped, and the job named existing.
async fn writable_job(
    console: &Console,
    headers: &HeaderMap,
    form: &JobForm,
) -> Result<i64, PageError> {
    auth::check_write(console, headers, &form.csrf)?;
    console.forget_counts();
    let id = job_id(&form.id)?;
    if console.queue().job(id).await?.is_none() {
        return Err(PageError::NotFound(format!("no job {id}")));
    }
    Ok(id)
}

/// `POST /actions/requeue`: one dead job.
pub(crate) async fn requeue(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<JobForm>,
) -> Result<Redirect, PageError> {
    let id = writable_job(&console, &headers, &form).await?;
    let done = console.queue().requeue(id).await?;
    tracing::info!(job = id, requeued = done, "console: requeue");
    Ok(back_to(
        &form,
        id,
        if done { "requeued" } else { "not-requeued" },
    ))
}

/// A form naming a queue (empty: every queue).
#[derive(Debug, Deserialize)]
pub(crate) struct QueueForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    queue: String,
}

/// `POST /actions/requeue-dead`: every dead job of a queue (or of all).
pub(crate) async fn requeue_dead(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<QueueForm>,
) -> Result<Redirect, PageError> {
    auth::check_write(&console, &headers, &form.csrf)?;
    console.forget_counts();
    let queue = Some(form.queue.trim()).filter(|q| !q.is_empty());
    let n = console.queue().requeue_dead(queue).await?;
    tracing::info!(queue = ?queue, requeued = n, "console: requeue dead jobs");
    Ok(Redirect::to(&format!("/?done=requeued-dead&n={n}")))
}

/// `POST /actions/cancel`: one job.
pub(crate) async fn cancel(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<JobForm>,
) -> Result<Redirect, PageError> {
    let id = writable_job(&console, &headers, &form).await?;
    let done = console.queue().cancel(id).await?;
    tracing::info!(job = id, cancelled = done, "console: cancel");
    Ok(back_to(
        &form,
        id,
        if done { "cancelled" } else { "not-cancelled" },
    ))
}

/// `POST /actions/cancel-tree`: every unfinished job of a job's tree.
pub(crate) async fn cancel_tree(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<JobForm>,
) -> Result<Redirect, PageError> {
    let id = writable_job(&console, &headers, &form).await?;
    let n = console.queue().cancel_tree(id).await?;
    tracing::info!(job = id, cancelled = n, "console: cancel tree");
    Ok(Redirect::to(&format!(
        "/trees/{id}?done=tree-cancelled&n={n}"
    )))
}

/// The purge form.
#[derive(Debug, Deserialize)]
pub(crate) struct PurgeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    older_than: String,
    include_dead: Option<String>,
}

/// `POST /actions/purge`: finished jobs older than a retention.
pub(crate) async fn purge(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<PurgeForm>,
) -> Result<Redirect, PageError> {
    auth::check_write(&console, &headers, &form.csrf)?;
    console.forget_counts();
    let older_than: Duration = humantime::parse_duration(form.older_than.trim()).map_err(|e| {
        PageError::BadRequest(format!(
            "`{}` is not a duration (e.g. 7d, 12h, 30min): {e}",
            form.older_than.chars().take(40).collect::<String>()
        ))
    })?;
    let include_dead = form
        .include_dead
        .as_deref()
        .is_some_and(|v| matches!(v, "true" | "on" | "1"));
    let purged = console.queue().purge(older_than, include_dead).await?;
    tracing::info!(
        older_than = ?older_than,
        include_dead,
        rows = purged.rows,
        "console: purge"
    );
    Ok(Redirect::to(&format!("/?done=purged&n={}", purged.rows)))
}
