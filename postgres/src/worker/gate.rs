//! [`ClaimGate`]: how many claim statements one worker keeps in flight,
//! adapted to how long they take.
//!
//! A hundred pickers of a process, times a fleet of processes, all claiming
//! at once queue at the pooler and contend for the same index head: every
//! claim slows down (zksync-era#4744: 7–18 s per pick at 300 pods). The gate
//! lets a claim statement start only while fewer than `limit` of the
//! worker's claims are in flight, and moves `limit` like TCP's window so
//! that claims keep answering within a target latency. It starts at one
//! claim (a fleet starting is a storm too) and grows by half per round of
//! fast claims until the first slow one halves it; from then on a claim slower
//! than the target cuts the limit by a tenth (once per target interval, so
//! one slow burst is one cut), and a faster one grows it by `1/limit` (one
//! per round of claims) while at least half the window is in use. The
//! pickers held back wait at the gate instead of at the database, as
//! pickers of an empty queue wait for a notification, and they enter in the
//! order they came (a fair semaphore): a picker that waited longest goes
//! next, so no picker loses the race for a place again and again.
//!
//! A fleet of many processes needs fewer claims in flight than it has
//! processes, so the limit goes below one (down to [`MIN_LIMIT`]): the
//! worker then has one claim in flight a `limit` share of the time, each
//! claim starting `took × (1/limit − 1)` after the previous one answered
//! (jittered, so that processes do not fall into step), and a fast claim
//! grows the limit by [`PACED_STEP`] of itself.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// The multiplicative decrease of the limit after a slow claim.
const DECREASE: f64 = 0.9;

/// The smallest limit: one claim in flight a sixteenth of the time.
pub(crate) const MIN_LIMIT: f64 = 1.0 / 16.0;

/// Below one, a fast claim grows the limit by this share of itself.
const PACED_STEP: f64 = 0.125;

/// An adaptive limit on a worker's claim statements in flight.
#[derive(Debug)]
pub(crate) struct ClaimGate {
    target: Duration,
    max: usize,
    state: Mutex<Window>,
    /// One permit per place in the window; waiters are served first come,
    /// first served.
    places: Semaphore,
}

#[derive(Debug)]
struct Window {
    /// The current limit: at least [`MIN_LIMIT`], at most `max`; below one,
    /// claims are paced.
    limit: f64,
    /// Paced: when the next claim may start.
    not_before: Option<Instant>,
    in_flight: usize,
    /// Permits that exist, free or held.
    issued: usize,
    /// Held permits to forget when they come back: the limit was cut below
    /// what is in flight.
    debt: usize,
    /// When the limit was last cut.
    cut_at: Option<Instant>,
    /// No claim was slow yet: each fast one (while the window is at least
    /// half used) widens it by one.
    slow_start: bool,
}

