//! The console in headless Chromium (through chromedriver and fantoccini):
//! each page loads and shows the database's numbers, the overview refreshes
//! itself, a log-in and a click on "requeue" bring a dead job back, and
//! every page is photographed.
//!
//! Skips with a message when `/usr/bin/chromium` or `/usr/bin/chromedriver`
//! is missing, unless `CI=true`, where it fails. With
//! `PJP_CONSOLE_SCREENSHOTS=docs` the screenshots are written to
//! `docs/console/` (what the README shows); otherwise to the test's
//! scratch folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use pjp_console::ConsoleConfig;
use pjp_postgres::{NewJob, PgQueue};
use pjp_testkit::postgres::TestSchema;
use pjp_testkit::wait::Wait;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const TOKEN: &str = "browser-t0ken";

/// chromedriver, stopped by its PID when dropped (panics included).
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether the browser is here; skipping (or, in CI, failing) if not.
fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "browser test skipped: {} missing (apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{message}; CI=true requires it"
    );
    eprintln!("{message}");
    false
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver { child, port };
    Wait::new("chromedriver to listen")
        .limit(Duration::from_secs(30))
        .every(Duration::from_millis(50))
        .until_async(|| async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--hide-scrollbars", "--force-device-scale-factor=1"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

fn shots_dir() -> PathBuf {
    let dir = if std::env::var("PJP_CONSOLE_SCREENSHOTS").as_deref() == Ok("docs") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/console")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
    };
    std::fs::create_dir_all(&dir).expect("a folder for the screenshots");
    dir
}

async fn shoot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    assert!(
        png.len() > 10_000,
        "{name} shows something ({} bytes)",
        png.len()
    );
    std::fs::write(shots_dir().join(format!("{name}.png")), png).expect("write the screenshot");
}

/// The element `css` once the page that has it is loaded (at most 10 s).
async fn loaded(
    client: &Client,
    css: &str,
) -> Result<fantoccini::elements::Element, fantoccini::error::CmdError> {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
}

async fn text(client: &Client, css: &str) -> String {
    // Read in one script call: the overview replaces its tables while it
    // refreshes, so a found element can go stale before its text is read.
    let value = client
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![serde_json::json!(css)],
        )
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    value
        .as_str()
        .unwrap_or_else(|| panic!("no element {css}"))
        .to_owned()
}

async fn count(pool: &sqlx::PgPool, schema: &str, filter: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {schema}.jobs WHERE {filter}"
    ))
    .fetch_one(pool)
    .await
    .expect(filter)
}

/// A small fleet: 3 trees of 16 basic proofs and an aggregation, work of
/// three workers over the last minutes, a dead proof.
async fn seed(queue: &PgQueue, pool: &sqlx::PgPool, s: &str) {
    for batch in 0..3 {
        let parent = NewJob::new("proofs", b"aggregate".to_vec())
            .kind("aggregate")
            .batch(batch);
        let children = (0..16)
            .map(|_| {
                NewJob::new("proofs", vec![7; 400])
                    .kind("basic")
                    .resource_class("gpu-80g")
                    .batch(batch)
                    .depth(1)
            })
            .collect();
        queue.enqueue_tree(parent, children).await.unwrap();
    }
    // Batch 0 nearly done, batch 1 half-way, batch 2 not started; three
    // workers hold the jobs in flight.
    for statement in [
        "UPDATE {s}.jobs SET status = 'running', lease_owner = 'gpu-' || (id % 3), started_at = now() - make_interval(secs => 200 - id * 3), lease_expires_at = now() + interval '2 s' WHERE kind = 'basic' AND id <= 30",
        "UPDATE {s}.jobs SET status = 'dead', attempts = 5, finished_at = now(), last_error = 'NTT mismatch at coefficient 4091: expected 0x1f, got 0x2e' WHERE id = 5",
    ] {
        sqlx::query(&statement.replace("{s}", s))
            .execute(pool)
            .await
            .unwrap();
    }
}

