//! Project tasks, run as `cargo xtask <task>`.
//!
//! * `cargo xtask test` — every test the project has: the workspace's tests on
//!   tokio, then the simulation suite built with `--cfg madsim` in its own
//!   target directory (changing `RUSTFLAGS` would otherwise rebuild everything).
//! * `cargo xtask sim [ARGS…]` — runs a simulated scenario and prints its report
//!   (`cargo xtask sim --help` lists the arguments).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  test [--no-sim]   run every test: the workspace on tokio, then the madsim suite
  sim [ARGS...]     run a simulated scenario (see `cargo xtask sim --help`)
  example NAME [ARGS...]
                    run one of the examples (`simulate` under --cfg madsim)
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    match task.as_deref() {
        Some("test") => test(&rest),
        Some("sim") => sim(&rest),
        Some("example") => match rest.split_first() {
            Some((name, args)) => example(name, args),
            None => bail!(
                "`example` needs a name: one of {}\n\n{USAGE}",
                EXAMPLES.join(", ")
            ),
        },
        Some("-h" | "--help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(PathBuf::from)
        .context("xtask lives one folder below the workspace root")
}

/// The target directory of the `--cfg madsim` build: beside the normal one, so a
/// cache folder given through `CARGO_TARGET_DIR` covers both.
fn sim_target_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root()?.join("target"),
    };
    Ok(base.join("madsim"))
}

/// Adds `--cfg madsim` to the flags in environment variable `var`.
fn with_madsim_cfg(var: &str) -> String {
    let flags = std::env::var(var).unwrap_or_default();
    if flags.split_whitespace().any(|f| f == "--cfg=madsim") || flags.contains("--cfg madsim") {
        flags
    } else {
        format!("{flags} --cfg madsim").trim().to_owned()
    }
}

/// A cargo command for the simulation build: `--cfg madsim` for code and
/// doctests alike, in its own target directory.
fn sim_cargo() -> Result<Command> {
    let mut cmd = cargo();
    cmd.env("RUSTFLAGS", with_madsim_cfg("RUSTFLAGS"))
        .env("RUSTDOCFLAGS", with_madsim_cfg("RUSTDOCFLAGS"))
        .env("CARGO_TARGET_DIR", sim_target_dir()?)
        .current_dir(workspace_root()?);
    Ok(cmd)
}

fn status(what: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {what}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start: {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn test(args: &[String]) -> Result<()> {
    let no_sim = args.iter().any(|a| a == "--no-sim");
    if let Some(unknown) = args.iter().find(|a| *a != "--no-sim") {
        bail!("unknown argument to `test`: {unknown}\n\n{USAGE}");
    }
    let root = workspace_root()?;
    status(
        "workspace tests (tokio)",
        cargo()
            .args(["test", "--workspace", "--all-targets"])
            .current_dir(&root),
    )?;
    status(
        "doc tests",
        cargo()
            .args(["test", "--workspace", "--doc"])
            .current_dir(&root),
    )?;
    for name in EXAMPLES {
        example(name, &[])?;
    }
    if !no_sim {
        status(
            "simulation tests (--cfg madsim)",
            sim_cargo()?.args(["test", "--release", "-p", "pjp-runtime-sim"]),
        )?;
    }
    gpu_tally(&root)
}

/// Runs the GPU tests once more with their output shown and counts those that
/// ran on a GPU and those that skipped for want of one: a skipped GPU test
/// passes as `ok`, so without this line a GPU-less run looks like coverage.
/// The examples in `examples/`, in the order a newcomer reads them.
const EXAMPLES: [&str; 5] = [
    "hello",
    "two-stage",
    "postgres-worker",
    "property-test",
    "simulate",
];

/// Runs one example: `simulate` in the simulation build, the rest on tokio.
fn example(name: &str, args: &[String]) -> Result<()> {
    if !EXAMPLES.contains(&name) {
        bail!("no example `{name}`: one of {}", EXAMPLES.join(", "));
    }
    let mut cmd = if name == "simulate" {
        sim_cargo()?
    } else {
        let mut cmd = cargo();
        cmd.current_dir(workspace_root()?);
        cmd
    };
    cmd.args([
        "run",
        "--quiet",
        "-p",
        "pjp-examples",
        "--example",
        name,
        "--",
    ])
    .args(args);
    status(&format!("example {name}"), &mut cmd)
}

fn gpu_tally(root: &std::path::Path) -> Result<()> {
    eprintln!("xtask: counting GPU tests");
    let output = cargo()
        .args([
            "test",
            "-p",
            "pjp-gpu",
            "--test",
            "gpu",
            "--",
            "--nocapture",
        ])
        .current_dir(root)
        .output()
        .context("could not start the GPU tests")?;
    if !output.status.success() {
        bail!(
            "the GPU tests failed:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let ran = stdout.lines().filter(|l| l.starts_with("GPU: ")).count();
    let skipped = stdout
        .lines()
        .filter(|l| l.starts_with("SKIPPED: "))
        .count();
    let reason = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SKIPPED: "))
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    eprintln!("xtask: GPU tests: {ran} ran on a GPU, {skipped} skipped for want of a GPU{reason}");
    Ok(())
}

fn sim(args: &[String]) -> Result<()> {
    status(
        "simulation",
        sim_cargo()?
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "pjp-runtime-sim",
                "--bin",
                "pjp-sim",
                "--",
            ])
            .args(args),
    )
}
