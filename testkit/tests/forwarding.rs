//! Every wrapper forwards every method of the picker and saver it wraps: a
//! wrapper that fell back on a trait default would silently change
//! behaviour (a batched release turned into one call per job, a cancel-safe
//! pick waited for, an error class lost).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pjp_core::boxed::{BoxPicker, BoxSaver};
use pjp_core::{
    ErrorClass, Job, JobId, JobPicker, JobResult, JobSaver, Picked, ReleaseReason, SaveBatch,
    SaveResults,
};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::{IoFaults, LatencyProfile, Ledger, PickerExt, SaverExt};

type Log = Arc<Mutex<Vec<&'static str>>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("probe error")]
struct ProbeError;

/// Overrides every method with a non-default answer and logs each call.
#[derive(Clone, Default)]
struct Probe {
    log: Log,
    fail: bool,
}

impl Probe {
    fn called(&self, method: &'static str) {
        self.log.lock().unwrap().push(method);
    }
}

impl JobPicker for Probe {
    type Input = u64;
    type Metadata = JobId;
    type Error = ProbeError;

    async fn pick(&self) -> Result<Picked<Job<u64, JobId>>, ProbeError> {
        self.called("pick");
        if self.fail {
            return Err(ProbeError);
        }
        Ok(Picked::Some(Job::new(1, JobId::new(1))))
    }

    async fn pick_many(&self, _max: usize) -> Result<Picked<Vec<Job<u64, JobId>>>, ProbeError> {
        self.called("pick_many");
        Ok(Picked::Some(vec![Job::new(1, JobId::new(1))]))
    }

    async fn release(&self, _meta: JobId, reason: ReleaseReason) -> Result<(), ProbeError> {
        // The reason must come through the wrapper unchanged.
        self.called(match reason {
            ReleaseReason::SaveGaveUp => "release(SaveGaveUp)",
            _ => "release(another reason)",
        });
        Ok(())
    }

    async fn release_many(
        &self,
        metas: Vec<JobId>,
        _reason: ReleaseReason,
    ) -> Vec<Result<(), ProbeError>> {
        self.called("release_many");
        metas.iter().map(|_| Ok(())).collect()
    }

    async fn on_abandon(&self) {
        self.called("on_abandon");
    }

    fn classify(&self, _error: &ProbeError) -> ErrorClass {
        ErrorClass::LostClaim
    }

    fn pick_is_cancel_safe(&self) -> bool {
        true
    }
}

impl JobSaver for Probe {
    type Output = u64;
    type Failure = String;
    type Metadata = JobId;
    type Error = ProbeError;

    async fn save(
        &self,
        _result: &JobResult<u64, String>,
        _meta: &JobId,
    ) -> Result<(), ProbeError> {
        self.called("save");
        if self.fail {
            return Err(ProbeError);
        }
        Ok(())
    }

    async fn save_many(
        &self,
        batch: &SaveBatch<'_, u64, String, JobId>,
    ) -> SaveResults<ProbeError> {
        self.called("save_many");
        batch.iter().map(|_| Ok(())).collect()
    }

    fn classify(&self, _error: &ProbeError) -> ErrorClass {
        ErrorClass::LostClaim
    }
}

/// Calls each picker method through `wrapped` and checks the probe heard
/// exactly that method; `failing` is the same wrapper over a failing probe.
async fn picker_forwards<W: JobPicker<Input = u64>>(name: &str, log: &Log, wrapped: W, failing: W) {
    let meta = match wrapped.pick_many(4).await {
        Ok(Picked::Some(mut jobs)) => jobs.pop().unwrap().meta,
        _ => panic!("{name}: pick_many found nothing"),
    };
    let reason = ReleaseReason::SaveGaveUp;
    assert!(wrapped.release(meta.clone(), reason).await.is_ok());
    let outcomes = wrapped.release_many(vec![meta.clone(), meta], reason).await;
    assert_eq!(outcomes.len(), 2, "{name}");
    wrapped.on_abandon().await;
    assert_eq!(
        *log.lock().unwrap(),
        [
            "pick_many",
            "release(SaveGaveUp)",
            "release_many",
            "on_abandon"
        ],
        "{name} did not forward every picker method as itself"
    );
    assert!(wrapped.pick_is_cancel_safe(), "{name}: pick_is_cancel_safe");
    let error = failing.pick().await.err().unwrap();
    assert_eq!(
        failing.classify(&error),
        ErrorClass::LostClaim,
        "{name}: classify"
    );
}