impl ClaimGate {
    /// A gate aiming at claims answered within `target`, letting at most
    /// `max` (at least 1) through at once; it starts at one.
    pub(crate) fn new(target: Duration, max: usize) -> Self {
        let max = max.max(1);
        Self {
            target,
            max,
            state: Mutex::new(Window {
                limit: 1.0,
                not_before: None,
                in_flight: 0,
                issued: 1,
                debt: 0,
                cut_at: None,
                slow_start: true,
            }),
            places: Semaphore::new(1),
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The claims let through at once now, on average: below one, the
    /// share of the time one claim is in flight.
    pub(crate) fn limit(&self) -> f64 {
        self.window().limit
    }

    /// Waits until a claim may start, behind the claims that came first.
    /// Cancel safe: dropped while waiting, it holds nothing; the pass it
    /// returns gives its place back when dropped.
    pub(crate) async fn enter(&self) -> Pass<'_> {
        // The semaphore is never closed; were it, claims would go ungated
        // rather than fail.
        let permit = self.places.acquire().await.ok();
        // Paced: the one place opens a while after the last claim answered
        // (the place is held meanwhile, so the others stay in line).
        let not_before = self.window().not_before;
        if let Some(at) = not_before.filter(|&at| at > Instant::now()) {
            tokio::time::sleep_until(at).await;
        }
        self.window().in_flight += 1;
        Pass {
            gate: self,
            permit,
            started: Instant::now(),
            answered: false,
        }
    }

    fn leave(&self, took: Option<Duration>, permit: Option<SemaphorePermit<'_>>) {
        let mut window = self.window();
        // A window half unused says nothing about a wider one.
        let busy = window.in_flight as f64 >= window.limit / 2.0;
        window.in_flight = window.in_flight.saturating_sub(1);
        match took {
            Some(took) if took > self.target => {
                let now = Instant::now();
                if window.slow_start {
                    window.limit = (window.limit / 2.0).max(MIN_LIMIT);
                    window.slow_start = false;
                    window.cut_at = Some(now);
                } else if window
                    .cut_at
                    .is_none_or(|at| now.duration_since(at) >= self.target)
                {
                    window.limit = (window.limit * DECREASE).max(MIN_LIMIT);
                    window.cut_at = Some(now);
                }
            }
            Some(_) if busy => {
                let step = if window.slow_start {
                    1.0
                } else if window.limit < 1.0 {
                    window.limit * PACED_STEP
                } else {
                    1.0 / window.limit
                };
                window.limit = (window.limit + step).min(self.max as f64);
            }
            // Failed or cancelled: says nothing about the load.
            Some(_) | None => {}
        }
        window.not_before = match took {
            Some(took) if window.limit < 1.0 => {
                // Jittered by ±25 %: processes paced alike would otherwise
                // claim in step.
                let pause =
                    took.mul_f64((1.0 / window.limit - 1.0) * (0.75 + fastrand::f64() / 2.0));
                Some(Instant::now() + pause)
            }
            _ => None,
        };
        self.resize(&mut window);
        // Owed: forgotten. Otherwise dropped here: the next waiter in line
        // enters.
        if let Some(permit) = permit
            && window.debt > 0
        {
            window.debt -= 1;
            window.issued -= 1;
            permit.forget();
        }
    }

    /// Makes the permits match the limit: adds them when it grew, forgets
    /// free ones when it shrank and owes the rest until they come back.
    fn resize(&self, window: &mut Window) {
        // Paced below one: one place.
        let wanted = (window.limit as usize).max(1);
        let effective = window.issued - window.debt;
        if wanted > effective {
            let forgiven = window.debt.min(wanted - effective);
            window.debt -= forgiven;
            let added = wanted - (window.issued - window.debt);
            if added > 0 {
                self.places.add_permits(added);
                window.issued += added;
            }
        } else if wanted < effective {
            let excess = effective - wanted;
            let forgotten = self.places.forget_permits(excess);
            window.issued -= forgotten;
            window.debt += excess - forgotten;
        }
    }
}

/// A claim's place at the [`ClaimGate`]; [`answered`](Self::answered) once
/// the statement returned, so its latency moves the limit.
#[derive(Debug)]
pub(crate) struct Pass<'a> {
    gate: &'a ClaimGate,
    permit: Option<SemaphorePermit<'a>>,
    started: Instant,
    answered: bool,
}

