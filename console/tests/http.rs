//! The console over HTTP against the real PostgreSQL (each test in its own
//! schema): the numbers on the pages are the database's, bad input gets a
//! clear page and status, and every write needs the token, the CSRF token
//! and a same-origin request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use pjp_console::{ConsoleConfig, router};
use pjp_postgres::{NewJob, PgQueue};
use pjp_testkit::postgres::TestSchema;
use tower::ServiceExt as _;

const HOST: &str = "127.0.0.1:8080";
const TOKEN: &str = "t0ken-for-tests";

struct Db {
    queue: PgQueue,
    pool: sqlx::PgPool,
    schema: TestSchema,
}

async fn db() -> Db {
    let schema = TestSchema::new();
    let queue = PgQueue::builder(schema.url())
        .schema(schema.name())
        .wait(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect to the test database");
    queue.migrate().await.expect("migrate");
    let pool = queue.pool().clone();
    Db {
        queue,
        pool,
        schema,
    }
}

impl Db {
    fn app(&self, token: Option<&str>) -> Router {
        let config = ConsoleConfig::new("postgres://root:hunter2@127.0.0.1:5432/test")
            .admin_token(token.map(str::to_owned));
        router(self.queue.clone(), config).expect("router")
    }

    async fn sql(&self, statement: &str) {
        sqlx::query(&statement.replace("{s}", self.schema.name()))
            .execute(&self.pool)
            .await
            .expect(statement);
    }

    async fn scalar(&self, statement: &str) -> i64 {
        sqlx::query_scalar(&statement.replace("{s}", self.schema.name()))
            .fetch_one(&self.pool)
            .await
            .expect(statement)
    }

    async fn status_of(&self, id: i64) -> String {
        sqlx::query_scalar(&format!(
            "SELECT status::text FROM {}.jobs WHERE id = $1",
            self.schema.name()
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .expect("a job's status")
    }

    /// Three trees of 4 basic proofs and an aggregation, 10 flat jobs; jobs
    /// 2 and 13 dead, job 3 running on `gpu-1`.
    async fn seed(&self) {
        for batch in 0..3 {
            let parent = NewJob::new("proofs", b"agg".to_vec())
                .kind("aggregate")
                .batch(batch);
            let children = (0..4)
                .map(|_| {
                    NewJob::new("proofs", b"proof".to_vec())
                        .kind("basic")
                        .resource_class("gpu")
                        .batch(batch)
                        .depth(1)
                })
                .collect();
            self.queue.enqueue_tree(parent, children).await.unwrap();
        }
        let flat = (0..10)
            .map(|i| NewJob::new("other", vec![i]))
            .collect::<Vec<_>>();
        self.queue.enqueue_many(flat).await.unwrap();
        self.sql("UPDATE {s}.jobs SET status = 'dead', finished_at = now(), last_error = 'boom <script>x</script>' WHERE id IN (2, 13)").await;
        self.sql("UPDATE {s}.jobs SET status = 'running', lease_owner = 'gpu-1', started_at = now(), lease_expires_at = now() + interval '2 s' WHERE id = 3").await;
    }
}

fn request(method: &str, path: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = app.clone().oneshot(request).await.expect("a response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("a body");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let (status, _, body) = send(app, request("GET", path).body(Body::empty()).unwrap()).await;
    (status, body)
}

/// The number in the table cell `data-cell="{key}"`.
fn cell(html: &str, key: &str) -> i64 {
    let marker = format!("data-cell=\"{key}\">");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no cell {key}"))
        + marker.len();
    let rest = &html[at..html[at..].find("</td>").map(|e| at + e).unwrap()];
    let text: String = rest
        .split(['<', '>'])
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, t)| t)
        .collect();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("cell {key}: {rest}"))
}

/// The value of the hidden CSRF field on a page.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("a CSRF field") + marker.len();
    html[at..at + 64].to_owned()
}

