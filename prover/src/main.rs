//! `pjp-prover`: the reference prover component of prover-job-processor.
//!
//! `pjp-prover run` seeds an in-process queue with synthetic jobs and proves
//! them with two chained runners — a witness generator (CPU) feeding a circuit
//! prover (a Goldilocks NTT on the GPU when one is usable, else the CPU) — then
//! prints a summary. See `pjp-prover run --help`. With `--database-url` the
//! same pipeline is a fleet worker on a PostgreSQL queue.
//!
//! `migrate`, `enqueue`, `status`, `requeue`, `purge` and `verify` manage a
//! PostgreSQL queue of proving jobs (see `pjp-prover help`).
//!
//! Exit codes: 0 done (or drained after a signal); 1 a runner failed, a
//! result failed verification, or the database failed; 2 bad usage (a
//! malformed URL included); 3 abandoned after a second signal (the released
//! jobs are listed).

#![forbid(unsafe_code)]

mod aggregate;
mod circuit;
mod cli;
mod fleet;
mod job;
mod pipeline;
mod progress;
mod sink;
mod store;
mod summary;
mod witness;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use pjp_core::{JobId, RunReport, Shutdown};
use tokio_util::task::AbortOnDropHandle;

use cli::{Cli, Command, RunArgs};
use fleet::Failure;
use pipeline::{Component, Source, StageResult};
use summary::{Ending, FleetSummary, Round, StageSummary, Summary};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pjp-prover: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let fleet = match cli.command {
        Command::Run(args) => {
            if let Err(message) = args.validate() {
                eprintln!("pjp-prover: error: {message}");
                return ExitCode::from(2);
            }
            return match runtime.block_on(run(*args)) {
                Ok(code) => code,
                Err(failure) => failure.exit(),
            };
        }
        Command::Migrate(args) => runtime.block_on(fleet::migrate(args)),
        Command::Enqueue(args) => {
            if let Err(message) = args.validate() {
                eprintln!("pjp-prover: error: {message}");
                return ExitCode::from(2);
            }
            runtime.block_on(fleet::enqueue(args))
        }
        Command::Status(args) => runtime.block_on(fleet::status(args)),
        Command::Requeue(args) => runtime.block_on(fleet::requeue(args)),
        Command::Purge(args) => runtime.block_on(fleet::purge(args)),
        Command::Gc(args) => runtime.block_on(fleet::gc(args)),
        Command::Verify(args) => runtime.block_on(fleet::verify(args)),
    };
    match fleet {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

/// Prints a usage error as one line (help and version print in full).
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let rendered = error
                .kind()
                .as_str()
                .map_or_else(|| error.to_string(), |_| error.render().to_string());
            // The message and the lines that complete it (clap lists missing
            // arguments on lines of their own), up to the usage block.
            let line = rendered
                .lines()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let line = line.trim_start_matches("error: ");
            let line = if line.is_empty() {
                "invalid arguments"
            } else {
                line
            };
            eprintln!("pjp-prover: error: {line} (see --help)");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let runtime_error = |e: anyhow::Error| Failure::runtime(format!("{e:#}"));
    if let Some(addr) = args.metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("serving metrics on {addr}"))
            .map_err(runtime_error)?;
    }
    if let Some(path) = &args.timeline {
        // Found out now, not after a long run.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Failure::runtime(format!("--timeline {}: {e}", path.display())))?;
    }
    let component = Component::new(&args).await?;
    // The queue's load per kind for autoscalers, beside the worker's own metrics.
    let _load = match (&component.source, args.metrics_addr) {
        (Source::Fleet(worker), Some(_)) => Some(AbortOnDropHandle::new(tokio::spawn(
            fleet::publish_load(worker.queue().clone(), Duration::from_secs(5)),
        ))),
        _ => None,
    };
    let backend = component.prover.ntt.backend().to_string();
    tracing::info!(%backend, "NTT backend selected");
    let shutdown = Shutdown::new();
    pjp_runtime_tokio::shutdown_on_signals(shutdown.clone());

    let mode = progress::Mode::from_flag(&args.progress);
    let total = matches!(component.source, Source::Embedded(_)).then_some(args.jobs);
    let started = Instant::now();
    // The runner that closes batches, beside the proving side.
    let aggregation = match &component.source {
        Source::Fleet(worker) if args.fleet.aggregates() => Some(
            aggregate::fleet_runner(worker, &args.fleet.queue, args.fleet.exit_when_empty)
                .map_err(runtime_error)?,
        ),
        Source::Embedded(embedded) if !embedded.batches.is_empty() => Some(
            aggregate::embedded_runner(
                &embedded.queue,
                std::sync::Arc::clone(&embedded.store),
                std::sync::Arc::clone(&embedded.roots),
            )
            .map_err(runtime_error)?,
        ),
        Source::Fleet(_) | Source::Embedded(_) => None,
    };
    // It follows an abandon, and drains once the proving side ends after a
    // signal or without completing (a failure): the batches still waiting
    // would never close. Until then it closes every batch that fills, also
    // while the proving side drains.
    let aggregation_shutdown = shutdown.downstream();
    let proving = async {
        let results = prove(&component, &shutdown, mode, total, started).await;
        let completed = results.as_ref().is_ok_and(|results| {
            let reports: Vec<&RunReport> = results.iter().map(pipeline::report_of).collect();
            Ending::of(&reports, results.iter().any(Result::is_err)) == Ending::Completed
        });
        if !completed || shutdown.is_draining() {
            aggregation_shutdown.drain();
        }
        results
    };
    let aggregating = async {
        match &aggregation {
            Some(runner) => Some(
                runner
                    .run(
                        &pjp_runtime_tokio::TokioRuntime::current(),
                        aggregation_shutdown.clone(),
                    )
                    .await,
            ),
            None => None,
        }
    };
    let (results, aggregated) = tokio::join!(proving, aggregating);
    let results = results?;
    let elapsed = started.elapsed();

    let summary = summarise(&component, &results, aggregated.as_ref(), elapsed, backend);
    if args.json {
        let json =
            serde_json::to_string_pretty(&summary).map_err(|e| Failure::runtime(e.to_string()))?;
        println!("{json}");
    } else {
        print!("{}", summary.table());
    }
    Ok(match summary.ending {
        Ending::Failed => ExitCode::FAILURE,
        _ if !summary.verify_mismatches.is_empty() => ExitCode::FAILURE,
        Ending::Abandoned => ExitCode::from(3),
        Ending::Completed | Ending::Drained => ExitCode::SUCCESS,
    })
}

