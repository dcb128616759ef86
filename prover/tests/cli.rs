//! End-to-end tests of the `pjp-prover` binary.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn prover() -> Command {
    let mut cmd = Command::cargo_bin("pjp-prover").unwrap_or_else(|e| panic!("binary: {e}"));
    // A DATABASE_URL in the environment would make `run` a fleet worker.
    cmd.env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .env("PJP_GPU", "cpu");
    cmd
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Runs the prover to completion, expecting success, and parses its JSON summary.
fn run_json(args: &[&str]) -> Value {
    let output = prover()
        .args(args)
        .arg("--json")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    json(&output)
}

fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` missing in {summary}"))
}

/// succeeded + failed + released + not started = jobs.
fn assert_accounted(summary: &Value) {
    let released = summary["released"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(
        count(summary, "succeeded")
            + count(summary, "failed")
            + released
            + count(summary, "not_started"),
        count(summary, "jobs"),
        "{summary:#}"
    );
}

#[test]
fn a_run_proves_and_verifies_every_job() {
    let summary = run_json(&[
        "run",
        "--jobs",
        "24",
        "--log-n",
        "10",
        "--batch",
        "4",
        "--verify-every",
        "1",
        "--circuits",
        "0",
    ]);
    assert_eq!(summary["ending"], "completed");
    assert!(summary.get("rounds").is_none(), "flat: {summary:#}");
    assert_eq!(count(&summary, "succeeded"), 24);
    assert_eq!(count(&summary, "verified"), 24);
    assert_eq!(summary["verify_mismatches"], Value::Array(vec![]));
    assert!(
        summary["backend"]
            .as_str()
            .is_some_and(|b| b.starts_with("cpu")),
        "{summary:#}"
    );
    let stages = summary["stages"]
        .as_array()
        .unwrap_or_else(|| panic!("stages"));
    assert_eq!(stages.len(), 2);
    assert_eq!(
        (stages[0]["name"].as_str(), stages[1]["name"].as_str()),
        (Some("witness"), Some("prove"))
    );
    assert_eq!(stages[1]["succeeded"], 24);
    assert_accounted(&summary);
}

#[test]
fn the_table_names_the_backend_and_counts() {
    let output = prover()
        .args(["run", "--jobs", "5", "--log-n", "6", "--progress", "none"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("NTT on cpu"), "{table}");
    assert!(table.contains("5 succeeded"), "{table}");
    assert!(
        table.contains("witness") && table.contains("prove"),
        "{table}"
    );
}

#[test]
fn injected_failures_and_panics_are_all_accounted_for() {
    let summary = run_json(&[
        "run",
        "--jobs",
        "60",
        "--log-n",
        "8",
        "--fail-rate",
        "0.25",
        "--panic-rate",
        "0.15",
        "--progress",
        "none",
    ]);
    assert_eq!(count(&summary, "succeeded") + count(&summary, "failed"), 60);
    assert!(
        count(&summary, "failed") > 0 && count(&summary, "panicked") > 0,
        "{summary:#}"
    );
    assert!(count(&summary, "panicked") < count(&summary, "failed"));
    assert_eq!(summary["verify_mismatches"], Value::Array(vec![]));
    assert_accounted(&summary);
}

#[test]
fn the_default_run_is_a_proof_tree_with_a_summary_per_round() {
    // 23 proofs in batches of 5: four full batches and one of 3.
    let summary = run_json(&["run", "--jobs", "23", "--log-n", "8", "--circuits", "5"]);
    assert_eq!(summary["ending"], "completed", "{summary:#}");
    assert_eq!(count(&summary, "succeeded"), 23);
    assert_accounted(&summary);
    let rounds = summary["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2, "{summary:#}");
    let (basic, aggregate) = (&rounds[0], &rounds[1]);
    assert_eq!(
        (
            basic["name"].as_str(),
            basic["jobs"].as_u64(),
            basic["succeeded"].as_u64()
        ),
        (Some("basic"), Some(23), Some(23))
    );
    assert_eq!(
        (
            aggregate["name"].as_str(),
            aggregate["jobs"].as_u64(),
            aggregate["succeeded"].as_u64(),
            aggregate["failed"].as_u64(),
            aggregate["not_run"].as_u64()
        ),
        (Some("aggregate"), Some(5), Some(5), Some(0), Some(0))
    );
    let roots = aggregate["roots"].as_object().expect("roots");
    assert_eq!(roots.len(), 5);
    let distinct: std::collections::BTreeSet<&str> =
        roots.values().filter_map(Value::as_str).collect();
    assert_eq!(distinct.len(), 5, "one root per batch: {roots:?}");
    assert!(distinct.iter().all(|r| r.len() == 64));
    // The same seed gives the same roots.
    let again = run_json(&["run", "--jobs", "23", "--log-n", "8", "--circuits", "5"]);
    assert_eq!(again["rounds"][1]["roots"], aggregate["roots"]);
    // The aggregation runner is a stage of its own.
    let stages = summary["stages"].as_array().expect("stages");
    let names: Vec<&str> = stages.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["witness", "prove", "aggregate"]);
    assert_eq!(stages[2]["succeeded"], 5);
    // The table shows each round.
    let output = prover()
        .args(["run", "--jobs", "10", "--log-n", "6", "--circuits", "4"])
        .args(["--progress", "none"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("rounds      basic"), "{table}");
    assert!(table.contains("10 proofs: 10 succeeded"), "{table}");
    assert!(table.contains("3 batches: 3 closed"), "{table}");
}

#[test]
fn a_failed_proof_fails_its_batch_and_no_other() {
    let summary = run_json(&[
        "run",
        "--jobs",
        "40",
        "--log-n",
        "6",
        "--circuits",
        "4",
        "--fail-rate",
        "0.1",
        "--seed",
        "3",
        "--progress",
        "none",
    ]);
    assert_accounted(&summary);
    let (basic, aggregate) = (&summary["rounds"][0], &summary["rounds"][1]);
    let failed_proofs = basic["failed"].as_u64().expect("failed");
    let failed_batches = aggregate["failed"].as_u64().expect("failed");
    assert!(failed_proofs > 0, "the seed injects failures: {summary:#}");
    // Each failed proof fails its own batch, at most one batch each.
    assert!((1..=failed_proofs).contains(&failed_batches), "{summary:#}");
    assert_eq!(
        aggregate["succeeded"]
            .as_u64()
            .map(|closed| closed + failed_batches),
        Some(10),
        "every batch closed or failed: {summary:#}"
    );
    assert_eq!(aggregate["not_run"], 0);
}

#[test]
fn sequential_mode_does_the_same_work() {
    let summary = run_json(&[
        "run",
        "--sequential",
        "--jobs",
        "10",
        "--log-n",
        "8",
        "--verify-every",
        "1",
    ]);
    assert_eq!(summary["mode"], "sequential");
    assert_eq!(count(&summary, "succeeded"), 10);
    assert_eq!(count(&summary, "verified"), 10);
    // The aggregations run beside the loop: 10 proofs, batches of 25.
    assert_eq!(summary["rounds"][1]["succeeded"], 1, "{summary:#}");
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success());
}

/// Starts the prover and waits until a progress line reports at least
/// `finished` jobs done: by then its signal handlers are installed and its
/// runners are running (an event from the process, not a sleep).
fn start_after(args: &[&str], finished: u64) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = prover()
        .args(args)
        .args(["--json", "--progress", "lines"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let done = line
                .strip_prefix("progress: ")
                .and_then(|rest| rest.split('/').next())
                .and_then(|n| n.parse::<u64>().ok());
            if done.is_some_and(|n| n >= finished) {
                let _ = started_tx.send(());
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    // A hang guard, not a timing assertion.
    if started_rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        panic!(
            "the prover never started: {}",
            reader.join().unwrap_or_default()
        );
    }
    (child, reader)
}

fn finish(child: Child, stderr: std::thread::JoinHandle<String>) -> (Option<i32>, Value) {
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = stderr.join().unwrap_or_default();
    let summary = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (output.status.code(), summary)
}

#[test]
fn sigterm_drains_and_exits_zero() {
    // Far more jobs than can finish before the signal.
    let (child, stderr) = start_after(&["run", "--jobs", "2000000", "--log-n", "6"], 1);
    signal(child.id(), "TERM");
    let (code, summary) = finish(child, stderr);
    assert_eq!(code, Some(0), "{summary:#}");
    assert_eq!(summary["ending"], "drained");
    assert!(
        count(&summary, "not_started") > 0,
        "the drain stopped picking"
    );
    assert_eq!(
        summary["released"],
        Value::Array(vec![]),
        "a drain releases nothing"
    );
    assert!(count(&summary, "succeeded") > 0);
    assert_accounted(&summary);
}

#[test]
fn sigterm_drains_a_sequential_tree_run_too() {
    // The aggregation runner beside the plain loop stops with it: batches
    // left waiting never close, and must not hold the process.
    let (child, stderr) = start_after(
        &["run", "--sequential", "--jobs", "2000000", "--log-n", "6"],
        1,
    );
    signal(child.id(), "TERM");
    let (code, summary) = finish(child, stderr);
    assert_eq!(code, Some(0), "{summary:#}");
    assert_eq!(summary["ending"], "drained", "{summary:#}");
    assert!(count(&summary, "not_started") > 0);
    assert_accounted(&summary);
    let aggregate = &summary["rounds"][1];
    assert!(
        aggregate["not_run"].as_u64().is_some_and(|n| n > 0),
        "{summary:#}"
    );
}

#[test]
fn a_second_signal_releases_unstarted_jobs_and_exits_non_zero() {
    // Slow proving: the stage channel and the prefetch buffers fill up.
    let (child, stderr) = start_after(
        &["run", "--jobs", "1000", "--log-n", "16", "--batch", "8"],
        1,
    );
    signal(child.id(), "TERM");
    signal(child.id(), "INT");
    let (code, summary) = finish(child, stderr);
    assert_eq!(code, Some(3), "{summary:#}");
    assert_eq!(summary["ending"], "abandoned");
    let released = summary["released"].as_array().map_or(0, Vec::len);
    assert!(released > 0, "{summary:#}");
    assert_accounted(&summary);
}

#[test]
fn the_grace_period_turns_a_drain_into_abandon() {
    // Slow proving: when the signal comes, jobs wait in the prefetch buffers
    // and the stage channel. One signal only: the grace period abandons.
    let (child, stderr) = start_after(
        &[
            "run",
            "--jobs",
            "1000",
            "--log-n",
            "16",
            "--batch",
            "8",
            "--grace-period",
            "1ms",
        ],
        1,
    );
    signal(child.id(), "TERM");
    let (code, summary) = finish(child, stderr);
    assert_eq!(code, Some(3), "{summary:#}");
    assert_eq!(summary["ending"], "abandoned");
    let released = summary["released"].as_array().map_or(0, Vec::len);
    assert!(released > 0, "{summary:#}");
    assert_accounted(&summary);
}

#[test]
fn metrics_are_served_for_prometheus() {
    use std::io::{Read, Write};
    // A free port, from the OS (the exporter binds its own listener, so the
    // prover cannot be handed port 0 and asked which it got).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
        .to_string();
    // Once jobs are done, every stage has recorded its metrics.
    let (child, stderr) = start_after(
        &[
            "run",
            "--jobs",
            "2000000",
            "--log-n",
            "6",
            "--metrics-addr",
            &addr,
        ],
        1,
    );
    let mut body = String::new();
    let fetched = std::net::TcpStream::connect(&addr).and_then(|mut stream| {
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        stream.read_to_string(&mut body)
    });
    signal(child.id(), "TERM");
    let (code, _) = finish(child, stderr);
    assert!(fetched.is_ok(), "{fetched:?}");
    assert_eq!(code, Some(0));
    for metric in [
        "pjp_jobs_picked_total{stage=\"witness\"}",
        "pjp_jobs_succeeded_total{stage=\"prove\"}",
        "pjp_busy_workers",
        "pjp_execute_seconds",
    ] {
        assert!(body.contains(metric), "{metric} missing from:\n{body}");
    }
}

#[test]
fn bad_usage_exits_2_with_one_clear_line() {
    for (args, expect) in [
        (vec!["run", "--no-such-flag"], "--no-such-flag"),
        (vec!["run", "--fail-rate", "2"], "--fail-rate"),
        (vec!["run", "--pick-latency", "soon"], "soon"),
        (vec!["run", "--jobs", "0"], "--jobs"),
        (
            vec!["run", "--fail-rate", "0.7", "--panic-rate", "0.6"],
            "exceeds 1",
        ),
        (vec!["fly"], "fly"),
    ] {
        let output = prover()
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
}

#[test]
fn help_explains_each_option() {
    let output = prover()
        .args(["run", "--help"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--jobs",
        "--log-n",
        "--batch",
        "--fail-rate",
        "--panic-rate",
        "--pick-latency",
        "--save-latency",
        "--sequential",
        "--json",
        "--metrics-addr",
        "PJP_JOBS",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
}

#[test]
fn timeline_draws_every_stage_task_of_the_run() {
    let dir = std::env::temp_dir().join(format!("pjp-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("run.svg");
    let summary = run_json(&[
        "run",
        "--jobs",
        "16",
        "--log-n",
        "8",
        "--batch",
        "2",
        "--witness-workers",
        "2",
        "--prover-workers",
        "2",
        "--timeline",
        path.to_str().unwrap_or_else(|| panic!("path")),
    ]);
    assert_eq!(count(&summary, "succeeded"), 16);
    let svg = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(svg.trim_start().starts_with("<svg"), "not an SVG");
    // A lane per task that did something: which of the pickers, workers and
    // savers of a stage got the 16 jobs is up to the scheduler, so each
    // role of each stage must show, not a given task of it.
    for lane in [
        "witness picker ",
        "witness worker ",
        "witness saver ",
        "prove worker ",
        "prove saver ",
    ] {
        assert!(svg.contains(lane), "no {lane}lane");
    }
    // A path that cannot be written is one clear line, before any work.
    let output = prover()
        .args(["run", "--jobs", "1", "--timeline", "/nonexistent-dir/x.svg"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--timeline /nonexistent-dir/x.svg"),
        "{stderr}"
    );
}
