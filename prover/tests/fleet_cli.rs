//! The fleet commands of `pjp-prover` against the local PostgreSQL server,
//! each test in its own schema.

use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use pjp_testkit::postgres::TestSchema;
use serde_json::Value;

/// A schema for one test, dropped when the test ends.
struct Schema(TestSchema);

impl Schema {
    fn new(tag: &str) -> Self {
        Self(TestSchema::prefixed(&format!("t_cli_{tag}")))
    }

    fn prover(&self, args: &[&str]) -> Output {
        Command::cargo_bin("pjp-prover")
            .unwrap_or_else(|e| panic!("binary: {e}"))
            .env_remove("RUST_LOG")
            .env("DATABASE_URL", self.0.url())
            .env("PJP_SCHEMA", self.0.name())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.prover(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

#[test]
fn migrate_enqueue_status_requeue_purge() {
    let schema = Schema::new("flow");
    assert!(schema.ok(&["migrate"]).contains("applied migration"));
    assert!(schema.ok(&["migrate"]).contains("up to date"));
    let out = schema.ok(&[
        "enqueue",
        "--jobs",
        "1200",
        "--key-prefix",
        "b1",
        "--enqueue-batch",
        "500",
    ]);
    assert!(out.contains("enqueued 1200 job(s)"), "{out}");
    // The same producer again: nothing twice.
    let out = schema.ok(&["enqueue", "--jobs", "1200", "--key-prefix", "b1"]);
    assert!(
        out.contains("enqueued 0 job(s)") && out.contains("1200 already there"),
        "{out}"
    );

    let status: Value = serde_json::from_str(&schema.ok(&["status", "--json"]))
        .unwrap_or_else(|e| panic!("status --json: {e}"));
    let queue = &status["queues"][0];
    assert_eq!(queue["queue"], "proofs");
    assert_eq!(queue["counts"]["queued"], 1200);
    assert!(queue["oldest_queued_secs"].as_f64().is_some());
    // The autoscaler's view: per queue, kind and class.
    let load = &status["load"][0];
    assert_eq!(
        (load["queue"].as_str(), load["kind"].as_str()),
        (Some("proofs"), Some(""))
    );
    assert_eq!(
        (load["queued"].as_i64(), load["running"].as_i64()),
        (Some(1200), Some(0))
    );
    assert!(
        load["drain_estimate_secs"].is_null(),
        "nothing finished yet: no rate"
    );
    let text = schema.ok(&["status"]);
    assert!(
        text.contains("queue proofs: 0 waiting, 1200 queued"),
        "{text}"
    );

    // The autoscaling plan, a dry run: nothing finished yet, so each job is
    // taken to last the fallback: 1,200 × 60 s drained in 10 minutes needs
    // 120 workers, capped by --max-workers.
    let plan: Value = serde_json::from_str(&schema.ok(&[
        "status",
        "--json",
        "--plan",
        "--drain-window",
        "10m",
        "--fallback-duration",
        "60s",
        "--max-workers",
        "500",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    let planned = &plan["plan"][0];
    assert_eq!(planned["work"], 1200, "{plan:#}");
    assert_eq!(planned["desired_workers"], 120, "{plan:#}");
    assert_eq!(planned["measured"], false, "{plan:#}");
    let capped = schema.ok(&["status", "--plan", "--max-workers", "16"]);
    assert!(
        capped.contains("1200 job(s) × 60.0s (fallback) → 16 worker(s)"),
        "{capped}"
    );
    assert!(
        status.get("plan").is_none(),
        "no plan without --plan: {status:#}"
    );

    assert!(
        schema
            .ok(&["requeue", "--dead"])
            .contains("0 dead job(s) requeued")
    );
    let out = schema.prover(&["requeue", "--dead", "--id", "1"]);
    assert_eq!(out.status.code(), Some(1), "job 1 is queued, not dead");
    assert!(
        schema
            .ok(&["purge", "--older-than", "7d"])
            .contains("purged 0")
    );
}

#[test]
fn bad_input_is_one_clear_line_and_the_right_exit_code() {
    let schema = Schema::new("bad");
    let line = |out: &Output| {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        stderr
    };
    // A schema not migrated yet: a runtime error that says what to do.
    let out = schema.prover(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(line(&out).contains("pjp-prover migrate"));
    // A URL of the wrong scheme: usage.
    let out = schema.prover(&["status", "--database-url", "mysql://nope/db"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(line(&out).contains("postgres://"));
    // Nobody listening: retried for the wait, then one line naming the address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("postgres://root@127.0.0.1:{port}/test");
    let out = schema.prover(&["migrate", "--database-url", &url, "--wait", "300ms"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(line(&out).contains(&format!("127.0.0.1:{port}")));
    // A missing flag names it.
    let out = schema.prover(&["requeue"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(line(&out).contains("--dead"));
    // An invalid queue name.
    schema.ok(&["migrate"]);
    let out = schema.prover(&["enqueue", "--jobs", "1", "--queue", "no spaces"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(line(&out).contains("queue name"));
}

#[test]
fn gc_deletes_only_unnamed_old_blobs() {
    let schema = Schema::new("gc");
    schema.ok(&["migrate"]);
    let dir = std::env::temp_dir().join(format!("pjp-gc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let store = format!("file://{}", dir.display());
    // Jobs whose results go to the store (named by their rows).
    schema.ok(&["enqueue", "--jobs", "3", "--log-n", "8", "--batch", "2"]);
    schema.ok(&[
        "run",
        "--exit-when-empty",
        "--store-url",
        &store,
        "--inline-limit",
        "16",
        "--progress",
        "none",
    ]);
    // An upload whose commit never happened (a worker that crashed), under
    // the queue's own root: `{schema}/{identity}/`, the one folder there.
    let identity = std::fs::read_dir(dir.join(schema.0.name()))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no queue root under {}", dir.display()));
    let orphan = identity.join("results").join("999-1");
    std::fs::create_dir_all(orphan.parent().unwrap_or(&dir)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&orphan, b"lost upload").unwrap_or_else(|e| panic!("{e}"));

    let young: Value = serde_json::from_str(&schema.ok(&["gc", "--store-url", &store, "--json"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (young["deleted"].as_u64(), young["young"].as_u64()),
        (Some(0), Some(1)),
        "{young}"
    );
    let dry = schema.ok(&[
        "gc",
        "--store-url",
        &store,
        "--older-than",
        "0s",
        "--dry-run",
    ]);
    assert!(
        dry.contains("would delete 1 orphan blob(s) of 4 listed (3 named by a job"),
        "{dry}"
    );
    assert!(orphan.exists());
    let done = schema.ok(&["gc", "--store-url", &store, "--older-than", "0s"]);
    assert!(
        done.contains("deleted 1 orphan blob(s) of 4 listed"),
        "{done}"
    );
    assert!(!orphan.exists());
    // Nothing a job needs went: the payloads are all still there.
    let again: Value = serde_json::from_str(&schema.ok(&[
        "gc",
        "--store-url",
        &store,
        "--older-than",
        "0s",
        "--json",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (again["referenced"].as_u64(), again["deleted"].as_u64()),
        (Some(3), Some(0))
    );
    // A blob of no queue identity under the schema's prefix: gc refuses,
    // unless told to leave it alone.
    let stray = dir.join(schema.0.name()).join("results").join("1-1");
    std::fs::create_dir_all(stray.parent().unwrap_or(&dir)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&stray, b"whose?").unwrap_or_else(|e| panic!("{e}"));
    let refused = schema.prover(&["gc", "--store-url", &store, "--older-than", "0s"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no queue identity"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    schema.ok(&[
        "gc",
        "--store-url",
        &store,
        "--older-than",
        "0s",
        "--ignore-unowned",
    ]);
    assert!(stray.exists(), "never deleted");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn proof_trees_are_enqueued_aggregated_and_verified() {
    let schema = Schema::new("trees");
    schema.ok(&["migrate"]);
    let tree = [
        "enqueue",
        "--batches",
        "2",
        "--circuits",
        "3",
        "--log-n",
        "8",
        "--batch",
        "2",
        "--key-prefix",
        "epoch-1",
    ];
    let out = schema.ok(&tree);
    assert!(
        out.contains("enqueued 2 tree(s) of 3 basic proof(s)"),
        "{out}"
    );
    let again = schema.ok(&tree);
    assert!(
        again.contains("enqueued 0 tree(s)") && again.contains("2 already there"),
        "{again}"
    );

    // Two workers with different --kinds serve the tree: one proves, and
    // leaves once no basic proof is left; the other closes the batches.
    let run = |kinds: &str| -> Value {
        serde_json::from_str(&schema.ok(&[
            "run",
            "--exit-when-empty",
            "--json",
            "--progress",
            "none",
            "--kinds",
            kinds,
        ]))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let prover = run("basic");
    assert_eq!(prover["succeeded"], 6, "{prover:#}");
    assert_eq!(prover["fleet"]["aggregated"], 0, "{prover:#}");
    let closer = run("aggregate,basic");
    assert_eq!(closer["succeeded"], 0, "{closer:#}");
    assert_eq!(closer["fleet"]["aggregated"], 2, "{closer:#}");
    // A worker must prove; an unknown kind is refused.
    for bad in ["aggregate", "leaf"] {
        let out = schema.prover(&["run", "--kinds", bad]);
        assert_eq!(out.status.code(), Some(2), "--kinds {bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--kinds"), "{stderr}");
    }

    let status: Value =
        serde_json::from_str(&schema.ok(&["status", "--json"])).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = status["load"]
        .as_array()
        .unwrap_or_else(|| panic!("load"))
        .iter()
        .filter_map(|l| l["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["aggregate", "basic"], "{status:#}");

    let verified = schema.ok(&["verify"]);
    assert!(
        verified.contains("8 succeeded job(s) checked: 8 verified (6 distinct payloads, 2 aggregations), 0 missing, 0 wrong"),
        "{verified}"
    );
}

/// A database or store URL's password appears nowhere: not in the error for
/// a URL that does not parse, not in `--help` (which shows environment
/// values), not in the logs or output of commands that work.
#[test]
fn no_command_prints_a_password() {
    const SECRET: &str = "s3cretPw";
    let printed = |output: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let prover = |url: &str, args: &[&str]| {
        Command::cargo_bin("pjp-prover")
            .unwrap_or_else(|e| panic!("binary: {e}"))
            .env("RUST_LOG", "debug")
            .env("DATABASE_URL", url)
            .env("PJP_STORE_URL", format!("s3://key:{SECRET}@bucket/prefix"))
            .env("PJP_DB_WAIT", "0s")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    for bad in [
        format!("postgres://root:{SECRET}@127.0.0.1:99999/test"),
        format!("postgres://root:{SECRET}@127.0.0.1:port/test"),
        format!("postgres://root:{SECRET}@[::1/test"),
        format!("postgres://root@127.0.0.1:99999/test?password={SECRET}"),
        format!("mysql://root:{SECRET}@127.0.0.1/test"),
    ] {
        let output = prover(&bad, &["migrate"]);
        assert!(!output.status.success(), "{bad}");
        let text = printed(&output);
        assert!(!text.contains(SECRET), "{bad}:\n{text}");
        assert!(
            text.contains("****"),
            "{bad}: says which URL, redacted:\n{text}"
        );
    }
    // A URL that parses but leads nowhere.
    let output = prover(
        &format!("postgresql://root:{SECRET}@127.0.0.1:1/test"),
        &["migrate"],
    );
    assert!(!output.status.success());
    assert!(!printed(&output).contains(SECRET), "{}", printed(&output));
    for command in [
        "run", "migrate", "enqueue", "status", "gc", "verify", "requeue", "purge",
    ] {
        let output = prover(
            &format!("postgres://root:{SECRET}@h/db"),
            &[command, "--help"],
        );
        let text = printed(&output);
        assert!(output.status.success(), "{command} --help: {text}");
        assert!(!text.contains(SECRET), "{command} --help:\n{text}");
    }
    // The local server trusts every login: a password in a working URL is
    // accepted and ignored, so every command runs (with debug logs on).
    let schema = Schema::new("secret");
    let mut url = url::Url::parse(schema.0.url()).unwrap_or_else(|e| panic!("{e}"));
    url.set_password(Some(SECRET))
        .unwrap_or_else(|()| panic!("a password for {url}"));
    for args in [
        vec!["migrate"],
        vec!["enqueue", "--jobs", "3", "--log-n", "4"],
        vec!["status"],
        vec!["status", "--json"],
        vec!["requeue", "--dead"],
    ] {
        let output = Command::cargo_bin("pjp-prover")
            .unwrap_or_else(|e| panic!("binary: {e}"))
            .env("RUST_LOG", "debug")
            .env("DATABASE_URL", url.as_str())
            .env("PJP_SCHEMA", schema.0.name())
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let text = printed(&output);
        assert!(output.status.success(), "{args:?}: {text}");
        assert!(!text.contains(SECRET), "{args:?}:\n{text}");
    }
}

/// `enqueue` refuses a job size that `run` would refuse, before it touches
/// the queue (exit 2, the usage error).
#[test]
fn enqueue_refuses_jobs_no_worker_would_prove() {
    let schema = Schema::new("size");
    schema.ok(&["migrate"]);
    let output = schema.prover(&["enqueue", "--jobs", "1", "--log-n", "24", "--batch", "1024"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the limit is 2^28"), "{stderr}");
    let status = schema.ok(&["status", "--json"]);
    assert!(!status.contains("\"queued\""), "nothing enqueued: {status}");
}

/// One HTTP/1.1 exchange with the console: (status code, whole response).
fn http(addr: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("read from {addr}: {e}"));
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {response}"));
    (code, response)
}

#[test]
fn ui_serves_the_console_read_only_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let schema = Schema::new("ui");
    schema.ok(&["migrate"]);
    schema.ok(&["enqueue", "--jobs", "7", "--key-prefix", "u"]);
    // Trust auth ignores the password: it is there to be kept out of pages and logs.
    let mut url = url::Url::parse(schema.0.url()).unwrap_or_else(|e| panic!("{e}"));
    url.set_password(Some("s3cret-pw"))
        .unwrap_or_else(|()| panic!("a URL with a password"));
    let mut child = Command::cargo_bin("pjp-prover")
        .unwrap_or_else(|e| panic!("binary: {e}"))
        .env_remove("RUST_LOG")
        .env("DATABASE_URL", url.as_str())
        .env("PJP_SCHEMA", schema.0.name())
        .args(["ui", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut lines = BufReader::new(stdout).lines();
    // The first line names the address it bound (port 0: the kernel's choice).
    let banner = lines
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no banner from `ui`"));
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .to_owned();
    assert!(banner.contains("read-only"), "{banner}");

    let (code, page) = http(
        &addr,
        &format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("proofs"),
        "the overview names the queue: {page}"
    );
    assert!(!page.contains("s3cret-pw"), "the password is on the page");
    let (code, page) = http(
        &addr,
        &format!("GET /jobs/999999999 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(code, 404, "an unknown job: {page}");
    // No token was given: writes are refused, whatever the request carries.
    let (code, page) = http(
        &addr,
        &format!(
            "POST /actions/purge HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer guess\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(
        (400..500).contains(&code),
        "a write on a read-only console: {page}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success());
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit on SIGTERM: {stderr}");
    assert!(!stderr.contains("s3cret-pw") && !banner.contains("s3cret-pw"));
}