/// The proving side of the run: the pipeline (with `--timeline`), or the
/// plain loop with `--sequential`; the progress display beside either.
async fn prove(
    component: &Component,
    shutdown: &Shutdown,
    mode: progress::Mode,
    total: Option<u64>,
    started: Instant,
) -> Result<Vec<StageResult>, Failure> {
    let runtime_error = |e: anyhow::Error| Failure::runtime(format!("{e:#}"));
    let args = &component.args;
    let pipeline = match args.sequential {
        true => None,
        false => Some(pipeline::Pipeline::build(component).map_err(runtime_error)?),
    };
    let recorders = pipeline.as_ref().and_then(pipeline::Pipeline::recorders);
    let live = pipeline
        .as_ref()
        .map_or_else(pipeline::Live::default, pipeline::Pipeline::live);
    let tally = std::sync::Arc::clone(&component.tally);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let display =
        tokio::spawn(async move { progress::show(mode, total, live, &tally, stop_rx).await });
    let results = match pipeline {
        Some(pipeline) => Ok(pipeline.run(shutdown.clone()).await),
        None => pipeline::run_sequential(component, shutdown.clone())
            .await
            .map(|report| vec![Ok(report)]),
    };
    let _ = stop_tx.send(true);
    let _ = display.await;
    let results = results.map_err(runtime_error)?;
    if let (Some(recorders), Some(path)) = (recorders, &args.timeline) {
        let title = format!(
            "pjp-prover run: {} witness + {} prover workers",
            args.witness_workers, args.prover_workers
        );
        recorders
            .timeline(title, started)
            .write_svg(path)
            .map_err(|e| Failure::runtime(format!("--timeline: {e}")))?;
        eprintln!("timeline written to {}", path.display());
    }
    Ok(results)
}

