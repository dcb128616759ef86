//! Waiting in a test for something that another task, thread, process or the
//! database does: the one polling helper of the workspace's tests.
//!
//! Every wait here has a **hang guard**: a deadline on the wall clock
//! ([`HANG_GUARD`], 30 s, unless [`Wait::limit`] says otherwise) after which
//! the test fails with a message naming what never happened, instead of
//! hanging until CI kills it. A hang guard is **not a timing assertion**:
//! it is generous so that a loaded machine never trips it, and a test that
//! wants to check how long something took measures it and asserts on the
//! measurement itself. Nor is polling a way to synchronise with code the
//! test controls: where the test can await an event (a channel, a
//! `watch`, a join handle), it awaits that, with [`within`] as the guard.
//!
//! * [`eventually`]: polls a cheap condition (every millisecond);
//! * [`eventually_async`]: polls a condition that is itself a future, such
//!   as a database query (every 10 ms);
//! * [`within`]: awaits a future, failing the test if it does not finish;
//! * [`Wait`]: the same, with another limit or poll interval, a condition
//!   that yields a value ([`Wait::until_some`]), a test that wants to handle
//!   the timeout itself ([`Wait::try_until_some`]), and a blocking variant
//!   for synchronous code ([`Wait::try_until_some_blocking`]).
//!
//! The async helpers need a tokio runtime with its time driver (any
//! `#[tokio::test]`); they sleep on it between checks. The guard itself is
//! measured on the wall clock, so paused tokio time (`start_paused`) does
//! not trip it early; each pause between checks then advances the paused
//! clock by the poll interval.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::time::Duration;
//! use pjp_testkit::wait::{Wait, eventually, eventually_async, within};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let done = Arc::new(AtomicBool::new(false));
//! let flag = done.clone();
//! std::thread::spawn(move || flag.store(true, Ordering::SeqCst));
//! // Fails the test with "never happened within 30s (hang guard): the
//! // thread to finish" if it does not.
//! eventually("the thread to finish", || done.load(Ordering::SeqCst)).await;
//!
//! // A condition that needs an await (a query, say).
//! let (tx, rx) = tokio::sync::watch::channel(0);
//! tokio::spawn(async move { tx.send_replace(3) });
//! eventually_async("the count to reach 3", || async { *rx.borrow() == 3 }).await;
//!
//! // Awaiting an event, with the guard.
//! let (tx, rx) = tokio::sync::oneshot::channel();
//! tokio::spawn(async move { tx.send(42) });
//! assert_eq!(within("the answer", rx).await, Ok(42));
//!
//! // A value, polled every 50 ms for up to two minutes.
//! let (tx, rx) = std::sync::mpsc::channel();
//! std::thread::spawn(move || tx.send("a proof"));
//! let proof = Wait::new("the proof")
//!     .limit(Duration::from_secs(120))
//!     .every(Duration::from_millis(50))
//!     .until_some(|| std::future::ready(rx.try_recv().ok()))
//!     .await;
//! assert_eq!(proof, "a proof");
//! # }
//! ```

use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::time::{Duration, Instant};

/// How long a wait lasts before the test fails, unless [`Wait::limit`] says
/// otherwise: a hang guard, not a timing assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// The pause between checks of a synchronous condition ([`Wait::until`]).
const SYNC_EVERY: Duration = Duration::from_millis(1);

/// The pause between checks of a condition that is a future (usually a round
/// trip), between checks of a blocking one, and between the guard's looks at
/// the clock while [`Wait::within`] awaits.
const ASYNC_EVERY: Duration = Duration::from_millis(10);

/// Waits until `condition` holds, checking it every millisecond.
///
/// A hang guard, not a timing assertion: see the [module](self) docs.
///
/// # Panics
///
/// Fails the test when `condition` still does not hold after
/// [`HANG_GUARD`], naming `what`.
pub async fn eventually(what: &str, condition: impl FnMut() -> bool) {
    Wait::new(what).until(condition).await;
}

/// Waits until the future `condition` returns resolves to `true`, calling it
/// again every 10 ms (for a condition that needs an `await`, such as a
/// database query).
///
/// A hang guard, not a timing assertion: see the [module](self) docs.
///
/// # Panics
///
/// Fails the test when the condition still does not hold after
/// [`HANG_GUARD`] (a check that itself hangs included), naming `what`.
pub async fn eventually_async<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    Wait::new(what).until_async(condition).await;
}

