//! `pjp-prover run --database-url`: real worker processes on one PostgreSQL
//! queue and one `file://` store. Checked from the table and the store:
//! every job succeeded exactly once, every result exists and verifies, a
//! killed worker's jobs come back within 2 × the heartbeat, a kill or a
//! drain burns no attempt, a cut link loses nothing and saves nothing twice.
//!
//! The tests wait on state that lives in other processes and in the server
//! (rows, exit statuses), so they poll it, bounded in count and time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use pjp_testkit::LatencyProxy;
use pjp_testkit::postgres::{TestSchema, database_url};
use pjp_testkit::wait::{Wait, eventually_async};
use serde_json::Value;
use sqlx::PgPool;

const HEARTBEAT: Duration = Duration::from_millis(500);

/// A schema and a store folder for one test, removed when it ends.
struct Fleet {
    schema: TestSchema,
    store: PathBuf,
}

impl Fleet {
    fn new(tag: &str) -> Self {
        let schema = TestSchema::prefixed(&format!("t_fleet_{tag}"));
        let store = std::env::temp_dir().join(format!("pjp-{schema}"));
        let _ = std::fs::remove_dir_all(&store);
        Self { schema, store }
    }

    fn store_url(&self) -> String {
        format!("file://{}", self.store.display())
    }

