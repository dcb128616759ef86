//! Semantic 7: a tracing span per job (job id, stage, attempt) and metrics
//! through the `metrics` facade.

#![allow(clippy::expect_used)]
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{Doubler, Queue};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use pjp_core::{JobRunner, Shutdown};
use pjp_runtime_tokio::TokioRuntime;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// The two tests run one at a time: tracing caches each callsite's interest
/// process-wide, and a run on another thread with no subscriber can cache
/// "never" for the `job` span between our scoped subscriber's checks.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn counters_gauges_and_histograms_are_recorded_per_stage() {
    let _serial = one_at_a_time();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let queue = Queue::closed_with(1..=30);
    let executor = Doubler {
        fail_every: Some(10),
        ..Doubler::default()
    };
    let runner = JobRunner::builder(queue.picker(), executor, queue.saver())
        .stage("metered")
        .build()
        .expect("config");
    // Handles are registered when the run starts, on this thread.
    metrics::with_local_recorder(&recorder, || {
        let rt = current_thread();
        let runtime = TokioRuntime::from_handle(rt.handle().clone());
        rt.block_on(runner.run(&runtime, Shutdown::new()))
            .expect("run")
    });
    let mut counters = BTreeMap::new();
    let mut histograms = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        assert!(
            key.labels()
                .any(|l| l.key() == "stage" && l.value() == "metered"),
            "{key:?} lacks the stage label"
        );
        match value {
            DebugValue::Counter(n) => {
                counters.insert(key.name().to_owned(), n);
            }
            DebugValue::Histogram(samples) => {
                histograms.insert(key.name().to_owned(), samples.len());
            }
            DebugValue::Gauge(_) => {}
        }
    }
    assert_eq!(counters.get("pjp_jobs_picked_total"), Some(&30));
    assert_eq!(counters.get("pjp_jobs_succeeded_total"), Some(&27));
    assert_eq!(counters.get("pjp_jobs_failed_total"), Some(&3));
    assert_eq!(histograms.get("pjp_execute_seconds"), Some(&30));
    assert_eq!(histograms.get("pjp_job_seconds"), Some(&30));
    assert_eq!(histograms.get("pjp_save_seconds"), Some(&30));
}

/// Records the fields of every `job` span.
#[derive(Clone, Default)]
struct JobSpans(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for JobSpans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        if attrs.metadata().name() == "job" {
            let mut fields = BTreeMap::new();
            attrs.record(&mut Fields(&mut fields));
            self.0.lock().expect("lock").push(fields);
        }
    }
}

#[test]
fn every_job_gets_a_span_with_its_id_stage_and_attempt() {
    let _serial = one_at_a_time();
    let spans = JobSpans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let queue = Queue::closed_with(0..5);
    let runner = JobRunner::builder(queue.picker(), Doubler::default(), queue.saver())
        .stage("traced")
        .build()
        .expect("config");
    tracing::subscriber::with_default(subscriber, || {
        // Interest cached while no subscriber was set must not hide our spans.
        tracing::callsite::rebuild_interest_cache();
        let rt = current_thread();
        let runtime = TokioRuntime::from_handle(rt.handle().clone());
        rt.block_on(runner.run(&runtime, Shutdown::new()))
            .expect("run")
    });
    let spans = spans.0.lock().expect("lock").clone();
    assert_eq!(spans.len(), 5);
    let mut ids: Vec<&str> = spans.iter().map(|s| s["job_id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["0", "1", "2", "3", "4"]);
    assert!(
        spans
            .iter()
            .all(|s| s["stage"] == "traced" && s["attempt"] == "1"),
        "{spans:?}"
    );
}