#[tokio::test]
async fn the_overview_shows_the_databases_numbers() {
    let db = db().await;
    db.seed().await;
    let app = db.app(None);
    let (status, html) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    for (queue, kind, class) in [
        ("proofs", "aggregate", ""),
        ("proofs", "basic", "gpu"),
        ("other", "", ""),
    ] {
        for state in ["waiting", "queued", "running", "dead", "succeeded"] {
            let expected = db
                .scalar(&format!(
                    "SELECT count(*) FROM {{s}}.jobs WHERE queue = '{queue}' AND kind = '{kind}' AND resource_class = '{class}' AND status = '{state}'"
                ))
                .await;
            assert_eq!(
                cell(&html, &format!("{queue}|{kind}|{class}|{state}")),
                expected,
                "{queue}/{kind}/{class} {state}"
            );
        }
    }
    assert_eq!(cell(&html, "proofs|aggregate||waiting"), 3);
    assert_eq!(cell(&html, "proofs|basic|gpu|dead"), 2);
    assert_eq!(cell(&html, "gpu-1|proofs|held"), 1, "the live worker");
    assert!(html.contains("boom &lt;script&gt;"), "errors are escaped");
    assert!(!html.contains("<script>x"), "no markup from the database");
    assert!(!html.contains("hunter2"), "the password never shows");
    assert!(html.contains("read-only"));
    // The live fragment has the same numbers.
    let (status, live) = get(&app, "/overview/live").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        cell(&live, "proofs|basic|gpu|queued"),
        cell(&html, "proofs|basic|gpu|queued")
    );
}

#[tokio::test]
async fn pages_show_jobs_trees_and_the_timeline() {
    let db = db().await;
    db.seed().await;
    db.sql("UPDATE {s}.jobs SET status = 'succeeded', started_at = now() - interval '3 s', finished_at = now() - interval '1 s' WHERE id IN (4, 5)").await;
    let app = db.app(None);

    let (status, html) = get(&app, "/jobs?status=dead").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-job=\"13\"") && html.contains("data-job=\"2\""));
    assert_eq!(html.matches("<tr data-job=").count(), 2);

    let (status, html) = get(&app, "/jobs?kind=basic&batch=0").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(html.matches("<tr data-job=").count(), 4, "{html}");

    let (status, html) = get(&app, "/jobs/2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-status=\"dead\""));
    assert!(
        html.contains("href=\"/jobs/1\" id=\"parent\""),
        "its parent"
    );
    assert!(html.contains("inline, 5 B"), "the payload's size");

    let (status, html) = get(&app, "/jobs/1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("4 child(ren)"), "{html}");

    let (status, html) = get(&app, "/trees/3").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"tree-svg\""));
    assert_eq!(
        html.matches("<rect x=").count() - 7,
        5,
        "a cell per job (and the legend)"
    );
    // The critical path: the top, then the child that has not finished
    // (the running job 3; the dead job 2 finished).
    let path = &html[html.find("id=\"critical-path\"").unwrap()..];
    assert!(
        path.starts_with("id=\"critical-path\"><li data-job=\"1\""),
        "{path}"
    );
    assert_eq!(path.matches("<li ").count(), 2);

    let (status, svg) = get(&app, "/trees/1/svg").await;
    assert_eq!(status, StatusCode::OK);
    assert!(svg.starts_with("<svg"));

    let (status, html) = get(&app, "/trees").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(html.matches("<tr data-tree=").count(), 3);

    let (status, html) = get(&app, "/timeline?minutes=5").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("gpu-1"),
        "the running job's worker has a lane"
    );
    let (status, svg) = get(&app, "/timeline.svg?minutes=5").await;
    assert_eq!(status, StatusCode::OK);
    assert!(svg.contains("gpu-1") && svg.contains("unattributed · basic"));
}