/// The rest of the fleet's history, once the console has seen who ran what.
async fn finish_some(pool: &sqlx::PgPool, s: &str) {
    for statement in [
        "UPDATE {s}.jobs SET status = 'succeeded', lease_owner = NULL, lease_expires_at = NULL, finished_at = started_at + make_interval(secs => 20 + id % 7) WHERE status = 'running' AND id <= 26 AND id <> 5",
        "UPDATE {s}.jobs SET waiting_on = 1 WHERE id = 1",
    ] {
        sqlx::query(&statement.replace("{s}", s))
            .execute(pool)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let schema = TestSchema::new();
    let s = schema.name().to_owned();
    let queue = PgQueue::builder(schema.url())
        .schema(&s)
        .wait(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect");
    queue.migrate().await.expect("migrate");
    let pool = queue.pool().clone();
    seed(&queue, &pool, &s).await;

    // The console on a free loopback port, stopped at the end.
    let config = ConsoleConfig::new("postgres://root:hunter2@127.0.0.1:5432/test")
        .admin_token(Some(TOKEN.into()))
        .listen("127.0.0.1:0".parse().unwrap())
        .refresh(Duration::from_millis(500));
    let listener = pjp_console::bind(&config).await.expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(pjp_console::serve_on(
        listener,
        queue.clone(),
        config,
        async move {
            let _ = stopped.await;
        },
    ));

    let driver = start_driver().await;
    let client = browser(&driver).await;
    let result = drive(&client, &base, &pool, &s).await;
    let _ = client.close().await;
    drop(driver);
    let _ = stop.send(());
    let _ = server.await;
    result.expect("the browser run");
}

async fn drive(client: &Client, base: &str, pool: &sqlx::PgPool, s: &str) -> anyhow::Result<()> {
    // The timeline first: the console sees who holds the running jobs.
    client.goto(&format!("{base}/timeline?minutes=5")).await?;
    client.find(Locator::Css("#timeline-workers")).await?;
    finish_some(pool, s).await;

    // Overview: the numbers are the database's.
    client.goto(&format!("{base}/")).await?;
    client.find(Locator::Css("#queues")).await?;
    for (key, filter) in [
        (
            "proofs|basic|gpu-80g|queued",
            "kind = 'basic' AND status = 'queued'",
        ),
        (
            "proofs|basic|gpu-80g|running",
            "kind = 'basic' AND status = 'running'",
        ),
        (
            "proofs|basic|gpu-80g|dead",
            "kind = 'basic' AND status = 'dead'",
        ),
        (
            "proofs|basic|gpu-80g|succeeded",
            "kind = 'basic' AND status = 'succeeded'",
        ),
        (
            "proofs|aggregate||waiting",
            "kind = 'aggregate' AND status = 'waiting'",
        ),
    ] {
        let shown: i64 = text(client, &format!("td[data-cell=\"{key}\"]"))
            .await
            .trim()
            .parse()?;
        assert_eq!(shown, count(pool, s, filter).await, "{key}");
    }
    let held: i64 = text(client, "td[data-cell=\"gpu-1|proofs|held\"]")
        .await
        .trim()
        .parse()?;
    assert_eq!(
        held,
        count(pool, s, "lease_owner = 'gpu-1' AND status = 'running'").await
    );
    let page = client.source().await?;
    assert!(!page.contains("hunter2"), "the password never shows");
    shoot(client, "overview").await;

    // It refreshes itself: a job dies in the database, the page follows.
    sqlx::query(&format!(
        "UPDATE {s}.jobs SET status = 'dead', finished_at = now(), last_error = 'out of memory' WHERE id = 40"
    ))
    .execute(pool)
    .await?;
    let expected = count(pool, s, "kind = 'basic' AND status = 'dead'")
        .await
        .to_string();
    Wait::new("the overview to refresh itself")
        .limit(Duration::from_secs(30))
        .every(Duration::from_millis(100))
        .until_async(|| {
            let (client, expected) = (client.clone(), expected.clone());
            async move {
                text(&client, "td[data-cell=\"proofs|basic|gpu-80g|dead\"]")
                    .await
                    .trim()
                    == expected
            }
        })
        .await;

    // Jobs: a filtered page.
    client
        .goto(&format!("{base}/jobs?kind=basic&status=succeeded"))
        .await?;
    let rows = client.find_all(Locator::Css("#jobs tbody tr")).await?;
    assert_eq!(
        rows.len() as i64,
        count(pool, s, "kind = 'basic' AND status = 'succeeded'").await
    );
    shoot(client, "jobs").await;

    // A tree as a picture: a cell per job, in its state's colour.
    client.goto(&format!("{base}/trees/1")).await?;
    for status in ["succeeded", "running", "dead", "waiting"] {
        let cells = client
            .find_all(Locator::Css(&format!(
                "#tree-svg rect[data-status=\"{status}\"]"
            )))
            .await?;
        assert_eq!(
            cells.len() as i64,
            count(
                pool,
                s,
                &format!("(id = 1 OR parent_id = 1) AND status = '{status}'")
            )
            .await,
            "{status} cells"
        );
    }
    let path = client.find_all(Locator::Css("#critical-path li")).await?;
    assert_eq!(path.len(), 2, "the top and its slowest child");
    shoot(client, "tree").await;

    // The timeline: lanes per worker, the picture loaded.
    client.goto(&format!("{base}/timeline?minutes=5")).await?;
    let width = client
        .execute(
            "return document.getElementById('timeline').naturalWidth",
            vec![],
        )
        .await?;
    assert!(
        width.as_u64().unwrap_or(0) >= 400,
        "the timeline drew: {width}"
    );
    let workers = text(client, "#timeline-workers").await;
    assert!(
        workers.contains("gpu-1") && workers.contains("gpu-2"),
        "{workers}"
    );
    shoot(client, "timeline").await;

    // Log in with the token, then requeue the dead job with a click.
    client.goto(&format!("{base}/jobs/5")).await?;
    assert_eq!(
        client
            .find(Locator::Css("#job-status"))
            .await?
            .attr("data-status")
            .await?
            .as_deref(),
        Some("dead")
    );
    client
        .find(Locator::Css("#login-to-act"))
        .await?
        .click()
        .await?;
    // A click navigates: each next page is waited for (bounded), not
    // assumed loaded when the click returns.
    loaded(client, "#token").await?.send_keys(TOKEN).await?;
    client.find(Locator::Css("#login")).await?.click().await?;
    loaded(client, "#requeue").await?;
    assert_eq!(text(client, "#access").await, "admin");
    shoot(client, "job").await;
    client.find(Locator::Css("#requeue")).await?.click().await?;
    loaded(client, "#notice").await?;
    let notice = text(client, "#notice").await;
    assert!(notice.starts_with("Requeued"), "{notice}");
    assert_eq!(
        client
            .find(Locator::Css("#job-status"))
            .await?
            .attr("data-status")
            .await?
            .as_deref(),
        Some("queued")
    );
    assert_eq!(
        count(pool, s, "id = 5 AND status = 'queued'").await,
        1,
        "queued in the database"
    );
    Ok(())
}