/// Awaits `future`, failing the test if it has not finished after
/// [`HANG_GUARD`].
///
/// A hang guard, not a timing assertion: see the [module](self) docs.
///
/// # Panics
///
/// Fails the test when `future` has not finished after [`HANG_GUARD`],
/// naming `what`.
pub async fn within<F: IntoFuture>(what: &str, future: F) -> F::Output {
    Wait::new(what).within(future).await
}

/// A wait with its own limit or poll interval; [`eventually`],
/// [`eventually_async`] and [`within`] are `Wait::new(what)` with the
/// defaults.
///
/// ```
/// use std::time::Duration;
/// use pjp_testkit::wait::Wait;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let started = std::time::Instant::now();
/// Wait::new("a second to pass")
///     .limit(Duration::from_secs(60))
///     .every(Duration::from_millis(100))
///     .until(|| started.elapsed() >= Duration::from_secs(1))
///     .await;
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use = "a Wait does nothing until one of its `until` or `within` methods runs"]
pub struct Wait<'a> {
    what: &'a str,
    limit: Duration,
    every: Option<Duration>,
}

impl<'a> Wait<'a> {
    /// A wait for `what` (named in the failure), with the [`HANG_GUARD`].
    pub fn new(what: &'a str) -> Self {
        Self {
            what,
            limit: HANG_GUARD,
            every: None,
        }
    }

    /// Fails after `limit` instead of [`HANG_GUARD`]: for something that
    /// really takes longer (a fleet of worker processes finishing). Still a
    /// hang guard: make it generous.
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Pauses `every` between checks, instead of 1 ms for a synchronous
    /// condition ([`until`](Self::until)) and 10 ms otherwise.
    pub fn every(mut self, every: Duration) -> Self {
        self.every = Some(every);
        self
    }

    /// Waits until `condition` holds, checking it every millisecond (or
    /// [`every`](Self::every)).
    ///
    /// # Panics
    ///
    /// Fails the test when `condition` still does not hold after the limit.
    pub async fn until(self, mut condition: impl FnMut() -> bool) {
        let waited = self
            .every(self.every.unwrap_or(SYNC_EVERY))
            .try_until_some(|| std::future::ready(condition().then_some(())))
            .await;
        if let Err(hung) = waited {
            panic!("{hung}");
        }
    }

    /// Waits until the future `condition` returns resolves to `true`,
    /// calling it again every 10 ms (or [`every`](Self::every)).
    ///
    /// # Panics
    ///
    /// Fails the test when the condition still does not hold after the
    /// limit (a check that itself hangs included).
    pub async fn until_async<F, Fut>(self, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let waited = self
            .try_until_some(|| {
                let check = condition();
                async move { check.await.then_some(()) }
            })
            .await;
        if let Err(hung) = waited {
            panic!("{hung}");
        }
    }

    /// Calls `poll` every 10 ms (or [`every`](Self::every)) until its future
    /// yields a value, and returns that value.
    ///
    /// # Panics
    ///
    /// Fails the test when `poll` has yielded nothing by the limit (a poll
    /// that itself hangs included).
    pub async fn until_some<T, F, Fut>(self, poll: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        match self.try_until_some(poll).await {
            Ok(value) => value,
            Err(hung) => panic!("{hung}"),
        }
    }