/// The same for a saver.
async fn saver_forwards<W>(name: &str, log: &Log, wrapped: W, failing: W, meta: W::Metadata)
where
    W: JobSaver<Output = u64, Failure = String>,
{
    let result: JobResult<u64, String> = Ok(2);
    assert!(wrapped.save(&result, &meta).await.is_ok());
    let outcomes = wrapped
        .save_many(&[(&result, &meta), (&result, &meta)])
        .await;
    assert_eq!(outcomes.len(), 2, "{name}");
    assert_eq!(
        *log.lock().unwrap(),
        ["save", "save_many"],
        "{name} did not forward every saver method as itself"
    );
    let error = failing.save(&result, &meta).await.err().unwrap();
    assert_eq!(
        failing.classify(&error),
        ErrorClass::LostClaim,
        "{name}: classify"
    );
}

fn probes() -> (Log, Probe, Probe) {
    let log = Log::default();
    let probe = Probe {
        log: Arc::clone(&log),
        fail: false,
    };
    let failing = Probe {
        log: Log::default(),
        fail: true,
    };
    (log, probe, failing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_picker_wrapper_forwards_every_method() {
    let rt = TokioRuntime::current();
    let none = || LatencyProfile::fixed(Duration::ZERO);

    let (log, p, f) = probes();
    picker_forwards(
        "Latent",
        &log,
        PickerExt::with_latency(p, &rt, none()),
        PickerExt::with_latency(f, &rt, none()),
    )
    .await;

    let (log, p, f) = probes();
    let faults = IoFaults::none;
    picker_forwards(
        "Faulty",
        &log,
        PickerExt::with_faults(p, &rt, faults()),
        PickerExt::with_faults(f, &rt, faults()),
    )
    .await;

    let (log, p, f) = probes();
    let ledger = Ledger::new();
    picker_forwards(
        "Recorded",
        &log,
        PickerExt::with_ledger(p, &ledger),
        PickerExt::with_ledger(f, &ledger),
    )
    .await;

    let (log, p, f) = probes();
    picker_forwards("BoxPicker", &log, BoxPicker::new(p), BoxPicker::new(f)).await;

    let (log, p, f) = probes();
    picker_forwards("Arc", &log, Arc::new(p), Arc::new(f)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_saver_wrapper_forwards_every_method() {
    let rt = TokioRuntime::current();
    let none = || LatencyProfile::fixed(Duration::ZERO);
    let id = JobId::new(1);

    let (log, p, f) = probes();
    saver_forwards(
        "Latent",
        &log,
        SaverExt::with_latency(p, &rt, none()),
        SaverExt::with_latency(f, &rt, none()),
        id,
    )
    .await;

    let (log, p, f) = probes();
    let faults = IoFaults::none;
    saver_forwards(
        "Faulty",
        &log,
        SaverExt::with_faults(p, &rt, faults()),
        SaverExt::with_faults(f, &rt, faults()),
        id,
    )
    .await;

    let (log, p, f) = probes();
    let ledger = Ledger::new();
    saver_forwards(
        "Recorded",
        &log,
        SaverExt::with_ledger(p, &ledger),
        SaverExt::with_ledger(f, &ledger),
        id,
    )
    .await;

    let (log, p, f) = probes();
    let meta = pjp_core::boxed::AnyMeta::new(id);
    saver_forwards("BoxSaver", &log, BoxSaver::new(p), BoxSaver::new(f), meta).await;

    let (log, p, f) = probes();
    saver_forwards("Arc", &log, Arc::new(p), Arc::new(f), id).await;
}
