//! The overview (`/`): per queue, kind and resource class the jobs in each
//! state, the last minute's throughput and the drain estimate; the live
//! workers with their leases and last heartbeat; the dead jobs. The tables
//! refresh themselves from `/overview/live`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Html;
use pjp_postgres::{KindCounts, KindLoad};

use crate::actions::{self, NoticeQuery};
use crate::auth::{self, Access};
use crate::error::PageError;
use crate::html::{self, Chrome, escape};
use crate::state::Console;

/// Dead jobs the overview lists.
const DEAD_LISTED: i64 = 20;

/// The header of a page for this requester.
pub(crate) fn chrome<'a>(console: &'a Console, headers: &HeaderMap) -> Chrome<'a> {
    Chrome {
        database: &console.config().database,
        schema: console.queue().schema(),
        access: auth::access(console, headers),
        csrf: &console.inner.csrf,
    }
}

/// `GET /`.
pub(crate) async fn page(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(notice): Query<NoticeQuery>,
) -> Result<Html<String>, PageError> {
    let chrome = chrome(&console, &headers);
    let live = live_html(&console, chrome.access).await?;
    let mut body = actions::notice(&notice);
    let _ = write!(
        body,
        "<p class=\"muted\">Refreshes every {} · <span id=\"refreshed\">as loaded</span></p><div id=\"live\" data-live=\"/overview/live\" data-every=\"{}\">{live}</div>",
        html::duration(console.config().refresh),
        console.config().refresh.as_millis(),
    );
    if chrome.access == Access::Admin {
        let _ = write!(
            body,
            "<h2>Purge</h2><form method=\"post\" action=\"/actions/purge\" class=\"filters\" id=\"purge\">{}<label>finished longer ago than<input name=\"older_than\" value=\"7d\" size=\"8\"></label><label><span>dead jobs too</span><input type=\"checkbox\" name=\"include_dead\" value=\"true\"></label><button type=\"submit\" class=\"danger\">purge</button></form>",
            html::csrf_field(&console.inner.csrf)
        );
    }
    Ok(html::page("Overview", "/", &chrome, &body))
}

/// `GET /overview/live`: the tables alone, for the page's refresh.
pub(crate) async fn live(
    State(console): State<Console>,
    headers: HeaderMap,
) -> Result<Html<String>, PageError> {
    let access = auth::access(&console, &headers);
    Ok(Html(live_html(&console, access).await?))
}

type Key = (String, String, String);