#[tokio::test]
async fn bad_input_gets_a_clear_page_and_status() {
    let db = db().await;
    db.seed().await;
    let app = db.app(Some(TOKEN));
    for (path, status, says) in [
        ("/jobs/999999", StatusCode::NOT_FOUND, "no job 999999"),
        ("/jobs/abc", StatusCode::BAD_REQUEST, "is not a job id"),
        ("/jobs/-3", StatusCode::BAD_REQUEST, "is not a job id"),
        ("/trees/999999", StatusCode::NOT_FOUND, "no job 999999"),
        ("/trees/x/svg", StatusCode::BAD_REQUEST, "is not a job id"),
        (
            "/jobs?status=zombie",
            StatusCode::BAD_REQUEST,
            "unknown status `zombie`",
        ),
        (
            "/jobs?batch=seven",
            StatusCode::BAD_REQUEST,
            "batch `seven` is not a whole number",
        ),
        ("/jobs?before=1e9", StatusCode::BAD_REQUEST, "before `1e9`"),
        (
            "/trees?batch=%3Cb%3E",
            StatusCode::BAD_REQUEST,
            "batch `&lt;b&gt;`",
        ),
        (
            "/timeline?minutes=0",
            StatusCode::BAD_REQUEST,
            "from 1 to 60",
        ),
        (
            "/no/such/page",
            StatusCode::NOT_FOUND,
            "no page at /no/such/page",
        ),
    ] {
        let (got, html) = get(&app, path).await;
        assert_eq!(got, status, "{path}");
        assert!(html.contains(says), "{path}: {html}");
        assert!(html.contains(&format!("data-status=\"{}\"", status.as_u16())));
    }
    // A request for another host (DNS rebinding) is refused.
    let (status, _, _) = send(
        &app,
        Request::get("/")
            .header(header::HOST, "evil.example")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
}

fn form_post(path: &str) -> axum::http::request::Builder {
    request("POST", path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
}

#[tokio::test]
async fn writes_need_the_token_the_csrf_token_and_the_same_origin() {
    let db = db().await;
    db.seed().await;

    // Read-only: no token configured, no write.
    let read_only = db.app(None);
    let (status, _, html) = send(
        &read_only,
        form_post("/actions/requeue")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::from("id=2"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("read-only"));
    assert_eq!(db.status_of(2).await, "dead");

    let app = db.app(Some(TOKEN));
    let (_, page) = get(&app, "/login").await;
    let csrf = csrf_of(&page);
    let origin = format!("http://{HOST}");

    // No session, a wrong bearer token: refused.
    let (status, _, _) = send(
        &app,
        form_post("/actions/requeue")
            .header(header::ORIGIN, &origin)
            .body(Body::from(format!("id=2&csrf={csrf}")))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(
        &app,
        form_post("/actions/requeue")
            .header(header::AUTHORIZATION, "Bearer wrong")
            .body(Body::from("id=2"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(db.status_of(2).await, "dead");

    // Log in: a wrong token is refused, the right one sets a strict cookie.
    let (status, headers, _) = send(
        &app,
        form_post("/login")
            .header(header::ORIGIN, &origin)
            .body(Body::from(format!(
                "token=nope&csrf={csrf}&next=%2Fjobs%2F2"
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::SET_COOKIE).is_none());
    let (status, headers, _) = send(
        &app,
        form_post("/login")
            .header(header::ORIGIN, &origin)
            .body(Body::from(format!(
                "token={TOKEN}&csrf={csrf}&next=%2Fjobs%2F2"
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/jobs/2");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    // A session without the CSRF token, or from another origin: refused.
    let (status, _, _) = send(
        &app,
        form_post("/actions/requeue")
            .header(header::COOKIE, &session)
            .header(header::ORIGIN, &origin)
            .body(Body::from("id=2&csrf=0000"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(
        &app,
        form_post("/actions/requeue")
            .header(header::COOKIE, &session)
            .header(header::ORIGIN, "http://evil.example")
            .body(Body::from(format!("id=2&csrf={csrf}")))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(db.status_of(2).await, "dead");

    // All three: the dead job is queued again (its dead parent waits).
    let (status, headers, _) = send(
        &app,
        form_post("/actions/requeue")
            .header(header::COOKIE, &session)
            .header(header::ORIGIN, &origin)
            .body(Body::from(format!("id=2&csrf={csrf}")))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/jobs/2?done=requeued");
    assert_eq!(db.status_of(2).await, "queued");
    let (_, _, html) = send(
        &app,
        request("GET", "/jobs/2?done=requeued")
            .header(header::COOKIE, &session)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(html.contains("id=\"notice\""));

    // A script with the bearer token: cancel a job, then its whole tree.
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, _) = send(
        &app,
        form_post("/actions/cancel")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::from("id=20"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(db.status_of(20).await, "cancelled");
    let (status, headers, _) = send(
        &app,
        form_post("/actions/cancel-tree")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::from("id=7"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/trees/7?done=tree-cancelled&n=5"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM {s}.jobs WHERE id BETWEEN 6 AND 10 AND status = 'cancelled'"
        )
        .await,
        5
    );

    // Bad input to an action: a clear page, nothing written.
    let (status, _, html) = send(
        &app,
        form_post("/actions/requeue")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::from("id=banana"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("`banana` is not a job id"));
    let (status, _, _) = send(
        &app,
        form_post("/actions/cancel")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::from("id=424242"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, html) = send(
        &app,
        form_post("/actions/purge")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::from("older_than=soon"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("is not a duration"));

    // Purge: finished rows older than zero seconds go (dead ones kept).
    let finished = db
        .scalar(
            "SELECT count(*) FROM {s}.jobs WHERE status IN ('succeeded', 'failed', 'cancelled')",
        )
        .await;
    let (status, headers, _) = send(
        &app,
        form_post("/actions/purge")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::from("older_than=0s"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        format!("/?done=purged&n={finished}")
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM {s}.jobs WHERE status = 'cancelled'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_page_of_jobs_reads_a_window_of_the_primary_key_beside_a_million_rows() {
    let db = db().await;
    db.seed().await;
    db.sql("INSERT INTO {s}.jobs (queue, status, kind, started_at, finished_at) SELECT 'proofs', 'succeeded', 'basic', now() - interval '2 h', now() - interval '1 h' FROM generate_series(1, 1000000)").await;
    db.sql("UPDATE {s}.jobs SET status = 'dead', finished_at = now() WHERE id IN (500000, 999990)")
        .await;
    let app = db.app(None);

    // The newest page: the 50 newest ids, an "older" link after the last.
    let (status, html) = get(&app, "/jobs").await;
    assert_eq!(status, StatusCode::OK);
    let max = db.scalar("SELECT max(id) FROM {s}.jobs").await;
    assert!(html.contains(&format!("<tr data-job=\"{max}\"")));
    assert_eq!(html.matches("<tr data-job=").count(), 50);
    assert!(
        html.contains(&format!("before={}\" id=\"older\"", max - 49)),
        "the keyset"
    );

    // A rare status: each page looks through one window of ids and says so.
    let (status, html) = get(&app, "/jobs?status=dead").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<tr data-job=\"999990\""));
    assert!(
        !html.contains("<tr data-job=\"500000\""),
        "beyond the window"
    );
    let floor = max + 1 - pjp_postgres::JOB_PAGE_WINDOW;
    assert!(
        html.contains(&format!("ids {floor}–{max} looked through")),
        "{html}"
    );
    let mut before = floor;
    let mut found = Vec::new();
    for _ in 0..20 {
        let (status, html) = get(&app, &format!("/jobs?status=dead&before={before}")).await;
        assert_eq!(status, StatusCode::OK);
        if html.contains("<tr data-job=\"500000\"") {
            found.push(500000);
        }
        match html
            .split("before=")
            .nth(1)
            .and_then(|r| r.split('"').next())
        {
            Some(next) if html.contains("id=\"older\"") => before = next.parse().unwrap(),
            _ => break,
        }
    }
    assert_eq!(found, [500000], "paging on reaches the old dead job once");
}