fn summarise(
    component: &Component,
    results: &[StageResult],
    aggregated: Option<&StageResult>,
    elapsed: std::time::Duration,
    backend: String,
) -> Summary {
    let args = &component.args;
    // The run's ending counts the aggregation runner too.
    let all: Vec<&StageResult> = results.iter().chain(aggregated).collect();
    let ending = Ending::of(
        &all.iter()
            .map(|r| pipeline::report_of(r))
            .collect::<Vec<_>>(),
        all.iter().any(|r| r.is_err()),
    );
    let stages = all
        .iter()
        .map(|r| {
            let error = r.as_ref().err().map(ToString::to_string);
            StageSummary::from_report(pipeline::report_of(r), error)
        })
        .collect();
    let aggregation = aggregated.map(pipeline::report_of);
    let counts = component.tally.counts();
    let mut rounds = Vec::new();
    let (jobs, mut released, not_started, fleet) = match &component.source {
        Source::Embedded(embedded) => {
            // The queue knows exactly what went back: a pending proving job
            // that was picked before was released (by a runner or by the
            // stage channel on abandon). Aggregations are their own round.
            let queue = &embedded.queue;
            let picks = queue.pick_counts();
            let (released, not_started): (Vec<JobId>, Vec<JobId>) = queue
                .pending_ids()
                .into_iter()
                .filter(|id| embedded.batches.binary_search(id).is_err())
                .partition(|id| picks.get(id.get() as usize).is_some_and(|&n| n > 0));
            if !embedded.batches.is_empty() {
                rounds = tree_rounds(embedded, args.jobs, counts, aggregation);
            }
            (args.jobs, released, not_started.len() as u64, None)
        }
        Source::Fleet(worker) => {
            // What this worker handed back to PostgreSQL, as the database
            // confirmed it: the runners' releases and the stage channel's
            // (jobs between witness and proving go back without a runner).
            let released = worker.handed_back();
            let stats = worker.stats();
            let jobs = counts.succeeded + counts.failed + released.len() as u64;
            let fleet = FleetSummary {
                worker: worker.id().to_owned(),
                queue: args.fleet.queue.clone(),
                claimed: stats.claimed,
                fenced: stats.fenced,
                lost_leases: stats.lost_leases,
                reclaimed: stats.rescued,
                dead_lettered: stats.dead,
                aggregated: aggregation.map_or(0, |r| r.succeeded),
            };
            (jobs, released, 0, Some(fleet))
        }
    };
    released.sort_unstable();
    released.dedup();
    let mut summary = Summary::new(
        if args.sequential {
            "sequential"
        } else {
            "pipelined"
        },
        backend,
        ending,
        jobs,
        counts,
        released,
        not_started,
        component.tally.mismatches(),
        elapsed,
        (args.log_n, args.batch),
        stages,
        fleet,
    );
    summary.rounds = rounds;
    summary
}

/// The embedded tree's rounds: the basic proofs, then the batches'
/// aggregations (closed, failed with a child or in the aggregator, or not
/// run after a drain).
fn tree_rounds(
    embedded: &pipeline::Embedded,
    jobs: u64,
    counts: store::StoreCounts,
    aggregation: Option<&RunReport>,
) -> Vec<Round> {
    use pjp_core::memory::JobStatus;
    let roots = embedded.roots.closed();
    let batches = embedded.batches.len() as u64;
    let dead = embedded
        .batches
        .iter()
        .filter(|id| {
            embedded
                .queue
                .state(**id)
                .is_some_and(|s| matches!(s.status, JobStatus::Dead | JobStatus::Failed))
        })
        .count() as u64;
    let closed = roots.len() as u64;
    let failed = dead + aggregation.map_or(0, |r| r.failed);
    vec![
        Round {
            name: "basic",
            jobs,
            succeeded: counts.succeeded,
            failed: counts.failed,
            not_run: jobs.saturating_sub(counts.succeeded + counts.failed),
            roots: None,
        },
        Round {
            name: "aggregate",
            jobs: batches,
            succeeded: closed,
            failed,
            not_run: batches.saturating_sub(closed + failed),
            roots: Some(roots),
        },
    ]
}
