//! Small components for the runner's tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use pjp_core::{Executor, Job, JobContext, JobPicker, JobResult, JobSaver, Picked, ReleaseReason};
use pjp_testkit::{MemoryQueue, QueueMeta, QueuePicker, QueueSaver};

pub type Queue = MemoryQueue<u64, u64, String>;

/// `input * 2`; fails on multiples of `fail_every`, panics on multiples of `panic_every`,
/// sleeps `sleep` per job.
#[derive(Default, Clone)]
pub struct Doubler {
    pub fail_every: Option<u64>,
    pub panic_every: Option<u64>,
    pub sleep: Duration,
}

impl Executor for Doubler {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
        if !self.sleep.is_zero() {
            std::thread::sleep(self.sleep);
        }
        if self.panic_every.is_some_and(|n| input.is_multiple_of(n)) {
            panic!("executor panicked on {input}");
        }
        if self.fail_every.is_some_and(|n| input.is_multiple_of(n)) {
            return Err(format!("cannot double {input}"));
        }
        Ok(input * 2)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("injected I/O error")]
pub struct Injected;

/// A picker that fails its first `errors` picks, then delegates.
pub struct FlakyPicker {
    pub inner: QueuePicker<u64, u64, String>,
    pub errors: AtomicU32,
    pub fatal: bool,
}

impl JobPicker for FlakyPicker {
    type Input = u64;
    type Metadata = QueueMeta;
    type Error = Wrapped;

    async fn pick(&self) -> Result<Picked<Job<u64, QueueMeta>>, Wrapped> {
        if self
            .errors
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Wrapped::Injected(Injected));
        }
        self.inner.pick().await.map_err(Wrapped::Queue)
    }

    async fn release(&self, meta: QueueMeta, reason: ReleaseReason) -> Result<(), Wrapped> {
        self.inner
            .release(meta, reason)
            .await
            .map_err(Wrapped::Queue)
    }

    fn classify(&self, _error: &Wrapped) -> pjp_core::ErrorClass {
        pjp_core::ErrorClass::from_retryable(!self.fatal)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Wrapped {
    #[error(transparent)]
    Injected(Injected),
    #[error(transparent)]
    Queue(pjp_testkit::QueueError),
}

/// A saver that fails `fail_first` saves of every job id in `ids` (or of every job if
/// `ids` is empty) before delegating; counts attempts.
pub struct FlakySaver {
    pub inner: QueueSaver<u64, u64, String>,
    pub fail_first: u32,
    pub ids: Vec<u64>,
    pub attempts: Mutex<std::collections::HashMap<u64, u32>>,
    pub calls: AtomicUsize,
}

impl FlakySaver {
    pub fn new(queue: &Queue, fail_first: u32, ids: Vec<u64>) -> Self {
        Self {
            inner: queue.saver(),
            fail_first,
            ids,
            attempts: Mutex::default(),
            calls: AtomicUsize::new(0),
        }
    }
}

impl JobSaver for FlakySaver {
    type Output = u64;
    type Failure = String;
    type Metadata = QueueMeta;
    type Error = Wrapped;

    async fn save(&self, result: &JobResult<u64, String>, meta: &QueueMeta) -> Result<(), Wrapped> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let id = meta.id.get();
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(id).or_default();
            *n += 1;
            *n
        };
        if (self.ids.is_empty() || self.ids.contains(&id)) && attempt <= self.fail_first {
            return Err(Wrapped::Injected(Injected));
        }
        self.inner.save(result, meta).await.map_err(Wrapped::Queue)
    }
}

/// Checks that every job of `queue` was saved exactly once, with the expected result.
pub fn assert_all_saved_once(queue: &Queue, expect: impl Fn(u64) -> Result<u64, ()>) {
    let saved = queue.saved();
    let mut seen = vec![0u32; queue.len()];
    for s in &saved {
        let id = s.meta.id.get();
        seen[id as usize] += 1;
        match (expect(id), &s.result) {
            (Ok(v), Ok(got)) => assert_eq!(v, *got, "job {id}"),
            (Err(()), Err(_)) => {}
            (want, got) => panic!("job {id}: expected {want:?}, saved {got:?}"),
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "saved counts: {seen:?}");
}

/// An executor that blocks every job until the gate opens, recording which inputs
/// started (an event a test can await).
pub struct Gated {
    pub open: Mutex<bool>,
    pub cond: std::sync::Condvar,
    started: tokio::sync::watch::Sender<Vec<u64>>,
}

impl Default for Gated {
    fn default() -> Self {
        Self {
            open: Mutex::new(false),
            cond: std::sync::Condvar::new(),
            started: tokio::sync::watch::Sender::new(Vec::new()),
        }
    }
}

impl Gated {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cond.notify_all();
    }

    pub fn started(&self) -> Vec<u64> {
        self.started.borrow().clone()
    }

    /// Waits until `n` jobs have started; fails the test if that takes more
    /// than the hang guard.
    pub async fn wait_started(&self, n: usize) {
        let mut started = self.started.subscribe();
        let waited =
            pjp_testkit::wait::within("jobs to start", started.wait_for(|s| s.len() >= n)).await;
        assert!(waited.is_ok(), "the executor was dropped");
    }
}

impl Executor for Gated {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
        self.started.send_modify(|s| s.push(input));
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cond.wait(open).unwrap();
        }
        Ok(input * 2)
    }
}

/// A picker that counts the picks that returned.
pub struct Observed<P> {
    pub inner: P,
    pub picks: std::sync::Arc<AtomicUsize>,
}

impl<P> Observed<P> {
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            picks: std::sync::Arc::default(),
        }
    }
}

impl<P: JobPicker> JobPicker for Observed<P> {
    type Input = P::Input;
    type Metadata = P::Metadata;
    type Error = P::Error;

    async fn pick(&self) -> pjp_core::PickResult<P::Input, P::Metadata, P::Error> {
        let picked = self.inner.pick().await;
        self.picks.fetch_add(1, Ordering::SeqCst);
        picked
    }

    async fn release(&self, meta: P::Metadata, reason: ReleaseReason) -> Result<(), P::Error> {
        self.inner.release(meta, reason).await
    }
}

/// Locks a mutex, whatever panicked while holding it.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
