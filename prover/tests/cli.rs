//! End-to-end tests of the `pjp-prover` binary.

use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn prover() -> Command {
    let mut cmd = Command::cargo_bin("pjp-prover").unwrap_or_else(|e| panic!("binary: {e}"));
    cmd.env_remove("RUST_LOG").env("PJP_GPU", "cpu");
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
    let output = prover()
        .args([
            "run",
            "--jobs",
            "24",
            "--log-n",
            "10",
            "--batch",
            "4",
            "--verify-every",
            "1",
            "--json",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = json(&output);
    assert_eq!(summary["ending"], "completed");
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
    let output = prover()
        .args([
            "run",
            "--jobs",
            "60",
            "--log-n",
            "8",
            "--fail-rate",
            "0.25",
            "--panic-rate",
            "0.15",
            "--json",
            "--progress",
            "none",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = json(&output);
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
fn sequential_mode_does_the_same_work() {
    let output = prover()
        .args([
            "run",
            "--sequential",
            "--jobs",
            "10",
            "--log-n",
            "8",
            "--verify-every",
            "1",
            "--json",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success());
    let summary = json(&output);
    assert_eq!(summary["mode"], "sequential");
    assert_eq!(count(&summary, "succeeded"), 10);
    assert_eq!(count(&summary, "verified"), 10);
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success());
}

#[test]
fn sigterm_drains_and_exits_zero() {
    // Far more jobs than can finish before the signal.
    let child = prover()
        .args([
            "run",
            "--jobs",
            "2000000",
            "--log-n",
            "6",
            "--json",
            "--progress",
            "none",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    sleep(Duration::from_millis(1500));
    signal(child.id(), "TERM");
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = json(&output);
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
fn a_second_signal_releases_unstarted_jobs_and_exits_non_zero() {
    // Slow proving: the stage channel and the prefetch buffers fill up.
    let child = prover()
        .args([
            "run",
            "--jobs",
            "1000",
            "--log-n",
            "16",
            "--batch",
            "8",
            "--json",
            "--progress",
            "none",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    sleep(Duration::from_millis(1500));
    signal(child.id(), "TERM");
    sleep(Duration::from_millis(50));
    signal(child.id(), "INT");
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = json(&output);
    assert_eq!(summary["ending"], "abandoned");
    let released = summary["released"].as_array().map_or(0, Vec::len);
    assert!(released > 0, "{summary:#}");
    assert_accounted(&summary);
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