    /// [`until_some`](Self::until_some), returning [`Hung`] instead of
    /// failing the test: for a test that has something to add to the
    /// failure (the state it found) or something to clean up first.
    ///
    /// # Errors
    ///
    /// [`Hung`] when `poll` has yielded nothing by the limit, or a poll is
    /// still running at the limit.
    pub async fn try_until_some<T, F, Fut>(self, mut poll: F) -> Result<T, Hung>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let every = self.every.unwrap_or(ASYNC_EVERY);
        let deadline = Deadline::after(self.limit);
        loop {
            if let Some(value) = self.guard(poll(), deadline, every).await? {
                return Ok(value);
            }
            if deadline.passed() {
                return Err(self.hung());
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The blocking [`try_until_some`](Self::try_until_some), for
    /// synchronous code (a thread, a `Drop`, a non-async test): calls `poll`
    /// every 10 ms (or [`every`](Self::every)), sleeping the thread in
    /// between, until it yields a value.
    ///
    /// # Errors
    ///
    /// [`Hung`] when `poll` has yielded nothing by the limit.
    pub fn try_until_some_blocking<T>(
        self,
        mut poll: impl FnMut() -> Option<T>,
    ) -> Result<T, Hung> {
        let every = self.every.unwrap_or(ASYNC_EVERY);
        let deadline = Deadline::after(self.limit);
        loop {
            if let Some(value) = poll() {
                return Ok(value);
            }
            if deadline.passed() {
                return Err(self.hung());
            }
            std::thread::sleep(every);
        }
    }

    /// Awaits `future`, failing the test if it has not finished by the
    /// limit.
    ///
    /// # Panics
    ///
    /// Fails the test when `future` has not finished by the limit.
    pub async fn within<F: IntoFuture>(self, future: F) -> F::Output {
        let every = self.every.unwrap_or(ASYNC_EVERY);
        match self
            .guard(future.into_future(), Deadline::after(self.limit), every)
            .await
        {
            Ok(output) => output,
            Err(hung) => panic!("{hung}"),
        }
    }

    /// Awaits `future` until `deadline`, looking at the wall clock at least
    /// `every`.
    async fn guard<F: Future>(
        &self,
        future: F,
        deadline: Deadline,
        every: Duration,
    ) -> Result<F::Output, Hung> {
        let mut future = pin!(future);
        loop {
            // Short timeouts rather than one for the whole limit: under
            // paused tokio time a long one would fire (and advance the
            // clock) as soon as the runtime is idle.
            if let Ok(output) = tokio::time::timeout(every, future.as_mut()).await {
                return Ok(output);
            }
            if deadline.passed() {
                return Err(self.hung());
            }
        }
    }

    fn hung(&self) -> Hung {
        Hung {
            what: self.what.to_owned(),
            limit: self.limit,
        }
    }
}

/// What a wait reports when its hang guard ran out: what never happened,
/// and the limit it had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("never happened within {limit:?} (hang guard): {what}")]
pub struct Hung {
    what: String,
    limit: Duration,
}

impl Hung {
    /// What the wait was for.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The limit that ran out.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

/// A point on the wall clock; `None`: a limit too far away to represent.
#[derive(Debug, Clone, Copy)]
struct Deadline(Option<Instant>);

impl Deadline {
    fn after(limit: Duration) -> Self {
        Self(Instant::now().checked_add(limit))
    }

    fn passed(self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_that_never_ends_names_what_never_happened() {
        let short = Wait::new("the impossible").limit(Duration::from_millis(30));
        let hung = short
            .try_until_some(|| std::future::ready(None::<()>))
            .await
            .err();
        assert_eq!(
            hung.map(|h| h.to_string()),
            Some("never happened within 30ms (hang guard): the impossible".to_owned())
        );
        let blocking = short.try_until_some_blocking(|| None::<()>);
        assert_eq!(blocking.err().map(|h| h.limit()), Some(short.limit));
    }

    #[tokio::test]
    async fn a_check_that_hangs_is_caught_too() {
        let short = Wait::new("a hanging check").limit(Duration::from_millis(30));
        let hung = short
            .try_until_some(std::future::pending::<Option<()>>)
            .await;
        assert_eq!(
            hung.err().map(|h| h.what().to_owned()),
            Some("a hanging check".to_owned())
        );
    }

    #[tokio::test]
    #[should_panic(expected = "never happened within 20ms (hang guard): the future")]
    async fn within_fails_the_test_at_the_limit() {
        Wait::new("the future")
            .limit(Duration::from_millis(20))
            .within(std::future::pending::<()>())
            .await;
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn paused_time_does_not_trip_the_guard() {
        // A real thread, outside tokio's clock: under paused time a guard on
        // tokio's clock would fire as soon as the runtime went idle.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(()).ok();
        });
        let got = Wait::new("the thread")
            .limit(Duration::from_secs(5))
            .within(rx)
            .await;
        assert_eq!(got, Ok(()));
    }

    #[tokio::test]
    async fn the_value_comes_back() {
        let mut calls = 0;
        let value = Wait::new("the third call")
            .until_some(|| {
                calls += 1;
                std::future::ready((calls == 3).then_some(calls))
            })
            .await;
        assert_eq!(value, 3);
    }
}