impl Pass<'_> {
    /// The claim statement answered: its latency moves the limit.
    pub(crate) fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let took = self.answered.then(|| self.started.elapsed());
        self.gate.leave(took, self.permit.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slow_claims_narrow_the_gate_and_fast_ones_widen_it() {
        let gate = ClaimGate::new(Duration::from_millis(20), 8);
        let limit = || gate.limit() as usize;
        assert_eq!(limit(), 1, "it starts at one");
        // Slow start: each round of fast claims that fills the window widens
        // it by one per claim answered while at least half of it was in
        // use (half again per round), up to the maximum.
        let round = || async {
            let mut passes = Vec::new();
            for _ in 0..limit() {
                passes.push(gate.enter().await);
            }
            passes.into_iter().for_each(Pass::answered);
        };
        for wanted in [2, 3, 5, 7, 8, 8] {
            round().await;
            assert_eq!(limit(), wanted);
        }
        // The first slow claim halves it and ends the slow start; a second
        // inside the same target interval (the same burst) does not cut.
        let (a, b) = (gate.enter().await, gate.enter().await);
        tokio::time::advance(Duration::from_millis(50)).await;
        a.answered();
        b.answered();
        assert_eq!(limit(), 4, "8 / 2, once");
        let (a, b) = (gate.enter().await, gate.enter().await);
        tokio::time::advance(Duration::from_millis(50)).await;
        a.answered();
        b.answered();
        assert_eq!(limit(), 3, "4 × 0.9");
        // Slow bursts a target interval apart keep cutting, below one (the
        // claims are then paced), down to the floor.
        for _ in 0..40 {
            tokio::time::advance(Duration::from_millis(30)).await;
            let pass = gate.enter().await;
            tokio::time::advance(Duration::from_millis(30)).await;
            pass.answered();
        }
        assert_eq!(gate.limit(), MIN_LIMIT);
        // Fast claims grow it by an eighth each back to one; past one, one
        // fast claim at a time uses less than half a window of two: it
        // opens no wider than that.
        for _ in 0..50 {
            gate.enter().await.answered();
        }
        assert_eq!(limit(), 2);
        // Past the slow start, rounds of fast claims that fill the window
        // open it by about one per round, up to the maximum.
        round().await;
        assert_eq!(limit(), 2, "2.5 + 1/2.5: a fraction per round");
        for _ in 0..20 {
            round().await;
        }
        assert_eq!(limit(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn below_one_a_claim_starts_a_while_after_the_last_answered() {
        let gate = ClaimGate::new(Duration::from_millis(20), 4);
        // The first slow claim halves the window of one: one claim in flight
        // half the time.
        let pass = gate.enter().await;
        tokio::time::advance(Duration::from_millis(40)).await;
        pass.answered();
        assert_eq!(gate.limit(), 0.5);
        // The next starts `took × (1/0.5 − 1)` = 40 ms (±25 %) after it.
        let mut next = std::pin::pin!(gate.enter());
        assert!(futures_util::poll!(next.as_mut()).is_pending());
        tokio::time::advance(Duration::from_millis(29)).await;
        assert!(
            futures_util::poll!(next.as_mut()).is_pending(),
            "29 ms: too soon"
        );
        tokio::time::advance(Duration::from_millis(21)).await;
        let pass = match futures_util::poll!(next.as_mut()) {
            std::task::Poll::Ready(pass) => pass,
            std::task::Poll::Pending => panic!("50 ms: let in"),
        };
        // A fast claim grows the window by an eighth of itself, and the one
        // after it starts as soon as it answered (its own time was nil).
        pass.answered();
        assert_eq!(gate.limit(), 0.5625);
        assert!(futures_util::poll!(std::pin::pin!(gate.enter())).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_waits_while_the_limit_is_reached_and_enters_when_one_leaves() {
        let gate = ClaimGate::new(Duration::from_millis(20), 1);
        let first = gate.enter().await;
        let mut second = std::pin::pin!(gate.enter());
        assert!(
            futures_util::poll!(second.as_mut()).is_pending(),
            "one at a time"
        );
        // A failed claim (dropped, not answered) frees its place without
        // moving the limit.
        drop(first);
        let second = second.await;
        assert_eq!(gate.limit(), 1.0);
        second.answered();
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_claims_enter_in_the_order_they_came() {
        let gate = ClaimGate::new(Duration::from_millis(20), 1);
        let first = gate.enter().await;
        let mut second = std::pin::pin!(gate.enter());
        let mut third = std::pin::pin!(gate.enter());
        assert!(futures_util::poll!(second.as_mut()).is_pending());
        assert!(futures_util::poll!(third.as_mut()).is_pending());
        first.answered();
        // The place freed goes to the claim that waited longest, even when
        // the later one is polled first.
        assert!(futures_util::poll!(third.as_mut()).is_pending());
        let second = match futures_util::poll!(second.as_mut()) {
            std::task::Poll::Ready(pass) => pass,
            std::task::Poll::Pending => panic!("the first in line enters"),
        };
        second.answered();
        assert!(futures_util::poll!(third.as_mut()).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_below_the_claims_in_flight_lets_none_in_until_they_are_under_it() {
        let gate = ClaimGate::new(Duration::from_millis(20), 4);
        // Slow start to 4: 1 → 2 → 3 → 4.
        for _ in 0..3 {
            let passes: Vec<_> =
                futures_util::future::join_all((0..gate.limit() as usize).map(|_| gate.enter()))
                    .await;
            passes.into_iter().for_each(Pass::answered);
        }
        assert_eq!(gate.limit(), 4.0);
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(gate.enter().await);
        }
        tokio::time::advance(Duration::from_millis(50)).await;
        // The first slow answer halves the limit to 2 with 3 still in flight.
        held.remove(0).answered();
        assert_eq!(gate.limit(), 2.0);
        let mut waiting = std::pin::pin!(gate.enter());
        assert!(
            futures_util::poll!(waiting.as_mut()).is_pending(),
            "3 in flight"
        );
        drop(held.remove(0));
        assert!(
            futures_util::poll!(waiting.as_mut()).is_pending(),
            "2 in flight"
        );
        drop(held.remove(0));
        let pass = match futures_util::poll!(waiting.as_mut()) {
            std::task::Poll::Ready(pass) => pass,
            std::task::Poll::Pending => panic!("1 in flight: a place is free"),
        };
        let mut beyond = std::pin::pin!(gate.enter());
        assert!(futures_util::poll!(beyond.as_mut()).is_pending(), "2 of 2");
        drop(held);
        drop(pass);
        assert!(futures_util::poll!(beyond.as_mut()).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_claim_dropped_holds_nothing() {
        let gate = ClaimGate::new(Duration::from_millis(20), 1);
        let first = gate.enter().await;
        {
            let mut waiting = std::pin::pin!(gate.enter());
            assert!(futures_util::poll!(waiting.as_mut()).is_pending());
        }
        first.answered();
        // The dropped waiter took no place: the next enters at once.
        let third = std::pin::pin!(gate.enter());
        assert!(futures_util::poll!(third).is_ready());
    }
}