    fn prover(&self, database_url: &str) -> Command {
        let mut cmd = Command::cargo_bin("pjp-prover").unwrap();
        cmd.env_remove("RUST_LOG")
            .env("PJP_GPU", "cpu")
            .env("DATABASE_URL", database_url)
            .env("PJP_SCHEMA", self.schema.name());
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.prover(&database_url()).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Starts a worker; its log goes to a file (read on failure), its JSON
    /// summary to stdout.
    fn worker(&self, database_url: &str, id: &str, heartbeat: Duration, lease: Duration) -> Child {
        self.worker_with(database_url, id, heartbeat, lease, &[])
    }

    /// [`worker`](Self::worker) with more flags.
    fn worker_with(
        &self,
        database_url: &str,
        id: &str,
        heartbeat: Duration,
        lease: Duration,
        extra: &[&str],
    ) -> Child {
        let log = std::fs::File::create(self.log(id)).unwrap();
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let (heartbeat, lease, rescue) = (ms(heartbeat), ms(lease), ms(HEARTBEAT / 10));
        self.prover(database_url)
            .args(["run", "--exit-when-empty", "--json", "--progress", "none"])
            .args(["--worker-id", id, "--store-url", &self.store_url()])
            .args(["--inline-limit", "0", "--verify-every", "7"])
            .args(["--heartbeat", &heartbeat, "--lease-ttl", &lease])
            .args(["--rescue-interval", &rescue, "--poll-interval", "200ms"])
            .args(["--witness-workers", "1", "--prover-workers", "1"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn log(&self, id: &str) -> PathBuf {
        std::env::temp_dir().join(format!("pjp-{}-{id}.log", self.schema))
    }

    /// Waits for a worker (bounded), returning its summary.
    fn finish(&self, child: Child, id: &str) -> (Output, Value) {
        let output = wait_bounded(child, Duration::from_secs(120));
        let log = std::fs::read_to_string(self.log(id)).unwrap_or_default();
        let summary = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "worker {id} printed no summary ({e}); exit {:?}; log:\n{log}",
                output.status
            )
        });
        (output, summary)
    }

    /// The queue's identity: the one folder under the schema's in the store
    /// (`{schema}/{identity}/`), empty before anything was stored.
    fn identity(&self) -> String {
        std::fs::read_dir(self.store.join(self.schema.name()))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .next()
            .unwrap_or_default()
    }

    /// Result objects in the store, as (job id, token of the claim that
    /// wrote it): they are `{schema}/{identity}/results/{kind}/{batch}/{id}-{token}`,
    /// and these jobs have no kind (`-`) and batch 0.
    fn stored_results(&self) -> Vec<(i64, i64)> {
        let dir = self
            .store
            .join(self.schema.name())
            .join(self.identity())
            .join("results")
            .join("-")
            .join("0");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        // A worker killed mid-upload can leave the local store's staging
        // file (`{id}-{token}#{n}`): not an object, so not counted.
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| {
                let (id, token) = name.split_once('-')?;
                Some((id.parse().ok()?, token.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.store);
        for id in ["w1", "w2", "w3", "solo"] {
            let _ = std::fs::remove_file(self.log(id));
        }
    }
}

/// Waits for a child to exit, killing it (by PID) after `limit` (a hang
/// guard).
fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let exited = Wait::new("a worker to exit")
        .limit(limit)
        .every(Duration::from_millis(20))
        .try_until_some_blocking(|| child.try_wait().unwrap());
    if exited.is_err() {
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        panic!("a worker ran past {limit:?}: {output:?}");
    }
    child.wait_with_output().unwrap()
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// The checks every fleet test ends with: all `jobs` succeeded with a result
/// object that verifies, no attempt was used, no job was held by two claims
/// at once, and the store holds one committed object per job; the only other
/// objects are uploads of superseded claims (at most `fenced` saves plus
/// `stale_claims`, the claims of a killed worker).
async fn assert_every_job_once(
    fleet: &Fleet,
    pool: &PgPool,
    jobs: i64,
    fenced: u64,
    stale_claims: u64,
) {
    let s = fleet.schema.name();
    assert_eq!(
        scalar(
            pool,
            &format!("SELECT count(*) FROM {s}.jobs WHERE status = 'succeeded'")
        )
        .await,
        jobs
    );
    assert_eq!(
        scalar(
            pool,
            &format!("SELECT coalesce(sum(attempts), 0)::int8 FROM {s}.jobs")
        )
        .await,
        0,
        "no attempt was burned"
    );
    // Every claim after the first follows a lost lease: never two at once.
    let twice: Vec<(i64, i64, i32, String)> = sqlx::query_as(&format!(
        "SELECT id, token, lost_leases, coalesce(lease_owner, '') FROM {s}.jobs
         WHERE token <> lost_leases + 1 ORDER BY id"
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    if !twice.is_empty() {
        let logs: String = ["w1", "w2", "w3"]
            .iter()
            .map(|id| {
                let log = std::fs::read_to_string(fleet.log(id)).unwrap_or_default();
                let notable: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .take(20)
                    .collect();
                format!("{id}:\n{}\n", notable.join("\n"))
            })
            .collect();
        panic!(
            "claimed more often than leases were lost (id, token, lost leases): {twice:?}\n{logs}"
        );
    }
    assert_eq!(
        scalar(
            pool,
            &format!("SELECT count(*) FROM {s}.jobs WHERE result_key IS NULL")
        )
        .await,
        0,
        "every result is in the store"
    );
    let verified = fleet.ok(&["verify", "--json", "--store-url", &fleet.store_url()]);
    let verified: Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(verified["checked"], jobs, "{verified}");
    assert_eq!(verified["verified"], jobs, "{verified}");
    assert_eq!(verified["distinct_jobs"], jobs, "each payload proved once");
    // A job's object is keyed by the token of the claim that wrote it. The
    // row names exactly one (the committed save); any other object of the
    // job is an upload whose commit never happened, which only a superseded
    // claim can leave: a fenced save, or a worker killed between its upload
    // and its commit.
    let rows: Vec<(i64, i64, String)> =
        sqlx::query_as(&format!("SELECT id, token, result_key FROM {s}.jobs"))
            .fetch_all(pool)
            .await
            .unwrap();
    let rows: std::collections::HashMap<i64, (i64, String)> =
        rows.into_iter().map(|(id, t, k)| (id, (t, k))).collect();
    let (mut committed, mut orphans) = (0, 0u64);
    let identity = fleet.identity();
    for (id, token) in fleet.stored_results() {
        let (current, key) = &rows[&id];
        if *key == format!("{s}/{identity}/results/-/0/{id}-{token}") {
            committed += 1;
        } else {
            assert!(
                token < *current,
                "job {id}: an object of claim {token} that is not the row's, and not stale either"
            );
            orphans += 1;
        }
    }
    assert_eq!(committed, jobs, "one committed object per job");
    assert!(
        orphans <= fenced + stale_claims,
        "{orphans} orphan upload(s), but only {fenced} fenced save(s) and {stale_claims} superseded claim(s)"
    );
}

fn num(summary: &Value, path: &[&str]) -> u64 {
    let mut v = summary;
    for key in path {
        v = &v[*key];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_one_drained_every_job_once() {
    let recovery = one_killed_one_drained("e2e", None).await;
    // The protocol's promise is 2 × heartbeat (lease 1.8 heartbeats after
    // the last one, then a rescue within 0.1). The slack is for this
    // machine's scheduling and this test's polling (measured 0.86–0.93 s).
    assert!(
        recovery <= HEARTBEAT * 2 + Duration::from_millis(500),
        "recovery took {recovery:?}"
    );
}

/// The same fleet through PgBouncer in transaction mode: every worker's
/// claims, saves, heartbeats and rescues go through a few shared server
/// connections; w1 and w3 listen on the direct URL, w2 polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_through_a_transaction_pooler_one_killed_one_drained_every_job_once() {
    let Some(bouncer) = pjp_testkit::pooler::PgBouncer::start_with_pool_size(8) else {
        return;
    };
    let recovery = one_killed_one_drained("pool", Some(&bouncer)).await;
    eprintln!("through the pooler: recovery after SIGKILL {recovery:?}");
}

/// 3,000 jobs on three workers (through `bouncer` when given); w1 is
/// SIGKILLed holding leases, w2 drained. Returns how long w1's jobs took to
/// come back.
async fn one_killed_one_drained(
    tag: &str,
    bouncer: Option<&pjp_testkit::pooler::PgBouncer>,
) -> Duration {
    const JOBS: i64 = 3_000;
    let fleet = Fleet::new(tag);
    let pool = PgPool::connect(&database_url()).await.unwrap();
    fleet.ok(&["migrate"]);
    fleet.ok(&[
        "enqueue",
        "--jobs",
        "3000",
        "--log-n",
        "11",
        "--batch",
        "2",
        "--progress",
        "none",
    ]);
    let direct = database_url();
    let (url, listen, poll): (String, Vec<&str>, Vec<&str>) = match bouncer {
        None => (direct.clone(), Vec::new(), Vec::new()),
        Some(bouncer) => (
            bouncer.url(),
            vec!["--pooler", "transaction", "--direct-url", &direct],
            vec!["--pooler", "transaction"],
        ),
    };
    // Leases of 1.8 heartbeats: a live worker survives a late heartbeat on a
    // loaded machine; a dead one's jobs come back within 2.
    let lease = HEARTBEAT * 9 / 5;
    let w1 = fleet.worker_with(&url, "w1", HEARTBEAT, lease, &listen);
    let w2 = fleet.worker_with(&url, "w2", HEARTBEAT, lease, &poll);
    let w3 = fleet.worker_with(&url, "w3", HEARTBEAT, lease, &listen);
    let s = fleet.schema.name();

    // Kill w1 mid-run, holding leases.
    Wait::new("w1 to hold leases, 10 % done")
        .limit(Duration::from_secs(60))
        .until_async(|| async {
            scalar(
                &pool,
                &format!(
                    "SELECT count(*) FROM {s}.jobs WHERE lease_owner = 'w1' AND status = 'running'"
                ),
            )
            .await
                > 0
                && scalar(
                    &pool,
                    &format!("SELECT count(*) FROM {s}.jobs WHERE status = 'succeeded'"),
                )
                .await
                    > JOBS / 10
        })
        .await;
    let mut w1 = w1;
    w1.kill().unwrap(); // SIGKILL, by PID
    let killed_at = Instant::now();
    w1.wait().unwrap();
    let stranded: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM {s}.jobs WHERE lease_owner = 'w1' AND status = 'running' ORDER BY id"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!stranded.is_empty());

    // Drain w2 while w1's leases are still running out.
    signal(w2.id(), "TERM");

    eventually_async("w1's jobs to be reclaimed", || async {
        scalar(
            &pool,
            &format!(
                "SELECT count(*) FROM {s}.jobs WHERE id = ANY($1) AND lease_owner IS NOT DISTINCT FROM 'w1' AND status = 'running'"
            )
            .replace("$1", &format!("'{{{}}}'::int8[]", join(&stranded))),
        )
        .await
            == 0
    })
    .await;
    let recovery = killed_at.elapsed();

    let (w2_out, w2_summary) = fleet.finish(w2, "w2");
    let (w3_out, w3_summary) = fleet.finish(w3, "w3");
    assert!(w2_out.status.success(), "{w2_summary}");
    assert_eq!(w2_summary["ending"], "drained", "{w2_summary}");
    assert!(w3_out.status.success(), "{w3_summary}");
    assert_eq!(w3_summary["ending"], "completed", "{w3_summary}");

    let fenced = num(&w2_summary, &["fleet", "fenced"]) + num(&w3_summary, &["fleet", "fenced"]);
    // w1 may have uploaded results of the jobs it held and died before
    // committing them.
    assert_every_job_once(&fleet, &pool, JOBS, fenced, stranded.len() as u64).await;
    // The stranded jobs lost a lease each (not an attempt) and were finished
    // by the others; their rescues are exactly the ones w2 and w3 counted. A
    // save w1 had already sent may still commit after the kill (the server
    // finishes a statement before it sees the closed socket): those jobs were
    // done once, by w1, with its valid token.
    let in_stranded = |cond: &str| {
        format!(
            "SELECT count(*) FROM {s}.jobs WHERE id = ANY('{{{}}}'::int8[]) AND status = 'succeeded' AND {cond}",
            join(&stranded)
        )
    };
    let lost = scalar(&pool, &in_stranded("lost_leases >= 1")).await;
    let landed_late = scalar(&pool, &in_stranded("lost_leases = 0 AND token = 1")).await;
    assert_eq!(lost + landed_late, stranded.len() as i64);
    assert!(lost > 0, "w1 died holding unsaved jobs");
    // A claim w1 sent before the kill may also commit after `stranded` was
    // read (through the pooler, the server connection finishes it): its
    // jobs lost their leases too. Only w1 died, so every lost lease was
    // its, and each was reclaimed once.
    let lost_anywhere = scalar(
        &pool,
        &format!("SELECT count(*) FROM {s}.jobs WHERE lost_leases >= 1"),
    )
    .await;
    assert!(lost_anywhere >= lost);
    let reclaimed =
        num(&w2_summary, &["fleet", "reclaimed"]) + num(&w3_summary, &["fleet", "reclaimed"]);
    assert_eq!(reclaimed, lost_anywhere as u64);
    eprintln!(
        "recovery after SIGKILL: {recovery:?} for {lost} stranded job(s), {landed_late} saved by w1's last statement (heartbeat {HEARTBEAT:?})"
    );

    // `status` tells the same story.
    let status: Value = serde_json::from_str(&fleet.ok(&["status", "--json"])).unwrap();
    let queue = &status["queues"][0];
    assert_eq!(queue["counts"]["succeeded"], JOBS, "{status}");
    assert_eq!(queue["counts"].get("dead"), None, "{status}");
    assert_eq!(queue["workers"], serde_json::json!({}), "{status}");
    recovery
}

fn join(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_mid_run_lose_nothing_and_save_nothing_twice() {
    const JOBS: i64 = 1_500;
    let fleet = Fleet::new("cut");
    let pool = PgPool::connect(&database_url()).await.unwrap();
    fleet.ok(&["migrate"]);
    fleet.ok(&[
        "enqueue",
        "--jobs",
        "1500",
        "--log-n",
        "10",
        "--batch",
        "2",
        "--progress",
        "none",
    ]);
    let upstream = "127.0.0.1:5432".parse().unwrap();
    let proxy = LatencyProxy::start(upstream, Duration::from_millis(2))
        .await
        .unwrap();
    let via_proxy = database_url().replace("127.0.0.1:5432", &proxy.addr().to_string());
    // Leases that ride out a reconnect: this test is about cut links, not
    // about expiry.
    let worker = fleet.worker(
        &via_proxy,
        "solo",
        Duration::from_secs(1),
        Duration::from_secs(3),
    );
    let s = fleet.schema.name();
    let mut cuts = 0;
    for round in 1..=3i64 {
        Wait::new("progress before the next cut")
            .limit(Duration::from_secs(60))
            .until_async(|| async {
                scalar(
                    &pool,
                    &format!("SELECT count(*) FROM {s}.jobs WHERE status = 'succeeded'"),
                )
                .await
                    > round * JOBS / 5
            })
            .await;
        cuts += proxy.cut();
    }
    assert!(cuts >= 3, "the worker's connections were cut ({cuts})");
    let (output, summary) = fleet.finish(worker, "solo");
    assert!(output.status.success(), "{summary}");
    assert_eq!(summary["ending"], "completed", "{summary}");
    assert_eq!(num(&summary, &["succeeded"]), JOBS as u64, "{summary}");
    assert!(proxy.accepted() > 3, "the worker reconnected");
    let fenced = num(&summary, &["fleet", "fenced"]);
    // A claim whose reply a cut lost expires and is taken again: its first
    // claim never saved anything, so it leaves no object.
    assert_every_job_once(&fleet, &pool, JOBS, fenced, 0).await;
}

#[test]
fn bad_fleet_input_is_one_clear_line_and_the_right_exit_code() {
    let fleet = Fleet::new("bad");
    let run = |url: &str, extra: &[&str]| {
        fleet
            .prover(url)
            .args(["run", "--wait", "0s", "--progress", "none"])
            .args(extra)
            .output()
            .unwrap()
    };
    let line = |output: &Output| {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
        stderr
    };
    let cases: [(&str, &[&str], u8, &str); 5] = [
        ("mysql://root@127.0.0.1/test", &[], 2, "postgres"),
        ("postgres://root@127.0.0.1:1/test", &[], 1, "127.0.0.1:1"),
        (&database_url(), &[], 1, "migrate"),
        (
            &database_url(),
            &["--heartbeat", "2s", "--lease-ttl", "1s"],
            2,
            "lease",
        ),
        (
            &database_url(),
            &["--store-url", "file:///proc/pjp-cannot-write-here"],
            1,
            "/proc/pjp-cannot-write-here",
        ),
    ];
    for (url, extra, code, says) in cases {
        let output = run(url, extra);
        let stderr = line(&output);
        assert_eq!(
            output.status.code(),
            Some(i32::from(code)),
            "{url} {extra:?}: {stderr}"
        );
        assert!(stderr.contains(says), "{url} {extra:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoning_worker_lists_exactly_the_jobs_it_handed_back() {
    // Slow proving: when the signals come, claimed jobs wait in the prefetch
    // buffers and in the stage channel between witness and proving; the
    // channel hands its jobs back to PostgreSQL itself, not through a runner.
    let fleet = Fleet::new("abandon");
    let pool = PgPool::connect(&database_url()).await.unwrap();
    fleet.ok(&["migrate"]);
    let enqueue = ["enqueue", "--jobs", "60", "--log-n", "15", "--batch", "4"];
    fleet.ok(&[&enqueue[..], &["--progress", "none"]].concat());
    let worker = fleet.worker(
        &database_url(),
        "solo",
        Duration::from_secs(1),
        Duration::from_secs(3),
    );
    let s = fleet.schema.name();
    Wait::new("a first proof")
        .limit(Duration::from_secs(60))
        .until_async(|| async {
            scalar(
                &pool,
                &format!("SELECT count(*) FROM {s}.jobs WHERE status = 'succeeded'"),
            )
            .await
                > 0
        })
        .await;
    signal(worker.id(), "TERM");
    signal(worker.id(), "INT");
    let (output, summary) = fleet.finish(worker, "solo");
    assert_eq!(output.status.code(), Some(3), "{summary}");
    assert_eq!(summary["ending"], "abandoned", "{summary}");
    // One worker: the jobs back in the queue after a claim are exactly the
    // ones it handed back (a release keeps the claim's token).
    let handed_back: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM {s}.jobs WHERE status = 'queued' AND token > 0 ORDER BY id"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    let listed: Vec<i64> = summary["released"]
        .as_array()
        .unwrap_or_else(|| panic!("no released list: {summary}"))
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect();
    assert!(!handed_back.is_empty(), "the worker held jobs: {summary}");
    assert_eq!(listed, handed_back, "{summary}");
    assert_eq!(
        scalar(
            &pool,
            &format!("SELECT count(*) FROM {s}.jobs WHERE status = 'running'")
        )
        .await,
        0,
        "nothing left leased"
    );
}