async fn live_html(console: &Console, access: Access) -> Result<String, PageError> {
    let queue = console.queue();
    let counts = console.kind_counts().await?;
    let load = queue.load().await?;
    let holders = queue.lease_holders().await?;
    let dead = queue.dead_jobs(None, DEAD_LISTED).await?;
    console.saw(
        holders
            .iter()
            .flat_map(|h| h.job_ids.iter().map(move |id| (*id, h.owner.as_str()))),
    );

    let mut rows: BTreeMap<Key, (Option<&KindCounts>, Option<&KindLoad>)> = BTreeMap::new();
    for c in &counts {
        rows.entry((c.queue.clone(), c.kind.clone(), c.resource_class.clone()))
            .or_default()
            .0 = Some(c);
    }
    for l in &load {
        rows.entry((l.queue.clone(), l.kind.clone(), l.resource_class.clone()))
            .or_default()
            .1 = Some(l);
    }

    let mut out = String::from("<h2>Queues</h2>");
    if rows.is_empty() {
        out.push_str("<p class=\"muted\" id=\"no-jobs\">No jobs in this schema.</p>");
    } else {
        out.push_str("<table id=\"queues\"><thead><tr><th>queue</th><th>kind</th><th>class</th><th class=\"num\">waiting</th><th class=\"num\">queued</th><th class=\"num\">running</th><th class=\"num\">dead</th><th class=\"num\">succeeded</th><th class=\"num\">finished last min</th><th class=\"num\">jobs/s</th><th>oldest queued</th><th>p95 run</th><th>drain estimate</th></tr></thead><tbody>");
        for ((q, kind, class), (c, l)) in &rows {
            let count = |status: &str| c.map_or(0, |c| c.count(status));
            let cell = |col: &str, value: String| {
                format!(
                    "<td class=\"num\" data-cell=\"{}|{}|{}|{col}\">{value}</td>",
                    escape(q),
                    escape(kind),
                    escape(class)
                )
            };
            let link = |status: &str, n: i64| {
                if n == 0 {
                    "0".to_owned()
                } else {
                    format!(
                        "<a href=\"/jobs?queue={}&amp;kind={}&amp;status={status}\">{n}</a>",
                        html::url_encode(q),
                        html::url_encode(kind)
                    )
                }
            };
            let finished = l.map_or(0, |l| l.finished_last_minute);
            let drain = match l {
                Some(l) if l.queued + l.running == 0 => "—".to_owned(),
                Some(l) => l
                    .drain_estimate()
                    .map_or_else(|| "no recent rate".to_owned(), html::duration),
                None => "—".to_owned(),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}{}{}{}{}{}<td>{}</td><td>{}</td><td data-cell=\"{}|{}|{}|drain\">{drain}</td></tr>",
                escape(q),
                if kind.is_empty() {
                    "<span class=\"muted\">—</span>".to_owned()
                } else {
                    escape(kind)
                },
                if class.is_empty() {
                    "<span class=\"muted\">—</span>".to_owned()
                } else {
                    escape(class)
                },
                cell("waiting", link("waiting", count("waiting"))),
                cell("queued", link("queued", count("queued"))),
                cell("running", link("running", count("running"))),
                cell("dead", link("dead", count("dead"))),
                cell("succeeded", link("succeeded", count("succeeded"))),
                cell("finished", finished.to_string()),
                cell("rate", format!("{:.2}", l.map_or(0.0, KindLoad::rate))),
                l.and_then(|l| l.oldest_queued)
                    .map_or_else(|| "—".to_owned(), html::duration),
                l.and_then(|l| l.p95_duration)
                    .map_or_else(|| "—".to_owned(), html::duration),
                escape(q),
                escape(kind),
                escape(class),
            );
        }
        out.push_str("</tbody></table>");
    }

    out.push_str("<h2>Live workers</h2>");
    if holders.is_empty() {
        out.push_str("<p class=\"muted\" id=\"no-workers\">No worker holds a lease.</p>");
    } else {
        let ttl = console.config().lease_ttl.as_secs_f64();
        let _ = write!(
            out,
            "<table id=\"workers\"><thead><tr><th>worker</th><th>queue</th><th class=\"num\">jobs held</th><th>kinds</th><th>oldest claim</th><th>leases expire</th><th>last heartbeat ≈</th><th>jobs</th></tr></thead><tbody>"
        );
        for h in &holders {
            let heartbeat = ttl - h.last_expiry_in;
            let jobs: Vec<String> = h
                .job_ids
                .iter()
                .map(|id| format!("<a href=\"/jobs/{id}\">{id}</a>"))
                .collect();
            let more = if h.jobs > h.job_ids.len() as i64 {
                " …"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<tr data-worker=\"{owner}\"><td class=\"mono\">{owner}</td><td>{}</td><td class=\"num\" data-cell=\"{owner}|{}|held\">{}</td><td>{}</td><td>{}</td><td>{} … {}</td><td>{}</td><td>{}{more}</td></tr>",
                escape(&h.queue),
                escape(&h.queue),
                h.jobs,
                escape(&h.kinds.join(", ")),
                h.oldest_claim
                    .map_or_else(|| "—".to_owned(), |d| format!("{} ago", html::duration(d))),
                html::relative(h.first_expiry_in),
                html::relative(h.last_expiry_in),
                if heartbeat >= 0.0 {
                    format!("{} ago", html::duration(Duration::from_secs_f64(heartbeat)))
                } else {
                    "just now".to_owned()
                },
                jobs.join(" "),
                owner = escape(&h.owner),
            );
        }
        let _ = write!(
            out,
            "</tbody></table><p class=\"muted\">The last heartbeat is the newest lease's expiry less the lease TTL ({}); a lease that expired waits for a rescuer.</p>",
            html::duration(console.config().lease_ttl)
        );
    }

    out.push_str("<h2>Dead jobs</h2>");
    if dead.is_empty() {
        out.push_str("<p class=\"muted\" id=\"no-dead\">No dead jobs.</p>");
    } else {
        let writable = access == Access::Admin;
        out.push_str("<table id=\"dead\"><thead><tr><th>job</th><th>queue</th><th class=\"num\">attempts</th><th class=\"num\">lost leases</th><th>last error</th><th></th></tr></thead><tbody>");
        for d in &dead {
            let action = if writable {
                format!(
                    "<form method=\"post\" action=\"/actions/requeue\" class=\"inline\">{}<input type=\"hidden\" name=\"id\" value=\"{}\"><input type=\"hidden\" name=\"back\" value=\"overview\"><button type=\"submit\" id=\"requeue-{}\">requeue</button></form>",
                    html::csrf_field(&console.inner.csrf),
                    d.id,
                    d.id
                )
            } else {
                String::new()
            };
            let error: String = d.last_error.chars().take(160).collect();
            let _ = write!(
                out,
                "<tr data-job=\"{id}\"><td><a href=\"/jobs/{id}\">{id}</a></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"mono\">{}</td><td>{action}</td></tr>",
                escape(&d.queue),
                d.attempts,
                d.lost_leases,
                escape(&error),
                id = d.id,
            );
        }
        out.push_str("</tbody></table>");
        if writable {
            let queues: std::collections::BTreeSet<&str> =
                dead.iter().map(|d| d.queue.as_str()).collect();
            out.push_str("<div class=\"actions\">");
            for q in queues {
                let _ = write!(
                    out,
                    "<form method=\"post\" action=\"/actions/requeue-dead\" class=\"inline\">{}<input type=\"hidden\" name=\"queue\" value=\"{}\"><button type=\"submit\">requeue every dead job of {}</button></form>",
                    html::csrf_field(&console.inner.csrf),
                    escape(q),
                    escape(q)
                );
            }
            out.push_str("</div>");
        }
    }
    Ok(out)
}
