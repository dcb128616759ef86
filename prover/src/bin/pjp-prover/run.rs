//! `pjp-prover run`: the component, its progress display and its summary.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use pjp_core::{JobId, RunReport, Shutdown};
use pjp_postgres::PgQueue;
use pjp_postgres::autoscale::{self, ScalePolicy};
use pjp_prover::pipeline::{self, Embedded, Live, Pipeline, StageResult};
use pjp_prover::store::StoreCounts;
use pjp_prover::{Component, RunConfig, Source, aggregate};
use tokio_util::task::AbortOnDropHandle;

use crate::cli::RunArgs;
use crate::failure::Failure;
use crate::progress;
use crate::summary::{Ending, FleetSummary, Round, StageSummary, Summary};

/// Runs the component the flags describe and prints its summary.
pub(crate) async fn run(args: &RunArgs, config: RunConfig) -> Result<ExitCode, Failure> {
    if let Some(addr) = args.metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|e| Failure::runtime(format!("serving metrics on {addr}: {e}")))?;
    }
    if let Some(path) = &args.timeline {
        // Found out now, not after a long run.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Failure::runtime(format!("--timeline {}: {e}", path.display())))?;
    }
    let component = Component::new(config).await?;
    // The queue's load per kind for autoscalers, beside the worker's own metrics.
    let _load = match (&component.source, args.metrics_addr) {
        (Source::Fleet(worker), Some(_)) => {
            Some(AbortOnDropHandle::new(tokio::spawn(publish_load(
                worker.queue().clone(),
                args.plan.policy(),
                Duration::from_secs(5),
            ))))
        }
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
    let aggregation = match (&component.source, &component.config.fleet) {
        (Source::Fleet(worker), Some(fleet)) if fleet.aggregates => Some(
            aggregate::fleet_runner(worker, &fleet.queue, fleet.exit_when_empty)
                .map_err(|e| Failure::runtime(e.to_string()))?,
        ),
        (Source::Embedded(embedded), _) if !embedded.batches.is_empty() => Some(
            aggregate::embedded_runner(
                &embedded.queue,
                std::sync::Arc::clone(&embedded.store),
                std::sync::Arc::clone(&embedded.roots),
            )
            .map_err(|e| Failure::runtime(e.to_string()))?,
        ),
        (Source::Fleet(_) | Source::Embedded(_), _) => None,
    };
    // It follows an abandon, and drains once the proving side ends after a
    // signal or without completing (a failure): the batches still waiting
    // would never close. Until then it closes every batch that fills, also
    // while the proving side drains.
    let aggregation_shutdown = shutdown.downstream();
    let proving = async {
        let results = prove(args, &component, &shutdown, mode, total, started).await;
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

    let summary = summarise(
        args,
        &component,
        &results,
        aggregated.as_ref(),
        elapsed,
        backend,
    );
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
    args: &RunArgs,
    component: &Component,
    shutdown: &Shutdown,
    mode: progress::Mode,
    total: Option<u64>,
    started: Instant,
) -> Result<Vec<StageResult>, Failure> {
    let pipeline = match args.sequential {
        true => None,
        false => Some(Pipeline::build(component).map_err(|e| Failure::runtime(e.to_string()))?),
    };
    let recorders = pipeline.as_ref().and_then(Pipeline::recorders);
    let live = pipeline.as_ref().map_or_else(Live::default, Pipeline::live);
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
    let results = results.map_err(|e| Failure::runtime(e.to_string()))?;
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
    args: &RunArgs,
    component: &Component,
    results: &[StageResult],
    aggregated: Option<&StageResult>,
    elapsed: std::time::Duration,
    backend: String,
) -> Summary {
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
                aggregated: aggregation.map_or(0, |r| r.counts.succeeded),
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
    embedded: &Embedded,
    jobs: u64,
    counts: StoreCounts,
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
    let failed = dead + aggregation.map_or(0, |r| r.counts.failed);
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

/// Publishes the queue's load per queue, kind and class as Prometheus gauges
/// every `every` (a fleet worker with `--metrics-addr`): `pjp_queue_jobs`
/// (`state` = queued / running), `pjp_queue_oldest_queued_seconds`,
/// `pjp_queue_finished_last_minute`, `pjp_queue_drain_estimate_seconds`,
/// `pjp_queue_p95_duration_seconds` and the autoscaling plan under `policy`,
/// `pjp_queue_desired_workers`, labelled `queue`, `kind` and `class`. Every worker publishes the same
/// numbers; scrape one, or aggregate with `max`.
pub(crate) async fn publish_load(queue: PgQueue, policy: ScalePolicy, every: Duration) {
    loop {
        match queue.load().await {
            Ok(load) => {
                let plans = autoscale::plan(&load, &policy);
                for (l, plan) in load.iter().zip(&plans) {
                    let labels = [
                        ("queue", l.queue.clone()),
                        ("kind", l.kind.clone()),
                        ("class", l.resource_class.clone()),
                    ];
                    let with_state = |state: &'static str| {
                        let mut all = labels.to_vec();
                        all.push(("state", state.to_owned()));
                        all
                    };
                    metrics::gauge!("pjp_queue_jobs", &with_state("queued")).set(l.queued as f64);
                    metrics::gauge!("pjp_queue_jobs", &with_state("running")).set(l.running as f64);
                    metrics::gauge!("pjp_queue_oldest_queued_seconds", &labels)
                        .set(l.oldest_queued.map_or(0.0, |d| d.as_secs_f64()));
                    metrics::gauge!("pjp_queue_finished_last_minute", &labels)
                        .set(l.finished_last_minute as f64);
                    if let Some(drain) = l.drain_estimate() {
                        metrics::gauge!("pjp_queue_drain_estimate_seconds", &labels)
                            .set(drain.as_secs_f64());
                    }
                    if let Some(p95) = l.p95_duration {
                        metrics::gauge!("pjp_queue_p95_duration_seconds", &labels)
                            .set(p95.as_secs_f64());
                    }
                    metrics::gauge!("pjp_queue_desired_workers", &labels)
                        .set(f64::from(plan.desired));
                }
            }
            Err(error) => tracing::warn!(%error, "could not read the queue's load for metrics"),
        }
        tokio::time::sleep(every).await;
    }
}
